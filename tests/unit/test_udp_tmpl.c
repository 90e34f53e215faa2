/* Unit tests for src/udp_tmpl.c: the connect-udp URI template (RFC 9298 §2). Each row is a path a
 * client could send; the accepted rows pin the host text handed to the resolver. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "src/udp_tmpl.h"

#define S(lit) lit, sizeof(lit) - 1

#define QUERY_TMPL "/masque?h={target_host}&p={target_port}"
#define PORT_FIRST_TMPL "/u/{target_port}/{target_host}"

struct match_case {
  const char *tmpl;
  const char *path;
  size_t len;
  int rv;
  const char *host; /* expected on success */
  uint16_t port;
};

static const struct match_case match_cases[] = {
    /* The default template. */
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/192.0.2.6/443/"), 0, "192.0.2.6", 443},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/example.com/53/"), 0, "example.com", 53},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/Example.COM/1/"), 0, "example.com", 1},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/65535/"), 0, "h", 65535},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/00443/"), 0, "h", 443},
    /* IPv6: colons percent-encoded (RFC 6570), either hex case, brackets optional. */
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/2001%3Adb8%3A%3A1/443/"), 0, "2001:db8::1", 443},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/2001%3adb8%3a%3a1/443/"), 0, "2001:db8::1", 443},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/2001:db8::1/443/"), 0, "2001:db8::1", 443},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/%5B2001%3Adb8%3A%3A1%5D/443/"), 0, "2001:db8::1",
     443},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/[2001:db8::1]/443/"), 0, "2001:db8::1", 443},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/%3A%3A1/53/"), 0, "::1", 53},
    /* Stored in canonical form, like src/authority.c. */
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/2001%3ADB8%3A0%3A0%3A0%3A0%3A0%3A1/443/"), 0,
     "2001:db8::1", 443},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/%3A%3Affff%3A192.0.2.1/443/"), 0,
     "::ffff:192.0.2.1", 443},
    /* Percent-encoded names and ports decode. */
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/%65xample.com/%34%34%33/"), 0, "example.com", 443},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/my_host-1.example/8080/"), 0, "my_host-1.example",
     8080},
    /* Query templates: values end at '&' or the end of the path. */
    {QUERY_TMPL, S("/masque?h=example.com&p=443"), 0, "example.com", 443},
    {QUERY_TMPL, S("/masque?h=2001%3Adb8%3A%3A1&p=443"), 0, "2001:db8::1", 443},
    {QUERY_TMPL, S("/masque?h=192.0.2.1&p=%34%34%33"), 0, "192.0.2.1", 443},
    {PORT_FIRST_TMPL, S("/u/53/dns.example"), 0, "dns.example", 53},

    /* Literal parts must match exactly. */
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/443"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/443//"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/443/?x=1"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/UDP/h/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/a/b/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S(""), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/443/\0"), -EINVAL, NULL, 0},
    {QUERY_TMPL, S("/masque?p=443&h=example.com"), -EINVAL, NULL, 0},
    {QUERY_TMPL, S("/masque?h=example.com"), -EINVAL, NULL, 0},
    {QUERY_TMPL, S("/masque?h=example.com&p=443&x=1"), -EINVAL, NULL, 0},
    /* Empty values. */
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp//443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h//"), -EINVAL, NULL, 0},
    {QUERY_TMPL, S("/masque?h=&p=443"), -EINVAL, NULL, 0},
    {QUERY_TMPL, S("/masque?h=h&p="), -EINVAL, NULL, 0},
    /* Malformed escapes. */
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h%/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h%4/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h%zz/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h%%41/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/44%3/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/%+34/"), -EINVAL, NULL, 0},
    /* Bad hosts after decoding. */
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/a%2Fb/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/a%2fb/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/a%25b/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/a%00b/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/a%0Ab/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/a%7Fb/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/a\tb/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/a%20b/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/u%40h/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h\xc3\xa9/443/"), -EINVAL, NULL, 0},
    /* Bad IPv6: zone ids, garbage, brackets without IPv6, half brackets. */
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/fe80%3A%3A1%25eth0/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/fe80%3A%3A1%2525eth0/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/%5Bfe80%3A%3A1%25eth0%5D/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/2001%3Adb8%3A%3A%3A1/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h%3A443/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/%5Bexample.com%5D/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/%5B192.0.2.1%5D/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/%5B%5D/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/%5B%3A%3A1/443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/%3A%3A1%5D/443/"), -EINVAL, NULL, 0},
    /* Bad ports. */
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/0/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/00000/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/65536/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/000443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/4294967297/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/+443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/-1/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/%2B443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/%20443/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/443%20/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/0x1bb/"), -EINVAL, NULL, 0},
    {UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/44a/"), -EINVAL, NULL, 0},
    {QUERY_TMPL, S("/masque?h=h&p=443/"), -EINVAL, NULL, 0},
};

static void test_match_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
    const struct match_case *c = &match_cases[i];
    char host[256];
    uint16_t port = 7;
    int rv = udp_tmpl_match(c->tmpl, c->path, c->len, host, sizeof(host), &port);

    if (rv != c->rv) fail_msg("row %zu \"%s\": rv %d, want %d", i, c->path, rv, c->rv);
    if (rv == 0) {
      if (strcmp(host, c->host) != 0) fail_msg("row %zu \"%s\": host \"%s\"", i, c->path, host);
      assert_int_equal(port, c->port);
    } else {
      assert_int_equal(port, 7); /* untouched on failure */
      assert_string_equal(host, "");
    }
  }
}

/* The host buffer bounds the decoded host, NUL included. */
static void test_host_cap(void **state) {
  char host[12];
  uint16_t port = 0;
  (void)state;

  assert_int_equal(udp_tmpl_match(UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/abcdefghijk/1/"),
                                  host, sizeof(host), &port),
                   0);
  assert_string_equal(host, "abcdefghijk");
  assert_int_equal(udp_tmpl_match(UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/abcdefghijkl/1/"),
                                  host, sizeof(host), &port),
                   -EINVAL);
  /* "::1" decodes to 3 bytes but is 9 on the wire: the cap applies to the decoded text. */
  assert_int_equal(udp_tmpl_match(UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/%3A%3A1/1/"), host,
                                  4, &port),
                   0);
  assert_string_equal(host, "::1");
  /* The cap applies to the canonical text, not to the client's longer spelling. */
  assert_int_equal(udp_tmpl_match(UDP_TMPL_DEFAULT,
                                  S("/.well-known/masque/udp/2001%3ADB8%3A0%3A0%3A0%3A0%3A0%3A1/1/"),
                                  host, sizeof(host), &port),
                   0);
  assert_string_equal(host, "2001:db8::1");
  /* Longer than any IPv6 literal, with a ':': refused whatever the cap. */
  char big[128];
  assert_int_equal(udp_tmpl_match(UDP_TMPL_DEFAULT,
                                  S("/.well-known/masque/udp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                    "aaaaaaaaaa%3A1/1/"),
                                  big, sizeof(big), &port),
                   -EINVAL);
  assert_int_equal(udp_tmpl_match(UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/1/"), host, 0,
                                  &port),
                   -EINVAL);
  assert_int_equal(udp_tmpl_match(UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/1/"), host, 1,
                                  &port),
                   -EINVAL);
  assert_int_equal(udp_tmpl_match(UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/1/"), NULL, 8,
                                  &port),
                   -EINVAL);
  assert_int_equal(udp_tmpl_match(UDP_TMPL_DEFAULT, S("/.well-known/masque/udp/h/1/"), host,
                                  sizeof(host), NULL),
                   -EINVAL);
}

/* Only the first |len| bytes of the path count. */
static void test_len_not_nul(void **state) {
  static const char path[] = "/.well-known/masque/udp/h/443/trailing";
  char host[64];
  uint16_t port = 0;
  (void)state;

  assert_int_equal(udp_tmpl_match(UDP_TMPL_DEFAULT, path, sizeof(path) - 1 - 8, host, sizeof(host),
                                  &port),
                   0);
  assert_string_equal(host, "h");
  assert_int_equal(port, 443);
}

struct tmpl_case {
  const char *tmpl;
  int rv;
};

static const struct tmpl_case tmpl_cases[] = {
    {UDP_TMPL_DEFAULT, 0},
    {QUERY_TMPL, 0},
    {PORT_FIRST_TMPL, 0},
    {"/{target_host}/{target_port}", 0},
    {"/x;h={target_host},p={target_port}", 0},
    {"/{target_host}:{target_port}/", 0},
    {NULL, -EINVAL},
    {"", -EINVAL},
    {"x/{target_host}/{target_port}/", -EINVAL},          /* not a path */
    {"/{target_host}/", -EINVAL},                         /* no port */
    {"/{target_port}/", -EINVAL},                         /* no host */
    {"/{target_host}/{target_port}/{target_host}/", -EINVAL},
    {"/{target_host}/{target_port}/{target_port}/", -EINVAL},
    {"/{target_host}{target_port}/", -EINVAL},           /* adjacent: ambiguous */
    {"/{target_host}.{target_port}/", -EINVAL},          /* '.' may be in the value */
    {"/{target_host}-x/{target_port}", -EINVAL},
    {"/{target_host}%2F{target_port}", -EINVAL},
    {"/{target_host}/{target_port}/{other}", -EINVAL},
    {"/{?target_host,target_port}", -EINVAL},           /* level-3 operator */
    {"/{+target_host}/{target_port}/", -EINVAL},
    {"/{target_host/{target_port}/", -EINVAL},
    {"/target_host}/{target_port}/", -EINVAL},
    {"/{target_host}/{target_port}/ x", -EINVAL},
    {"/{target_host}/{target_port}/\t", -EINVAL},
};

static void test_validate_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(tmpl_cases) / sizeof(tmpl_cases[0]); i++) {
    int rv = udp_tmpl_validate(tmpl_cases[i].tmpl);
    if (rv != tmpl_cases[i].rv) {
      fail_msg("row %zu \"%s\": rv %d", i, tmpl_cases[i].tmpl ? tmpl_cases[i].tmpl : "(null)", rv);
    }
  }
}

/* An invalid template matches nothing, not even its own text. */
static void test_match_invalid_template(void **state) {
  char host[64];
  uint16_t port = 0;
  (void)state;

  assert_int_equal(udp_tmpl_match("/{target_host}/", S("/h/"), host, sizeof(host), &port), -EINVAL);
  assert_int_equal(udp_tmpl_match(NULL, S("/h/1/"), host, sizeof(host), &port), -EINVAL);
  assert_int_equal(udp_tmpl_match(UDP_TMPL_DEFAULT, NULL, 0, host, sizeof(host), &port), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_match_table),
      cmocka_unit_test(test_host_cap),
      cmocka_unit_test(test_len_not_nul),
      cmocka_unit_test(test_validate_table),
      cmocka_unit_test(test_match_invalid_template),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
