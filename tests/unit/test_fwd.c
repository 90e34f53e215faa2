/* Pure parts of forwarding (issue 11): hop-by-hop fields (FWD-03), Via loops (FWD-04),
 * Max-Forwards (FWD-05), and which authority is the proxy itself (src/local.c). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/fwd.h"
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hop_by_hop),
      cmocka_unit_test(test_via),
      cmocka_unit_test(test_max_forwards),
      cmocka_unit_test(test_own_authority),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
