/* The pipe between two endpoints: moves bytes a->b and b->a, applies backpressure at the
 * writer's water marks and at the bandwidth limits (a side over budget is not read for a while), forwards half-close and reset, enforces idle/max-duration timeouts, and
 * writes one access-log line when it ends.
 *
 * Ownership: a tunnel is heap-allocated by tunnel_new and frees itself when it finishes (both
 * directions ended, or either side aborted, or a timeout). It does not own the endpoints'
 * memory: at the end it calls close on both, and each endpoint's owner frees it later. */
#ifndef H2T_TUNNEL_H
#define H2T_TUNNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "src/authority.h"
#include "src/metrics.h"
#include "tunnel/endpoint.h"

struct worker;
struct list;
struct buf_chunk;
struct lim_ticket;
struct config;

/* Why a tunnel ended; names shared by the access log and Proxy-Status details. */
#define TUN_CLOSE_REASON_MAP(XX)                                                                 \
  XX(NONE, "none")                                                                               \
  XX(CLIENT_FIN, "client_fin")         /* both ended, client half-closed first */                \
  XX(UPSTREAM_FIN, "upstream_fin")     /* both ended, upstream half-closed first */              \
  XX(CLIENT_RST, "client_reset")                                                                 \
  XX(UPSTREAM_RST, "upstream_reset")                                                             \
  XX(CLIENT_ERROR, "client_error")                                                               \
  XX(CLIENT_GONE, "client_connection_closed") /* h2: the connection ended under open streams */  \
  XX(UPSTREAM_ERROR, "upstream_error")                                                           \
  XX(IDLE_TIMEOUT, "idle_timeout")                                                               \
  XX(MAX_DURATION, "max_duration")                                                               \
  XX(SHUTDOWN, "proxy_shutdown")                                                                 \
  XX(PROTOCOL_ERROR, "protocol_error")                                                           \
  XX(POLICY_CHANGED, "policy_changed") /* a reload's rules refuse it now (src/reload.h) */

enum tun_close_reason {
#define XX(n, s) TUN_CLOSE_##n,
  TUN_CLOSE_REASON_MAP(XX)
#undef XX
};

const char *tun_close_reason_name(enum tun_close_reason r);

/* What the access log says about the tunnel; given to tunnel_new (which copies it). */
struct tun_info {
  enum tun_proto proto;              /* also picks the metrics and the idle timeout */
  const char *front;                 /* static: "h1", "h2" */
  enum metrics_front front_id;       /* the same, for the duration histogram */
  char client[64];                   /* "addr:port" */
  char target[300];                  /* authority as requested */
  char resolved[64];                 /* "addr:port" actually connected */
  const char *user;                  /* the authenticated user or NULL (anonymous); tunnel_new
                                        copies it to the heap (only when there is one: an
                                        anonymous tunnel costs no more than before) */
  int status;                        /* HTTP status sent to the client */
  uint64_t start_ms;                 /* uv_now at request arrival */
  const char *rule;                  /* the rule that allowed it (borrowed from the config
                                        snapshot, as w->cfg is), or NULL */
  struct lim_ticket *ticket;         /* owned by the tunnel from tunnel_new: its limits (bandwidth
                                        charged per read, counts given back at the end), or NULL */
  /* What a reload re-checks (proxy/recheck.h) and the snapshot that decided the tunnel: */
  struct config *cfg;                /* tunnel_new takes a reference, dropped when the tunnel is
                                        freed (|rule| points into it); NULL in unit tests */
  struct sockaddr_storage client_addr; /* AF_UNSPEC when unknown */
  struct sockaddr_storage peer_addr; /* the upstream connected; AF_UNSPEC when unknown */
  struct authority asked;            /* the name and port the rules judged (a routed WebSocket:
                                        the authority the client asked for) */
  int trusted;                       /* a configured WebSocket backend: no target policy */
  int keep_on_reload;                /* the allowing rule says keep-on-reload: true */
  int cert_user;                     /* |user| came from a client certificate, not htpasswd */
  int mb_held;                       /* counted by the worker's memory budget: given back at the end */
};

/* Creates a tunnel between |a| (client side) and |b| (upstream side) owned by worker |w|. The
 * endpoints must be fresh (tun == NULL). Nothing moves until tunnel_start. |info| is copied. */
struct tunnel *tunnel_new(struct worker *w, struct tun_ep *a, struct tun_ep *b,
                          const struct tun_info *info);
/* Writes |first| (taken, may be NULL) to b -- the bytes that came after the request head -- and
 * starts reading both sides. */
void tunnel_start(struct tunnel *t, struct buf_chunk *first);
/* Ends the tunnel now with |reason| (aborting both sides). Used for proxy shutdown. */
void tunnel_kill(struct tunnel *t, enum tun_close_reason reason);
/* The access-log fields and what a reload re-checks. */
const struct tun_info *tunnel_info(const struct tunnel *t);
/* The close reason recorded so far (TUN_CLOSE_NONE while the tunnel runs normally). */
enum tun_close_reason tunnel_reason(const struct tunnel *t);
/* The tunnel linked into a worker's list by |link|. */
struct tunnel *tunnel_from_link(struct list *link);

/* Lists |w|'s live tunnels for the status page (a status_list_fn, src/status.h). */
struct status_tun;
size_t tunnel_status_list(struct worker *w, struct status_tun *out, size_t max);

/* Upcalls from endpoints; see endpoint.h. */
void tunnel_on_read(struct tun_ep *ep, struct buf_chunk *c);
void tunnel_on_drain(struct tun_ep *ep);
void tunnel_on_eof(struct tun_ep *ep);
void tunnel_on_error(struct tun_ep *ep, enum tun_close_reason reason);

/* A no-op op, for endpoint tables that have nothing to do for some op. */
void tun_ep_noop(struct tun_ep *self);

#endif
