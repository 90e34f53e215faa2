/* Histogram and counters for h2tunnel-load. */
#include "load/lstats.h"

#include <stdio.h>
#include <string.h>

static const char *const err_names[] = {
#define LSTATS_NAME(id, name) name,
    LSTATS_ERRORS(LSTATS_NAME)
#undef LSTATS_NAME
};

const char *lstats_err_name(enum lstats_err e) {
  return (unsigned)e < LSTATS_ERR_MAX ? err_names[e] : "?";
}

static unsigned bucket_of(uint64_t v) {
  if (v < 2 * LSTATS_SUB) return (unsigned)v;
  unsigned b = 63u - (unsigned)__builtin_clzll(v); /* >= LSTATS_SUB_BITS + 1 */
  unsigned shift = b - LSTATS_SUB_BITS;
  return shift * LSTATS_SUB + (unsigned)(v >> shift);
}

/* The smallest value in bucket |i| and the bucket's width. */
static void bucket_range(unsigned i, uint64_t *lo, uint64_t *width) {
  if (i < 2 * LSTATS_SUB) {
    *lo = i;
    *width = 1;
    return;
  }
  unsigned shift = i / LSTATS_SUB - 1;
  uint64_t m = i % LSTATS_SUB + LSTATS_SUB;
  *lo = m << shift;
  *width = 1ULL << shift;
}

void lstats_hist_add(struct lstats_hist *h, uint64_t v) {
  h->counts[bucket_of(v)]++;
  if (h->n == 0 || v < h->min) h->min = v;
  if (v > h->max) h->max = v;
  h->n++;
  h->sum += v;
}

void lstats_hist_merge(struct lstats_hist *into, const struct lstats_hist *from) {
  if (from->n == 0) return;
  if (into->n == 0 || from->min < into->min) into->min = from->min;
  if (from->max > into->max) into->max = from->max;
  into->n += from->n;
  into->sum += from->sum;
  for (unsigned i = 0; i < LSTATS_BUCKETS; i++) into->counts[i] += from->counts[i];
}

uint64_t lstats_hist_quantile(const struct lstats_hist *h, double q) {
  if (h->n == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)h->n + 0.5);
  if (rank < 1) rank = 1;
  if (rank > h->n) rank = h->n;
  uint64_t seen = 0;
  for (unsigned i = 0; i < LSTATS_BUCKETS; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      uint64_t lo, width;
      bucket_range(i, &lo, &width);
      uint64_t mid = lo + width / 2;
      if (mid > h->max) mid = h->max;
      if (mid < h->min) mid = h->min;
      return mid;
    }
  }
  return h->max;
}

void lstats_init(struct lstats *s) { memset(s, 0, sizeof(*s)); }

void lstats_merge(struct lstats *into, const struct lstats *from) {
  lstats_add(&into->tunnels_ok, lstats_get((_Atomic uint64_t *)&from->tunnels_ok));
  lstats_add(&into->errors, lstats_get((_Atomic uint64_t *)&from->errors));
  lstats_add(&into->bytes_down, lstats_get((_Atomic uint64_t *)&from->bytes_down));
  lstats_add(&into->bytes_up, lstats_get((_Atomic uint64_t *)&from->bytes_up));
  lstats_add(&into->rr, lstats_get((_Atomic uint64_t *)&from->rr));
  lstats_add(&into->dgram_sent, lstats_get((_Atomic uint64_t *)&from->dgram_sent));
  lstats_add(&into->dgram_rcvd, lstats_get((_Atomic uint64_t *)&from->dgram_rcvd));
  into->tunnels_started += from->tunnels_started;
  into->cut += from->cut;
  into->conns += from->conns;
  into->dgram_lost += from->dgram_lost;
  into->dgram_unknown += from->dgram_unknown;
  into->active_max += from->active_max;
  for (int i = 0; i < LSTATS_ERR_MAX; i++) into->err[i] += from->err[i];
  for (int i = 0; i < 600; i++) into->status[i] += from->status[i];
  if (!into->first_error[0]) memcpy(into->first_error, from->first_error, sizeof(into->first_error));
  if (!into->proxy_status[0])
    memcpy(into->proxy_status, from->proxy_status, sizeof(into->proxy_status));
  lstats_hist_merge(&into->setup, &from->setup);
  lstats_hist_merge(&into->rtt, &from->rtt);
  lstats_hist_merge(&into->tunnel, &from->tunnel);
}

void lstats_error(struct lstats *s, enum lstats_err kind, int status, const char *msg) {
  lstats_add(&s->errors, 1);
  s->err[kind]++;
  if (status > 0 && status < 600) s->status[status]++;
  if (!s->first_error[0]) snprintf(s->first_error, sizeof(s->first_error), "%s", msg);
}
