/* Per-worker counters and gauges. Each worker writes only its own struct (single writer, relaxed
 * atomics so readers on other threads see whole values); /metrics sums all workers on read. */
#ifndef H2T_METRICS_H
#define H2T_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "src/pxerr.h"

#define TUN_PROTO_MAP(XX) XX(CONNECT, "connect") XX(WEBSOCKET, "websocket") XX(CONNECT_UDP, "connect-udp")
enum tun_proto {
#define XX(n, s) TUN_PROTO_##n,
  TUN_PROTO_MAP(XX)
#undef XX
      TUN_PROTO_COUNT
};

/* Authentication outcomes (proxy/auth.c): how a request was admitted, or why not. */
#define AUTH_OK_MAP(XX) XX(PASSWORD, "password") XX(CACHED, "cached") XX(CERT, "certificate") XX(NO_AUTH_NET, "no_auth_net")
#define AUTH_FAIL_MAP(XX)                                                                        \
  XX(MISSING, "missing") XX(MALFORMED, "malformed") XX(SCHEME, "scheme") XX(INVALID, "invalid")  \
  XX(BANNED, "banned") XX(CLIENT_NET, "client_net") XX(CERT_REQUIRED, "cert_required") XX(BUSY, "busy")
enum auth_ok {
#define XX(n, s) AUTH_OK_##n,
  AUTH_OK_MAP(XX)
#undef XX
      AUTH_OK_COUNT
};
enum auth_fail {
#define XX(n, s) AUTH_FAIL_##n,
  AUTH_FAIL_MAP(XX)
#undef XX
      AUTH_FAIL_COUNT
};

/* The front ends, in px_front's order (proxy/request.h), for the histograms' labels. */
#define METRICS_FRONT_MAP(XX) XX(H1, "h1") XX(H2, "h2")
enum metrics_front {
#define XX(n, s) METRICS_FRONT_##n,
  METRICS_FRONT_MAP(XX)
#undef XX
      METRICS_FRONT_COUNT
};

/* Histograms (Prometheus _bucket/_sum/_count), observed in milliseconds:
 *   SETUP     request arrival to the tunnel's success answer (200 / 101) being sent
 *   DURATION  request arrival to the tunnel's end (the access log's duration_ms) */
enum metrics_hist_kind { HIST_SETUP, HIST_DURATION, HIST_KIND_COUNT };
#define METRICS_HIST_BUCKETS 12 /* the finite upper bounds (metrics.c) plus +Inf */

struct metrics_hist {
  _Atomic uint64_t bucket[METRICS_HIST_BUCKETS]; /* per bucket, not cumulative; the last is +Inf */
  _Atomic uint64_t sum_ms;
  _Atomic uint64_t count;
};

struct metrics {
  _Atomic uint64_t conns_accepted;
  _Atomic uint64_t conns_active;
  _Atomic uint64_t conns_h1;
  _Atomic uint64_t conns_h2;
  _Atomic uint64_t tls_handshake_failures;
  _Atomic uint64_t handshakes_active;   /* accepted, no front end yet (TLS or protocol sniff) */
  _Atomic uint64_t handshakes_evicted;  /* closed to make room (--max-handshakes/-connections) */
  _Atomic uint64_t conns_refused;       /* refused at accept: over --max-connections */
  _Atomic uint64_t accept_errors;       /* accept(2) failures (EMFILE, ENFILE, ENOBUFS...) */
  _Atomic uint64_t tunnels_opened[TUN_PROTO_COUNT];
  _Atomic uint64_t tunnels_active[TUN_PROTO_COUNT];
  _Atomic uint64_t bytes_up;   /* client -> upstream */
  _Atomic uint64_t bytes_down; /* upstream -> client */
  _Atomic uint64_t udp_dgrams_up, udp_dgrams_down; /* datagrams relayed each way */
  _Atomic uint64_t udp_drops;                      /* datagrams dropped either way */
  _Atomic uint64_t requests_local;
  _Atomic uint64_t h2_streams;
  _Atomic uint64_t h2_goaway_sent;
  _Atomic uint64_t errors[PXERR_COUNT];
  _Atomic uint64_t auth_ok[AUTH_OK_COUNT];
  _Atomic uint64_t auth_fail[AUTH_FAIL_COUNT];
  _Atomic uint64_t auth_bans;          /* addresses banned after too many failures */
  _Atomic uint64_t auth_checks_pending; /* password checks queued or running (gauge) */
  _Atomic uint64_t auth_hashes;        /* password hashes started on the thread pool */
  _Atomic uint64_t auth_checks_shared; /* checks that joined an identical one in flight */
  /* PROXY protocol (listeners marked ?proxy-protocol): headers taken, and connections closed by
   * reason (enum metrics_pp). */
  _Atomic uint64_t pp_headers;
  _Atomic uint64_t pp_refused[3];
  struct metrics_hist hist[HIST_KIND_COUNT][METRICS_FRONT_COUNT][TUN_PROTO_COUNT];
  /* Forwarded requests (issue 11). */
  _Atomic uint64_t fwd_requests[6];     /* by status class: [1] 1xx .. [5] 5xx, [0] no status
                                           (the exchange was cut before a response head) */
  _Atomic uint64_t fwd_bytes_up, fwd_bytes_down; /* body bytes each way */
  _Atomic uint64_t fwd_pool_hits;       /* an idle upstream connection was reused */
  _Atomic uint64_t fwd_pool_misses;     /* a new upstream connection was dialed */
  _Atomic uint64_t fwd_retries;         /* re-sent on a new connection after a reused one failed */
  _Atomic uint64_t fwd_upstreams_open;  /* upstream connections open (idle or busy) */
  /* Reloading (src/reload.h). The tunnels a reload's re-check closed or kept on this worker: */
  _Atomic uint64_t tunnels_policy_closed;
  _Atomic uint64_t tunnels_policy_kept;
  /* Written by the main thread (the only writer), in worker 0's block only; 0 elsewhere: */
  _Atomic uint64_t config_version;      /* the snapshot in use (gauge) */
  _Atomic uint64_t reloads_ok, reloads_failed;
};

#define METRICS_PP_MAP(XX) XX(UNTRUSTED, "untrusted") XX(INVALID, "invalid") XX(TIMEOUT, "timeout")
enum metrics_pp {
#define XX(n, s) METRICS_PP_##n,
  METRICS_PP_MAP(XX)
#undef XX
};

/* Single-writer add: no locked instruction on the data path. */
#define METRIC_ADD(m, field, n)                                                                   \
  atomic_store_explicit(&(m)->field,                                                             \
                        atomic_load_explicit(&(m)->field, memory_order_relaxed) + (uint64_t)(n), \
                        memory_order_relaxed)
#define METRIC_SUB(m, field, n)                                                                   \
  atomic_store_explicit(&(m)->field,                                                             \
                        atomic_load_explicit(&(m)->field, memory_order_relaxed) - (uint64_t)(n), \
                        memory_order_relaxed)

const char *tun_proto_name(enum tun_proto p);
const char *metrics_front_name(enum metrics_front f);

/* Records one observation of |ms| milliseconds in |m|'s histogram |k| for |f| and |p| (single
 * writer: the worker owning |m|). */
void metrics_observe(struct metrics *m, enum metrics_hist_kind k, enum metrics_front f, enum tun_proto p,
                     uint64_t ms);
/* The finite upper bound of bucket |i| of histogram |k|, in milliseconds (UINT64_MAX for +Inf). */
uint64_t metrics_hist_bound(enum metrics_hist_kind k, int i);

/* Writes the Prometheus text exposition of the sum of |n| workers' metrics into |out| (capacity
 * |cap|). Returns the length written (truncated output is still valid lines). */
size_t metrics_render(const struct metrics *const *all, size_t n, char *out, size_t cap);

#endif
