/* Binary upgrade without refusing a connection: the running process hands its listening sockets
 * to its successor over a unix socket (SCM_RIGHTS), the way HAProxy's `expose-fd listeners` and
 * nginx's binary upgrade do, then drains.
 *
 * Why hand over rather than only bind beside it with SO_REUSEPORT: closing a listening socket
 * resets every connection in its accept queue (and drops its half-open ones), and the kernel
 * keeps routing new connections to a SO_REUSEPORT socket until the very moment it is closed, so
 * an old process that closes its own sockets always loses some under a steady stream. Sockets
 * passed over stay open in the successor, which accepts whatever was queued on them: no socket
 * of the group is ever closed, nothing is reset, and it needs no BPF program, no sysctl
 * (net.ipv4.tcp_migrate_req) and no privilege.
 *
 * The exchange (SOCK_SEQPACKET on --upgrade-socket): the new process connects; the old one sends
 * every listening socket of every worker (several messages of at most UPGRADE_FDS_PER_MSG); the
 * new one listens on them, starts its workers, takes the path over for the next upgrade and says
 * READY; the old one then stops (src/main.c): it stops accepting, ends its HTTP/2 connections with
 * GOAWAY, and exits when its tunnels end or --drain-timeout passes. A new process that fails
 * before READY changes nothing: the old one keeps serving. */
#ifndef H2T_UPGRADE_H
#define H2T_UPGRADE_H

#include <sys/types.h>
#include <uv.h>

#include "src/config.h"
#include "src/worker.h"

/* What a new process took from the one it replaces. */
struct upgrade_take {
  int conn;      /* owned: the connection to the old process; -1 when none was running */
  pid_t peer;    /* the old process */
  int n;         /* fds[0..n) received and not yet given to a worker (-1 once given or closed) */
  int *fds;      /* owned array */
};

/* Connects to |path| and receives the running process's listening sockets. Nobody there (no
 * file, or a stale one) is no error: 0 with t->conn == -1 and nothing taken. -errno (logged)
 * when a process answered but the exchange failed. */
int upgrade_take(const char *path, struct upgrade_take *t);

/* Spreads the taken sockets over |nworkers| workers by their bound address: adopt[w * nlisteners
 * + i] gets worker w's share of config listener i (a worker without a share binds a socket of
 * its own, joining the SO_REUSEPORT group). Sockets of an address no listener has any more are
 * closed. -ENOSPC (logged, nothing given) when a worker would hold more than
 * WORKER_MAX_LISTENERS sockets: start the new process with more workers. */
int upgrade_assign(struct upgrade_take *t, const struct config *cfg, int nworkers, struct worker_adopt *adopt);

/* Closes the sockets of workers [from, nworkers) that will not take them (a failed start). */
void upgrade_adopt_close(struct worker_adopt *adopt, int from, int nworkers, int nlisteners);
/* Tells the old process to stop (the new one serves) and closes the connection. */
void upgrade_ready(struct upgrade_take *t);
/* Closes the connection without READY (the old process keeps serving) and every socket still
 * held by |t|; frees |t|'s array. Also the last call after upgrade_ready. */
void upgrade_release(struct upgrade_take *t);

/* The old side: serves this process's listening sockets on |path| to a successor. */
struct upgrade_server;
/* |on_ready| runs on |loop| when a successor said READY (the caller stops this process). The
 * path is bound beside it and renamed over |path| (a previous owner, if any, keeps running).
 * Returns NULL (logged) when the socket cannot be made. |workers| are read when a successor
 * connects (their listeners change only when the process stops, after upgrade_server_close). */
struct upgrade_server *upgrade_server_start(uv_loop_t *loop, const char *path, const struct worker *workers,
                                            int nworkers, void (*on_ready)(void *arg, pid_t pid), void *arg);
/* Closes the server (and a successor's pending exchange) and removes |path| unless a successor
 * has put its own there. Frees |s| once libuv has closed its handles. NULL is a no-op. */
void upgrade_server_close(struct upgrade_server *s);

#endif
