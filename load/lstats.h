/* Measurements of one run: a log-linear latency histogram and counters. One struct per thread,
 * written from its loop thread only (the few counters the progress line reads are atomics);
 * merged by main after the threads have joined. */
#ifndef LOAD_LSTATS_H
#define LOAD_LSTATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Values in nanoseconds. Exact below 2 * LSTATS_SUB, then LSTATS_SUB buckets per power of two
 * (relative error < 1/64). */
#define LSTATS_SUB_BITS 6
#define LSTATS_SUB (1u << LSTATS_SUB_BITS)
#define LSTATS_BUCKETS ((64 - LSTATS_SUB_BITS) * LSTATS_SUB + 2 * LSTATS_SUB)

struct lstats_hist {
  uint64_t n, sum, min, max;
  uint64_t counts[LSTATS_BUCKETS];
};

void lstats_hist_add(struct lstats_hist *h, uint64_t v);
void lstats_hist_merge(struct lstats_hist *into, const struct lstats_hist *from);
/* The value at quantile |q| (0..1): the midpoint of its bucket, or 0 when empty. */
uint64_t lstats_hist_quantile(const struct lstats_hist *h, double q);

/* Error kinds; the names appear in the summary and the JSON line. */
#define LSTATS_ERRORS(X)                                                                         \
  X(CONNECT, "connect")   /* TCP connect to the proxy failed (refused, unreachable) */           \
  X(TLS, "tls")           /* handshake or certificate verification failed, wrong ALPN */         \
  X(STATUS, "status")     /* the proxy answered the CONNECT with a non-2xx status */             \
  X(RESET, "reset")       /* connection reset, RST_STREAM, or refused stream */                  \
  X(EOF, "eof")           /* the tunnel or connection ended before the workload was done */      \
  X(TIMEOUT, "timeout")   /* no progress for --timeout */                                        \
  X(PROTOCOL, "protocol") /* malformed response, h2 protocol error, GOAWAY, short echo */

enum lstats_err {
#define LSTATS_ENUM(id, name) LSTATS_ERR_##id,
  LSTATS_ERRORS(LSTATS_ENUM)
#undef LSTATS_ENUM
  LSTATS_ERR_MAX
};

const char *lstats_err_name(enum lstats_err e);

struct lstats {
  /* Read by the progress line while the run goes on. */
  _Atomic uint64_t tunnels_ok;   /* tunnels whose workload completed */
  _Atomic uint64_t errors;
  _Atomic uint64_t bytes_down;   /* tunnel payload bytes received */
  _Atomic uint64_t bytes_up;     /* tunnel payload bytes sent */
  _Atomic uint64_t rr;           /* round trips completed (rr, rate, idle) */
  _Atomic uint64_t dgram_sent;
  _Atomic uint64_t dgram_rcvd;
  _Atomic int64_t active;        /* tunnels established right now */
  /* Read after the run only. */
  uint64_t tunnels_started;
  uint64_t cut;                  /* tunnels still running when the run was stopped */
  uint64_t conns;                /* TCP connections opened to the proxy */
  uint64_t dgram_lost;           /* presumed lost after a stall (udp) */
  uint64_t dgram_unknown;        /* in flight when the run was cut (neither counted lost nor received) */
  int64_t active_max;
  uint64_t err[LSTATS_ERR_MAX];
  uint64_t status[600];          /* non-2xx CONNECT answers by status code */
  char first_error[256];
  char proxy_status[256];        /* Proxy-Status of the first non-2xx answer */
  struct lstats_hist setup;      /* request sent (h1: TCP connect started) -> 2xx received */
  struct lstats_hist rtt;        /* echo round trip (rate, rr, idle) or datagram RTT (udp) */
  struct lstats_hist tunnel;     /* whole tunnel: start -> both FINs (rate, bulk) */
};

void lstats_init(struct lstats *s);
void lstats_merge(struct lstats *into, const struct lstats *from);
/* Counts one error of |kind| and keeps |msg| if it is the first. |status| > 0 records a status. */
void lstats_error(struct lstats *s, enum lstats_err kind, int status, const char *msg);

static inline void lstats_add(_Atomic uint64_t *c, uint64_t v) {
  atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}
static inline uint64_t lstats_get(_Atomic uint64_t *c) {
  return atomic_load_explicit(c, memory_order_relaxed);
}

#endif
