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
  /* Forwarded requests (issue 11). */
  _Atomic uint64_t fwd_requests[6];     /* by status class: [1] 1xx .. [5] 5xx, [0] no status
                                           (the exchange was cut before a response head) */
  _Atomic uint64_t fwd_bytes_up, fwd_bytes_down; /* body bytes each way */
  _Atomic uint64_t fwd_pool_hits;       /* an idle upstream connection was reused */
  _Atomic uint64_t fwd_pool_misses;     /* a new upstream connection was dialed */
  _Atomic uint64_t fwd_retries;         /* re-sent on a new connection after a reused one failed */
  _Atomic uint64_t fwd_upstreams_open;  /* upstream connections open (idle or busy) */
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

/* Writes the Prometheus text exposition of the sum of |n| workers' metrics into |out| (capacity
 * |cap|). Returns the length written (truncated output is still valid lines). */
size_t metrics_render(const struct metrics *const *all, size_t n, char *out, size_t cap);

#endif
