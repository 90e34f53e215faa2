#include "src/membudget.h"

#include <uv.h>

#include "src/strbuf.h"
#include "src/util.h"

/* A side may hold this fraction of what is still free (1/8): N sides filling up at once leave
 * (7/8)^N of the room, so the first tunnels get big buffers and later ones shrink smoothly. */
#define MB_SHARE_SHIFT 3

uint64_t membudget_default_limit(uint64_t total) {
  if (total == 0) total = 1ULL << 30; /* unknown: assume 1 GiB */
  return total / 2;
}

struct membudget *membudget_new(uint64_t limit, uint64_t per_tunnel) {
  struct membudget *mb = xcalloc(1, sizeof(*mb));
  if (limit == 0) {
    uint64_t total = uv_get_total_memory();
    uint64_t cg = uv_get_constrained_memory(); /* 0: no cgroup limit */
    if (cg && (total == 0 || cg < total)) total = cg;
    limit = membudget_default_limit(total);
  }
  mb->limit = limit;
  mb->per_tunnel = per_tunnel;
  return mb;
}

void membudget_free(struct membudget *mb) { free(mb); }

void membudget_charge(struct membudget *mb, size_t n) {
  if (!mb) return;
  uint64_t now = atomic_fetch_add_explicit(&mb->held, n, memory_order_relaxed) + n;
  uint64_t peak = atomic_load_explicit(&mb->peak, memory_order_relaxed);
  while (now > peak && !atomic_compare_exchange_weak_explicit(&mb->peak, &peak, now, memory_order_relaxed,
                                                              memory_order_relaxed)) {
  }
}

void membudget_uncharge(struct membudget *mb, size_t n) {
  if (mb) atomic_fetch_sub_explicit(&mb->held, n, memory_order_relaxed);
}

static uint64_t committed(const struct membudget *mb, uint64_t tunnels) {
  return atomic_load_explicit(&mb->held, memory_order_relaxed) + tunnels * mb->per_tunnel;
}

size_t mb_size(uint64_t limit, uint64_t used, size_t cap, size_t floor) {
  uint64_t free_b = limit > used ? limit - used : 0;
  uint64_t share = free_b >> MB_SHARE_SHIFT;
  if (share >= cap) return cap;
  return share > floor ? (size_t)share : MIN(floor, cap);
}

int mb_admit_ok(uint64_t limit, uint64_t used, uint64_t per_tunnel) {
  return used + per_tunnel <= limit - (limit >> MB_SHARE_SHIFT);
}

int membudget_admit(struct membudget *mb) {
  if (!mb) return 0;
  /* Count first, then check: concurrent admissions on other workers see this one. */
  uint64_t before = atomic_fetch_add_explicit(&mb->tunnels, 1, memory_order_relaxed);
  if (mb_admit_ok(mb->limit, committed(mb, before), mb->per_tunnel)) return 0;
  atomic_fetch_sub_explicit(&mb->tunnels, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&mb->refused, 1, memory_order_relaxed);
  return -1;
}

void membudget_release(struct membudget *mb) {
  if (mb) atomic_fetch_sub_explicit(&mb->tunnels, 1, memory_order_relaxed);
}

size_t membudget_size(struct membudget *mb, size_t cap, size_t floor) {
  if (!mb) return cap;
  return mb_size(mb->limit, committed(mb, atomic_load_explicit(&mb->tunnels, memory_order_relaxed)), cap, floor);
}

size_t mb_grow(uint64_t limit, uint64_t committed, size_t cur, size_t cap) {
  if (cur >= cap) return cap;
  size_t want = MIN(2 * cur, cap);
  return mb_size(limit, committed, cap, 0) >= want ? want : cur;
}

size_t membudget_grow(struct membudget *mb, size_t cur, size_t cap) {
  if (!mb) return cap;
  return mb_grow(mb->limit, committed(mb, atomic_load_explicit(&mb->tunnels, memory_order_relaxed)), cur, cap);
}

int mb_window_bound(uint64_t since_ns, uint64_t rtt_ns, int held_back) {
  return !held_back && rtt_ns > 0 && since_ns < 2 * rtt_ns;
}

size_t mb_window(uint64_t limit, uint64_t committed, size_t win, int bound, size_t max) {
  size_t allowed = mb_size(limit, committed, max, MB_H2_WINDOW_FLOOR);
  if (win > allowed) return allowed;
  if (bound && win < max) {
    size_t want = MIN(2 * win, max);
    if (want <= allowed) return want;
  }
  return win;
}

size_t membudget_window(struct membudget *mb, size_t win, int bound, size_t max) {
  uint64_t limit = mb ? mb->limit : UINT64_MAX;
  uint64_t used = mb ? committed(mb, atomic_load_explicit(&mb->tunnels, memory_order_relaxed)) : 0;
  size_t next = mb_window(limit, used, win, bound, max);
  if (next > win && mb) atomic_fetch_add_explicit(&mb->grown, 1, memory_order_relaxed);
  return next;
}

void membudget_render(const struct membudget *mb, struct strbuf *sb) {
  strbuf_printf(sb,
                "# HELP h2tunnel_memory_limit_bytes The memory budget (--memory-limit).\n"
                "# TYPE h2tunnel_memory_limit_bytes gauge\n"
                "h2tunnel_memory_limit_bytes %llu\n"
                "# HELP h2tunnel_memory_buffered_bytes Bytes of tunnel buffers held by every worker's pool.\n"
                "# TYPE h2tunnel_memory_buffered_bytes gauge\n"
                "h2tunnel_memory_buffered_bytes %llu\n"
                "# HELP h2tunnel_memory_buffered_peak_bytes The most buffer bytes held at once.\n"
                "# TYPE h2tunnel_memory_buffered_peak_bytes gauge\n"
                "h2tunnel_memory_buffered_peak_bytes %llu\n"
                "# HELP h2tunnel_memory_tunnels Tunnels counted against the memory budget.\n"
                "# TYPE h2tunnel_memory_tunnels gauge\n"
                "h2tunnel_memory_tunnels %llu\n"
                "# HELP h2tunnel_memory_rejections_total New tunnels refused (429) because the memory budget was tight.\n"
                "# TYPE h2tunnel_memory_rejections_total counter\n"
                "h2tunnel_memory_rejections_total %llu\n"
                "# HELP h2tunnel_h2_windows_grown_total HTTP/2 stream receive windows doubled by auto-tuning.\n"
                "# TYPE h2tunnel_h2_windows_grown_total counter\n"
                "h2tunnel_h2_windows_grown_total %llu\n",
                (unsigned long long)mb->limit, (unsigned long long)atomic_load(&mb->held),
                (unsigned long long)atomic_load(&mb->peak), (unsigned long long)atomic_load(&mb->tunnels),
                (unsigned long long)atomic_load(&mb->refused), (unsigned long long)atomic_load(&mb->grown));
}
