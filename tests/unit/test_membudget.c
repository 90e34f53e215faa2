/* Unit tests for src/membudget.c (issue 12 item 4): the sizing rule (caps while roomy, an eighth
 * of what is free as the budget fills, the floor), admission (refused within the last eighth, the
 * refusal holds nothing, released tunnels make room again), window auto-tuning (doubles only while
 * window updates go out less than two round trips apart and the reader kept up, never past the
 * max or the budget; shrinks as the budget fills), water marks doubling on each drain within the
 * cap and the budget, the buffer pool charging what it mallocs and frees, and concurrent charges
 * from two threads adding up. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "src/buf.h"
#include "src/membudget.h"
#include "src/strbuf.h"
#include "src/util.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)

static void test_size_rule(void **state) {
  (void)state;
  /* Roomy: the cap. 64 MiB free: an eighth is 8 MiB, above a 512 KiB cap. */
  assert_int_equal(mb_size(64 * MiB, 0, 512 * KiB, 0), 512 * KiB);
  /* Filling: an eighth of what is free. 60 MiB of 64 committed: 4 MiB free, 512 KiB. */
  assert_int_equal(mb_size(64 * MiB, 60 * MiB, 1 * MiB, 0), 512 * KiB);
  assert_int_equal(mb_size(64 * MiB, 63 * MiB, 1 * MiB, 0), 128 * KiB);
  /* Full or over: the floor, never above the cap. */
  assert_int_equal(mb_size(64 * MiB, 64 * MiB, 1 * MiB, 16 * KiB), 16 * KiB);
  assert_int_equal(mb_size(64 * MiB, 100 * MiB, 1 * MiB, 16 * KiB), 16 * KiB);
  assert_int_equal(mb_size(64 * MiB, 100 * MiB, 8 * KiB, 16 * KiB), 8 * KiB);
  assert_int_equal(mb_size(64 * MiB, 100 * MiB, 1 * MiB, 0), 0);
  /* Monotonic: more committed never gives a side more. */
  size_t prev = SIZE_MAX;
  for (uint64_t used = 0; used <= 80 * MiB; used += 256 * KiB) {
    size_t n = mb_size(64 * MiB, used, 4 * MiB, 0);
    assert_true(n <= prev);
    prev = n;
  }
  /* N sides each taking what they are offered in turn never commit more than the budget. */
  uint64_t used = 0;
  for (int i = 0; i < 100000; i++) used += mb_size(64 * MiB, used, 512 * KiB, 0);
  assert_true(used <= 64 * MiB);
}

static void test_admission(void **state) {
  (void)state;
  /* The last eighth is kept for the tunnels already admitted. */
  assert_true(mb_admit_ok(64 * MiB, 0, 64 * KiB));
  assert_true(mb_admit_ok(64 * MiB, 56 * MiB - 64 * KiB, 64 * KiB));
  assert_false(mb_admit_ok(64 * MiB, 56 * MiB - 64 * KiB + 1, 64 * KiB));
  /* 1 MiB at 64 KiB a tunnel: 14 tunnels (7/8 of 16 slots), the 15th refused. */
  struct membudget *mb = membudget_new(1 * MiB, 64 * KiB);
  assert_int_equal(mb->limit, 1 * MiB);
  int admitted = 0;
  while (membudget_admit(mb) == 0) admitted++;
  assert_int_equal(admitted, 14);
  assert_int_equal(atomic_load(&mb->tunnels), 14);
  assert_int_equal(atomic_load(&mb->refused), 1);
  /* A refusal holds nothing; a release makes room for one more. */
  assert_int_equal(membudget_admit(mb), -1);
  assert_int_equal(atomic_load(&mb->tunnels), 14);
  membudget_release(mb);
  assert_int_equal(membudget_admit(mb), 0);
  /* Buffers held count as much as tunnels: with half the budget buffered, fewer fit. */
  for (int i = 0; i < 14; i++) membudget_release(mb);
  assert_int_equal(atomic_load(&mb->tunnels), 0);
  membudget_charge(mb, 512 * KiB);
  admitted = 0;
  while (membudget_admit(mb) == 0) admitted++;
  assert_int_equal(admitted, 6); /* (896 - 512) / 64 */
  membudget_uncharge(mb, 512 * KiB);
  assert_int_equal(atomic_load(&mb->held), 0);
  assert_int_equal(atomic_load(&mb->peak), 512 * KiB);
  membudget_free(mb);
  /* NULL: unlimited. */
  assert_int_equal(membudget_admit(NULL), 0);
  assert_int_equal(membudget_size(NULL, 512 * KiB, 0), 512 * KiB);
  /* The default: half the machine's memory. */
  assert_int_equal(membudget_default_limit(8 * 1024 * MiB), 4 * 1024 * MiB);
  assert_true(membudget_default_limit(0) > 0);
}

static void test_window_tuning(void **state) {
  (void)state;
  const size_t max = 16 * MiB;
  const uint64_t ms = 1000000;
  /* Bound: two updates less than two round trips apart, the reader never held back. */
  assert_true(mb_window_bound(30 * ms, 20 * ms, 0));
  assert_false(mb_window_bound(50 * ms, 20 * ms, 0)); /* credit comes back in time */
  assert_false(mb_window_bound(30 * ms, 20 * ms, 1)); /* the upstream was the bottleneck */
  assert_false(mb_window_bound(1, 0, 0));             /* RTT unknown */
  /* Loopback: updates every 0.5 ms against a 50 us round trip are not bound. */
  assert_false(mb_window_bound(ms / 2, 50000, 0));
  /* Bound and roomy: doubled. */
  assert_int_equal(mb_window(1024 * MiB, 0, 1 * MiB, 1, max), 2 * MiB);
  assert_int_equal(mb_window(1024 * MiB, 0, 1 * MiB, 0, max), 1 * MiB);
  /* Never past the max. */
  assert_int_equal(mb_window(1024 * MiB, 0, 12 * MiB, 1, max), max);
  assert_int_equal(mb_window(1024 * MiB, 0, max, 1, max), max);
  /* Repeated: a window-bound stream reaches the max in a few steps. */
  size_t win = 64 * KiB;
  int steps = 0;
  while (win < max) {
    win = mb_window(1024 * MiB, 0, win, 1, max);
    steps++;
  }
  assert_int_equal(steps, 8);
  /* A tight budget refuses the doubling (64 MiB with 50 committed: an eighth of 14 is 1.75 MiB). */
  assert_int_equal(mb_window(64 * MiB, 50 * MiB, 1 * MiB, 1, max), 1 * MiB);
  /* ... and shrinks a window above what it allows, down to the floor at worst. */
  assert_int_equal(mb_window(64 * MiB, 60 * MiB, 1 * MiB, 0, max), 512 * KiB);
  assert_int_equal(mb_window(64 * MiB, 64 * MiB, 1 * MiB, 0, max), MB_H2_WINDOW_FLOOR);
  /* The counted form counts growths. */
  struct membudget *mb = membudget_new(1024 * MiB, 64 * KiB);
  assert_int_equal(membudget_window(mb, 1 * MiB, 1, max), 2 * MiB);
  assert_int_equal(membudget_window(mb, 1 * MiB, 0, max), 1 * MiB);
  assert_int_equal(atomic_load(&mb->grown), 1);
  assert_int_equal(membudget_window(NULL, 1 * MiB, 1, max), 2 * MiB);
  membudget_free(mb);
}

static void test_water_growth(void **state) {
  (void)state;
  /* Doubles to the cap while roomy: 64 KiB to 512 KiB in three drains. */
  size_t hw = MB_WATER_START;
  int drains = 0;
  while (hw < 512 * KiB) {
    hw = mb_grow(64 * MiB, 0, hw, 512 * KiB);
    drains++;
  }
  assert_int_equal(drains, 3);
  assert_int_equal(mb_grow(64 * MiB, 0, 512 * KiB, 512 * KiB), 512 * KiB);
  assert_int_equal(mb_grow(64 * MiB, 0, 384 * KiB, 512 * KiB), 512 * KiB);
  /* Not when the budget cannot give that much (free 1 MiB: an eighth is 128 KiB). */
  assert_int_equal(mb_grow(64 * MiB, 63 * MiB, 64 * KiB, 512 * KiB), 128 * KiB);
  assert_int_equal(mb_grow(64 * MiB, 63 * MiB, 128 * KiB, 512 * KiB), 128 * KiB);
  /* NULL budget: the cap at once. */
  assert_int_equal(membudget_grow(NULL, 64 * KiB, 512 * KiB), 512 * KiB);
}

static void test_pool_charges(void **state) {
  (void)state;
  struct membudget *mb = membudget_new(64 * MiB, 64 * KiB);
  struct buf_pool pool;
  buf_pool_init(&pool, 1);
  pool.mb = mb;
  struct buf_chunk *a = buf_get(&pool), *b = buf_get(&pool), *s = buf_get_small(&pool);
  uint64_t big = sizeof(struct buf_chunk) + BUF_CHUNK_SIZE, small = sizeof(struct buf_chunk) + BUF_SMALL_SIZE;
  assert_int_equal(atomic_load(&mb->held), 2 * big + small);
  /* Held shrinks the sizes the budget gives. */
  assert_true(membudget_size(mb, 64 * MiB, 0) < (64 * MiB) / 8);
  buf_put(&pool, a); /* cached: still held */
  buf_put(&pool, b); /* beyond the cache: freed */
  assert_int_equal(atomic_load(&mb->held), big + small);
  buf_put(&pool, s);
  buf_pool_dispose(&pool);
  assert_int_equal(atomic_load(&mb->held), 0);
  assert_int_equal(atomic_load(&mb->peak), 2 * big + small);
  struct strbuf sb;
  char text[4096];
  strbuf_init_fixed(&sb, text, sizeof(text));
  membudget_render(mb, &sb);
  assert_non_null(strstr(text, "h2tunnel_memory_limit_bytes 67108864\n"));
  assert_non_null(strstr(text, "h2tunnel_memory_buffered_bytes 0\n"));
  assert_non_null(strstr(text, "h2tunnel_memory_rejections_total 0\n"));
  membudget_free(mb);
}

static void *charger(void *arg) {
  struct membudget *mb = arg;
  for (int i = 0; i < 100000; i++) {
    membudget_charge(mb, 100);
    if (membudget_admit(mb) == 0) membudget_release(mb);
    membudget_uncharge(mb, 100);
  }
  membudget_charge(mb, 7);
  return NULL;
}

static void test_two_threads(void **state) {
  (void)state;
  struct membudget *mb = membudget_new(1 * MiB, 1 * KiB);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, charger, mb);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  assert_int_equal(atomic_load(&mb->held), 14);
  assert_int_equal(atomic_load(&mb->tunnels), 0);
  membudget_free(mb);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_size_rule),
      cmocka_unit_test(test_admission),
      cmocka_unit_test(test_window_tuning),
      cmocka_unit_test(test_water_growth),
      cmocka_unit_test(test_pool_charges),
      cmocka_unit_test(test_two_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
