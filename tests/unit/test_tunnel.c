/* Unit tests for tunnel/tunnel.c against mock endpoints: byte movement both ways, water-mark
 * backpressure, half-close, reset/error propagation, kill, first payload, idle timeout, the access
 * log line and the tunnels_active gauge. The worker is a minimal hand-built one (loop, pool,
 * lists, config) -- worker_init would bind listeners. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "src/buf.h"
#include "src/config.h"
#include "src/log.h"
#include "src/metrics.h"
#include "src/util.h"
#include "src/worker.h"
#include "tunnel/endpoint.h"
#include "tunnel/tunnel.h"

#define HIGH 100
#define LOW 40

/* ---- mock endpoint ------------------------------------------------------------------------- */

struct mock_ep {
  struct tun_ep ep;      /* the tunnel's view */
  const char *name;      /* "a" or "b", for the event trace */
  struct buf_pool *pool; /* borrowed: the fixture worker's */
  struct bufq out;       /* chunks written to this side, in order; owned */
  size_t written;        /* bytes accepted by write */
  int n_read_start, n_read_stop, n_write, n_shutdown, n_abort, n_close;
  int reading;
  int ops_after_close;   /* any op after close is a contract violation by the tunnel */
  int tun_set_at_close;  /* ep.tun was still non-NULL when close ran */
  int error_on_write;    /* write reports an error back into the tunnel synchronously */
  int error_on_abort;    /* abort reports an error back into the tunnel synchronously */
};

static char g_trace[1024];

static void trace(struct mock_ep *m, const char *what) {
  size_t n = strlen(g_trace);
  snprintf(g_trace + n, sizeof(g_trace) - n, "%s%s.%s", n ? " " : "", m->name, what);
}

static struct mock_ep *mock_of(struct tun_ep *ep) { return container_of(ep, struct mock_ep, ep); }

static void note_op(struct mock_ep *m) {
  if (m->n_close) m->ops_after_close++;
}

static void m_read_start(struct tun_ep *self) {
  struct mock_ep *m = mock_of(self);
  note_op(m);
  m->n_read_start++;
  m->reading = 1;
  trace(m, "read_start");
}

static void m_read_stop(struct tun_ep *self) {
  struct mock_ep *m = mock_of(self);
  note_op(m);
  m->n_read_stop++;
  m->reading = 0;
  trace(m, "read_stop");
}

static void m_write(struct tun_ep *self, struct buf_chunk *c) {
  struct mock_ep *m = mock_of(self);
  note_op(m);
  m->n_write++;
  m->written += c->len;
  self->queued += c->len;
  trace(m, "write");
  bufq_push(&m->out, m->pool, c);
  if (m->error_on_write) tunnel_on_error(self, TUN_CLOSE_UPSTREAM_ERROR);
}

static void m_shutdown(struct tun_ep *self) {
  struct mock_ep *m = mock_of(self);
  note_op(m);
  m->n_shutdown++;
  trace(m, "shutdown");
}

static void m_abort(struct tun_ep *self) {
  struct mock_ep *m = mock_of(self);
  note_op(m);
  m->n_abort++;
  self->queued = 0; /* queued bytes are dropped */
  trace(m, "abort");
  if (m->error_on_abort) tunnel_on_error(self, TUN_CLOSE_CLIENT_RST);
}

static void m_close(struct tun_ep *self) {
  struct mock_ep *m = mock_of(self);
  note_op(m);
  m->n_close++;
  m->reading = 0;
  if (self->tun) m->tun_set_at_close = 1;
  trace(m, "close");
}

static const struct tun_ep_ops mock_ops = {
    .kind = "mock",
    .read_start = m_read_start,
    .read_stop = m_read_stop,
    .write = m_write,
    .shutdown = m_shutdown,
    .abort = m_abort,
    .close = m_close,
};

/* ---- fixture ------------------------------------------------------------------------------- */

struct fx {
  struct config cfg;
  struct worker *w; /* heap: struct worker embeds listener handles and is large */
  struct mock_ep a, b;
  struct tun_info info;
};

static FILE *g_access;

static void mock_init(struct mock_ep *m, const char *name, struct buf_pool *pool) {
  memset(m, 0, sizeof(*m));
  m->ep.ops = &mock_ops;
  m->name = name;
  m->pool = pool;
  bufq_init(&m->out);
}

static int setup(void **state) {
  struct fx *f = xcalloc(1, sizeof(*f));
  config_init(&f->cfg);
  f->cfg.high_water = HIGH;
  f->cfg.low_water = LOW;
  f->w = xcalloc(1, sizeof(*f->w));
  f->w->cfg = &f->cfg;
  CHECK(uv_loop_init(&f->w->loop) == 0);
  buf_pool_init(&f->w->pool, 4);
  list_init(&f->w->conns);
  list_init(&f->w->tunnels);
  list_init(&f->w->deferred);
  mock_init(&f->a, "a", &f->w->pool);
  mock_init(&f->b, "b", &f->w->pool);
  f->info.proto = TUN_PROTO_CONNECT;
  f->info.front = "h1";
  snprintf(f->info.client, sizeof(f->info.client), "127.0.0.1:5555");
  snprintf(f->info.target, sizeof(f->info.target), "example.com:443");
  snprintf(f->info.resolved, sizeof(f->info.resolved), "93.184.216.34:443");
  f->info.status = 200;
  f->info.start_ms = uv_now(&f->w->loop);
  g_trace[0] = '\0';
  /* Each test reads back only its own access-log lines. */
  CHECK(ftruncate(fileno(g_access), 0) == 0);
  CHECK(lseek(fileno(g_access), 0, SEEK_SET) == 0);
  *state = f;
  return 0;
}

/* Every test must have ended its tunnel; this runs the loop so the tunnel's timer closes and the
 * tunnel frees itself, then checks nothing is left: no chunks out, no handles, no tunnels. */
static int teardown(void **state) {
  struct fx *f = *state;
  assert_true(list_empty(&f->w->tunnels));
  bufq_clear(&f->a.out, &f->w->pool);
  bufq_clear(&f->b.out, &f->w->pool);
  assert_int_equal(f->w->pool.in_use, 0);
  uv_run(&f->w->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->w->loop), 0);
  for (int p = 0; p < TUN_PROTO_COUNT; p++) assert_int_equal(f->w->metrics.tunnels_active[p], 0);
  assert_int_equal(f->a.ops_after_close, 0);
  assert_int_equal(f->b.ops_after_close, 0);
  assert_int_equal(f->a.tun_set_at_close, 0);
  assert_int_equal(f->b.tun_set_at_close, 0);
  buf_pool_dispose(&f->w->pool);
  config_dispose(&f->cfg);
  free(f->w);
  free(f);
  return 0;
}

static struct buf_chunk *chunk_of(struct fx *f, const char *s, size_t len) {
  struct buf_chunk *c = buf_get(&f->w->pool);
  memcpy(c->data, s, len);
  c->len = (uint32_t)len;
  return c;
}

/* Delivers |s| as one on_read from |m|. */
static void deliver(struct fx *f, struct mock_ep *m, const char *s) {
  tunnel_on_read(&m->ep, chunk_of(f, s, strlen(s)));
}

static void deliver_n(struct fx *f, struct mock_ep *m, size_t n) {
  struct buf_chunk *c = buf_get(&f->w->pool);
  memset(c->data, 'x', n);
  c->len = (uint32_t)n;
  tunnel_on_read(&m->ep, c);
}

/* The bytes written to |m| so far, as a string. */
static const char *written(struct mock_ep *m) {
  static char buf[4096];
  size_t n = bufq_peek(&m->out, buf, sizeof(buf) - 1);
  buf[n] = '\0';
  return buf;
}

static struct tunnel *start(struct fx *f, struct buf_chunk *first) {
  struct tunnel *t = tunnel_new(f->w, &f->a.ep, &f->b.ep, &f->info);
  assert_non_null(t);
  assert_ptr_equal(f->a.ep.tun, t);
  assert_ptr_equal(f->b.ep.tun, t);
  tunnel_start(t, first);
  return t;
}

/* The access log written during this test. */
static const char *access_log(void) {
  static char buf[8192];
  ssize_t n = pread(fileno(g_access), buf, sizeof(buf) - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

static void assert_closed_once(struct fx *f) {
  assert_int_equal(f->a.n_close, 1);
  assert_int_equal(f->b.n_close, 1);
  assert_null(f->a.ep.tun);
  assert_null(f->b.ep.tun);
  assert_true(list_empty(&f->w->tunnels));
  assert_int_equal(count_lines(access_log()), 1);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_start_reads_both(void **state) {
  struct fx *f = *state;
  struct tunnel *t = start(f, NULL);
  assert_int_equal(f->a.n_read_start, 1);
  assert_int_equal(f->b.n_read_start, 1);
  assert_int_equal(f->a.n_write + f->b.n_write, 0);
  tunnel_kill(t, TUN_CLOSE_SHUTDOWN);
  assert_closed_once(f);
}

static void test_bytes_both_ways_in_order(void **state) {
  struct fx *f = *state;
  struct tunnel *t = start(f, NULL);
  deliver(f, &f->a, "hello ");
  deliver(f, &f->b, "HI ");
  deliver(f, &f->a, "world");
  deliver(f, &f->b, "THERE");
  assert_string_equal(written(&f->b), "hello world");
  assert_string_equal(written(&f->a), "HI THERE");
  assert_int_equal(f->b.n_write, 2);
  assert_int_equal(f->a.n_write, 2);
  assert_int_equal(f->a.ep.bytes_read, 11);
  assert_int_equal(f->b.ep.bytes_read, 8);
  assert_int_equal(f->w->metrics.bytes_up, 11);
  assert_int_equal(f->w->metrics.bytes_down, 8);
  /* Small writes stay under the high-water mark: nobody is paused. */
  assert_int_equal(f->a.n_read_stop + f->b.n_read_stop, 0);
  tunnel_kill(t, TUN_CLOSE_SHUTDOWN);
  assert_closed_once(f);
}

static void test_high_water_pauses_once(void **state) {
  struct fx *f = *state;
  struct tunnel *t = start(f, NULL);
  deliver_n(f, &f->a, HIGH - 1);
  assert_int_equal(f->a.n_read_stop, 0);
  deliver_n(f, &f->a, 1); /* b.queued == HIGH: at the mark counts as full */
  assert_int_equal(f->b.ep.queued, HIGH);
  assert_int_equal(f->a.n_read_stop, 1);
  assert_int_equal(f->a.reading, 0);
  /* A straggler read (already in flight) is still forwarded but does not stop a second time. */
  deliver_n(f, &f->a, 10);
  assert_int_equal(f->b.written, HIGH + 10);
  assert_int_equal(f->a.n_read_stop, 1);
  /* The other direction is independent. */
  assert_int_equal(f->b.n_read_stop, 0);
  deliver(f, &f->b, "down");
  assert_int_equal(f->b.n_read_stop, 0);
  tunnel_kill(t, TUN_CLOSE_SHUTDOWN);
  assert_closed_once(f);
}

static void test_drain_resumes_at_low_water(void **state) {
  struct fx *f = *state;
  struct tunnel *t = start(f, NULL);
  deliver_n(f, &f->a, HIGH + 20);
  assert_int_equal(f->a.n_read_stop, 1);
  assert_int_equal(f->a.n_read_start, 1);
  /* Above low water: stays paused. */
  f->b.ep.queued = LOW + 1;
  tunnel_on_drain(&f->b.ep);
  assert_int_equal(f->a.n_read_start, 1);
  assert_int_equal(f->a.reading, 0);
  /* At low water: resumes exactly once. */
  f->b.ep.queued = LOW;
  tunnel_on_drain(&f->b.ep);
  assert_int_equal(f->a.n_read_start, 2);
  assert_int_equal(f->a.reading, 1);
  tunnel_on_drain(&f->b.ep);
  assert_int_equal(f->a.n_read_start, 2);
  /* A drain of the side that was never full does nothing. */
  f->a.ep.queued = 0;
  tunnel_on_drain(&f->a.ep);
  assert_int_equal(f->b.n_read_start, 1);
  assert_int_equal(f->b.n_read_stop, 0);
  /* And the cycle repeats. */
  deliver_n(f, &f->a, HIGH);
  assert_int_equal(f->a.n_read_stop, 2);
  f->b.ep.queued = 0;
  tunnel_on_drain(&f->b.ep);
  assert_int_equal(f->a.n_read_start, 3);
  tunnel_kill(t, TUN_CLOSE_SHUTDOWN);
  assert_closed_once(f);
}

static void test_drain_after_eof_does_not_restart(void **state) {
  struct fx *f = *state;
  struct tunnel *t = start(f, NULL);
  deliver_n(f, &f->a, HIGH);
  assert_int_equal(f->a.n_read_stop, 1);
  tunnel_on_eof(&f->a.ep);
  f->b.ep.queued = 0;
  tunnel_on_drain(&f->b.ep);
  assert_int_equal(f->a.n_read_start, 1); /* only the one from tunnel_start */
  tunnel_kill(t, TUN_CLOSE_SHUTDOWN);
  assert_closed_once(f);
}

static void test_half_close_keeps_other_direction(void **state) {
  struct fx *f = *state;
  start(f, NULL);
  deliver(f, &f->a, "request");
  tunnel_on_eof(&f->a.ep);
  assert_int_equal(f->b.n_shutdown, 1);
  assert_true(f->b.ep.wr_shut);
  assert_int_equal(f->a.n_shutdown, 0);
  assert_int_equal(f->a.n_close + f->b.n_close, 0);
  /* b -> a still flows after the client's FIN. */
  deliver(f, &f->b, "response ");
  deliver(f, &f->b, "body");
  assert_string_equal(written(&f->a), "response body");
  assert_int_equal(f->a.n_abort + f->b.n_abort, 0);
  /* A repeated EOF is ignored. */
  tunnel_on_eof(&f->a.ep);
  assert_int_equal(f->b.n_shutdown, 1);
  /* Upstream FIN ends the tunnel: both shut down, closed exactly once, nothing aborted. */
  tunnel_on_eof(&f->b.ep);
  assert_int_equal(f->a.n_shutdown, 1);
  assert_int_equal(f->a.n_abort + f->b.n_abort, 0);
  assert_closed_once(f);
  const char *log = access_log();
  assert_non_null(strstr(log, "\"close\":\"client_fin\""));
  assert_non_null(strstr(log, "\"bytes_up\":7,"));
  assert_non_null(strstr(log, "\"bytes_down\":13,"));
  /* Upcalls after close are ignored (tun is NULL). */
  tunnel_on_eof(&f->a.ep);
  tunnel_on_error(&f->b.ep, TUN_CLOSE_UPSTREAM_ERROR);
  tunnel_on_drain(&f->b.ep);
}

static void test_upstream_fin_first(void **state) {
  struct fx *f = *state;
  start(f, NULL);
  tunnel_on_eof(&f->b.ep);
  assert_int_equal(f->a.n_shutdown, 1);
  assert_int_equal(f->b.n_shutdown, 0);
  deliver(f, &f->a, "late upload");
  assert_string_equal(written(&f->b), "late upload");
  tunnel_on_eof(&f->a.ep);
  assert_int_equal(f->b.n_shutdown, 1);
  assert_closed_once(f);
  assert_non_null(strstr(access_log(), "\"close\":\"upstream_fin\""));
}

static void test_error_aborts_other_side(void **state) {
  struct fx *f = *state;
  start(f, NULL);
  deliver(f, &f->a, "abc");
  tunnel_on_error(&f->b.ep, TUN_CLOSE_UPSTREAM_RST);
  assert_int_equal(f->a.n_abort, 1);
  assert_int_equal(f->b.n_abort, 0); /* the failed side is dead already */
  assert_closed_once(f);
  /* Close is the last op on each side: nothing after it. */
  assert_non_null(strstr(g_trace, "a.close"));
  assert_non_null(strstr(g_trace, "b.close"));
  const char *after = strstr(g_trace, "a.abort");
  assert_non_null(after);
  assert_null(strstr(after, "write"));
  /* A second error, or an error from the other side, is ignored. */
  tunnel_on_error(&f->b.ep, TUN_CLOSE_UPSTREAM_ERROR);
  tunnel_on_error(&f->a.ep, TUN_CLOSE_CLIENT_ERROR);
  assert_int_equal(f->a.n_close, 1);
  assert_int_equal(f->b.n_close, 1);
  assert_int_equal(f->a.n_abort, 1);
  assert_non_null(strstr(access_log(), "\"close\":\"upstream_reset\""));
}

static void test_error_after_fin_outranks_it(void **state) {
  struct fx *f = *state;
  start(f, NULL);
  tunnel_on_eof(&f->a.ep);
  assert_int_equal(f->b.n_shutdown, 1);
  tunnel_on_error(&f->a.ep, TUN_CLOSE_CLIENT_RST);
  assert_int_equal(f->b.n_abort, 1);
  assert_closed_once(f);
  assert_non_null(strstr(access_log(), "\"close\":\"client_reset\""));
}

static void test_error_reentrant_from_write(void **state) {
  struct fx *f = *state;
  start(f, NULL);
  f->b.error_on_write = 1;
  deliver_n(f, &f->a, HIGH + 1); /* b fails inside write; a must not be read_stopped after close */
  assert_int_equal(f->a.n_read_stop, 0);
  assert_int_equal(f->a.n_abort, 1);
  assert_closed_once(f);
  assert_non_null(strstr(access_log(), "\"close\":\"upstream_error\""));
}

static void test_kill(void **state) {
  struct fx *f = *state;
  struct tunnel *t = start(f, NULL);
  deliver(f, &f->a, "x");
  tunnel_kill(t, TUN_CLOSE_SHUTDOWN);
  assert_int_equal(f->a.n_abort, 1);
  assert_int_equal(f->b.n_abort, 1);
  assert_true(f->a.ep.aborted);
  assert_true(f->b.ep.aborted);
  assert_int_equal(f->a.n_shutdown + f->b.n_shutdown, 0);
  assert_closed_once(f);
  assert_non_null(strstr(access_log(), "\"close\":\"proxy_shutdown\""));
}

static void test_kill_with_reentrant_abort(void **state) {
  /* An endpoint whose abort reports the failure through on_error (a synchronous write error on the
   * RST, say) must not keep the other side from being aborted. */
  struct fx *f = *state;
  struct tunnel *t = start(f, NULL);
  f->a.error_on_abort = 1;
  tunnel_kill(t, TUN_CLOSE_IDLE_TIMEOUT);
  assert_int_equal(f->a.n_abort, 1);
  assert_int_equal(f->b.n_abort, 1);
  assert_closed_once(f);
  assert_non_null(strstr(access_log(), "\"close\":\"idle_timeout\""));
}

static void test_first_payload_goes_first(void **state) {
  struct fx *f = *state;
  start(f, chunk_of(f, "GET / HTTP/1.1\r\n", 16));
  assert_true(strncmp(g_trace, "b.write", 7) == 0);
  assert_string_equal(written(&f->b), "GET / HTTP/1.1\r\n");
  assert_int_equal(f->a.ep.bytes_read, 16);
  assert_int_equal(f->a.n_read_start, 1);
  assert_int_equal(f->b.n_read_start, 1);
  deliver(f, &f->a, "Host: x\r\n");
  assert_string_equal(written(&f->b), "GET / HTTP/1.1\r\nHost: x\r\n");
  tunnel_on_eof(&f->a.ep);
  tunnel_on_eof(&f->b.ep);
  assert_closed_once(f);
  assert_non_null(strstr(access_log(), "\"bytes_up\":25,"));
}

static void test_first_payload_over_high_water(void **state) {
  /* A first chunk that fills b leaves a paused: a is not started until b drains. */
  struct fx *f = *state;
  struct buf_chunk *c = buf_get(&f->w->pool);
  memset(c->data, 'y', HIGH);
  c->len = HIGH;
  struct tunnel *t = start(f, c);
  assert_int_equal(f->a.reading, 0);
  assert_int_equal(f->b.n_read_start, 1);
  f->b.ep.queued = 0;
  tunnel_on_drain(&f->b.ep);
  assert_int_equal(f->a.reading, 1);
  tunnel_kill(t, TUN_CLOSE_SHUTDOWN);
  assert_closed_once(f);
}

static void test_idle_timeout(void **state) {
  struct fx *f = *state;
  f->cfg.idle_timeout_ms = 30;
  start(f, NULL);
  deliver(f, &f->a, "ping");
  uint64_t t0 = uv_now(&f->w->loop);
  uv_run(&f->w->loop, UV_RUN_DEFAULT); /* returns once the tunnel closed its timer */
  assert_true(uv_now(&f->w->loop) - t0 >= 30);
  assert_int_equal(f->a.n_abort, 1);
  assert_int_equal(f->b.n_abort, 1);
  assert_closed_once(f);
  const char *log = access_log();
  assert_non_null(strstr(log, "\"close\":\"idle_timeout\""));
  assert_non_null(strstr(log, "\"bytes_up\":4,"));
}

static void activity(uv_timer_t *h) {
  struct fx *f = h->data;
  deliver(f, &f->b, "tick");
  if (f->b.ep.bytes_read >= 16) uv_close((uv_handle_t *)h, NULL);
}

static void test_activity_defers_idle_timeout(void **state) {
  struct fx *f = *state;
  f->cfg.idle_timeout_ms = 60;
  start(f, NULL);
  uv_timer_t tick;
  uv_timer_init(&f->w->loop, &tick);
  tick.data = f;
  uv_timer_start(&tick, activity, 25, 25); /* four ticks, ~100 ms, each under the idle limit */
  uint64_t t0 = uv_now(&f->w->loop);
  uv_run(&f->w->loop, UV_RUN_DEFAULT);
  assert_int_equal(f->b.ep.bytes_read, 16);
  assert_true(uv_now(&f->w->loop) - t0 >= 100 + 60);
  assert_closed_once(f);
  assert_non_null(strstr(access_log(), "\"close\":\"idle_timeout\""));
}

static void test_max_duration(void **state) {
  struct fx *f = *state;
  f->cfg.idle_timeout_ms = 0;
  f->cfg.max_duration_ms = 20;
  start(f, NULL);
  uv_run(&f->w->loop, UV_RUN_DEFAULT);
  assert_closed_once(f);
  assert_non_null(strstr(access_log(), "\"close\":\"max_duration\""));
}

static void test_access_log_line(void **state) {
  struct fx *f = *state;
  snprintf(f->info.target, sizeof(f->info.target), "we\"ird\\host:443");
  start(f, NULL);
  deliver(f, &f->a, "12345");
  deliver(f, &f->b, "123");
  tunnel_on_eof(&f->b.ep);
  tunnel_on_eof(&f->a.ep);
  assert_closed_once(f);
  const char *log = access_log();
  assert_int_equal(log[0], '{');
  assert_int_equal(log[strlen(log) - 2], '}');
  assert_non_null(strstr(log, "\"client\":\"127.0.0.1:5555\""));
  assert_non_null(strstr(log, "\"front\":\"h1\""));
  assert_non_null(strstr(log, "\"proto\":\"connect\""));
  assert_non_null(strstr(log, "\"target\":\"we\\\"ird\\\\host:443\""));
  assert_non_null(strstr(log, "\"resolved\":\"93.184.216.34:443\""));
  assert_non_null(strstr(log, "\"status\":200,"));
  assert_non_null(strstr(log, "\"bytes_up\":5,"));
  assert_non_null(strstr(log, "\"bytes_down\":3,"));
  assert_non_null(strstr(log, "\"duration_ms\":"));
  assert_non_null(strstr(log, "\"close\":\"upstream_fin\"}"));
}

static void test_metrics_gauge(void **state) {
  struct fx *f = *state;
  struct metrics *m = &f->w->metrics;
  f->info.proto = TUN_PROTO_WEBSOCKET;
  struct tunnel *t = tunnel_new(f->w, &f->a.ep, &f->b.ep, &f->info);
  assert_int_equal(m->tunnels_active[TUN_PROTO_WEBSOCKET], 1);
  assert_int_equal(m->tunnels_opened[TUN_PROTO_WEBSOCKET], 1);
  assert_int_equal(m->tunnels_active[TUN_PROTO_CONNECT], 0);
  assert_ptr_equal(tunnel_from_link(f->w->tunnels.next), t);
  tunnel_start(t, NULL);
  tunnel_on_error(&f->a.ep, TUN_CLOSE_CLIENT_ERROR);
  assert_int_equal(m->tunnels_active[TUN_PROTO_WEBSOCKET], 0);
  assert_int_equal(m->tunnels_opened[TUN_PROTO_WEBSOCKET], 1);
  assert_closed_once(f);
  assert_non_null(strstr(access_log(), "\"proto\":\"websocket\""));
}

static void test_reason_names(void **state) {
  (void)state;
  assert_string_equal(tun_close_reason_name(TUN_CLOSE_NONE), "none");
  assert_string_equal(tun_close_reason_name(TUN_CLOSE_CLIENT_FIN), "client_fin");
  assert_string_equal(tun_close_reason_name(TUN_CLOSE_UPSTREAM_RST), "upstream_reset");
  assert_string_equal(tun_close_reason_name(TUN_CLOSE_IDLE_TIMEOUT), "idle_timeout");
  assert_string_equal(tun_close_reason_name(TUN_CLOSE_PROTOCOL_ERROR), "protocol_error");
}

static int group_setup(void **state) {
  (void)state;
  g_access = tmpfile();
  CHECK(g_access != NULL);
  log_set_access_stream(g_access);
  log_set_level(LOG_ERROR);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  log_set_access_stream(NULL);
  fclose(g_access);
  return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_start_reads_both),
      T(test_bytes_both_ways_in_order),
      T(test_high_water_pauses_once),
      T(test_drain_resumes_at_low_water),
      T(test_drain_after_eof_does_not_restart),
      T(test_half_close_keeps_other_direction),
      T(test_upstream_fin_first),
      T(test_error_aborts_other_side),
      T(test_error_after_fin_outranks_it),
      T(test_error_reentrant_from_write),
      T(test_kill),
      T(test_kill_with_reentrant_abort),
      T(test_first_payload_goes_first),
      T(test_first_payload_over_high_water),
      T(test_idle_timeout),
      T(test_activity_defers_idle_timeout),
      T(test_max_duration),
      T(test_access_log_line),
      T(test_metrics_gauge),
      cmocka_unit_test(test_reason_names),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
