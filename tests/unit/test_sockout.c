/* Unit tests for src/sockout.c over a real libuv stream (one end of a socketpair): a socket with
 * room takes the queue at once (no write request); a full one gets one write in flight at most, at
 * most SOCKOUT_MAX_IOV chunks per write, exact queued counts, byte order on the wire, and chunk
 * release on completion, on clear and on a failed write. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "src/buf.h"
#include "src/sockout.h"
#include "src/util.h"

struct fx {
  uv_loop_t loop;
  uv_pipe_t pipe; /* our end, fds[0] */
  int peer;       /* fds[1], read with plain read() */
  struct buf_pool pool;
  struct sockout so;
  int ncb;
  int last_status;
  size_t queued_in_cb; /* sockout_queued after sockout_done, seen from the callback */
  int reflush;         /* flush again from the callback, as endpoints do */
};

static int setup(void **state) {
  struct fx *f = xcalloc(1, sizeof(*f));
  int fds[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  CHECK(uv_loop_init(&f->loop) == 0);
  CHECK(uv_pipe_init(&f->loop, &f->pipe, 0) == 0);
  CHECK(uv_pipe_open(&f->pipe, fds[0]) == 0);
  f->peer = fds[1];
  buf_pool_init(&f->pool, 4);
  sockout_init(&f->so, &f->pool);
  f->so.wreq.data = f;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  uv_close((uv_handle_t *)&f->pipe, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  sockout_clear(&f->so);
  assert_int_equal(f->pool.in_use, 0);
  buf_pool_dispose(&f->pool);
  close(f->peer);
  free(f);
  return 0;
}

static void on_write(uv_write_t *req, int status) {
  struct fx *f = req->data;
  f->ncb++;
  f->last_status = status;
  sockout_done(&f->so);
  f->queued_in_cb = sockout_queued(&f->so);
  if (f->reflush) sockout_flush(&f->so, (uv_stream_t *)&f->pipe, on_write);
}

static void push_bytes(struct fx *f, char ch, size_t n) {
  struct buf_chunk *c = buf_get(&f->pool);
  memset(c->data, ch, n);
  c->len = (uint32_t)n;
  bufq_push(&f->so.q, &f->pool, c);
}

/* Reads what the peer got; the filler bytes ('.') that fill_socket wrote are dropped. */
static size_t drain_peer(struct fx *f, char *out, size_t cap) {
  static char tmp[1 << 20];
  size_t got = 0;
  ssize_t n;
  while ((n = recv(f->peer, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0)
    for (ssize_t i = 0; i < n; i++)
      if (tmp[i] != '.' && got < cap) out[got++] = tmp[i];
  return got;
}

/* Fills our end until the kernel takes no more, so that the next write has to wait. */
static void fill_socket(struct fx *f) {
  uv_os_fd_t fd;
  CHECK(uv_fileno((uv_handle_t *)&f->pipe, &fd) == 0);
  char dots[4096];
  memset(dots, '.', sizeof(dots));
  while (send(fd, dots, sizeof(dots), MSG_DONTWAIT) > 0) {
  }
}

static void test_written_at_once(void **state) {
  struct fx *f = *state;
  /* Nothing queued: no write. */
  assert_int_equal(sockout_flush(&f->so, (uv_stream_t *)&f->pipe, on_write), 0);
  assert_false(sockout_busy(&f->so));
  for (int i = 0; i < SOCKOUT_MAX_IOV + 3; i++) push_bytes(f, (char)('A' + i), 7);
  size_t total = (SOCKOUT_MAX_IOV + 3) * 7;
  /* A socket with room takes it all (more than one iovec batch): nothing in flight, no callback. */
  assert_int_equal(sockout_flush(&f->so, (uv_stream_t *)&f->pipe, on_write), 1);
  assert_false(sockout_busy(&f->so));
  assert_int_equal(sockout_queued(&f->so), 0);
  assert_int_equal(f->pool.in_use, 0);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(f->ncb, 0);
  char out[256];
  assert_int_equal(drain_peer(f, out, sizeof(out)), total);
  for (size_t i = 0; i < total; i++) assert_int_equal(out[i], (char)('A' + i / 7));
}

static void test_one_write_in_flight(void **state) {
  struct fx *f = *state;
  assert_int_equal(sockout_queued(&f->so), 0);
  assert_false(sockout_busy(&f->so));
  fill_socket(f);
  push_bytes(f, 'a', 10);
  push_bytes(f, 'b', 20);
  assert_int_equal(sockout_queued(&f->so), 30);
  assert_int_equal(sockout_flush(&f->so, (uv_stream_t *)&f->pipe, on_write), 0);
  assert_true(sockout_busy(&f->so));
  assert_int_equal(f->so.ninflight, 2);
  assert_int_equal(f->so.inflight_bytes, 30);
  assert_int_equal(f->so.q.bytes, 0);
  assert_int_equal(sockout_queued(&f->so), 30);

  /* While a write is in flight, new bytes queue and a flush starts nothing. */
  push_bytes(f, 'c', 5);
  assert_int_equal(sockout_queued(&f->so), 35);
  assert_int_equal(sockout_flush(&f->so, (uv_stream_t *)&f->pipe, on_write), 0);
  assert_int_equal(f->so.ninflight, 2);
  assert_int_equal(f->so.q.bytes, 5);

  char out[64];
  size_t got = drain_peer(f, out, sizeof(out)); /* makes room */
  f->reflush = 1;
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(f->ncb, 1); /* the reflush from the callback wrote 'c' at once */
  assert_int_equal(f->last_status, 0);
  assert_int_equal(f->queued_in_cb, 5);
  assert_false(sockout_busy(&f->so));
  assert_int_equal(sockout_queued(&f->so), 0);
  assert_int_equal(f->pool.in_use, 0);

  got += drain_peer(f, out + got, sizeof(out) - got);
  assert_int_equal(got, 35);
  for (int i = 0; i < 35; i++) assert_int_equal(out[i], i < 10 ? 'a' : i < 30 ? 'b' : 'c');
}

static void test_iov_cap(void **state) {
  struct fx *f = *state;
  fill_socket(f);
  for (int i = 0; i < SOCKOUT_MAX_IOV + 3; i++) push_bytes(f, (char)('A' + i), 7);
  size_t total = (SOCKOUT_MAX_IOV + 3) * 7;
  assert_int_equal(sockout_flush(&f->so, (uv_stream_t *)&f->pipe, on_write), 0);
  assert_int_equal(f->so.ninflight, SOCKOUT_MAX_IOV);
  assert_int_equal(f->so.inflight_bytes, SOCKOUT_MAX_IOV * 7);
  assert_int_equal(f->so.q.nchunks, 3);
  assert_int_equal(sockout_queued(&f->so), total);
  char out[256];
  size_t got = drain_peer(f, out, sizeof(out));
  f->reflush = 1;
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(f->ncb, 1);
  assert_int_equal(sockout_queued(&f->so), 0);
  assert_int_equal(f->pool.in_use, 0);
  got += drain_peer(f, out + got, sizeof(out) - got);
  assert_int_equal(got, total);
  for (size_t i = 0; i < total; i++) assert_int_equal(out[i], (char)('A' + i / 7));
}

static void test_clear_keeps_inflight(void **state) {
  struct fx *f = *state;
  fill_socket(f);
  push_bytes(f, 'x', 3);
  assert_int_equal(sockout_flush(&f->so, (uv_stream_t *)&f->pipe, on_write), 0);
  push_bytes(f, 'y', 4);
  push_bytes(f, 'z', 4);
  assert_int_equal(f->pool.in_use, 3);
  sockout_clear(&f->so);
  /* Queued chunks are gone; the in-flight one still belongs to the write. */
  assert_int_equal(f->pool.in_use, 1);
  assert_int_equal(sockout_queued(&f->so), 3);
  char out[16];
  size_t got = drain_peer(f, out, sizeof(out));
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(f->ncb, 1);
  assert_int_equal(f->pool.in_use, 0);
  got += drain_peer(f, out + got, sizeof(out) - got);
  assert_int_equal(got, 3);
}

static void test_failed_write_drops_chunks(void **state) {
  struct fx *f = *state;
  uv_pipe_t unopened; /* no fd: uv_write fails synchronously */
  CHECK(uv_pipe_init(&f->loop, &unopened, 0) == 0);
  push_bytes(f, 'q', 10);
  push_bytes(f, 'r', 10);
  int r = sockout_flush(&f->so, (uv_stream_t *)&unopened, on_write);
  assert_true(r < 0);
  assert_int_equal(f->pool.in_use, 0);
  assert_int_equal(sockout_queued(&f->so), 0);
  assert_false(sockout_busy(&f->so));
  uv_close((uv_handle_t *)&unopened, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(f->ncb, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_written_at_once),
      T(test_one_write_in_flight),
      T(test_iov_cap),
      T(test_clear_keeps_inflight),
      T(test_failed_write_drops_chunks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
