/* The memory budget (--memory-limit): one per process, shared by every worker thread. It counts
 * the bytes the buffer pools actually hold (src/buf.c charges each chunk it mallocs and uncharges
 * each one it frees) and the tunnels admitted, and from that sizes what one tunnel may buffer:
 * the tunnel water marks (both sides, h1 and upstream) and the HTTP/2 receive windows. While the
 * budget is roomy every size is its configured cap; as it fills, sizes shrink towards a floor;
 * when it is tight new tunnels are refused (429) so that memory never runs out.
 *
 * The sizing rule (mb_size): a side may hold an eighth of what is still free, within [floor, cap].
 * "Still free" is the limit minus what is committed: the bytes held plus --memory-per-tunnel for
 * each admitted tunnel (what a stalled tunnel holds at least: one read chunk). A new tunnel is
 * admitted while committed + one more tunnel stays within seven eighths of the limit (mb_admit_ok):
 * the last eighth is room for the tunnels already admitted to reach their floor.
 *
 * Everything is an atomic counter (relaxed: sizes are advice, re-read on every decision), so the
 * cost is one atomic add per chunk malloc'd or freed and two loads per sizing.
 *
 * Ownership: created by main before the workers, freed after them; workers and their pools borrow
 * it. A NULL budget (unit tests) means unlimited. */
#ifndef H2T_MEMBUDGET_H
#define H2T_MEMBUDGET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct strbuf;

struct membudget {
  uint64_t limit;             /* bytes; set once before the workers start */
  uint64_t per_tunnel;        /* bytes committed per admitted tunnel */
  _Atomic uint64_t held;      /* bytes of buffer chunks malloc'd by every pool, not yet freed */
  _Atomic uint64_t peak;      /* the highest |held| seen (approximate: updated on growth) */
  _Atomic uint64_t tunnels;   /* admitted tunnels not yet released */
  _Atomic uint64_t refused;   /* new tunnels refused for memory */
  _Atomic uint64_t grown;     /* HTTP/2 stream windows grown by auto-tuning */
};

/* |limit| 0: a default of half the memory the process may use (physical, or the cgroup's). */
struct membudget *membudget_new(uint64_t limit, uint64_t per_tunnel);
void membudget_free(struct membudget *mb);
/* The default budget for a machine with |total| bytes of memory. */
uint64_t membudget_default_limit(uint64_t total);

/* Buffer accounting (src/buf.c). NULL is fine. */
void membudget_charge(struct membudget *mb, size_t n);
void membudget_uncharge(struct membudget *mb, size_t n);

/* Admission: 0 and the tunnel counted, or -1 (refused, counted) when the budget is tight. The
 * caller gives an admitted tunnel back with membudget_release. NULL admits everything. */
int membudget_admit(struct membudget *mb);
void membudget_release(struct membudget *mb);

/* What one side may buffer now: |cap| when roomy, shrinking to |floor| as the budget fills. */
size_t membudget_size(struct membudget *mb, size_t cap, size_t floor);

/* A tunnel direction's high water mark under a budget starts at one read chunk and doubles each
 * time its writer drains it (mb_grow), up to --high-water: a stalled tunnel never holds more than
 * about a chunk, a moving one soon gets the configured buffer. */
#define MB_WATER_START 65536

/* |cur| doubled, up to |cap|, when the budget allows that much (mb_size); else |cur|. */
size_t membudget_grow(struct membudget *mb, size_t cur, size_t cap);
size_t mb_grow(uint64_t limit, uint64_t committed, size_t cur, size_t cap);

/* HTTP/2 stream windows never shrink below one full DATA frame. */
#define MB_H2_WINDOW_FLOOR 16384

/* Auto-tuning of a receive window of |win| bytes (an HTTP/2 stream's), called as its bytes are
 * credited. |bound|: the sender is held back by the window -- the last two window updates went
 * out less than two round trips apart while the reader kept up, so the window is consumed faster
 * than credit can come back, i.e. it is below the path's bandwidth-delay product (the rule of
 * Chromium's QUIC flow controller; TCP's receive-buffer auto-tuning is alike). Then the window
 * doubles, up to |max| and only as far as the budget allows. It shrinks to what the budget allows
 * when that is less. Returns the new window (|win| when unchanged). */
size_t membudget_window(struct membudget *mb, size_t win, int bound, size_t max);
/* |since_ns|: time between the last two window updates; |rtt_ns|: the connection's round trip
 * (0: unknown, never bound); |held_back|: the reader stopped taking bytes in between. */
int mb_window_bound(uint64_t since_ns, uint64_t rtt_ns, int held_back);
size_t mb_window(uint64_t limit, uint64_t committed, size_t win, int bound, size_t max);

/* The pure rules, for unit tests. */
size_t mb_size(uint64_t limit, uint64_t committed, size_t cap, size_t floor);
int mb_admit_ok(uint64_t limit, uint64_t committed, uint64_t per_tunnel);

/* Prometheus text: the limit, bytes held (and peak), tunnels counted, refusals, windows grown. */
void membudget_render(const struct membudget *mb, struct strbuf *sb);

#endif
