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
