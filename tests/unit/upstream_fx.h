/* The fixture shared by the unit tests of the upstream path (test_dialer.c, test_request.c): a
 * real worker loop, a fake DNS server on it, loopback origins and black holes, and a hook that
 * runs once per loop turn so that a test can cancel at a chosen point. Header-only (static), like
 * fake_dns.h.
 *
 * Addresses: every origin of a test uses one port P on different loopback addresses (Linux routes
 * all of 127.0.0.0/8 to lo): 127.0.0.3 accepts; nothing listens on 127.0.0.2 or 127.0.0.4
 * (refused); 127.0.0.5 and 127.0.0.6 are black holes when a test opens them (a listener with a
 * full accept queue: Linux drops further SYNs). Every test ends with every handle closed and
 * uv_loop_close() == 0, and LeakSanitizer checks that nothing outlives its close. */
#ifndef H2T_TEST_UPSTREAM_FX_H
#define H2T_TEST_UPSTREAM_FX_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_dns.h"
#include "src/buf.h"
#include "src/config.h"
#include "src/dns.h"
#include "src/policy.h"
#include "src/worker.h"

#define MAX_HELD 64
#define MAX_HOLES 2

/* One worker (no listeners) whose resolver asks the fake server; an origin on 127.0.0.3:|port|
 * that accepts and closes (or, with |hold|, keeps the connections open); a check handle that
 * runs once per loop turn, after the turn's I/O callbacks and before the worker's deferred work
 * and the close callbacks -- the turn's last chance to cancel. The loop never waits more than
 * 10 ms, so the hook also runs while nothing happens. */
struct fx {
  struct config cfg;
  struct worker *w; /* heap: struct worker is large */
  struct fake_dns dns;
  uv_tcp_t origin;
  int port;
  int accepted;
  int hold;                    /* keep accepted connections open */
  uv_tcp_t *held[MAX_HELD];    /* owned: closed at teardown */
  int nheld;
  char rx[4096];               /* bytes the held connections received, in order */
  size_t nrx;
  int origin_eof;              /* held connections that saw EOF or an error */
  int holes[MAX_HOLES][4];     /* black holes: listener and fillers (POSIX fds), or -1 */
  uv_check_t hook;
  uv_timer_t guard;            /* wakes the loop every 10 ms so that the hook runs while waiting */
  void (*on_turn)(struct fx *f); /* what the hook does, or NULL */
  void *turn_arg;
};

static void free_on_close(uv_handle_t *h) { free(h); }

static void on_origin_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  static char buf[4096];
  *b = uv_buf_init(buf, sizeof(buf));
}

/* A held connection's bytes are kept in |rx| (what the tunnel delivered upstream). */
static void on_origin_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  struct fx *f = s->data;
  if (n < 0) {
    uv_read_stop(s);
    f->origin_eof++;
    return;
  }
  size_t k = MIN((size_t)n, sizeof(f->rx) - 1 - f->nrx);
  memcpy(f->rx + f->nrx, b->base, k);
  f->nrx += k;
  f->rx[f->nrx] = '\0';
}

static void on_origin_conn(uv_stream_t *s, int status) {
  struct fx *f = s->data;
  uv_tcp_t *c = xcalloc(1, sizeof(*c));
  uv_tcp_init(s->loop, c);
  c->data = f;
  if (status == 0 && uv_accept(s, (uv_stream_t *)c) == 0) {
    f->accepted++;
    if (f->hold && f->nheld < MAX_HELD) {
      f->held[f->nheld++] = c;
      uv_read_start((uv_stream_t *)c, on_origin_alloc, on_origin_read);
      return;
    }
  }
  uv_close((uv_handle_t *)c, free_on_close);
}

static void on_hook(uv_check_t *h) {
  struct fx *f = h->data;
  if (f->on_turn) f->on_turn(f);
}

static void on_guard(uv_timer_t *h) {}

/* Sets up the fixture with a fake DNS server answering from |rrs|. */
static int fx_setup(void **state, const struct fake_dns_rr *rrs, size_t nrrs) {
  struct fx *f = xcalloc(1, sizeof(*f));
  struct sockaddr_in sin;
  struct sockaddr_storage ss;
  int len = sizeof(ss);

  memset(f->holes, -1, sizeof(f->holes));
  config_init(&f->cfg);
  assert_int_equal(policy_allow_net(f->cfg.policy, "loopback"), 0);
  assert_int_equal(policy_allow_net(f->cfg.policy, "link-local"), 0);
  assert_int_equal(policy_set_ports(f->cfg.policy, "*"), 0);
  f->cfg.connect_timeout_ms = 5000;
  snprintf(f->cfg.dns_servers, sizeof(f->cfg.dns_servers), "127.0.0.1:1"); /* replaced below */
  f->w = xcalloc(1, sizeof(*f->w));
  assert_int_equal(worker_init(f->w, 0, &f->cfg, NULL), 0);
  f->w->client_ssl_ctx = SSL_CTX_new(TLS_client_method());
  assert_non_null(f->w->client_ssl_ctx);
  /* The fake server lives on the worker's loop, so its port is known only now: give the worker
   * a resolver that asks it. */
  assert_int_equal(fake_dns_start(&f->w->loop, &f->dns, rrs, nrrs), 0);
  char servers[64];
  snprintf(servers, sizeof(servers), "127.0.0.1:%d", f->dns.port);
  struct dns_opts o = {.timeout_ms = 1000, .tries = 1, .servers = servers};
  dns_close(f->w->dns);
  assert_int_equal(dns_new(&f->w->loop, &o, &f->w->dns), 0);

  assert_int_equal(uv_tcp_init(&f->w->loop, &f->origin), 0);
  f->origin.data = f;
  uv_ip4_addr("127.0.0.3", 0, &sin);
  assert_int_equal(uv_tcp_bind(&f->origin, (const struct sockaddr *)&sin, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&f->origin, 64, on_origin_conn), 0);
  assert_int_equal(uv_tcp_getsockname(&f->origin, (struct sockaddr *)&ss, &len), 0);
  f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);

  assert_int_equal(uv_check_init(&f->w->loop, &f->hook), 0);
  f->hook.data = f;
  assert_int_equal(uv_check_start(&f->hook, on_hook), 0);
  assert_int_equal(uv_timer_init(&f->w->loop, &f->guard), 0);
  assert_int_equal(uv_timer_start(&f->guard, on_guard, 10, 10), 0);
  uv_unref((uv_handle_t *)&f->guard);
  *state = f;
  return 0;
}

/* Stops the worker the way a graceful stop ends (resolver and worker handles closed), closes the
 * test's handles, and checks that the loop has nothing left and no chunk is out. */
static int fx_teardown(void **state) {
  struct fx *f = *state;
  f->on_turn = NULL;
  for (int i = 0; i < f->nheld; i++) uv_close((uv_handle_t *)f->held[i], free_on_close);
  for (int i = 0; i < MAX_HOLES; i++)
    for (int j = 0; j < 4; j++)
      if (f->holes[i][j] >= 0) close(f->holes[i][j]);
  fake_dns_stop(&f->dns);
  uv_close((uv_handle_t *)&f->origin, NULL);
  uv_close((uv_handle_t *)&f->hook, NULL);
  uv_close((uv_handle_t *)&f->guard, NULL);
  uv_close((uv_handle_t *)&f->w->stop_async, NULL);
  f->w->stopping = 1;
  worker_maybe_finish(f->w);
  assert_int_equal(uv_run(&f->w->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&f->w->loop), 0);
  assert_int_equal(f->w->pool.in_use, 0);
  buf_pool_dispose(&f->w->pool);
  SSL_CTX_free(f->w->client_ssl_ctx);
  config_dispose(&f->cfg);
  free(f->w);
  free(f);
  return 0;
}

/* Runs the loop until *|flag| is set; fails after |max_ms|. */
static inline void run_until(struct fx *f, const int *flag, uint64_t max_ms) {
  uv_update_time(&f->w->loop);
  uint64_t start = uv_now(&f->w->loop);
  while (!*flag) {
    assert_true(uv_now(&f->w->loop) - start < max_ms);
    uv_run(&f->w->loop, UV_RUN_ONCE);
  }
}

static inline uint64_t now_ms(struct fx *f) {
  uv_update_time(&f->w->loop);
  return uv_now(&f->w->loop);
}

/* Makes |ip|:port a black hole: a listener with a backlog of 0 whose queue a filler connection
 * fills, so that Linux drops further SYNs and a connect() hangs. A probe checks that it does. */
static void black_hole(struct fx *f, int slot, const char *ip) {
  struct sockaddr_in sin;
  int *fds = f->holes[slot];

  uv_ip4_addr(ip, f->port, &sin);
  fds[0] = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fds[0] >= 0);
  assert_int_equal(bind(fds[0], (const struct sockaddr *)&sin, sizeof(sin)), 0);
  assert_int_equal(listen(fds[0], 0), 0);
  for (int i = 1; i < 4; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(fds[i] >= 0);
    int r = connect(fds[i], (const struct sockaddr *)&sin, sizeof(sin));
    assert_true(r == 0 || errno == EINPROGRESS);
    if (i == 1) { /* the first one completes: the queue is full from now on */
      struct pollfd p = {.fd = fds[1], .events = POLLOUT};
      assert_int_equal(poll(&p, 1, 2000), 1);
    }
  }
  /* The last filler is the probe: its SYN must go unanswered. */
  struct pollfd p = {.fd = fds[3], .events = POLLOUT};
  assert_int_equal(poll(&p, 1, 300), 0);
}

#endif
