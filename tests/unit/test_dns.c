/* Unit tests for src/dns.c. Hermetic: every resolver talks to a fake DNS server on 127.0.0.1 (a
 * uv_udp_t on the test's own loop, random port), and every test ends with uv_loop_close() == 0. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fake_dns.h"
#include "src/dns.h"
/* Some system header above already defined MIN/MAX, which util.h defines again. */
#undef MIN
#undef MAX
#include "src/util.h"

/* ---- fake DNS server ---------------------------------------------------------------------- */

/* A name listed here answers NOERROR (with no record of a type not listed: NODATA); "slow.test"
 * is never answered; any other name is NXDOMAIN. */
static const struct fake_dns_rr fake_rrs[] = {
    {"a.test", 0, "127.0.0.5"},     {"a.test", 1, "::1"},
    {"v4.test", 0, "127.0.0.9"},    {"multi.test", 0, "127.0.0.5"},
    {"multi.test", 0, "127.0.0.6"}, {"multi.test", 0, "127.0.0.7"},
    {"multi.test", 1, "::1"},       {"multi.test", 1, "::2"},
    {"slow.test", 0, NULL},
};

/* ---- fixture ------------------------------------------------------------------------------ */

/* One loop, one fake server, one resolver per test. The guard timer wakes the loop often so the
 * run_* helpers can check their deadline even when nothing else happens. */
struct fx {
  uv_loop_t loop;
  struct fake_dns srv;
  uv_timer_t guard;
  struct dns_resolver *r; /* owned; NULL once the test closed it */
};

static void on_guard(uv_timer_t *t) {}

static struct dns_resolver *new_resolver(struct fx *fx, unsigned timeout_ms, int tries) {
  char servers[64];
  struct dns_opts o = {.timeout_ms = timeout_ms, .tries = tries, .servers = servers};
  struct dns_resolver *r = NULL;

  snprintf(servers, sizeof(servers), "127.0.0.1:%d", fx->srv.port);
  assert_int_equal(dns_new(&fx->loop, &o, &r), 0);
  assert_non_null(r);
  return r;
}

static int setup(void **state) {
  struct fx *fx = xcalloc(1, sizeof(*fx));
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  assert_int_equal(fake_dns_start(&fx->loop, &fx->srv, fake_rrs, ARRAY_SIZE(fake_rrs)), 0);
  assert_int_equal(uv_timer_init(&fx->loop, &fx->guard), 0);
  assert_int_equal(uv_timer_start(&fx->guard, on_guard, 20, 20), 0);
  uv_unref((uv_handle_t *)&fx->guard);
  fx->r = new_resolver(fx, 1000, 1);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  struct fx *fx = *state;
  if (fx->r != NULL) dns_close(fx->r);
  fake_dns_stop(&fx->srv);
  uv_close((uv_handle_t *)&fx->guard, NULL);
  assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
  /* Every handle, including each c-ares socket's poll handle, has been closed. */
  assert_int_equal(uv_loop_close(&fx->loop), 0);
  free(fx);
  return 0;
}

/* Runs the loop until *|flag| is set; fails after |max_ms|. */
static void run_until(struct fx *fx, const int *flag, uint64_t max_ms) {
  uv_update_time(&fx->loop);
  uint64_t start = uv_now(&fx->loop);
  while (!*flag) {
    assert_true(uv_now(&fx->loop) - start < max_ms);
    uv_run(&fx->loop, UV_RUN_ONCE);
  }
}

static void run_for(struct fx *fx, uint64_t ms) {
  uv_update_time(&fx->loop);
  uint64_t start = uv_now(&fx->loop);
  while (uv_now(&fx->loop) - start < ms) uv_run(&fx->loop, UV_RUN_ONCE);
}

/* ---- callbacks ---------------------------------------------------------------------------- */

/* What one callback saw. */
struct got {
  int calls;
  int status;
  struct dns_result res;
  /* For the re-entrancy tests. */
  struct fx *fx;
  int close_in_cb;
};

static void on_resolved(void *arg, int status, const struct dns_result *res) {
  struct got *g = arg;
  g->calls++;
  g->status = status;
  if (status == 0) {
    assert_non_null(res);
    g->res = *res;
  } else {
    assert_null(res);
  }
  if (g->close_in_cb) {
    dns_close(g->fx->r);
    g->fx->r = NULL;
  }
}

static uint16_t addr_port(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)ss)->sin_port);
  return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static const char *addr_str(const struct sockaddr_storage *ss, char *buf, size_t cap) {
  if (ss->ss_family == AF_INET)
    return inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, (socklen_t)cap);
  return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, (socklen_t)cap);
}

/* Whether |res| holds |addr| with |port|. */
static int has_addr(const struct dns_result *res, const char *addr, uint16_t port) {
  char buf[INET6_ADDRSTRLEN];
  for (size_t i = 0; i < res->n; i++)
    if (strcmp(addr_str(&res->addrs[i], buf, sizeof(buf)), addr) == 0 &&
        addr_port(&res->addrs[i]) == port)
      return 1;
  return 0;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_name_both_families(void **state) {
  struct fx *fx = *state;
  struct got g = {0};

  assert_non_null(dns_resolve(fx->r, "a.test", 443, on_resolved, &g));
  assert_int_equal(g.calls, 0);
  run_until(fx, &g.calls, 5000);
  assert_int_equal(g.calls, 1);
  assert_int_equal(g.status, 0);
  assert_int_equal(g.res.n, 2);
  assert_true(g.res.addrs[0].ss_family != g.res.addrs[1].ss_family);
  assert_true(has_addr(&g.res, "127.0.0.5", 443));
  assert_true(has_addr(&g.res, "::1", 443));
}

static void test_name_v4_only(void **state) {
  struct fx *fx = *state;
  struct got g = {0};

  assert_non_null(dns_resolve(fx->r, "v4.test", 80, on_resolved, &g));
  run_until(fx, &g.calls, 5000);
  assert_int_equal(g.status, 0);
  assert_int_equal(g.res.n, 1);
  assert_int_equal(g.res.addrs[0].ss_family, AF_INET);
  assert_true(has_addr(&g.res, "127.0.0.9", 80));
}

/* Five addresses: the families alternate while both last, starting with the first one's. */
static void test_interleave(void **state) {
  struct fx *fx = *state;
  struct got g = {0};

  assert_non_null(dns_resolve(fx->r, "multi.test", 8443, on_resolved, &g));
  run_until(fx, &g.calls, 5000);
  assert_int_equal(g.status, 0);
  assert_int_equal(g.res.n, 5);
  for (size_t i = 1; i < 4; i++)
    assert_true(g.res.addrs[i].ss_family != g.res.addrs[i - 1].ss_family);
  assert_int_equal(g.res.addrs[4].ss_family, AF_INET);
  const char *want[] = {"127.0.0.5", "127.0.0.6", "127.0.0.7", "::1", "::2"};
  for (size_t i = 0; i < ARRAY_SIZE(want); i++) assert_true(has_addr(&g.res, want[i], 8443));
}

static void test_nxdomain(void **state) {
  struct fx *fx = *state;
  struct got g = {0};

  assert_non_null(dns_resolve(fx->r, "missing.test", 443, on_resolved, &g));
  run_until(fx, &g.calls, 5000);
  assert_int_equal(g.calls, 1);
  assert_int_equal(g.status, -ENOENT);
}

static void test_timeout(void **state) {
  struct fx *fx = *state;
  struct got g = {0};

  dns_close(fx->r);
  fx->r = new_resolver(fx, 200, 1);
  uv_update_time(&fx->loop);
  uint64_t start = uv_now(&fx->loop);
  assert_non_null(dns_resolve(fx->r, "slow.test", 443, on_resolved, &g));
  run_until(fx, &g.calls, 5000);
  assert_int_equal(g.calls, 1);
  assert_int_equal(g.status, -ETIMEDOUT);
  assert_true(fx->srv.nsilent >= 1);
  /* One try of 200 ms per query, the A and AAAA queries in parallel. */
  assert_true(uv_now(&fx->loop) - start < 2000);
}

static void test_localhost_hosts_file(void **state) {
  struct fx *fx = *state;
  struct got g = {0};
  char buf[INET6_ADDRSTRLEN];

  assert_non_null(dns_resolve(fx->r, "localhost", 8080, on_resolved, &g));
  assert_int_equal(g.calls, 0); /* answered from /etc/hosts, still delivered from the loop */
  run_until(fx, &g.calls, 5000);
  assert_int_equal(g.status, 0);
  assert_true(g.res.n >= 1);
  for (size_t i = 0; i < g.res.n; i++) {
    const char *s = addr_str(&g.res.addrs[i], buf, sizeof(buf));
    assert_true(strcmp(s, "127.0.0.1") == 0 || strcmp(s, "::1") == 0);
    assert_int_equal(addr_port(&g.res.addrs[i]), 8080);
  }
  assert_int_equal(fx->srv.nqueries, 0);
}

static void test_literals(void **state) {
  struct fx *fx = *state;
  struct got g4 = {0}, g6 = {0};

  assert_non_null(dns_resolve(fx->r, "127.0.0.1", 1234, on_resolved, &g4));
  assert_non_null(dns_resolve(fx->r, "::1", 4321, on_resolved, &g6));
  assert_int_equal(g4.calls, 0);
  assert_int_equal(g6.calls, 0);
  run_until(fx, &g6.calls, 5000);
  assert_int_equal(g4.calls, 1);
  assert_int_equal(g4.status, 0);
  assert_int_equal(g4.res.n, 1);
  assert_int_equal(g4.res.addrs[0].ss_family, AF_INET);
  assert_true(has_addr(&g4.res, "127.0.0.1", 1234));
  assert_int_equal(g6.status, 0);
  assert_int_equal(g6.res.n, 1);
  assert_int_equal(g6.res.addrs[0].ss_family, AF_INET6);
  assert_true(has_addr(&g6.res, "::1", 4321));
  assert_int_equal(fx->srv.nqueries, 0);
}

/* Things that look almost like literals are names: they go to the server (NXDOMAIN here). */
static void test_not_literals(void **state) {
  struct fx *fx = *state;
  struct got g[3] = {{0}};
  const char *hosts[] = {"127.1", "0000:0000:0000:0000:0000:0000:0000:0001junk%lo", "1.2.3.4.5"};

  for (size_t i = 0; i < ARRAY_SIZE(hosts); i++)
    assert_non_null(dns_resolve(fx->r, hosts[i], 443, on_resolved, &g[i]));
  for (size_t i = 0; i < ARRAY_SIZE(hosts); i++) {
    run_until(fx, &g[i].calls, 5000);
    assert_int_not_equal(g[i].status, 0);
  }
}

/* Cancelled while c-ares holds the query: the answers still arrive, nothing is called, and the
 * query is freed when c-ares lets go (LeakSanitizer checks). */
static void test_cancel_in_flight(void **state) {
  struct fx *fx = *state;
  struct got g = {0}, after = {0};

  struct dns_query *q = dns_resolve(fx->r, "a.test", 443, on_resolved, &g);
  assert_non_null(q);
  dns_cancel(q);
  /* A later query on the same server shows the cancelled one's answers were processed. */
  assert_non_null(dns_resolve(fx->r, "v4.test", 443, on_resolved, &after));
  run_until(fx, &after.calls, 5000);
  run_for(fx, 100);
  assert_int_equal(g.calls, 0);
  assert_int_equal(after.status, 0);
  assert_true(fx->srv.nqueries >= 3);
}

/* Cancelled after c-ares finished but before delivery (a literal completes at once). */
static void test_cancel_before_delivery(void **state) {
  struct fx *fx = *state;
  struct got g = {0}, other = {0};

  struct dns_query *q = dns_resolve(fx->r, "127.0.0.1", 443, on_resolved, &g);
  assert_non_null(dns_resolve(fx->r, "::1", 443, on_resolved, &other));
  dns_cancel(q);
  run_until(fx, &other.calls, 5000);
  run_for(fx, 50);
  assert_int_equal(g.calls, 0);
  assert_int_equal(other.calls, 1);
}

/* A never-answered query cancelled, then the resolver closed while c-ares still holds it. */
static void test_cancel_then_close(void **state) {
  struct fx *fx = *state;
  struct got g = {0};

  struct dns_query *q = dns_resolve(fx->r, "slow.test", 443, on_resolved, &g);
  assert_non_null(q);
  run_for(fx, 50);
  assert_true(fx->srv.nsilent >= 1);
  dns_cancel(q);
  dns_close(fx->r);
  fx->r = NULL;
  run_for(fx, 50);
  assert_int_equal(g.calls, 0);
}

static void test_close_with_pending(void **state) {
  struct fx *fx = *state;
  struct got g[4] = {{0}};

  assert_non_null(dns_resolve(fx->r, "slow.test", 443, on_resolved, &g[0]));
  assert_non_null(dns_resolve(fx->r, "a.test", 443, on_resolved, &g[1]));
  assert_non_null(dns_resolve(fx->r, "127.0.0.1", 443, on_resolved, &g[2]));
  assert_non_null(dns_resolve(fx->r, "localhost", 443, on_resolved, &g[3]));
  dns_close(fx->r);
  fx->r = NULL;
  run_for(fx, 100);
  for (size_t i = 0; i < ARRAY_SIZE(g); i++) assert_int_equal(g[i].calls, 0);
}

/* dns_close from inside a callback: queries delivered in the same turn are dropped silently. */
static void test_close_in_callback(void **state) {
  struct fx *fx = *state;
  struct got first = {.fx = fx, .close_in_cb = 1}, second = {0}, slow = {0};

  assert_non_null(dns_resolve(fx->r, "slow.test", 443, on_resolved, &slow));
  assert_non_null(dns_resolve(fx->r, "127.0.0.1", 443, on_resolved, &first));
  assert_non_null(dns_resolve(fx->r, "::1", 443, on_resolved, &second));
  run_until(fx, &first.calls, 5000);
  assert_null(fx->r);
  run_for(fx, 50);
  assert_int_equal(first.calls, 1);
  assert_int_equal(second.calls, 0);
  assert_int_equal(slow.calls, 0);
}

struct chain {
  struct fx *fx;
  struct got inner;
  int calls;
};

static void on_chain_outer(void *arg, int status, const struct dns_result *res) {
  struct chain *c = arg;
  c->calls++;
  assert_int_equal(status, 0);
  /* Starting a query from a callback, answered synchronously by c-ares, is still deferred. */
  assert_non_null(dns_resolve(c->fx->r, "127.0.0.1", 80, on_resolved, &c->inner));
  assert_int_equal(c->inner.calls, 0);
}

static void test_resolve_in_callback(void **state) {
  struct fx *fx = *state;
  struct chain c = {.fx = fx};

  assert_non_null(dns_resolve(fx->r, "a.test", 443, on_chain_outer, &c));
  run_until(fx, &c.inner.calls, 5000);
  assert_int_equal(c.calls, 1);
  assert_int_equal(c.inner.status, 0);
  assert_true(has_addr(&c.inner.res, "127.0.0.1", 80));
}

static void test_bad_servers(void **state) {
  struct fx *fx = *state;
  struct dns_opts o = {.servers = "not an address"};
  struct dns_resolver *r = (struct dns_resolver *)&o; /* must be reset */

  assert_int_equal(dns_new(&fx->loop, &o, &r), -EINVAL);
  assert_null(r);
}

static void test_default_opts(void **state) {
  struct fx *fx = *state;
  struct dns_resolver *r = NULL;

  /* /etc/resolv.conf is read but no query is sent; an idle resolver leaves the loop free. */
  assert_int_equal(dns_new(&fx->loop, NULL, &r), 0);
  assert_non_null(r);
  dns_close(r);
}

static int group_setup(void **state) { return dns_global_init(); }

static int group_teardown(void **state) {
  dns_global_cleanup();
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_name_both_families, setup, teardown),
      cmocka_unit_test_setup_teardown(test_name_v4_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_interleave, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nxdomain, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_localhost_hosts_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_literals, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_literals, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_before_delivery, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_then_close, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_with_pending, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_in_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_resolve_in_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_servers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_default_opts, setup, teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
