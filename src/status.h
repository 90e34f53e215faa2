/* The status page (/status, /status.json) and the PAC file (/proxy.pac).
 *
 * Each worker answers for its own tunnels: on a timer (--status-interval) it lists them (through
 * the lister src/main.c hands it: tunnel/ sits above src/) together with its connection counts and
 * its ring of recent refusals into a fresh snapshot, and publishes it by swapping one pointer
 * under the worker's status mutex. A /status.json request, on any worker, copies every worker's
 * latest snapshot under that mutex and renders the sum. The mutex is taken once per refresh and
 * once per read, never per byte or per tunnel event: the data path takes no lock. The refusal ring
 * is written only by its worker's thread (status_reject).
 *
 * Ownership: a status_worker is made by status_worker_new for one worker, owned by src/main.c and
 * freed with status_worker_free after that worker's loop has ended. */
#ifndef H2T_STATUS_H
#define H2T_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "src/strbuf.h"

struct config;
struct config_listener;
struct worker;

/* One live tunnel as the status page shows it. */
struct status_tun {
  char user[64];     /* "" : anonymous */
  char target[300];  /* as requested */
  char client[64];   /* "addr:port" */
  char front[4];     /* "h1", "h2" */
  char proto[16];    /* "connect", "websocket", "connect-udp" */
  uint64_t bytes_up, bytes_down;
  uint64_t age_ms;
};

/* Fills up to |max| entries of |out| with |w|'s live tunnels; returns how many it filled. Runs on
 * |w|'s thread. */
typedef size_t (*status_list_fn)(struct worker *w, struct status_tun *out, size_t max);

struct status_worker;

/* Makes |w|'s status state (w->status) and starts its refresh timer (w->status_timer) on |w|'s
 * loop; call before the loop runs. |list| is tunnel/'s lister. */
struct status_worker *status_worker_new(struct worker *w, status_list_fn list);
void status_worker_free(struct status_worker *s);

/* Records a refused request in |w|'s ring (|w|'s thread only). Strings may be NULL. */
void status_reject(struct worker *w, const char *front, const char *proto, const char *client,
                   const char *target, const char *user, int status, const char *error, const char *detail);

/* /status and /status.json are served on an admin listener (?admin) and, when the configuration
 * has none, on listeners bound to a loopback address; never on other listeners. */
int status_allowed(const struct config *cfg, const struct config_listener *listener);

/* Appends /status.json for every worker (read from |w|, any worker). Returns 0 or -ENOSPC. */
int status_render_json(struct worker *w, struct strbuf *sb);
/* The page: static HTML with its script inline, which fetches /status.json. */
extern const char status_page_html[];

/* Appends the PAC file generated from |cfg|; |host| is the name the browser used for the proxy
 * (the request's Host, port stripped here; NULL: --pac-proxy-host or the listener's address). */
int status_render_pac(const struct config *cfg, const char *host, struct strbuf *sb);

#endif
