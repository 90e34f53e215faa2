/* Unit tests for the upstream dial path on a real worker loop (tests/unit/upstream_fx.h):
 * proxy/dialer.c (resolve under the address policy, RFC 8305 racing, every outcome, cancel in
 * every state) and the first half of tunnel/tcp_ep.c's life (the hand-over from the dialer, the
 * TLS handshake, cancel in every endpoint state). Both .c files are included, as h2o's tests do,
 * so that a test can see which state it cancels in. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "upstream_fx.h"
#include "src/log.h"
#include "proxy/dialer.c"
#include "tunnel/tcp_ep.c"

/* ---- fixture ------------------------------------------------------------------------------- */

static const struct fake_dns_rr g_rrs[] = {
    {"ok.test", 0, "127.0.0.3"},
    {"two.test", 0, "127.0.0.2"}, /* refused first, then the origin */
    {"two.test", 0, "127.0.0.3"},
    {"refused.test", 0, "127.0.0.2"},
    {"refused.test", 0, "127.0.0.4"},
    {"hole.test", 0, "127.0.0.5"}, /* black hole first, then the origin */
    {"hole.test", 0, "127.0.0.3"},
    {"holes.test", 0, "127.0.0.5"},
    {"holes.test", 0, "127.0.0.6"},
    {"onlyhole.test", 0, "127.0.0.5"},
    {"refusedhole.test", 0, "127.0.0.2"},
    {"refusedhole.test", 0, "127.0.0.5"},
    {"mixed.test", 1, "fe80::1"}, /* no scope: connect fails at once (EINVAL) */
    {"mixed.test", 0, "127.0.0.2"},
    {"linklocal.test", 1, "fe80::1"},
    {"v6first.test", 0, "127.0.0.3"}, /* answered A first; dialed IPv6 first */
    {"v6first.test", 1, "::1"},
    {"private.test", 0, "10.0.0.1"},
    {"slow.test", 0, NULL},
};

static int setup(void **state) { return fx_setup(state, g_rrs, ARRAY_SIZE(g_rrs)); }
static int teardown(void **state) { return fx_teardown(state); }

/* ---- the dialer ------------------------------------------------------------------------------ */

/* What one dialer reported, and when. */
struct dres {
  struct dialer *d;
  int calls;
  enum pxerr err;
  const char *detail;
  char peer[64];
  uint64_t start, at; /* loop time at start and at the callback */
  int cancelled;
  int settled; /* called back or cancelled */
  struct fx *f;
};

static void on_dres(void *arg, uv_tcp_t *tcp, const struct sockaddr *peer, enum pxerr err, const char *detail) {
  struct dres *r = arg;
  r->calls++;
  r->settled = 1;
  r->err = err;
  r->detail = detail;
  r->at = uv_now(&r->f->w->loop);
  if (err == PXERR_NONE) {
    assert_non_null(tcp);
    assert_non_null(peer);
    net_format_addr(peer, r->peer, sizeof(r->peer));
    uv_close((uv_handle_t *)tcp, free_on_close); /* ours now: close and free it */
  } else {
    assert_null(tcp);
    assert_null(peer);
    assert_non_null(detail);
  }
}

/* The address policy, as the request path applies it. */
static int check_policy(void *arg, const struct sockaddr *sa, const char **why) {
  struct fx *f = arg;
  return policy_check_addr(f->cfg.policy, sa, why);
}

static void dstart(struct fx *f, const char *host, struct dres *r) {
  struct authority a = {.kind = AUTHORITY_NAME, .port = (uint16_t)f->port};
  snprintf(a.host, sizeof(a.host), "%s", host);
  r->f = f;
  r->start = now_ms(f);
  r->d = dialer_start(f->w, &a, check_policy, f, on_dres, r);
  assert_non_null(r->d);
  assert_int_equal(r->calls, 0); /* never from inside the call */
}

static void dcancel(struct dres *r) {
  dialer_cancel(r->d);
  r->cancelled = r->settled = 1;
}

/* Runs |host| to its outcome. */
static void dial_outcome(struct fx *f, const char *host, struct dres *r) {
  dstart(f, host, r);
  run_until(f, &r->calls, 10000);
  assert_int_equal(r->calls, 1);
}

static size_t in_flight(const struct dialer *d) {
  size_t n = 0;
  for (const struct list *l = d->attempts.next; l != &d->attempts; l = l->next) n++;
  return n;
}

/* Attempts that failed or lost and whose sockets are still closing. */
static int closing_attempts(const struct dialer *d) {
  return d->handles - 1 /* timer */ - (int)in_flight(d) - (d->winner != NULL);
}

static void expect_peer(struct fx *f, const struct dres *r, const char *ip) {
  char want[64];
  snprintf(want, sizeof(want), "%s:%d", ip, f->port);
  assert_string_equal(r->peer, want);
}

static void test_connected(void **state) {
  struct fx *f = *state;
  struct dres r = {0};
  dial_outcome(f, "ok.test", &r);
  assert_int_equal(r.err, PXERR_NONE);
  expect_peer(f, &r, "127.0.0.3");
  run_until(f, &f->accepted, 5000);
}

/* The first address refuses; RFC 8305 section 5: that failure starts the next attempt at once,
 * not after the attempt delay. */
static void test_refused_then_connected(void **state) {
  struct fx *f = *state;
  struct dres r = {0};
  f->cfg.happy_eyeballs_delay_ms = 10000;
  dial_outcome(f, "two.test", &r);
  assert_int_equal(r.err, PXERR_NONE);
  expect_peer(f, &r, "127.0.0.3");
  assert_true(r.at - r.start < 5000);
}

static void test_all_refused(void **state) {
  struct fx *f = *state;
  struct dres r = {0};
  dial_outcome(f, "refused.test", &r);
  assert_int_equal(r.err, PXERR_CONN_REFUSED);
  assert_string_equal(r.detail, "connection refused");
  assert_int_equal(f->accepted, 0);
}

/* RFC 8305: the first address black-holes; the second starts after the attempt delay and wins,
 * long before the connect timeout. */
static void test_happy_eyeballs_black_hole_first(void **state) {
  struct fx *f = *state;
  struct dres r = {0};
  black_hole(f, 0, "127.0.0.5");
  f->cfg.happy_eyeballs_delay_ms = 100;
  f->cfg.connect_timeout_ms = 10000;
  dial_outcome(f, "hole.test", &r);
  assert_int_equal(r.err, PXERR_NONE);
  expect_peer(f, &r, "127.0.0.3");
  assert_true(r.at - r.start >= 100);  /* not before the delay */
  assert_true(r.at - r.start < 5000);  /* far from the connect timeout */
}

/* The deadline, with a black hole alone and with a black hole next to a refused address: either
 * way the dial ended by running out of time, and says so (504 connection_timeout). */
static void test_timeout(void **state) {
  struct fx *f = *state;
  const char *hosts[] = {"onlyhole.test", "refusedhole.test"};
  black_hole(f, 0, "127.0.0.5");
  f->cfg.connect_timeout_ms = 300;
  for (size_t i = 0; i < ARRAY_SIZE(hosts); i++) {
    struct dres r = {0};
    dial_outcome(f, hosts[i], &r);
    assert_int_equal(r.err, PXERR_CONN_TIMEOUT);
    assert_true(r.at - r.start >= 300);
  }
}

/* Several failures: the most informative one is reported. fe80::1 without a scope fails inside
 * connect() (the synchronous failure path) as a generic error; 127.0.0.2 refuses. */
static void test_most_informative_error(void **state) {
  struct fx *f = *state;
  struct dres one = {0}, both = {0};
  dial_outcome(f, "linklocal.test", &one);
  assert_int_equal(one.err, PXERR_CONN_ERROR);
  dial_outcome(f, "mixed.test", &both);
  assert_int_equal(both.err, PXERR_CONN_REFUSED);
}

static void test_policy_denied(void **state) {
  struct fx *f = *state;
  struct dres r = {0};
  dial_outcome(f, "private.test", &r);
  assert_int_equal(r.err, PXERR_DEST_PROHIBITED);
}

static void test_dns_error(void **state) {
  struct fx *f = *state;
  struct dres r = {0};
  dial_outcome(f, "missing.test", &r);
  assert_int_equal(r.err, PXERR_DNS_ERROR);
  assert_true(f->dns.nqueries >= 1);
}

/* The connect deadline covers the resolution too: a resolver slower than it is a dns_timeout. */
static void test_dns_timeout(void **state) {
  struct fx *f = *state;
  struct dres r = {0};
  f->cfg.connect_timeout_ms = 200;
  dial_outcome(f, "slow.test", &r);
  assert_int_equal(r.err, PXERR_DNS_TIMEOUT);
}

static void sa4(struct sockaddr_storage *ss, const char *ip) { uv_ip4_addr(ip, 1, (struct sockaddr_in *)ss); }
static void sa6(struct sockaddr_storage *ss, const char *ip) { uv_ip6_addr(ip, 1, (struct sockaddr_in6 *)ss); }

/* RFC 8305 section 4: families alternate, IPv6 first, each family in the resolver's order. */
static void test_order(void **state) {
  struct dns_result res = {.n = 6};
  char buf[64];
  const char *want[] = {"[::a]:1", "1.0.0.1:1", "[::b]:1", "1.0.0.2:1", "1.0.0.3:1", "1.0.0.4:1"};
  sa4(&res.addrs[0], "1.0.0.1");
  sa4(&res.addrs[1], "1.0.0.2");
  sa6(&res.addrs[2], "::a");
  sa4(&res.addrs[3], "1.0.0.3");
  sa6(&res.addrs[4], "::b");
  sa4(&res.addrs[5], "1.0.0.4");
  size_t order[DNS_MAX_ADDRS];
  dialer_order(&res, order);
  for (size_t i = 0; i < res.n; i++)
    assert_string_equal(net_format_addr((const struct sockaddr *)&res.addrs[order[i]], buf, sizeof(buf)), want[i]);
  struct dns_result v6only = {.n = 2};
  sa6(&v6only.addrs[0], "::b");
  sa6(&v6only.addrs[1], "::a");
  dialer_order(&v6only, order);
  assert_string_equal(net_format_addr((const struct sockaddr *)&v6only.addrs[order[0]], buf, sizeof(buf)), "[::b]:1");
}

static int g_connecting;

static void note_connecting(struct fx *f) {
  struct dres *r = f->turn_arg;
  if (!r->settled && r->d->state == DIALER_CONNECTING) g_connecting = 1;
}

/* The resolver answered A before AAAA; the first attempt goes to the IPv6 address. */
static void test_v6_first(void **state) {
  struct fx *f = *state;
  struct dres r = {0};
  g_connecting = 0;
  f->on_turn = note_connecting;
  f->turn_arg = &r;
  dstart(f, "v6first.test", &r);
  run_until(f, &g_connecting, 5000);
  assert_int_equal(r.d->naddrs, 2);
  assert_int_equal(r.d->addrs[0].sa.sa_family, AF_INET6);
  run_until(f, &r.calls, 5000);
  assert_int_equal(r.err, PXERR_NONE); /* [::1]:P refuses (nothing there) or accepts: either way */
}

/* After a cancel: the callback never runs, and a later dial still works (the worker is sound). */
static void after_cancel(struct fx *f, struct dres *r) {
  struct dres probe = {0};
  assert_true(r->cancelled);
  dial_outcome(f, "ok.test", &probe);
  assert_int_equal(probe.err, PXERR_NONE);
  assert_int_equal(r->calls, 0);
}

static void test_cancel_resolving(void **state) {
  struct fx *f = *state;
  struct dres r = {0};
  dstart(f, "slow.test", &r);
  for (int i = 0; f->dns.nqueries == 0; i++) {
    assert_true(i < 1000);
    uv_run(&f->w->loop, UV_RUN_ONCE);
  }
  assert_int_equal(r.d->state, DIALER_RESOLVING);
  dcancel(&r);
  dialer_cancel(r.d); /* a second cancel in the same turn changes nothing */
  after_cancel(f, &r);
}

/* Cancels |turn_arg| (a struct dres) once |want| attempts are in flight. */
static size_t g_want_in_flight;

static void cancel_when_in_flight(struct fx *f) {
  struct dres *r = f->turn_arg;
  if (r->settled || r->d->state != DIALER_CONNECTING || in_flight(r->d) < g_want_in_flight) return;
  assert_int_equal(in_flight(r->d), g_want_in_flight);
  dcancel(r);
}

/* Dials |host| while |when| watches every loop turn (and cancels), then checks the cancel held. */
static void dial_and_cancel(struct fx *f, const char *host, void (*when)(struct fx *f)) {
  struct dres r = {0};
  f->on_turn = when;
  f->turn_arg = &r;
  dstart(f, host, &r);
  run_until(f, &r.settled, 5000);
  f->on_turn = NULL;
  after_cancel(f, &r);
}

static void test_cancel_connecting_one_attempt(void **state) {
  struct fx *f = *state;
  black_hole(f, 0, "127.0.0.5");
  f->cfg.happy_eyeballs_delay_ms = 10000;
  g_want_in_flight = 1;
  dial_and_cancel(f, "hole.test", cancel_when_in_flight);
}

static void test_cancel_connecting_two_attempts(void **state) {
  struct fx *f = *state;
  black_hole(f, 0, "127.0.0.5");
  black_hole(f, 1, "127.0.0.6");
  f->cfg.happy_eyeballs_delay_ms = 20;
  g_want_in_flight = 2;
  dial_and_cancel(f, "holes.test", cancel_when_in_flight);
}

/* Issue 8 item 1, at the dialer: cancelled in the turn where the first attempt failed, while its
 * socket is closing and the second attempt is connecting. */
static void cancel_while_failed_closes(struct fx *f) {
  struct dres *r = f->turn_arg;
  if (r->settled || r->d->state != DIALER_CONNECTING || closing_attempts(r->d) < 1) return;
  assert_int_equal(in_flight(r->d), 1);
  dcancel(r);
}

static void test_cancel_while_failed_attempt_closes(void **state) {
  dial_and_cancel(*state, "two.test", cancel_while_failed_closes);
}

static void cancel_delivering(struct fx *f) {
  struct dres *r = f->turn_arg;
  if (!r->settled && r->d->state == DIALER_DELIVERING) dcancel(r);
}

/* Decided but not yet delivered: a won socket is closed by the dialer, not leaked. */
static void test_cancel_delivering_success(void **state) { dial_and_cancel(*state, "ok.test", cancel_delivering); }

static void test_cancel_delivering_failure(void **state) {
  dial_and_cancel(*state, "refused.test", cancel_delivering);
}

/* ---- tcp_ep: from the dialer's hand-over to an open endpoint ---------------------------------- */

/* A dial as the request path composes it: the dialer, then tcp_ep_new on the socket it hands
 * over, then (with TLS) the endpoint's handshake within what is left of the connect deadline.
 * What it saw, and when the test cancels it. */
struct dial_rec {
  struct fx *f;
  struct dialer *d;  /* while dialing */
  struct tcp_ep *ep; /* once the dialer handed over */
  const char *host;  /* the name dialed: with TLS, the name verified */
  int tls;
  uint64_t deadline;
  int calls;
  enum pxerr err;
  const char *detail;
  int keep;      /* leave a connected endpoint open (the test goes on with it) */
  int turns;     /* loop turns seen by the hook since the dial started */
  int cancel_at; /* cancel in the hook at this turn (0: never) */
  int cancelled;
  int settled;   /* called back or cancelled */
};

static unsigned g_ep_states_cancelled;     /* bit per tcp_ep state a sweep cancelled in */
static unsigned g_dialer_states_cancelled; /* bit per dialer state, while dialing */
static int g_cancelled_while_closing;      /* a sweep cancelled with a failed attempt closing */

static void on_dial(struct dial_rec *r, struct tcp_ep *ep, enum pxerr err, const char *detail) {
  r->calls++;
  r->settled = 1;
  r->err = err;
  r->detail = detail;
  if (err == PXERR_NONE) {
    assert_non_null(ep);
    assert_ptr_equal(ep, r->ep);
    assert_int_equal(ep->state, TCP_EP_OPEN);
    if (!r->keep) tcp_ep_tun(ep)->ops->close(tcp_ep_tun(ep)); /* no tunnel: closes itself */
  } else {
    assert_null(ep);
    assert_non_null(detail);
  }
}

static void on_rec_tls(void *arg, struct tcp_ep *ep, enum pxerr err, const char *detail) {
  on_dial(arg, ep, err, detail);
}

static void on_rec_dialed(void *arg, uv_tcp_t *tcp, const struct sockaddr *peer, enum pxerr err, const char *detail) {
  struct dial_rec *r = arg;
  r->d = NULL;
  if (err != PXERR_NONE) {
    on_dial(r, NULL, err, detail);
    return;
  }
  r->ep = tcp_ep_new(r->f->w, tcp, peer);
  assert_int_equal(r->ep->state, TCP_EP_OPEN);
  if (!r->tls) {
    on_dial(r, r->ep, PXERR_NONE, NULL);
    return;
  }
  uint64_t now = uv_now(&r->f->w->loop);
  tcp_ep_tls_start(r->ep, r->host, r->deadline > now ? r->deadline - now : 0, on_rec_tls, r);
  assert_int_equal(r->calls, 0); /* never from inside the call */
}

static void ep_cancel(struct dial_rec *r) {
  if (r->d) {
    g_dialer_states_cancelled |= 1u << r->d->state;
    if (r->d->state == DIALER_CONNECTING && closing_attempts(r->d) > 0) g_cancelled_while_closing = 1;
    dialer_cancel(r->d);
    r->d = NULL;
  } else {
    struct tcp_ep *t = r->ep;
    g_ep_states_cancelled |= 1u << t->state;
    tcp_ep_cancel(t);
    assert_int_equal(t->state, TCP_EP_CLOSING);
  }
  r->cancelled = r->settled = 1;
}

static void cancel_at_turn(struct fx *f) {
  struct dial_rec *r = f->turn_arg;
  if (r && !r->settled && ++r->turns == r->cancel_at) ep_cancel(r);
}

static void ep_dial(struct fx *f, const char *host, int tls, struct dial_rec *r) {
  struct authority a = {.kind = AUTHORITY_NAME, .port = (uint16_t)f->port};
  snprintf(a.host, sizeof(a.host), "%s", host);
  r->f = f;
  r->host = host;
  r->tls = tls;
  r->deadline = now_ms(f) + f->cfg.connect_timeout_ms;
  r->d = dialer_start(f->w, &a, check_policy, f, on_rec_dialed, r);
  assert_non_null(r->d);
  assert_int_equal(r->calls, 0); /* never from inside the call */
}

static void test_ep_connected(void **state) {
  struct fx *f = *state;
  struct dial_rec r = {0};
  ep_dial(f, "ok.test", 0, &r);
  run_until(f, &r.calls, 5000);
  assert_int_equal(r.err, PXERR_NONE);
  run_until(f, &f->accepted, 5000);
}

static void test_ep_all_refused(void **state) {
  struct fx *f = *state;
  struct dial_rec r = {0};
  ep_dial(f, "refused.test", 0, &r);
  run_until(f, &r.calls, 5000);
  assert_int_equal(r.err, PXERR_CONN_REFUSED);
}

/* The dial is repeated and cancelled at turn 1, 2, 3... (in the check phase: after the turn's I/O
 * callbacks, before the deferred work and the close callbacks) until a dial completes before its
 * cancel point, so that every window of the dial is hit once. A cancelled dial never calls back,
 * and the last one reaches its outcome. Returns that outcome. */
static enum pxerr sweep(struct fx *f, const char *host, int tls) {
  static struct dial_rec recs[300];
  int k;

  memset(recs, 0, sizeof(recs));
  uv_timer_stop(&f->guard); /* turns here are the dial's own; a wait is one turn */
  f->on_turn = cancel_at_turn;
  for (k = 0; k < (int)ARRAY_SIZE(recs); k++) {
    struct dial_rec *r = &recs[k];
    r->cancel_at = k + 1;
    f->turn_arg = r;
    ep_dial(f, host, tls, r);
    run_until(f, &r->settled, 5000);
    if (r->calls) break;
  }
  f->on_turn = NULL;
  assert_true(k < (int)ARRAY_SIZE(recs));
  /* One more dial to its end, so that whatever the cancelled ones left behind has run. */
  struct dial_rec last = {0};
  ep_dial(f, host, tls, &last);
  run_until(f, &last.calls, 5000);
  assert_int_equal(last.err, recs[k].err);
  for (int i = 0; i < k; i++) assert_int_equal(recs[i].calls, 0);
  return recs[k].err;
}

/* Issue 8 item 1: the name's first address refuses. Cancelled in the turn where that attempt's
 * socket is closing, the old code closed it a second time and libuv aborted. */
static void test_ep_cancel_at_every_turn(void **state) {
  struct fx *f = *state;
  g_ep_states_cancelled = g_dialer_states_cancelled = 0;
  g_cancelled_while_closing = 0;
  assert_int_equal(sweep(f, "two.test", 0), PXERR_NONE);
  assert_int_equal(g_ep_states_cancelled, 0); /* without TLS the endpoint is handed on at once */
  assert_int_equal(g_dialer_states_cancelled,
                   1u << DIALER_RESOLVING | 1u << DIALER_CONNECTING | 1u << DIALER_DELIVERING);
  assert_true(g_cancelled_while_closing);
}

/* With TLS to an origin that accepts and never answers: the sweep also cancels during the
 * handshake. (The endpoint reports its outcome from the loop callback that decided it, so there
 * is no window between a decided and a delivered handshake left to test.) */
static void test_ep_tls_cancel_at_every_turn(void **state) {
  struct fx *f = *state;
  f->hold = 1;
  f->cfg.connect_timeout_ms = 300;
  g_ep_states_cancelled = g_dialer_states_cancelled = 0;
  assert_int_equal(sweep(f, "ok.test", 1), PXERR_CONN_TIMEOUT);
  /* (A loopback connect may complete within the turn it starts in: CONNECTING is not certain.) */
  assert_true(g_dialer_states_cancelled & 1u << DIALER_RESOLVING);
  assert_true(g_dialer_states_cancelled & 1u << DIALER_DELIVERING);
  assert_int_equal(g_ep_states_cancelled, 1u << TCP_EP_HANDSHAKE);
}

static void test_ep_tls_peer_closes(void **state) {
  struct fx *f = *state;
  struct dial_rec r = {0};
  ep_dial(f, "ok.test", 1, &r);
  run_until(f, &r.calls, 5000);
  assert_int_equal(r.err, PXERR_TLS_PROTOCOL); /* EOF or a reset, depending on timing */
}

/* A server that accepts and never speaks: the handshake runs into what is left of the connect
 * deadline. */
static void test_ep_tls_handshake_deadline(void **state) {
  struct fx *f = *state;
  struct dial_rec r = {0};
  f->hold = 1;
  f->cfg.connect_timeout_ms = 300;
  uint64_t start = now_ms(f);
  ep_dial(f, "ok.test", 1, &r);
  run_until(f, &r.calls, 5000);
  assert_int_equal(r.err, PXERR_CONN_TIMEOUT);
  assert_true(now_ms(f) - start >= 300);
  assert_int_equal(f->accepted, 1);
}

static void test_ep_cancel_handshake(void **state) {
  struct fx *f = *state;
  struct dial_rec r = {0};
  f->hold = 1;
  ep_dial(f, "ok.test", 1, &r);
  run_until(f, &f->accepted, 5000);
  for (int i = 0; !r.ep; i++) { /* the dialer hands over at the end of the turn it connected in */
    assert_true(i < 100);
    uv_run(&f->w->loop, UV_RUN_ONCE);
  }
  assert_int_equal(r.ep->state, TCP_EP_HANDSHAKE);
  ep_cancel(&r);
  tcp_ep_cancel(r.ep); /* idempotent */
  struct dial_rec probe = {0};
  ep_dial(f, "ok.test", 0, &probe);
  run_until(f, &probe.calls, 5000);
  assert_int_equal(r.calls, 0);
}

/* Cancel is legal once the endpoint is the owner's too: OPEN, and DRAINING after close. */
static void test_ep_cancel_open_and_draining(void **state) {
  struct fx *f = *state;
  struct dial_rec open = {.keep = 1}, draining = {.keep = 1};
  ep_dial(f, "ok.test", 0, &open);
  ep_dial(f, "ok.test", 0, &draining);
  run_until(f, &open.calls, 5000);
  run_until(f, &draining.calls, 5000);
  assert_int_equal(open.err, PXERR_NONE);
  assert_int_equal(draining.err, PXERR_NONE);

  assert_int_equal(open.ep->state, TCP_EP_OPEN);
  tcp_ep_cancel(open.ep);
  assert_int_equal(open.ep->state, TCP_EP_CLOSING);

  struct tun_ep *e = tcp_ep_tun(draining.ep);
  struct buf_chunk *c = buf_get(&f->w->pool);
  memcpy(c->data, "bytes", 5);
  c->len = 5;
  e->ops->write(e, c);
  e->ops->shutdown(e);
  e->ops->close(e);
  assert_int_equal(draining.ep->state, TCP_EP_DRAINING);
  tcp_ep_cancel(draining.ep);
  assert_int_equal(draining.ep->state, TCP_EP_CLOSING);
  tcp_ep_cancel(draining.ep);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_order),
      T(test_connected),
      T(test_refused_then_connected),
      T(test_all_refused),
      T(test_happy_eyeballs_black_hole_first),
      T(test_timeout),
      T(test_most_informative_error),
      T(test_policy_denied),
      T(test_dns_error),
      T(test_dns_timeout),
      T(test_v6_first),
      T(test_cancel_resolving),
      T(test_cancel_connecting_one_attempt),
      T(test_cancel_connecting_two_attempts),
      T(test_cancel_while_failed_attempt_closes),
      T(test_cancel_delivering_success),
      T(test_cancel_delivering_failure),
      T(test_ep_connected),
      T(test_ep_all_refused),
      T(test_ep_cancel_at_every_turn),
      T(test_ep_tls_cancel_at_every_turn),
      T(test_ep_tls_peer_closes),
      T(test_ep_tls_handshake_deadline),
      T(test_ep_cancel_handshake),
      T(test_ep_cancel_open_and_draining),
  };
#undef T
  CHECK(dns_global_init() == 0);
  log_set_level(LOG_ERROR);
  int r = cmocka_run_group_tests(tests, NULL, NULL);
  dns_global_cleanup();
  return r;
}
