/* Pure parts of forwarding (issue 11): hop-by-hop fields (FWD-03), Via loops (FWD-04),
 * Max-Forwards (FWD-05), which authority is the proxy itself (src/local.c), and the origin's
 * response parser (proxy/fwd_resp.c): the faults fuzz_fwd_resp found, kept as regressions. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/fwd.h"
#include "proxy/fwd_resp.h"
#include "src/config.h"
#include "src/local.h"

static void test_hop_by_hop(void **state) {
  static const char *const hop[] = {"Connection", "keep-alive", "PROXY-CONNECTION", "Proxy-Authorization",
                                    "proxy-authenticate", "TE", "Transfer-Encoding", "upgrade"};
  for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) assert_true(fwd_is_hop_by_hop(hop[i], strlen(hop[i])));
  static const char *const end[] = {"Host", "Via", "Cookie", "Content-Type", "Trailer", "Connections", "T"};
  for (size_t i = 0; i < sizeof(end) / sizeof(end[0]); i++) assert_false(fwd_is_hop_by_hop(end[i], strlen(end[i])));
}

static void test_via(void **state) {
  const char *yes[] = {"1.1 h2tunnel", "1.0 a, 1.1 h2tunnel", "HTTP/2 H2TUNNEL (comment, here)", "2 x,1.1 h2tunnel"};
  const char *no[] = {"", "1.1 other", "1.1 h2tunnel2", "h2tunnel", "1.1 a (h2tunnel)", "1.1 xh2tunnel"};
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) assert_true(fwd_via_names(yes[i], strlen(yes[i]), "h2tunnel"));
  for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) assert_false(fwd_via_names(no[i], strlen(no[i]), "h2tunnel"));
}

static void test_max_forwards(void **state) {
  assert_true(fwd_max_forwards_zero("OPTIONS", "0", 1));
  assert_true(fwd_max_forwards_zero("TRACE", " 00", 3));
  assert_false(fwd_max_forwards_zero("GET", "0", 1));
  assert_false(fwd_max_forwards_zero("OPTIONS", "1", 1));
  assert_false(fwd_max_forwards_zero("OPTIONS", "", 0));
  assert_false(fwd_max_forwards_zero("OPTIONS", "10", 2));
}

static void test_own_authority(void **state) {
  struct config cfg;
  memset(&cfg, 0, sizeof(cfg));
  strcpy(cfg.proxy_names, "proxy.example, Other.Example");
  struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(8443)};
  inet_pton(AF_INET, "192.0.2.7", &v4.sin_addr);
  const struct sockaddr *sa = (const struct sockaddr *)&v4;
  const char *own[] = {"localhost", "LOCALHOST:8443", "192.0.2.7", "192.0.2.7:8443", "proxy.example",
                       "other.example:8443"};
  const char *other[] = {"192.0.2.7:8444", "192.0.2.8", "example.com", "proxy.example.org", "localhost:80",
                         "", "[::1]", "192.0.2.7:", "localhost:x"};
  for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) assert_true(local_is_own(&cfg, sa, own[i], strlen(own[i])));
  for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
    assert_false(local_is_own(&cfg, sa, other[i], strlen(other[i])));
  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
  inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr);
  assert_true(local_is_own(&cfg, (const struct sockaddr *)&v6, "[2001:db8::1]:443", 17));
  assert_true(local_is_own(&cfg, (const struct sockaddr *)&v6, "[2001:DB8:0::1]", 15));
  assert_false(local_is_own(&cfg, (const struct sockaddr *)&v6, "[2001:db8::2]", 13));
}

/* ---- the origin's response (fwd_resp) ---- */

struct resp_run {
  char events[64]; /* one letter an event: I H U E X */
  size_t nev;
  char body[256];
  size_t body_len;
  size_t upgrade_at;
  enum pxerr err;
};

static void collect_body(void *arg, const char *d, size_t n) {
  struct resp_run *u = arg;
  assert_true(u->nev > 0 && u->events[u->nev - 1] == 'H'); /* body only after the final head */
  assert_true(u->body_len + n <= sizeof(u->body));
  memcpy(u->body + u->body_len, d, n);
  u->body_len += n;
}

/* Parses |s| whole as fwd.c does (feeding the rest after each event), then the origin closes. */
static void parse_resp(struct resp_run *u, const char *s, int is_head, int upgrade) {
  struct fwd_resp r;
  memset(u, 0, sizeof(*u));
  fwd_resp_init(&r, 65536, is_head, upgrade, collect_body, u);
  size_t off = 0, len = strlen(s);
  enum fwd_resp_ev ev = FWD_RESP_MORE;
  for (;;) {
    size_t used = 0;
    ev = fwd_resp_feed(&r, s + off, len - off, &used);
    off += used;
    if (ev == FWD_RESP_MORE) ev = fwd_resp_finish(&r);
    static const char letter[] = {[FWD_RESP_INTERIM] = 'I', [FWD_RESP_HEAD] = 'H', [FWD_RESP_UPGRADE] = 'U',
                                  [FWD_RESP_END] = 'E', [FWD_RESP_ERROR] = 'X'};
    if (ev == FWD_RESP_MORE) break;
    u->events[u->nev++] = letter[ev];
    if (ev == FWD_RESP_UPGRADE) u->upgrade_at = off;
    if (ev == FWD_RESP_ERROR) u->err = r.err;
    if (ev == FWD_RESP_END || ev == FWD_RESP_ERROR || ev == FWD_RESP_UPGRADE) break;
  }
  fwd_resp_dispose(&r);
}

static void test_resp_1xx_has_no_body(void **state) {
  /* fuzz_fwd_resp: llhttp read a "body" after a 1xx with Transfer-Encoding, which went to the
   * client before the final head (FWD-09). */
  struct resp_run u;
  parse_resp(&u, "HTTP/1.1 103 Early Hints\r\nTransfer-Encoding: gzip\r\n\r\n"
                 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0);
  assert_string_equal(u.events, "IHE");
  assert_int_equal(u.body_len, 2);
  assert_memory_equal(u.body, "ok", 2);
}

static void test_resp_refused_heads(void **state) {
  /* FWD-07: each is 502 before the head; found by fuzz_fwd_resp but the first and the last. */
  static const char *const bad[] = {
      "HTTP/1.1 0 OK\r\nContent-Length: 0\r\n\r\n",                 /* status outside 100..599 */
      "HTTP/1.1 200 OK\r\n:x: y\r\nContent-Length: 0\r\n\r\n",         /* empty field name */
      "HTTP/1.1 200 OK\r\nA: 1\r\n:x: y\r\nContent-Length: 0\r\n\r\n", /* ... after another field */
      "HTTP/1.1 200 OK\r\nA: 1\r\n\ngth: 100\r\n\r\n",                 /* bare LF: two head ends */
      "HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n",                     /* bare CR */
      "HTTP/1.1 200 OK\r\nA: b\r\n c\r\nContent-Length: 0\r\n\r\n",    /* obs-fold */
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", /* not asked */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct resp_run u;
    parse_resp(&u, bad[i], 0, 0);
    assert_string_equal(u.events, "X");
    assert_int_equal(u.err, PXERR_RESP_INVALID);
  }
}

static void test_resp_connection_listed_dropped(void **state) {
  /* A field a Connection field names goes, wherever it stands (FWD-03); the filter once judged
   * a list it was compacting, and a listed field after a kept one stayed. */
  struct fwd_resp r;
  struct fwd_field fl[FWD_RESP_MAX_FIELDS];
  struct resp_run u;
  const char *s = "HTTP/1.1 200 OK\r\nConnection: x-hop\r\nKeep: 1\r\nX-Hop: 2\r\nContent-Length: 0\r\n\r\n";
  size_t used;
  memset(&u, 0, sizeof(u));
  fwd_resp_init(&r, 65536, 0, 0, collect_body, &u);
  assert_int_equal(fwd_resp_feed(&r, s, strlen(s), &used), FWD_RESP_HEAD);
  size_t n = fwd_resp_fields(&r, fl, FWD_RESP_END_TO_END);
  assert_int_equal(n, 1);
  assert_memory_equal(fl[0].name, "Keep", 4);
  fwd_resp_dispose(&r);
}

static void test_resp_upgrade(void **state) {
  /* FWD-14: asked for, a 101 ends the parse where the new protocol begins. */
  struct resp_run u;
  const char *s = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi";
  parse_resp(&u, s, 0, 1);
  assert_string_equal(u.events, "U");
  assert_int_equal(u.upgrade_at, strlen(s) - 4);
  parse_resp(&u, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n", 0, 1);
  assert_string_equal(u.events, "X"); /* no Upgrade field */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hop_by_hop),
      cmocka_unit_test(test_via),
      cmocka_unit_test(test_max_forwards),
      cmocka_unit_test(test_own_authority),
      cmocka_unit_test(test_resp_1xx_has_no_body),
      cmocka_unit_test(test_resp_refused_heads),
      cmocka_unit_test(test_resp_connection_listed_dropped),
      cmocka_unit_test(test_resp_upgrade),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
