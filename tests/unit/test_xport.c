/* Unit tests for src/xport.c, the byte-stream transport: two transports over a real loopback TCP
 * connection on a real worker loop (worker_init without listeners). They cover reading and
 * writing with exact queue accounting, backpressure (a reader that stops), half-close both ways,
 * RST, a graceful close that flushes then lingers until the peer's FIN, the close and linger
 * bounds, abort with a write in flight (no chunk leaks), TLS both ways (a client transport
 * verifying a server transport: by name, by IP, and a name mismatch), close_notify as EOF (also
 * right behind several records decrypted into one chunk), the
 * per-turn read budget, xport_unread redelivering bytes and EOF, and that no upcall comes from
 * inside an xport call. Every wait runs the loop until an event, bounded in time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "certs/devca.h"
#include "src/config.h"
#include "src/tls.h"
#include "src/util.h"
#include "src/worker.h"
#include "src/xport.h"

#define WAIT_MS 20000 /* the bound on every wait: generous for a busy machine */
#define BIG (32u << 20) /* more than loopback socket buffers hold, so a writer must wait */

/* One side: its socket, its transport and what its upcalls saw. */
struct end {
  uv_tcp_t tcp;
  struct xport x;
  struct fx *f;           /* back-pointer */
  unsigned char *rx;      /* owned: bytes received */
  size_t nrx, caprx;
  int n_read, eofs, drains, closed, timeouts;
  int err;                /* the last on_error, or 0 */
  int hs;                 /* on_handshake status; 1 before it is called */
  int in_call;            /* set around xport_* calls made by the test: an upcall then is a bug */
  int upcall_in_call;
  int close_on_eof;       /* xport_close at on_eof */
  int close_on_handshake_failure;
  struct bufq unread_on_eof; /* given back at the first on_eof (then EOF comes again) */
  uint64_t last_turn;     /* per-turn reads, for the read budget */
  int reads_this_turn, max_reads_per_turn;
};

struct fx {
  struct config cfg;
  struct worker *w; /* heap: struct worker is large */
  struct end a, b;
};

static char g_dir[64];
static SSL_CTX *g_server_ctx, *g_client_ctx;
static const unsigned char g_alpn_wire[] = "\x08http/1.1";
static const struct tls_alpn_prefs g_alpn = {g_alpn_wire, sizeof(g_alpn_wire) - 1};

static struct end *end_of(struct xport *x) { return container_of(x, struct end, x); }

static void note_upcall(struct end *e) {
  if (e->in_call) e->upcall_in_call++;
}

static void e_read(struct xport *x, struct buf_chunk *chunk) {
  struct end *e = end_of(x);
  note_upcall(e);
  if (e->nrx + chunk->len > e->caprx) {
    e->caprx = MAX(e->caprx * 2, e->nrx + chunk->len);
    e->rx = realloc(e->rx, e->caprx);
    CHECK(e->rx != NULL);
  }
  memcpy(e->rx + e->nrx, buf_rd(chunk), chunk->len);
  e->nrx += chunk->len;
  e->n_read++;
  if (x->w->turn != e->last_turn) {
    e->last_turn = x->w->turn;
    e->reads_this_turn = 0;
  }
  e->reads_this_turn++;
  e->max_reads_per_turn = MAX(e->max_reads_per_turn, e->reads_this_turn);
  buf_put(&x->w->pool, chunk);
}

static void e_eof(struct xport *x) {
  struct end *e = end_of(x);
  note_upcall(e);
  e->eofs++;
  if (e->unread_on_eof.bytes) xport_unread(x, &e->unread_on_eof);
  if (e->close_on_eof) xport_close(x);
}

static void e_error(struct xport *x, int err) {
  struct end *e = end_of(x);
  note_upcall(e);
  e->err = err;
}

static void e_drain(struct xport *x) {
  struct end *e = end_of(x);
  note_upcall(e);
  e->drains++;
}

static void e_handshake(struct xport *x, int status) {
  struct end *e = end_of(x);
  note_upcall(e);
  e->hs = status;
  if (status != 0 && e->close_on_handshake_failure) xport_close(x);
}

static void e_timeout(struct xport *x) {
  struct end *e = end_of(x);
  note_upcall(e);
  e->timeouts++;
}

static void e_close(struct xport *x) {
  struct end *e = end_of(x);
  e->closed = 1;
}

static const struct xport_ops end_ops = {
    .on_read = e_read,
    .on_eof = e_eof,
    .on_error = e_error,
    .on_drain = e_drain,
    .on_handshake = e_handshake,
    .on_timeout = e_timeout,
    .on_close = e_close,
};

static const struct xport_opts default_opts = {
    .read_budget = 0, .low_water = 16384, .close_timeout_ms = 10000, .linger_ms = 10000};

static void end_open(struct fx *f, struct end *e, int fd, const struct xport_opts *opts) {
  e->f = f;
  e->hs = 1;
  bufq_init(&e->unread_on_eof);
  assert_int_equal(uv_tcp_init(&f->w->loop, &e->tcp), 0);
  xport_init(&e->x, f->w, &e->tcp, &end_ops, opts ? opts : &default_opts);
  assert_int_equal(uv_tcp_open(&e->tcp, fd), 0);
}

/* A connected loopback pair: |a| dialled |b|. */
static void make_pair(struct fx *f, const struct xport_opts *ao, const struct xport_opts *bo) {
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sin);
  int l = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(l >= 0);
  assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
  assert_int_equal(listen(l, 1), 0);
  assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &len), 0);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
  int s = accept(l, NULL, NULL);
  assert_true(s >= 0);
  close(l);
  end_open(f, &f->a, c, ao);
  end_open(f, &f->b, s, bo);
}

/* Runs the loop until |pred| holds; fails after WAIT_MS. A 5 ms timer keeps the loop turning. */
static uv_timer_t g_tick;
static void on_tick(uv_timer_t *t) {}

static void run_until(struct fx *f, int (*pred)(struct fx *f), const char *what) {
  uv_update_time(&f->w->loop);
  uint64_t start = uv_now(&f->w->loop);
  uv_timer_start(&g_tick, on_tick, 5, 5);
  while (!pred(f)) {
    if (uv_now(&f->w->loop) - start > WAIT_MS)
      fail_msg("timed out waiting for %s (a: %zu read, eof %d, err %d, closed %d; b: %zu read, eof %d, err %d, closed %d)",
               what, f->a.nrx, f->a.eofs, f->a.err, f->a.closed, f->b.nrx, f->b.eofs, f->b.err, f->b.closed);
    uv_run(&f->w->loop, UV_RUN_ONCE);
  }
  uv_timer_stop(&g_tick);
}

static int both_closed(struct fx *f) { return f->a.closed && f->b.closed; }

static int setup(void **state) {
  struct fx *f = xcalloc(1, sizeof(*f));
  config_init(&f->cfg);
  f->w = xcalloc(1, sizeof(*f->w));
  assert_int_equal(worker_init(f->w, 0, &f->cfg, NULL), 0);
  uv_timer_init(&f->w->loop, &g_tick);
  *state = f;
  return 0;
}

/* Aborts what is still open, waits for both on_close, stops the worker and checks that the loop
 * has nothing left and that no chunk is out. */
static int teardown(void **state) {
  struct fx *f = *state;
  struct end *ends[] = {&f->a, &f->b};
  for (int i = 0; i < 2; i++)
    if (ends[i]->f && !ends[i]->closed) xport_abort(&ends[i]->x);
  run_until(f, both_closed, "both transports closed");
  for (int i = 0; i < 2; i++) {
    bufq_clear(&ends[i]->unread_on_eof, &f->w->pool);
    free(ends[i]->rx);
  }
  uv_close((uv_handle_t *)&g_tick, NULL);
  uv_close((uv_handle_t *)&f->w->stop_async, NULL);
  f->w->stopping = WORKER_STOPPING;
  worker_maybe_finish(f->w);
  assert_int_equal(uv_run(&f->w->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&f->w->loop), 0);
  assert_int_equal(f->w->pool.in_use, 0);
  buf_pool_dispose(&f->w->pool);
  config_dispose(&f->cfg);
  free(f->w);
  free(f);
  return 0;
}

static void write_pattern(struct end *e, size_t off, size_t n) {
  unsigned char *p = malloc(n);
  CHECK(p != NULL);
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)((off + i) * 131 + 7);
  e->in_call = 1;
  xport_write_copy(&e->x, p, n);
  e->in_call = 0;
  free(p);
}

static void assert_pattern(const struct end *e, size_t n) {
  assert_int_equal(e->nrx, n);
  for (size_t i = 0; i < n; i++)
    if (e->rx[i] != (unsigned char)(i * 131 + 7)) fail_msg("byte %zu differs", i);
}

/* ---- cleartext ---- */

static int b_has_71005(struct fx *f) { return f->b.nrx == 71005 && xport_queued(&f->a.x) == 0 && f->a.drains; }

static void test_write_read_accounting(void **state) {
  struct fx *f = *state;
  make_pair(f, NULL, NULL);
  xport_read_start(&f->b.x);
  write_pattern(&f->a, 0, 1000);
  write_pattern(&f->a, 1000, 70000);
  write_pattern(&f->a, 71000, 5);
  /* Nothing is written inside the calls: every byte is queued, exactly. */
  assert_int_equal(xport_queued(&f->a.x), 71005);
  run_until(f, b_has_71005, "71005 bytes across");
  assert_pattern(&f->b, 71005);
  assert_int_equal(f->a.upcall_in_call, 0);
  assert_int_equal(f->b.eofs + f->b.err, 0);
}

static int a_stuck(struct fx *f) { return sockout_busy(&f->a.x.so) && f->w->turn > 50; }
static int b_has_big(struct fx *f) { return f->b.nrx == BIG && xport_queued(&f->a.x) == 0; }

static void test_backpressure(void **state) {
  struct fx *f = *state;
  make_pair(f, NULL, NULL);
  write_pattern(&f->a, 0, BIG); /* b is not reading */
  run_until(f, a_stuck, "the writer waiting on the socket");
  size_t q = xport_queued(&f->a.x);
  assert_true(q > default_opts.low_water); /* the socket buffers took only part of it */
  assert_true(q < BIG);
  assert_int_equal(f->a.drains, 0);
  assert_int_equal(f->b.n_read, 0);
  xport_read_start(&f->b.x);
  run_until(f, b_has_big, "everything read");
  assert_true(f->a.drains >= 1);
  assert_pattern(&f->b, BIG);
}

static int b_eof(struct fx *f) { return f->b.eofs > 0; }
static int a_eof(struct fx *f) { return f->a.eofs > 0 && f->a.nrx == 5; }

/* Half-close both ways; each direction ends on its own (ends |a| and |b| are connected, TLS or not). */
static void half_close_both_ways(struct fx *f) {
  xport_read_start(&f->a.x);
  xport_read_start(&f->b.x);
  f->a.in_call = 1;
  xport_write_copy(&f->a.x, "hello", 5);
  xport_shutdown(&f->a.x);
  f->a.in_call = 0;
  run_until(f, b_eof, "b: hello, then EOF");
  assert_int_equal(f->b.nrx, 5);
  assert_memory_equal(f->b.rx, "hello", 5);
  assert_int_equal(f->a.x.wr, XPORT_WR_FIN_DONE);
  /* The other direction still flows after the FIN. */
  f->b.in_call = 1;
  xport_write_copy(&f->b.x, "world", 5);
  xport_shutdown(&f->b.x);
  f->b.in_call = 0;
  run_until(f, a_eof, "a: world, then EOF");
  assert_memory_equal(f->a.rx, "world", 5);
  assert_int_equal(f->a.err + f->b.err, 0);
  assert_int_equal(f->a.upcall_in_call + f->b.upcall_in_call, 0);
  xport_close(&f->a.x);
  xport_close(&f->b.x);
  run_until(f, both_closed, "both closed after their EOFs");
}

static void test_half_close(void **state) {
  struct fx *f = *state;
  make_pair(f, NULL, NULL);
  half_close_both_ways(f);
}

static int b_err(struct fx *f) { return f->b.err != 0 && f->a.closed; }

static void test_abort_is_rst(void **state) {
  struct fx *f = *state;
  make_pair(f, NULL, NULL);
  xport_read_start(&f->b.x);
  xport_abort(&f->a.x);
  run_until(f, b_err, "b reset");
  assert_int_equal(f->b.err, UV_ECONNRESET);
  assert_int_equal(f->b.eofs, 0);
}

static int b_ended(struct fx *f) { return (f->b.err != 0 || f->b.eofs) && f->a.closed; }

static void test_abort_with_write_in_flight(void **state) {
  struct fx *f = *state;
  make_pair(f, NULL, NULL);
  write_pattern(&f->a, 0, BIG);
  run_until(f, a_stuck, "a write in flight");
  xport_abort(&f->a.x);
  /* Chunks of the cancelled write and of the queue go back to the pool (teardown checks). */
  xport_read_start(&f->b.x);
  run_until(f, b_ended, "b reset");
  /* A reset, not a FIN behind the megabytes in a's socket buffer: b got only what its own
   * buffer held. libuv reports a reset seen with POLLHUP after a partial read as UV_EOF, so the
   * socket's pending error says which it was. */
  int err = 0;
  socklen_t len = sizeof(err);
  uv_os_fd_t fd;
  assert_int_equal(uv_fileno((uv_handle_t *)&f->b.tcp, &fd), 0);
  assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
  assert_true(f->b.err == UV_ECONNRESET || err == ECONNRESET);
  assert_true(f->b.nrx < BIG / 4);
}

static int a_closed(struct fx *f) { return f->a.closed; }

static void test_close_flushes_then_lingers_until_fin(void **state) {
  struct fx *f = *state;
  make_pair(f, NULL, NULL);
  write_pattern(&f->a, 0, 1 << 20);
  xport_close(&f->a.x);
  xport_read_start(&f->b.x);
  run_until(f, b_eof, "b: everything, then EOF");
  assert_pattern(&f->b, 1 << 20);
  /* a lingers (its linger bound is 10 s) until b's FIN. */
  assert_int_equal(f->a.closed, 0);
  assert_int_equal(f->a.x.state, XPORT_LINGER);
  uv_update_time(&f->w->loop);
  uint64_t t0 = uv_now(&f->w->loop);
  xport_close(&f->b.x);
  run_until(f, both_closed, "a closed at b's FIN");
  assert_true(uv_now(&f->w->loop) - t0 < 5000);
}

static void test_close_bound(void **state) {
  struct fx *f = *state;
  const struct xport_opts o = {.low_water = 16384, .close_timeout_ms = 200, .linger_ms = 10000};
  make_pair(f, &o, NULL);
  write_pattern(&f->a, 0, BIG); /* b never reads: the flush cannot finish */
  uv_update_time(&f->w->loop);
  uint64_t t0 = uv_now(&f->w->loop);
  xport_close(&f->a.x);
  run_until(f, a_closed, "a closed at its close bound");
  assert_true(uv_now(&f->w->loop) - t0 >= 200);
  assert_int_equal(f->a.drains, 0); /* no upcall after close */
}

static void test_linger_bound(void **state) {
  struct fx *f = *state;
  const struct xport_opts o = {.low_water = 16384, .close_timeout_ms = 10000, .linger_ms = 100};
  make_pair(f, &o, NULL);
  xport_read_start(&f->b.x);
  f->a.in_call = 1;
  xport_write_copy(&f->a.x, "bye", 3);
  xport_close(&f->a.x);
  f->a.in_call = 0;
  uv_update_time(&f->w->loop);
  uint64_t t0 = uv_now(&f->w->loop);
  run_until(f, a_closed, "a closed at its linger bound"); /* b never closes */
  assert_true(uv_now(&f->w->loop) - t0 >= 100);
  assert_int_equal(f->b.nrx, 3);
  assert_int_equal(f->b.eofs, 1);
}

/* The reader starts once the socket holds more than one read's worth: without a budget libuv
 * reads on (up to 32 times) in one callback; with a budget of 1 byte, one read per loop turn. */
static void read_with_budget(struct fx *f, size_t budget) {
  const struct xport_opts o = {.read_budget = budget, .low_water = 16384, .close_timeout_ms = 10000, .linger_ms = 0};
  make_pair(f, NULL, &o);
  write_pattern(&f->a, 0, BIG);
  run_until(f, a_stuck, "the socket full");
  xport_read_start(&f->b.x);
  run_until(f, b_has_big, "everything read");
  assert_pattern(&f->b, BIG);
}

static void test_read_budget(void **state) {
  struct fx *f = *state;
  read_with_budget(f, 1);
  assert_int_equal(f->b.max_reads_per_turn, 1);
}

static void test_no_read_budget(void **state) {
  struct fx *f = *state;
  read_with_budget(f, 0);
  assert_true(f->b.max_reads_per_turn > 1);
}

static int b_unread_done(struct fx *f) { return f->b.eofs == 2; }
static int b_third_eof(struct fx *f) { return f->b.eofs == 3; }

static void test_unread_redelivers_bytes_then_eof(void **state) {
  struct fx *f = *state;
  make_pair(f, NULL, NULL);
  bufq_append(&f->b.unread_on_eof, &f->w->pool, "xyz", 3);
  xport_read_start(&f->b.x);
  xport_write_copy(&f->a.x, "abc", 3);
  xport_shutdown(&f->a.x);
  run_until(f, b_unread_done, "abc, EOF, xyz, EOF");
  assert_int_equal(f->b.nrx, 6);
  assert_memory_equal(f->b.rx, "abcxyz", 6);
  /* Given back outside a callback: delivered from the loop, not inside the call. */
  bufq_append(&f->b.unread_on_eof, &f->w->pool, "!", 1);
  f->b.in_call = 1;
  xport_unread(&f->b.x, &f->b.unread_on_eof);
  xport_read_stop(&f->b.x);
  xport_read_start(&f->b.x);
  f->b.in_call = 0;
  assert_int_equal(f->b.nrx, 6);
  assert_int_equal(f->b.upcall_in_call, 0);
  run_until(f, b_third_eof, "!, EOF");
  assert_memory_equal(f->b.rx, "abcxyz!", 7);
}

/* ---- TLS ---- */

static int both_handshaken(struct fx *f) { return f->a.hs != 1 && f->b.hs != 1; }

/* |a| is the client (verifying |name|), |b| the server. */
static void tls_pair(struct fx *f, const char *name) {
  make_pair(f, NULL, NULL);
  struct bufq none;
  bufq_init(&none);
  f->b.in_call = f->a.in_call = 1;
  xport_tls_accept(&f->b.x, g_server_ctx, &none);
  assert_int_equal(xport_tls_connect(&f->a.x, g_client_ctx, name), 0);
  f->b.in_call = f->a.in_call = 0;
  run_until(f, both_handshaken, "both handshakes");
  assert_int_equal(f->a.upcall_in_call + f->b.upcall_in_call, 0);
}

static int b_has_300k(struct fx *f) { return f->b.nrx == 300000; }

static void test_tls_both_ways(void **state) {
  struct fx *f = *state;
  tls_pair(f, "localhost");
  assert_int_equal(f->a.hs, 0);
  assert_int_equal(f->b.hs, 0);
  assert_int_equal(SSL_get_verify_result(f->a.x.ssl), X509_V_OK);
  assert_int_equal(f->a.x.tls, XPORT_TLS_ON);
  xport_read_start(&f->b.x);
  write_pattern(&f->a, 0, 300000);
  assert_true(xport_queued(&f->a.x) > 300000); /* ciphertext: records add their overhead */
  run_until(f, b_has_300k, "300000 bytes through TLS");
  assert_pattern(&f->b, 300000);
  /* close_notify is the EOF; the other direction goes on. */
  free(f->b.rx);
  f->b.rx = NULL;
  f->b.nrx = f->b.caprx = 0;
  half_close_both_ways(f);
}

static int a_fin_done(struct fx *f) { return f->a.x.wr == XPORT_WR_FIN_DONE; }
static int b_got_eof(struct fx *f) { return f->b.eofs > 0; }

/* SSL_read hands out one record per call; a read fills its chunk from several (src/xport.c,
 * tls_read). Three records and a bit, then close_notify and FIN, all waiting in the socket before
 * the reader starts: every byte in order, in fewer chunks than records, then exactly one EOF. */
static void test_tls_records_fill_a_chunk_then_eof(void **state) {
  struct fx *f = *state;
  tls_pair(f, "localhost");
  write_pattern(&f->a, 0, 50000);
  f->a.in_call = 1;
  xport_shutdown(&f->a.x);
  f->a.in_call = 0;
  run_until(f, a_fin_done, "a's records, close_notify and FIN written");
  f->b.in_call = 1;
  xport_read_start(&f->b.x);
  f->b.in_call = 0;
  run_until(f, b_got_eof, "b's EOF after the records");
  assert_pattern(&f->b, 50000);
  assert_int_equal(f->b.eofs, 1);
  assert_true(f->b.n_read < 4); /* 4 records (3 x 16384 + 848); one per chunk would be 4 reads */
  assert_int_equal(f->b.err, 0);
  assert_int_equal(f->a.upcall_in_call + f->b.upcall_in_call, 0);
}

static void test_tls_ip_literal_verified(void **state) {
  struct fx *f = *state;
  tls_pair(f, "127.0.0.1");
  assert_int_equal(f->a.hs, 0);
  assert_int_equal(SSL_get_verify_result(f->a.x.ssl), X509_V_OK);
}

static void test_tls_name_mismatch_fails(void **state) {
  struct fx *f = *state;
  f->a.close_on_handshake_failure = 1; /* sends the alert */
  f->b.close_on_handshake_failure = 1;
  tls_pair(f, "wrong.example");
  assert_int_equal(f->a.hs, UV_EPROTO);
  assert_int_equal(SSL_get_verify_result(f->a.x.ssl), X509_V_ERR_HOSTNAME_MISMATCH);
  char buf[160];
  assert_string_not_equal(xport_tls_error(&f->a.x, buf, sizeof(buf)), "no OpenSSL error");
  assert_int_not_equal(f->b.hs, 0); /* the server saw the alert (or the close) */
  run_until(f, both_closed, "both closed after the failure");
}

static int setup_group(void **state) {
  snprintf(g_dir, sizeof(g_dir), "/tmp/h2t-xport-XXXXXX");
  assert_non_null(mkdtemp(g_dir));
  int created = 0;
  assert_int_equal(devca_ensure(g_dir, &created), 0);
  char cert[128], key[128], ca[128];
  snprintf(cert, sizeof(cert), "%s/" DEVCA_LEAF_CERT, g_dir);
  snprintf(key, sizeof(key), "%s/" DEVCA_LEAF_KEY, g_dir);
  snprintf(ca, sizeof(ca), "%s/" DEVCA_CA_CERT, g_dir);
  g_server_ctx = tls_ctx_new(cert, key, &g_alpn);
  g_client_ctx = tls_client_ctx_new(ca);
  assert_non_null(g_server_ctx);
  assert_non_null(g_client_ctx);
  return 0;
}

static int teardown_group(void **state) {
  static const char *files[] = {DEVCA_CA_CERT, DEVCA_CA_KEY, DEVCA_LEAF_CERT, DEVCA_LEAF_KEY};
  char p[128];
  for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
    snprintf(p, sizeof(p), "%s/%s", g_dir, files[i]);
    unlink(p);
  }
  rmdir(g_dir);
  SSL_CTX_free(g_server_ctx);
  SSL_CTX_free(g_client_ctx);
  return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_write_read_accounting),
      T(test_backpressure),
      T(test_half_close),
      T(test_abort_is_rst),
      T(test_abort_with_write_in_flight),
      T(test_close_flushes_then_lingers_until_fin),
      T(test_close_bound),
      T(test_linger_bound),
      T(test_read_budget),
      T(test_no_read_budget),
      T(test_unread_redelivers_bytes_then_eof),
      T(test_tls_both_ways),
      T(test_tls_records_fill_a_chunk_then_eof),
      T(test_tls_ip_literal_verified),
      T(test_tls_name_mismatch_fails),
  };
  return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
