/* Unit tests for src/limits.c: the GCRA buckets (rate, burst, Retry-After), tunnel counts per
 * user (own block and default), per client address and per instance, refusals that hold
 * nothing, counts back to 0 when every ticket is released, the scopes a ticket takes, and a
 * per-user bandwidth shared by 4 tunnels on 2 threads that holds its sum (checklist H2C-17). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "src/access.h"
#include "src/cfgfile.h"
#include "src/limits.h"
#include "src/util.h"
#include "access_fx.h"

#define NS 1000000000ull

static struct access *load(const char *text) { return access_fx_load("l.yaml", text); }

static const struct sockaddr *client(struct sockaddr_in *sin, const char *ip) {
  memset(sin, 0, sizeof(*sin));
  sin->sin_family = AF_INET;
  CHECK(inet_pton(AF_INET, ip, &sin->sin_addr) == 1);
  return (const struct sockaddr *)sin;
}

static void test_gcra(void **state) {
  (void)state;
  _Atomic uint64_t tat = 0;
  uint64_t wait = 0, now = 100 * NS;
  /* 2 per second, burst 3: three at once, the fourth waits half a second. */
  for (int i = 0; i < 3; i++) assert_int_equal(lim_gcra_take(&tat, 2, NS, 3, now, &wait), 0);
  assert_int_equal(lim_gcra_take(&tat, 2, NS, 3, now, &wait), -1);
  assert_int_equal(wait, NS / 2);
  assert_int_equal(lim_gcra_take(&tat, 2, NS, 3, now + NS / 2, &wait), 0);
  assert_int_equal(lim_gcra_take(&tat, 2, NS, 3, now + NS / 2, &wait), -1);
  /* An idle bucket refills to its burst, not beyond. */
  now += 100 * NS;
  for (int i = 0; i < 3; i++) assert_int_equal(lim_gcra_take(&tat, 2, NS, 3, now, &wait), 0);
  assert_int_equal(lim_gcra_take(&tat, 2, NS, 3, now, &wait), -1);

  /* Bandwidth: 1 MB/s tolerating 0.1 s: 100 kB free, then the debt must be waited out. */
  _Atomic uint64_t bw = 0;
  now = 500 * NS;
  assert_int_equal(lim_gcra_charge(&bw, 1000000, NS / 10, 100000, now), 0);
  assert_int_equal(lim_gcra_charge(&bw, 1000000, NS / 10, 50000, now), NS / 20);
  /* After the pause the budget is there again, never more than rate * time in total. */
  assert_int_equal(lim_gcra_charge(&bw, 1000000, NS / 10, 50000, now + NS / 20), NS / 20);
}

static void test_counts(void **state) {
  (void)state;
  struct access *a = load("limits:\n"
                          "  default: { tunnels: 3 }\n"
                          "  users: { bob: { tunnels: 2 }, erin: { tunnels: unlimited } }\n"
                          "  per-client: { tunnels: 4 }\n"
                          "  instance: { tunnels: 6 }\n");
  struct limits *l = limits_new(a);
  struct sockaddr_in c1, c2, c3;
  struct lim_ticket *t[16] = {0};
  enum lim_kind kind;
  uint64_t retry;
  uint64_t now = 10 * NS;
  /* bob: 2, then his own limit. */
  assert_int_equal(limits_admit(l, "bob", client(&c1, "192.0.2.1"), now, &t[0], &kind, &retry), 0);
  assert_non_null(t[0]);
  assert_int_equal(limits_admit(l, "bob", client(&c1, "192.0.2.1"), now, &t[1], &kind, &retry), 0);
  assert_int_equal(limits_admit(l, "bob", client(&c2, "192.0.2.2"), now, &t[2], &kind, &retry), -1);
  assert_int_equal(kind, LIM_USER_TUNNELS);
  assert_int_equal(retry, 1);
  assert_null(t[2]);
  assert_int_equal(limits_user_active(l, "bob"), 2);
  assert_int_equal(limits_client_active(l, client(&c2, "192.0.2.2")), 0); /* the refusal held nothing */
  /* carol (default 3) from the same client: the client's 4 run out first. */
  assert_int_equal(limits_admit(l, "carol", client(&c1, "192.0.2.1"), now, &t[3], &kind, &retry), 0);
  assert_int_equal(limits_admit(l, "carol", client(&c1, "192.0.2.1"), now, &t[4], &kind, &retry), 0);
  assert_int_equal(limits_admit(l, "carol", client(&c1, "192.0.2.1"), now, &t[5], &kind, &retry), -1);
  assert_int_equal(kind, LIM_CLIENT_TUNNELS);
  assert_int_equal(limits_client_active(l, client(&c1, "192.0.2.1")), 4);
  /* anonymous clients have no user scope; the instance's 6 run out. */
  assert_int_equal(limits_admit(l, NULL, client(&c2, "192.0.2.2"), now, &t[6], &kind, &retry), 0);
  assert_int_equal(t[6]->metered, 0); /* counts only: its reads cost nothing */
  assert_int_equal(t[0]->metered, 1); /* bob is named: his bytes are counted for /metrics */
  assert_int_equal(limits_admit(l, "erin", client(&c3, "192.0.2.3"), now, &t[7], &kind, &retry), 0);
  assert_int_equal(limits_admit(l, "erin", client(&c3, "192.0.2.3"), now, &t[8], &kind, &retry), -1);
  assert_int_equal(kind, LIM_INSTANCE_TUNNELS);
  assert_int_equal(limits_instance_active(l), 6);
  /* Everything back: every count is 0 again. */
  for (size_t i = 0; i < ARRAY_SIZE(t); i++) lim_ticket_release(t[i]);
  assert_int_equal(limits_instance_active(l), 0);
  assert_int_equal(limits_user_active(l, "bob"), 0);
  assert_int_equal(limits_user_active(l, "carol"), 0);
  assert_int_equal(limits_client_active(l, client(&c1, "192.0.2.1")), 0);
  assert_int_equal(limits_client_active(l, client(&c3, "192.0.2.3")), 0);
  /* The refusals are counted by kind, and shown with the per-user gauges. */
  char buf[8192];
  struct strbuf sb;
  strbuf_init_fixed(&sb, buf, sizeof(buf));
  limits_render(l, &sb);
  assert_non_null(strstr(buf, "h2tunnel_limit_rejections_total{kind=\"user_tunnels\"} 1\n"));
  assert_non_null(strstr(buf, "h2tunnel_limit_rejections_total{kind=\"client_tunnels\"} 1\n"));
  assert_non_null(strstr(buf, "h2tunnel_limit_rejections_total{kind=\"instance_tunnels\"} 1\n"));
  assert_non_null(strstr(buf, "h2tunnel_user_tunnels_active{user=\"bob\"} 0\n"));
  assert_non_null(strstr(buf, "h2tunnel_user_tunnels_active{user=\"erin\"} 0\n"));
  limits_free(l);
  access_free(a);
}

static void test_rates(void **state) {
  (void)state;
  struct access *a = load("limits:\n"
                          "  default: { rate: 2/s, burst: 2 }\n"
                          "  per-client: { rate: 10/m }\n");
  struct limits *l = limits_new(a);
  struct sockaddr_in c1;
  struct lim_ticket *t = NULL;
  enum lim_kind kind;
  uint64_t retry = 0, now = 50 * NS;
  for (int i = 0; i < 2; i++) {
    assert_int_equal(limits_admit(l, "dave", client(&c1, "192.0.2.1"), now, &t, &kind, &retry), 0);
    lim_ticket_release(t);
  }
  assert_int_equal(limits_admit(l, "dave", client(&c1, "192.0.2.1"), now, &t, &kind, &retry), -1);
  assert_int_equal(kind, LIM_USER_RATE);
  assert_int_equal(retry, 1); /* half a second, rounded up */
  /* Another user from the same client: the client's 10/m (burst 10) has 8 left. */
  static const char *const users[] = {"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"};
  for (int i = 0; i < 8; i++) {
    assert_int_equal(limits_admit(l, users[i], client(&c1, "192.0.2.1"), now, &t, &kind, &retry), 0);
    lim_ticket_release(t);
  }
  assert_int_equal(limits_admit(l, "u8", client(&c1, "192.0.2.1"), now, &t, &kind, &retry), -1);
  assert_int_equal(kind, LIM_CLIENT_RATE);
  assert_int_equal(retry, 6); /* one more in 6 s */
  /* Another client is not affected. */
  struct sockaddr_in c2;
  assert_int_equal(limits_admit(l, "u8", client(&c2, "192.0.2.2"), now, &t, &kind, &retry), 0);
  lim_ticket_release(t);
  limits_free(l);
  access_free(a);
}

/* A tunnel's own bandwidth is the smallest its scopes give, each way; no limit costs no ticket. */
static void test_ticket_scopes(void **state) {
  (void)state;
  struct access *a = load("limits:\n"
                          "  users: { bob: { tunnel-bandwidth-up: 1m/s, tunnel-bandwidth-down: 4m/s } }\n"
                          "  per-client: { tunnel-bandwidth: 2m/s }\n");
  struct limits *l = limits_new(a);
  struct sockaddr_in c1;
  struct lim_ticket *t = NULL;
  enum lim_kind kind;
  uint64_t retry;
  assert_int_equal(limits_admit(l, "bob", client(&c1, "192.0.2.1"), NS, &t, &kind, &retry), 0);
  assert_non_null(t);
  assert_int_equal(t->tunnel_bw[LIM_UP], 1 << 20);
  assert_int_equal(t->tunnel_bw[LIM_DOWN], 2 << 20);
  assert_int_equal(t->bw, 1);
  /* Charged past its burst, the tunnel must pause and says it was limited. */
  assert_int_equal(t->limited, 0);
  uint64_t w = lim_ticket_charge(t, LIM_UP, 1 << 20, 2 * NS);
  assert_true(w > NS / 2 && w < NS);
  assert_int_equal(t->limited, 1);
  lim_ticket_release(t);
  limits_free(l);
  access_free(a);

  a = load("groups: { ops: [alice] }\n");
  l = limits_new(a);
  /* No limit anywhere; alice is named (her tunnels are counted for /metrics), others cost nothing. */
  assert_int_equal(limits_admit(l, "dave", client(&c1, "192.0.2.1"), NS, &t, &kind, &retry), 0);
  assert_null(t);
  assert_int_equal(limits_admit(l, "alice", client(&c1, "192.0.2.1"), NS, &t, &kind, &retry), 0);
  assert_non_null(t);
  assert_int_equal(t->bw, 0);
  assert_int_equal(t->metered, 1);
  assert_int_equal(lim_ticket_charge(t, LIM_DOWN, 1000, NS), 0);
  assert_int_equal(limits_user_active(l, "alice"), 1);
  lim_ticket_release(t);
  assert_int_equal(limits_user_active(l, "alice"), 0);
  limits_free(l);
  access_free(a);
}

static const struct sockaddr *client6(struct sockaddr_in6 *sin6, const char *ip) {
  memset(sin6, 0, sizeof(*sin6));
  sin6->sin6_family = AF_INET6;
  CHECK(inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1);
  return (const struct sockaddr *)sin6;
}

/* per-client counts a client by its network: client-ipv6-prefix (default 64) and
 * client-ipv4-prefix (default 32). */
static void test_client_prefix(void **state) {
  (void)state;
  struct access *a = load("limits: { per-client: { tunnels: 1 } }\n");
  struct limits *l = limits_new(a);
  struct sockaddr_in6 x, y, z;
  struct sockaddr_in p, q;
  struct lim_ticket *t[4] = {NULL};
  enum lim_kind kind;
  uint64_t retry;
  /* Two addresses of one /64: one client. */
  assert_int_equal(limits_admit(l, NULL, client6(&x, "2001:db8:1:2::10"), NS, &t[0], &kind, &retry), 0);
  assert_int_equal(limits_admit(l, NULL, client6(&y, "2001:db8:1:2:aaaa::1"), NS, &t[1], &kind, &retry), -1);
  assert_int_equal(kind, LIM_CLIENT_TUNNELS);
  assert_int_equal(limits_client_active(l, client6(&y, "2001:db8:1:2:ffff::")), 1);
  /* The next /64 is another client. */
  assert_int_equal(limits_admit(l, NULL, client6(&z, "2001:db8:1:3::10"), NS, &t[1], &kind, &retry), 0);
  /* IPv4: each address by default. */
  assert_int_equal(limits_admit(l, NULL, client(&p, "192.0.2.1"), NS, &t[2], &kind, &retry), 0);
  assert_int_equal(limits_admit(l, NULL, client(&q, "192.0.2.2"), NS, &t[3], &kind, &retry), 0);
  for (int i = 0; i < 4; i++) lim_ticket_release(t[i]);
  limits_free(l);

  /* client-ipv6-prefix 128 and client-ipv4-prefix 24. */
  a->tune.client_v6_prefix = 128;
  a->tune.client_v4_prefix = 24;
  l = limits_new(a);
  memset(t, 0, sizeof(t));
  assert_int_equal(limits_admit(l, NULL, client6(&x, "2001:db8:1:2::10"), NS, &t[0], &kind, &retry), 0);
  assert_int_equal(limits_admit(l, NULL, client6(&y, "2001:db8:1:2::11"), NS, &t[1], &kind, &retry), 0);
  assert_int_equal(limits_admit(l, NULL, client(&p, "192.0.2.1"), NS, &t[2], &kind, &retry), 0);
  assert_int_equal(limits_admit(l, NULL, client(&q, "192.0.2.254"), NS, &t[3], &kind, &retry), -1);
  for (int i = 0; i < 4; i++) lim_ticket_release(t[i]);
  assert_int_equal(limits_client_active(l, client(&q, "192.0.2.254")), 0);
  limits_free(l);
  access_free(a);
}

/* bandwidth-burst and bandwidth-burst-min set how far a bucket runs ahead before a pause. */
static void test_bandwidth_burst(void **state) {
  (void)state;
  struct access *a = load("limits: { default: { tunnel-bandwidth: 1m/s } }\n");
  struct sockaddr_in c1;
  enum lim_kind kind;
  uint64_t retry;
  struct lim_ticket *t = NULL;
  uint64_t want[3] = {NS - NS / 8, NS / 2, NS / 2}; /* 1 MiB at 1 MiB/s: 1 s less the burst */
  for (int i = 0; i < 3; i++) {
    if (i == 1) a->tune.bw_burst_ms = 500;               /* 500 ms of the rate */
    if (i == 2) a->tune.bw_burst_ms = 1, a->tune.bw_burst_min = 512 * 1024; /* 512 KiB */
    struct limits *l = limits_new(a);
    assert_int_equal(limits_admit(l, "bob", client(&c1, "192.0.2.1"), NS, &t, &kind, &retry), 0);
    uint64_t w = lim_ticket_charge(t, LIM_UP, 1 << 20, 2 * NS);
    assert_true(w + 1000 >= want[i] && w <= want[i] + 1000);
    lim_ticket_release(t);
    limits_free(l);
  }
  access_free(a);
}

/* ---- a per-user bandwidth shared by 4 tunnels on 2 threads ------------------------------------ */

#define CHUNK 65536
#define RATE (8u << 20) /* bytes per second for the user, all tunnels together */

struct mover {
  struct lim_ticket *t[2]; /* two tunnels on this thread */
  uint64_t until_ns;
  uint64_t bytes;
};

/* Reads as a tunnel does: a chunk whenever the tunnel is not paused, pausing as the charge says. */
static void *move(void *arg) {
  struct mover *m = arg;
  uint64_t resume[2] = {0, 0};
  for (uint64_t now = uv_hrtime(); now < m->until_ns; now = uv_hrtime()) {
    for (int i = 0; i < 2; i++) {
      if (now < resume[i]) continue;
      m->bytes += CHUNK;
      uint64_t w = lim_ticket_charge(m->t[i], LIM_DOWN, CHUNK, now);
      resume[i] = now + w;
    }
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static void test_user_bandwidth_across_threads(void **state) {
  (void)state;
  struct access *a = load("limits: { users: { bob: { bandwidth: 8m/s } } }\n");
  struct limits *l = limits_new(a);
  struct sockaddr_in c1;
  enum lim_kind kind;
  uint64_t retry;
  struct mover m[2];
  memset(m, 0, sizeof(m));
  uint64_t start = uv_hrtime(), secs = 3;
  for (int i = 0; i < 2; i++) {
    m[i].until_ns = start + secs * NS;
    for (int j = 0; j < 2; j++)
      assert_int_equal(limits_admit(l, "bob", client(&c1, "192.0.2.1"), start, &m[i].t[j], &kind, &retry), 0);
  }
  assert_int_equal(limits_user_active(l, "bob"), 4);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, move, &m[i]) == 0);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  double elapsed = (double)(uv_hrtime() - start) / 1e9;
  double rate = (double)(m[0].bytes + m[1].bytes) / elapsed;
  /* The sum: rate * time plus one burst (50 ms) and one chunk per tunnel at most, so the upper
   * bound is tight; a busy machine can only make it slower, so the lower bound is loose. */
  double limit = (double)RATE;
  double over = (limit * elapsed + limit * 0.05 + 4.0 * CHUNK) / elapsed;
  print_message("4 tunnels on 2 threads: %.2f MiB/s for a limit of %.2f MiB/s (%.1f%%)\n", rate / 1048576.0,
                limit / 1048576.0, 100.0 * rate / limit);
  assert_true(rate <= over);
  assert_true(rate >= 0.80 * limit);
  /* Each thread got a share (neither starved). */
  assert_true(m[0].bytes > 0 && m[1].bytes > 0);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) lim_ticket_release(m[i].t[j]);
  assert_int_equal(limits_user_active(l, "bob"), 0);
  limits_free(l);
  access_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gcra),
      cmocka_unit_test(test_counts),
      cmocka_unit_test(test_rates),
      cmocka_unit_test(test_ticket_scopes),
      cmocka_unit_test(test_client_prefix),
      cmocka_unit_test(test_bandwidth_burst),
      cmocka_unit_test(test_user_bandwidth_across_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
