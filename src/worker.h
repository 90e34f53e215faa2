/* A worker: one thread, one libuv loop, and everything that loop serves -- its listeners, client
 * connections, tunnels, resolver, buffer pool and counters. Nothing here is touched by another
 * thread except the metrics (read with relaxed atomics), stop_async and |health_draining|. */
#ifndef H2T_WORKER_H
#define H2T_WORKER_H

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <uv.h>

#include "src/buf.h"
#include "src/config.h"
#include "src/log.h"
#include "src/metrics.h"
#include "src/util.h"

struct auth_cache;
struct auth_guard;
struct dns_resolver;
struct limits;
struct membudget;
struct frontend_table;
struct fwd_pool;
struct listener;
struct status_worker;
struct worker;

/* Work deferred to the end of the current loop turn (write coalescing, session sends, resumed
 * reads). Embedded in its owner, which must call worker_defer_cancel before freeing it. */
struct worker_defer {
  struct list link;
  void (*cb)(struct worker_defer *d);
  int queued;
};

/* A listening socket of one worker. libuv 1.44's own accept loop takes every pending connection
 * in one callback and, on EMFILE, silently accepts and closes them (or, when its reserve
 * descriptor is gone, spins calling back with the error); we poll the socket and accept ourselves,
 * a bounded batch per loop turn, and pause on resource errors with a log line. */
struct listener {
  struct worker *w;                  /* back-pointer */
  uv_poll_t poll;                    /* readable: connections wait in the backlog */
  uv_timer_t pause_timer;            /* restarts the poll after a resource error */
  uv_os_sock_t fd;                   /* owned: the listening socket; -1 when closed */
  uint64_t failures;                 /* accept errors since the last connection accepted */
  struct log_limit errlog;           /* accept errors: one line per 10 s with the count */
  const struct config_listener *cfg; /* borrowed from w->cfg (moved to the new snapshot's entry
                                        by a reload that keeps the listener) */
  int closing;                       /* handles whose close callback is pending: the slot is
                                        free again once fd < 0 and this is 0 */
};

/* Log lines about single clients that a flood could repeat once per connection: each kind is
 * rate-limited per worker (worker_log). */
enum worker_log {
  WLOG_EVICTED,       /* a handshake closed to make room */
  WLOG_REFUSED,       /* over --max-connections */
  WLOG_PLAIN_ON_TLS,  /* plaintext HTTP on a TLS listener */
  WLOG_TLS_ON_CLEAR,  /* TLS on a cleartext listener */
  WLOG_NOT_TLS,       /* neither TLS nor HTTP on a TLS listener */
  WLOG_TLS_FAILED,    /* TLS handshake failures (incl. ALPN) */
  WLOG_PROXY_PROTO,   /* PROXY protocol headers refused, missing or late */
  WLOG_MEMORY,        /* new tunnels refused by the memory budget */
  WLOG_COUNT
};

/* What the worker does with client connections. The connection layer (src/conn.c) sits above
 * the worker, so the composition root (src/main.c) hands its ops to every worker instead of the
 * worker including it. Every op is non-NULL. */
struct worker_conn_ops {
  /* |fd| (non-blocking) was accepted on |lst|; it is taken. */
  void (*accept)(struct listener *lst, uv_os_sock_t fd);
  /* A graceful stop began: each connection's front end decides what it still finishes. */
  void (*stop_all)(struct worker *w);
  /* The drain deadline passed: reset every connection left (their front ends end their tunnels). */
  void (*abort_all)(struct worker *w);
};

/* How far a stop has got: RUNNING -> STOPPING (worker_request_stop: listeners closed, front ends
 * told) -> DEADLINE (--drain-timeout passed: every connection reset). Non-zero means stopping. */
enum worker_stop {
  WORKER_RUNNING = 0,
  WORKER_STOPPING,
  WORKER_DEADLINE,
};

/* A module above the worker that keeps handles of its own beyond connections and tunnels (the
 * forward proxy's idle upstream connections) is told when a stop begins, so that it closes them
 * and the loop can end. Embedded in its owner, who keeps it until the worker is disposed. */
struct worker_hook {
  struct list link;
  void (*on_stop)(struct worker_hook *h);
};

/* Listening sockets a worker holds: one per configured listener, more when a binary upgrade hands
 * over more sockets of one address than this process has workers (src/upgrade.c). */
#define WORKER_MAX_LISTENERS (4 * CONFIG_MAX_LISTENERS)

/* Listening sockets of one configured listener handed over by the process this one replaces
 * (src/upgrade.c): the worker listens on these instead of binding a socket of its own. */
struct worker_adopt {
  int n;
  int fds[WORKER_MAX_LISTENERS];
};

struct worker {
  int id;
  uv_loop_t loop;
  struct config *cfg;                 /* a reference of its own, read-only: the snapshot new
                                         connections and requests are decided under; a reload
                                         swaps it on this loop (worker_set_config) */
  SSL_CTX *ssl_ctx;                   /* a reference of its own (SSL_CTX_up_ref), shared read-only
                                         by all workers; new TLS handshakes use it */
  SSL_CTX *client_ssl_ctx;            /* borrowed: TLS to upstreams (wss backends), shared */
  const struct frontend_table *frontends; /* borrowed, read-only: set by main before the loop runs */
  const struct worker_conn_ops *conn_ops; /* borrowed (static): set by main before the loop runs;
                                             NULL in unit tests that accept nothing */
  struct buf_pool pool;
  struct dns_resolver *dns;           /* owned */
  struct auth_cache *auth_cache;      /* owned: verified credentials; NULL without users */
  struct auth_guard *auth_guard;      /* borrowed: failed logins per address, shared by every
                                         worker (main); NULL: no bans (unit tests) */
  struct limits *limits;              /* borrowed: rules' and limits' shared state, the same for
                                         every worker (thread-safe); NULL: no limits (unit tests) */
  struct membudget *membudget;        /* borrowed: the process's memory budget (thread-safe), also
                                         charged by |pool|; NULL: unlimited (unit tests) */
  struct metrics metrics;             /* written by this worker only */
  const struct metrics *const *all_metrics; /* borrowed: every worker's, for /metrics */
  size_t nworkers;
  struct listener listeners[WORKER_MAX_LISTENERS]; /* one per configured listener, or several when
                                         sockets were handed over (worker_init_adopt) */
  int nlisteners;                     /* slots used so far (some may be closed after a reload) */
  struct list conns;                  /* struct conn.link: every client connection */
  size_t nconns;                      /* entries in conns (closing ones until they are freed) */
  struct list handshakes;             /* struct conn.hs_link: conns with no front end yet, oldest
                                         first (the one evicted to make room) */
  size_t nhandshakes;
  uint64_t turn;                      /* loop turns so far: per-turn read budgets start anew */
  struct log_limit loglimit[WLOG_COUNT];
  struct list tunnels;                /* struct tunnel.link: every live tunnel (each has a client
                                         side owned by a conn, so closing conns ends them all) */
  struct list deferred;               /* struct worker_defer.link */
  struct list stop_hooks;             /* struct worker_hook.link */
  struct fwd_pool *fwd_pool;          /* owned by proxy/pool.c (created on first use, freed once
                                         stopped and empty): upstream connections of forwarded
                                         requests */
  uv_idle_t defer_idle;               /* keeps the loop from blocking while work is deferred */
  uv_check_t defer_check;
  uv_async_t stop_async;
  atomic_int health_draining;         /* --drain-delay: /healthz answers 503 while everything else
                                         is still served (set by worker_request_drain, any thread) */
  uv_timer_t drain_timer;
  uv_timer_t trim_timer;              /* worker 0 only: gives freed heap pages back (malloc_trim) */
  uv_timer_t status_timer;            /* refreshes |status|'s snapshot (src/status.c); loop NULL
                                         until status_worker_new set it up */
  struct status_worker *status;       /* owned by main: this worker's status page state, or NULL */
  struct status_worker *const *all_status; /* borrowed: every worker's, for /status.json */
  enum worker_stop stopping;          /* RUNNING (0) until a stop is requested */
  uv_thread_t thread;
  int start_error;                    /* set by the thread if listeners failed */
};

/* Sets up |w| (loop, pool, resolver, listeners bound with SO_REUSEPORT); |w| takes a reference
 * to |cfg| and to |ctx| (may be NULL). Returns 0 or -errno. */
int worker_init(struct worker *w, int id, struct config *cfg, SSL_CTX *ctx);
/* worker_init, but config listener i listens on the |adopt|[i] sockets (taken: closed by the
 * worker, also on failure) when there are any; NULL adopts nothing. The caller keeps the total
 * within WORKER_MAX_LISTENERS (else -ENOSPC, every socket closed). */
int worker_init_adopt(struct worker *w, int id, struct config *cfg, SSL_CTX *ctx,
                      const struct worker_adopt *adopt);
/* On |w|'s loop: |cfg| (a reference is taken) and |ctx| (up-ref'd; NULL keeps the old one) replace
 * the worker's. Listeners whose text is in both stay open with their sockets, removed ones are
 * closed, new ones bound (a failure is logged, the others are not touched). Connections keep the
 * SSL_CTX they were accepted with; tunnels and requests keep their own snapshot. Returns how many
 * new listeners failed to bind. */
int worker_set_config(struct worker *w, struct config *cfg, SSL_CTX *ctx);
/* Runs the loop on the calling thread until the worker has stopped and every handle closed. */
void worker_run(struct worker *w);
/* Thread-safe: asks the worker to stop gracefully (stop accepting, GOAWAY, drain tunnels until the
 * drain deadline, then close everything). */
void worker_request_stop(struct worker *w);
/* Thread-safe: /healthz answers 503 "draining" from now on, so that load balancers stop sending
 * new connections before the stop closes the listeners (--drain-delay). Nothing else changes. */
void worker_request_drain(struct worker *w);
void worker_dispose(struct worker *w);

/* Logs one line of |kind| unless its rate limit holds it back (then it is counted, and the next
 * line of that kind written says how many were held back). */
void worker_log(struct worker *w, enum worker_log kind, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* |h|->on_stop runs when a graceful stop begins (after the connections were told). */
void worker_add_stop_hook(struct worker *w, struct worker_hook *h);

void worker_defer(struct worker *w, struct worker_defer *d);
void worker_defer_cancel(struct worker_defer *d);
/* Called when a conn or tunnel goes away: finishes a graceful stop once nothing is left. */
void worker_maybe_finish(struct worker *w);

#endif
