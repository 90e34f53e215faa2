/* Unit tests for src/auth.c: the verified-credentials cache (keyed digests, TTL, bound, a new
 * users snapshot flushes), the failure guard (threshold within a window, ban and its end, other
 * addresses unaffected, IPv4 and IPv6), and password checks on libuv's thread pool, including one
 * cancelled while it runs (the work finishes, the caller is never called back: ASan checks that
 * nothing freed is touched). Hashes: htpasswd -nbB -C 4 alice pw-alice. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "src/auth.h"
#include "src/metrics.h"
#include "src/users.h"

#define BCRYPT_ALICE "$2y$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W" /* pw-alice */

static struct users *load_users(void) {
  static const char text[] = "alice:" BCRYPT_ALICE "\nbob:" BCRYPT_ALICE "\n";
  struct cfgfile_err err;
  struct users *u = users_parse("u", text, strlen(text), &err);
  assert_non_null(u);
  return u;
}

static void test_cache(void **state) {
  (void)state;
  struct users *u = load_users(), *u2 = load_users();
  struct auth_cache *c = auth_cache_new(8, 1000);
  uint8_t d1[AUTH_DIGEST_LEN], d2[AUTH_DIGEST_LEN], d1b[AUTH_DIGEST_LEN];
  auth_cache_digest(c, "Basic a", 7, d1);
  auth_cache_digest(c, "Basic b", 7, d2);
  auth_cache_digest(c, "Basic a", 7, d1b);
  assert_memory_equal(d1, d1b, AUTH_DIGEST_LEN);
  assert_memory_not_equal(d1, d2, AUTH_DIGEST_LEN);
  /* Another cache has another key: the digest of the same value differs. */
  struct auth_cache *other = auth_cache_new(8, 1000);
  auth_cache_digest(other, "Basic a", 7, d1b);
  assert_memory_not_equal(d1, d1b, AUTH_DIGEST_LEN);
  auth_cache_free(other);

  const struct users_entry *alice = users_find(u, "alice");
  assert_null(auth_cache_get(c, u, d1, 0));
  auth_cache_put(c, u, d1, alice, 100);
  assert_ptr_equal(auth_cache_get(c, u, d1, 100), alice);
  assert_ptr_equal(auth_cache_get(c, u, d1, 1099), alice);
  assert_null(auth_cache_get(c, u, d1, 1100)); /* the TTL is over */
  assert_null(auth_cache_get(c, u, d2, 100));
  /* Another snapshot finds nothing, and flushes. */
  auth_cache_put(c, u, d1, alice, 2000);
  assert_null(auth_cache_get(c, u2, d1, 2000));
  assert_null(auth_cache_get(c, u, d1, 2000));

  /* Bounded: many entries in a cache of 8 keep at most 8, the newest of each bucket. */
  size_t found = 0;
  uint8_t d[64][AUTH_DIGEST_LEN];
  for (int i = 0; i < 64; i++) {
    char v[16];
    int n = snprintf(v, sizeof(v), "Basic %d", i);
    auth_cache_digest(c, v, (size_t)n, d[i]);
    auth_cache_put(c, u, d[i], alice, 3000 + (uint64_t)i);
  }
  for (int i = 0; i < 64; i++) found += auth_cache_get(c, u, d[i], 3100) != NULL;
  assert_true(found <= 8 && found >= 4);
  assert_non_null(auth_cache_get(c, u, d[63], 3100));
  auth_cache_free(c);
  users_free(u);
  users_free(u2);
}

static struct sockaddr_storage addr(const char *text) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  if (strchr(text, ':')) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
  }
  return ss;
}

static void test_guard(void **state) {
  (void)state;
  struct auth_guard *g = auth_guard_new(16384, 32, 128); /* each address its own client */
  struct sockaddr_storage a = addr("127.0.0.1"), b = addr("127.0.0.2"), v6 = addr("::1");
  const struct sockaddr *sa = (const struct sockaddr *)&a, *sb = (const struct sockaddr *)&b;
  const struct sockaddr *s6 = (const struct sockaddr *)&v6;
  assert_int_equal(auth_guard_banned(g, sa, 0), 0);
  /* 3 failures within 1 s: banned for 5 s, from the third. */
  assert_int_equal(auth_guard_fail(g, sa, 0, 3, 1000, 5000), 0);
  assert_int_equal(auth_guard_fail(g, sa, 10, 3, 1000, 5000), 0);
  assert_int_equal(auth_guard_banned(g, sa, 10), 0);
  assert_int_equal(auth_guard_fail(g, sa, 20, 3, 1000, 5000), 1);
  assert_int_equal(auth_guard_banned(g, sa, 20), 5000);
  assert_int_equal(auth_guard_banned(g, sa, 5019), 1);
  assert_int_equal(auth_guard_banned(g, sa, 5020), 0);
  /* Failures while banned do not start another ban. */
  assert_int_equal(auth_guard_fail(g, sa, 30, 3, 1000, 5000), 0);
  /* Another address is not affected. */
  assert_int_equal(auth_guard_banned(g, sb, 30), 0);
  /* Failures spread wider than the window never ban. */
  for (uint64_t t = 0; t < 20000; t += 600) assert_int_equal(auth_guard_fail(g, sb, t, 3, 1000, 5000), 0);
  assert_int_equal(auth_guard_banned(g, sb, 20000), 0);
  /* IPv6 counts by address too. */
  assert_int_equal(auth_guard_fail(g, s6, 0, 1, 1000, 5000), 1);
  assert_true(auth_guard_banned(g, s6, 1) > 0);
  /* max 0: never banned. */
  assert_int_equal(auth_guard_fail(g, sb, 30000, 0, 1000, 5000), 0);
  /* Many addresses: the table stays bounded and still bans the one that fails. */
  for (uint32_t i = 0; i < 3 * 16384; i++) {
    struct sockaddr_in x = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
    auth_guard_fail(g, (const struct sockaddr *)&x, 40000, 5, 1000, 5000);
  }
  struct sockaddr_storage c = addr("192.0.2.7");
  const struct sockaddr *sc = (const struct sockaddr *)&c;
  assert_int_equal(auth_guard_fail(g, sc, 40000, 2, 1000, 5000), 0);
  assert_int_equal(auth_guard_fail(g, sc, 40001, 2, 1000, 5000), 1);
  assert_true(auth_guard_banned(g, sc, 40002) > 0);
  auth_guard_free(g);
}

/* Bans count a client by its network (client-ipv4-prefix / client-ipv6-prefix): addresses of one
 * /64 (or /24) share one count and one ban; the next network does not. */
static void test_guard_prefix(void **state) {
  (void)state;
  struct auth_guard *g = auth_guard_new(64, 24, 64); /* a small table: 8 sets */
  struct sockaddr_storage a1 = addr("2001:db8:1:2::1"), a2 = addr("2001:db8:1:2:ffff:ffff:ffff:fffe"),
                          other = addr("2001:db8:1:3::1"), v4a = addr("192.0.2.1"), v4b = addr("192.0.2.200"),
                          v4c = addr("192.0.3.1"), mapped = addr("::ffff:192.0.2.9");
#define SA(x) ((const struct sockaddr *)&(x))
  assert_int_equal(auth_guard_fail(g, SA(a1), 0, 2, 1000, 5000), 0);
  assert_int_equal(auth_guard_fail(g, SA(a2), 1, 2, 1000, 5000), 1); /* the second failure of the /64 */
  assert_true(auth_guard_banned(g, SA(a1), 2) > 0);
  assert_true(auth_guard_banned(g, SA(a2), 2) > 0);
  assert_int_equal(auth_guard_banned(g, SA(other), 2), 0);
  assert_int_equal(auth_guard_fail(g, SA(v4a), 0, 2, 1000, 5000), 0);
  assert_int_equal(auth_guard_fail(g, SA(v4b), 1, 2, 1000, 5000), 1);
  assert_true(auth_guard_banned(g, SA(mapped), 2) > 0); /* a dual-stack listener's IPv4 client */
  assert_int_equal(auth_guard_banned(g, SA(v4c), 2), 0);
#undef SA
  auth_guard_free(g);
}

struct verdict {
  int calls;
  int result;
  const struct users_entry *user;
};

static void on_verified(void *arg, int result, const struct users_entry *user) {
  struct verdict *v = arg;
  v->calls++;
  v->result = result;
  v->user = user;
}

static void digest_of(struct auth_cache *c, const char *value, uint8_t out[AUTH_DIGEST_LEN]) {
  auth_cache_digest(c, value, strlen(value), out);
}

static void test_verify(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  struct users *u = load_users();
  struct auth_cache *c = auth_cache_new(16, 1000);
  struct credentials ok = {.user = "alice", .user_len = 5, .pass = "pw-alice", .pass_len = 8};
  struct credentials bad = {.user = "alice", .user_len = 5, .pass = "pw-alicE", .pass_len = 8};
  struct credentials nobody = {.user = "carol", .user_len = 5, .pass = "pw-alice", .pass_len = 8};
  uint8_t d_ok[AUTH_DIGEST_LEN], d_bad[AUTH_DIGEST_LEN], d_nobody[AUTH_DIGEST_LEN], d_gone[AUTH_DIGEST_LEN];
  digest_of(c, "ok", d_ok);
  digest_of(c, "bad", d_bad);
  digest_of(c, "nobody", d_nobody);
  digest_of(c, "gone", d_gone);
  struct verdict v1 = {0}, v2 = {0}, v3 = {0}, v4 = {0};
  auth_verify_start(&loop, c, u, &ok, d_ok, on_verified, &v1);
  auth_verify_start(&loop, c, u, &bad, d_bad, on_verified, &v2);
  auth_verify_start(&loop, c, u, &nobody, d_nobody, on_verified, &v3);
  struct auth_verify *gone = auth_verify_start(&loop, c, u, &ok, d_gone, on_verified, &v4);
  /* One hash at a time (the default): the others wait in the queue. */
  assert_int_equal(c->pending, 4);
  assert_int_equal(c->running, 1);
  /* Cancelled while queued: dropped at once, never called back. */
  auth_verify_cancel(gone);
  assert_int_equal(c->pending, 3);
  /* Nothing is called back from within start: only from the loop. */
  assert_int_equal(v1.calls + v2.calls + v3.calls, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(c->pending, 0);
  assert_int_equal(c->running, 0);
  assert_int_equal(v1.calls, 1);
  assert_int_equal(v1.result, 0);
  assert_ptr_equal(v1.user, users_find(u, "alice"));
  assert_int_equal(v2.calls, 1);
  assert_int_equal(v2.result, -EACCES);
  assert_null(v2.user);
  assert_int_equal(v3.calls, 1);
  assert_int_equal(v3.result, -EACCES);
  assert_int_equal(v4.calls, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  auth_cache_free(c);
  users_free(u);
}

/* Single flight: identical credentials in flight share one hash; every caller is answered, one
 * that left is not; a running hash whose callers all left finishes and frees itself. */
struct chain {
  struct auth_verify *victim; /* cancelled from the first callback */
  int calls;
};

static void on_first(void *arg, int result, const struct users_entry *user) {
  struct chain *ch = arg;
  (void)result;
  (void)user;
  ch->calls++;
  if (ch->victim) auth_verify_cancel(ch->victim);
  ch->victim = NULL;
}

static void test_verify_single_flight(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  struct users *u = load_users();
  struct metrics m;
  memset(&m, 0, sizeof(m));
  struct auth_cache *c = auth_cache_new(16, 1000);
  c->metrics = &m;
  c->max_running = 2;
  struct credentials ok = {.user = "alice", .user_len = 5, .pass = "pw-alice", .pass_len = 8};
  struct credentials bad = {.user = "bob", .user_len = 3, .pass = "nope", .pass_len = 4};
  uint8_t d_ok[AUTH_DIGEST_LEN], d_bad[AUTH_DIGEST_LEN], d_left[AUTH_DIGEST_LEN];
  digest_of(c, "Basic ok", d_ok);
  digest_of(c, "Basic bad", d_bad);
  digest_of(c, "Basic left", d_left);
  struct verdict v[6] = {{0}};
  struct chain first = {0};
  /* Five callers with the same value, one of which is cancelled by another's callback. */
  for (int i = 0; i < 4; i++) auth_verify_start(&loop, c, u, &ok, d_ok, on_verified, &v[i]);
  first.victim = auth_verify_start(&loop, c, u, &ok, d_ok, on_verified, &v[4]);
  auth_verify_start(&loop, c, u, &ok, d_ok, on_first, &first); /* listed first: answered first */
  /* Two wrong ones share theirs too. */
  struct verdict w1 = {0}, w2 = {0};
  auth_verify_start(&loop, c, u, &bad, d_bad, on_verified, &w1);
  auth_verify_start(&loop, c, u, &bad, d_bad, on_verified, &w2);
  /* A running hash whose only caller leaves. */
  struct auth_verify *left = auth_verify_start(&loop, c, u, &ok, d_left, on_verified, &v[5]);
  assert_int_equal(c->pending, 3);
  assert_int_equal(m.auth_checks_shared, 6);
  assert_int_equal(m.auth_checks_pending, 3);
  auth_verify_cancel(left); /* queued behind two running: dropped */
  assert_int_equal(c->pending, 2);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(m.auth_hashes, 2);
  assert_int_equal(m.auth_checks_pending, 0);
  assert_int_equal(c->pending, 0);
  assert_int_equal(first.calls, 1);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(v[i].calls, 1);
    assert_int_equal(v[i].result, 0);
    assert_ptr_equal(v[i].user, users_find(u, "alice"));
  }
  assert_int_equal(v[4].calls, 0); /* cancelled by the first callback */
  assert_int_equal(v[5].calls, 0);
  assert_int_equal(w1.calls, 1);
  assert_int_equal(w1.result, -EACCES);
  assert_int_equal(w2.calls, 1);
  assert_int_equal(w2.result, -EACCES);
  /* A running hash abandoned by its only caller still ends cleanly. */
  struct verdict late = {0};
  struct auth_verify *x = auth_verify_start(&loop, c, u, &ok, d_left, on_verified, &late);
  assert_int_equal(c->running, 1);
  auth_verify_cancel(x);
  assert_int_equal(c->pending, 1);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(c->pending, 0);
  assert_int_equal(late.calls, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  auth_cache_free(c);
  users_free(u);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cache),
      cmocka_unit_test(test_guard),
      cmocka_unit_test(test_guard_prefix),
      cmocka_unit_test(test_verify),
      cmocka_unit_test(test_verify_single_flight),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
