/* Unit tests for src/buf.c: the chunk pool (reuse, the free cap, in_use accounting) and bufq
 * (append across chunk boundaries, push/pop/skip/peek with exact byte and chunk counts). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "src/buf.h"
#include "src/util.h"

/* A recognisable pattern so misplaced bytes show: byte i of a stream is (i * 7 + i / 251) & 0xff. */
static void fill(char *p, size_t from, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (char)(((from + i) * 7 + (from + i) / 251) & 0xff);
}

static void check_pattern(const char *p, size_t from, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (char)(((from + i) * 7 + (from + i) / 251) & 0xff))
      fail_msg("byte %zu of the stream is wrong", from + i);
}

static void test_pool_reuse_and_in_use(void **state) {
  (void)state;
  struct buf_pool pool;
  buf_pool_init(&pool, 2);
  assert_int_equal(pool.in_use, 0);
  assert_int_equal(pool.nfree, 0);

  struct buf_chunk *c1 = buf_get(&pool);
  struct buf_chunk *c2 = buf_get(&pool);
  assert_ptr_not_equal(c1, c2);
  assert_int_equal(pool.in_use, 2);
  assert_int_equal(c1->off, 0);
  assert_int_equal(c1->len, 0);
  assert_null(c1->next);
  assert_int_equal(buf_room(c1), BUF_CHUNK_SIZE);

  c1->off = 10;
  c1->len = 20;
  buf_put(&pool, c1);
  assert_int_equal(pool.in_use, 1);
  assert_int_equal(pool.nfree, 1);
  /* The cached chunk comes back, reset. */
  struct buf_chunk *c3 = buf_get(&pool);
  assert_ptr_equal(c3, c1);
  assert_int_equal(c3->off, 0);
  assert_int_equal(c3->len, 0);
  assert_int_equal(pool.nfree, 0);
  assert_int_equal(pool.in_use, 2);

  /* Beyond max_free, returned chunks are freed, not cached. */
  struct buf_chunk *c4 = buf_get(&pool);
  buf_put(&pool, c2);
  buf_put(&pool, c3);
  buf_put(&pool, c4);
  assert_int_equal(pool.nfree, 2);
  assert_int_equal(pool.in_use, 0);

  buf_put(&pool, NULL); /* ignored */
  assert_int_equal(pool.in_use, 0);
  assert_int_equal(pool.nfree, 2);
  buf_pool_dispose(&pool);
  assert_int_equal(pool.nfree, 0);
  assert_null(pool.free);
}

static void test_pool_zero_cache(void **state) {
  (void)state;
  struct buf_pool pool;
  buf_pool_init(&pool, 0);
  buf_put(&pool, buf_get(&pool));
  assert_int_equal(pool.nfree, 0);
  assert_int_equal(pool.in_use, 0);
  buf_pool_dispose(&pool);
}

static void test_bufq_append_across_chunks(void **state) {
  (void)state;
  struct buf_pool pool;
  buf_pool_init(&pool, 8);
  struct bufq q;
  bufq_init(&q);
  assert_int_equal(q.bytes, 0);
  assert_null(bufq_pop(&q));

  size_t total = 2 * BUF_CHUNK_SIZE + 100;
  size_t cap = 3 * BUF_CHUNK_SIZE + 1;
  char *src = xmalloc(cap);
  fill(src, 0, cap);
  bufq_append(&q, &pool, src, total);
  assert_int_equal(q.bytes, total);
  assert_int_equal(q.nchunks, 3);
  assert_int_equal(pool.in_use, 3);
  assert_int_equal(q.head->len, BUF_CHUNK_SIZE);
  assert_int_equal(q.tail->len, 100);

  /* The next append fills the tail chunk first, then opens one more. */
  bufq_append(&q, &pool, src + total, BUF_CHUNK_SIZE - 100 + 1);
  total += BUF_CHUNK_SIZE - 100 + 1;
  assert_int_equal(q.bytes, total);
  assert_int_equal(q.nchunks, 4);
  assert_int_equal(q.tail->len, 1);

  /* Zero-length append changes nothing. */
  bufq_append(&q, &pool, src, 0);
  assert_int_equal(q.nchunks, 4);

  char *out = xmalloc(total + 10);
  assert_int_equal(bufq_peek(&q, out, total + 10), total); /* peek is capped by what is there */
  check_pattern(out, 0, total);
  assert_int_equal(q.bytes, total);                         /* and removes nothing */
  assert_int_equal(bufq_peek(&q, out, 5), 5);
  check_pattern(out, 0, 5);

  bufq_clear(&q, &pool);
  assert_int_equal(q.bytes, 0);
  assert_int_equal(q.nchunks, 0);
  assert_null(q.head);
  assert_null(q.tail);
  assert_int_equal(pool.in_use, 0);
  free(src);
  free(out);
  buf_pool_dispose(&pool);
}

static void test_bufq_skip(void **state) {
  (void)state;
  struct buf_pool pool;
  buf_pool_init(&pool, 8);
  struct bufq q;
  bufq_init(&q);
  size_t total = 3 * BUF_CHUNK_SIZE;
  char *src = xmalloc(total);
  fill(src, 0, total);
  bufq_append(&q, &pool, src, total);
  assert_int_equal(pool.in_use, 3);

  char out[64];
  /* Inside the head chunk: no chunk released, offset moves. */
  bufq_skip(&q, &pool, 10);
  assert_int_equal(q.bytes, total - 10);
  assert_int_equal(q.nchunks, 3);
  assert_int_equal(q.head->off, 10);
  assert_int_equal(bufq_peek(&q, out, 4), 4);
  check_pattern(out, 10, 4);

  /* Exactly to the end of the head chunk: it goes back to the pool. */
  bufq_skip(&q, &pool, BUF_CHUNK_SIZE - 10);
  assert_int_equal(q.nchunks, 2);
  assert_int_equal(pool.in_use, 2);
  assert_int_equal(q.bytes, 2 * BUF_CHUNK_SIZE);
  assert_int_equal(bufq_peek(&q, out, 8), 8);
  check_pattern(out, BUF_CHUNK_SIZE, 8);

  /* Across a chunk boundary. */
  bufq_skip(&q, &pool, BUF_CHUNK_SIZE + 3);
  assert_int_equal(q.nchunks, 1);
  assert_int_equal(pool.in_use, 1);
  assert_int_equal(q.bytes, BUF_CHUNK_SIZE - 3);
  assert_int_equal(bufq_peek(&q, out, 8), 8);
  check_pattern(out, 2 * BUF_CHUNK_SIZE + 3, 8);

  /* Peek spanning two chunks after a partial skip. */
  bufq_append(&q, &pool, src, 16);
  assert_int_equal(q.nchunks, 2);
  char span[BUF_CHUNK_SIZE + 16];
  assert_int_equal(bufq_peek(&q, span, sizeof(span)), BUF_CHUNK_SIZE - 3 + 16);
  check_pattern(span, 2 * BUF_CHUNK_SIZE + 3, BUF_CHUNK_SIZE - 3);
  check_pattern(span + BUF_CHUNK_SIZE - 3, 0, 16);

  /* More than is there: empties the queue, no underflow. */
  bufq_skip(&q, &pool, 10 * BUF_CHUNK_SIZE);
  assert_int_equal(q.bytes, 0);
  assert_int_equal(q.nchunks, 0);
  assert_null(q.head);
  assert_null(q.tail);
  assert_int_equal(pool.in_use, 0);
  bufq_skip(&q, &pool, 1); /* on an empty queue */
  assert_int_equal(bufq_peek(&q, out, sizeof(out)), 0);

  /* The queue is usable after being emptied (tail was reset). */
  bufq_append(&q, &pool, "abc", 3);
  assert_int_equal(q.nchunks, 1);
  assert_int_equal(bufq_peek(&q, out, 3), 3);
  assert_memory_equal(out, "abc", 3);
  bufq_clear(&q, &pool);
  assert_int_equal(pool.in_use, 0);
  free(src);
  buf_pool_dispose(&pool);
}

static void test_bufq_push_pop(void **state) {
  (void)state;
  struct buf_pool pool;
  buf_pool_init(&pool, 8);
  struct bufq q;
  bufq_init(&q);

  struct buf_chunk *c1 = buf_get(&pool);
  memcpy(c1->data, "hello", 5);
  c1->len = 5;
  struct buf_chunk *c2 = buf_get(&pool);
  c2->off = 100; /* a chunk that was read into at an offset */
  memcpy(c2->data + 100, "world", 5);
  c2->len = 5;
  struct buf_chunk *empty = buf_get(&pool);
  assert_int_equal(pool.in_use, 3);

  bufq_push(&q, &pool, c1);
  bufq_push(&q, &pool, empty); /* empty chunks go back to the pool, not into the queue */
  assert_int_equal(pool.in_use, 2);
  bufq_push(&q, &pool, c2);
  assert_int_equal(q.bytes, 10);
  assert_int_equal(q.nchunks, 2);

  char out[16];
  assert_int_equal(bufq_peek(&q, out, sizeof(out)), 10);
  assert_memory_equal(out, "helloworld", 10);

  /* Append continues in the tail chunk's room, which accounts for its offset. */
  assert_int_equal(buf_room(c2), BUF_CHUNK_SIZE - 105);
  bufq_append(&q, &pool, "!", 1);
  assert_int_equal(q.nchunks, 2);
  assert_int_equal(c2->len, 6);
  assert_memory_equal(buf_rd(c2), "world!", 6);

  struct buf_chunk *p = bufq_pop(&q);
  assert_ptr_equal(p, c1);
  assert_null(p->next);
  assert_int_equal(q.bytes, 6);
  assert_int_equal(q.nchunks, 1);
  assert_int_equal(pool.in_use, 2); /* popped chunks belong to the caller now */
  buf_put(&pool, p);
  p = bufq_pop(&q);
  assert_ptr_equal(p, c2);
  assert_null(q.head);
  assert_null(q.tail);
  assert_int_equal(q.bytes, 0);
  assert_null(bufq_pop(&q));
  buf_put(&pool, p);
  assert_int_equal(pool.in_use, 0);
  buf_pool_dispose(&pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pool_reuse_and_in_use),
      cmocka_unit_test(test_pool_zero_cache),
      cmocka_unit_test(test_bufq_append_across_chunks),
      cmocka_unit_test(test_bufq_skip),
      cmocka_unit_test(test_bufq_push_pop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
