/* Unit tests for src/authority.c: CONNECT authority-form parsing (checklist H1C-02, H1C-03,
 * H2C-02). Each table row is one request-target a client could send; the reason strings are part
 * of the contract because they reach the error log. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "src/authority.h"
#include "src/util.h"

/* A literal with its exact length, so rows may hold embedded NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1

struct reject_case {
  const char *in;
  size_t len;
  const char *why;
};

static const struct reject_case reject_cases[] = {
    /* H1C-03 / H2C-02: empty host. */
    {S(""), "empty host"},
    {S(":443"), "empty host"},
    {S("[]:443"), "empty host"},
    /* H1C-02 / H2C-02: missing, empty, zero, over-range, signed and non-digit ports. */
    {S("h"), "missing port"},
    {S("example.com"), "missing port"},
    {S("*"), "missing port"},
    {S("/x"), "missing port"},
    {S("[::1]"), "missing port"},
    {S("h:"), "empty port"},
    {S("[::1]:"), "empty port"},
    {S("h:0"), "port out of range"},
    {S("h:00000"), "port out of range"},
    {S("[::1]:0"), "port out of range"},
    {S("h:65536"), "port out of range"},
    {S("[::1]:65536"), "port out of range"},
    {S("h:99999"), "port out of range"},
    {S("h:000443"), "port out of range"}, /* leading zeros allowed, but at most 5 digits */
    {S("h:4294967297"), "port out of range"},
    {S("h:18446744073709551617"), "port out of range"},
    {S("h:+443"), "invalid port"},
    {S("h:-1"), "invalid port"},
    {S("h:-0"), "invalid port"},
    {S("h:44a"), "invalid port"},
    {S("h:0x1bb"), "invalid port"},
    {S("h:443/"), "invalid port"},
    {S("h:4.4"), "invalid port"},
    {S("h:\xd9\xa3"), "invalid port"}, /* Arabic-Indic digit three: not an ASCII digit */
    /* H1C-02 / H1C-03: whitespace anywhere in the target. */
    {S("h: 443"), "whitespace not allowed"},
    {S("h:443 "), "whitespace not allowed"},
    {S(" h:443"), "whitespace not allowed"},
    {S("h :443"), "whitespace not allowed"},
    {S("h:\t443"), "whitespace not allowed"},
    {S("exa mple.com:443"), "whitespace not allowed"},
    {S("[::1 ]:443"), "whitespace not allowed"},
    /* H1C-03: control characters, including NUL, CR, LF and DEL. */
    {S("h\0:443"), "control character not allowed"},
    {S("h\r\n:443"), "control character not allowed"},
    {S("h:443\n"), "control character not allowed"},
    {S("h\x7f:443"), "control character not allowed"},
    {S("h\x01:443"), "control character not allowed"},
    {S("h:44\x1b"), "control character not allowed"},
    /* H1C-03 / H2C-02: '%' (pct-encoding or an IPv6 zone id). */
    {S("h%2e:443"), "'%' not allowed"},
    {S("%:443"), "'%' not allowed"},
    {S("[fe80::1%eth0]:443"), "'%' not allowed"},
    {S("[fe80::1%25eth0]:443"), "'%' not allowed"},
    {S("h:%34%34%33"), "'%' not allowed"},
    /* H1C-03 / H2C-02: userinfo. */
    {S("u@h:443"), "userinfo not allowed"},
    {S("u:p@h:443"), "userinfo not allowed"},
    {S("u@127.0.0.1:9000"), "userinfo not allowed"},
    {S("@h:443"), "userinfo not allowed"},
    {S("[::1]@h:443"), "userinfo not allowed"},
    /* H1C-03 / H2C-02: unbracketed IPv6. */
    {S("2001:db8::1:443"), "unbracketed IPv6 address"},
    {S("::1:443"), "unbracketed IPv6 address"},
    {S("::ffff:127.0.0.1:443"), "unbracketed IPv6 address"},
    {S("h:443:443"), "unbracketed IPv6 address"},
    /* H1C-03: bytes outside the RFC 3986 reg-name set (H1C-01 targets land here too). */
    {S("http://127.0.0.1:9000"), "invalid character in host"},
    {S("a/b:443"), "invalid character in host"},
    {S("a?b:443"), "invalid character in host"},
    {S("a#b:443"), "invalid character in host"},
    {S("a\"b:443"), "invalid character in host"},
    {S("a<b:443"), "invalid character in host"},
    {S("a>b:443"), "invalid character in host"},
    {S("a\\b:443"), "invalid character in host"},
    {S("a^b:443"), "invalid character in host"},
    {S("a`b:443"), "invalid character in host"},
    {S("a{b:443"), "invalid character in host"},
    {S("a|b:443"), "invalid character in host"},
    {S("a}b:443"), "invalid character in host"},
    {S("a[b:443"), "invalid character in host"},
    {S("a]b:443"), "invalid character in host"},
    {S("b\xc3\xbc" "cher.example:443"), "invalid character in host"}, /* raw UTF-8 */
    {S("\xff:443"), "invalid character in host"},
    /* H1C-03: brackets must hold exactly one IPv6 address, then ':' and the port. */
    {S("[::1"), "unterminated IPv6 literal"},
    {S("[::1:443"), "unterminated IPv6 literal"},
    {S("[::1]443"), "invalid character after IPv6 literal"},
    {S("[::1]]:443"), "invalid character after IPv6 literal"},
    {S("[::1]x:443"), "invalid character after IPv6 literal"},
    {S("[127.0.0.1]:443"), "invalid IPv6 literal"},
    {S("[example.com]:443"), "invalid IPv6 literal"},
    {S("[v1.fe]:443"), "invalid IPv6 literal"},
    {S("[[::1]]:443"), "invalid IPv6 literal"},
    {S("[:::1]:443"), "invalid IPv6 literal"},
    {S("[1:2:3:4:5:6:7:8:9]:443"), "invalid IPv6 literal"},
    {S("[0000:0000:0000:0000:0000:0000:0000:0000:0000]:443"), "invalid IPv6 literal"},
};

static void test_reject_table(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(reject_cases); i++) {
    const struct reject_case *c = &reject_cases[i];
    struct authority a;
    const char *why = NULL;
    int rv;

    memset(&a, 0x5a, sizeof(a));
    rv = authority_parse(c->in, c->len, &a, &why);
    if (rv != -EINVAL || why == NULL || strcmp(why, c->why) != 0) {
      fail_msg("reject case %zu (%.*s): rv %d why \"%s\", want \"%s\"", i, (int)c->len, c->in, rv,
               why ? why : "(null)", c->why);
    }
    /* The output is written only on success. */
    assert_int_equal(a.port, 0x5a5a);
    /* |why| is optional. */
    assert_int_equal(authority_parse(c->in, c->len, &a, NULL), -EINVAL);
  }
}

struct accept_case {
  const char *in;
  const char *host;
  uint16_t port;
  enum authority_kind kind;
  const char *formatted;
};

static const struct accept_case accept_cases[] = {
    /* H1C-03: reg-name, IPv4 literal, bracketed IPv6 literal; names lowercased. */
    {"example.com:443", "example.com", 443, AUTHORITY_NAME, "example.com:443"},
    {"EXAMPLE.com:65535", "example.com", 65535, AUTHORITY_NAME, "example.com:65535"},
    {"WWW.Example.ORG:80", "www.example.org", 80, AUTHORITY_NAME, "www.example.org:80"},
    {"localhost:9000", "localhost", 9000, AUTHORITY_NAME, "localhost:9000"},
    {"example.com.:443", "example.com.", 443, AUTHORITY_NAME, "example.com.:443"},
    {"xn--bcher-kva.example:443", "xn--bcher-kva.example", 443, AUTHORITY_NAME,
     "xn--bcher-kva.example:443"},
    {"a-b_c~d.example:8080", "a-b_c~d.example", 8080, AUTHORITY_NAME, "a-b_c~d.example:8080"},
    {"!$&'()*+,;=:1", "!$&'()*+,;=", 1, AUTHORITY_NAME, "!$&'()*+,;=:1"}, /* sub-delims */
    {"127.0.0.1:1", "127.0.0.1", 1, AUTHORITY_IPV4, "127.0.0.1:1"},
    {"0.0.0.0:80", "0.0.0.0", 80, AUTHORITY_IPV4, "0.0.0.0:80"},
    {"255.255.255.255:65535", "255.255.255.255", 65535, AUTHORITY_IPV4, "255.255.255.255:65535"},
    {"93.184.216.34:443", "93.184.216.34", 443, AUTHORITY_IPV4, "93.184.216.34:443"},
    /* H1C-02: leading zeros are port syntax (at most 5 digits). */
    {"localhost:00443", "localhost", 443, AUTHORITY_NAME, "localhost:443"},
    {"h:00001", "h", 1, AUTHORITY_NAME, "h:1"},
    /* Not strict dotted quads: names here; the policy judges what they resolve to (H1C-13). */
    {"127.1:9000", "127.1", 9000, AUTHORITY_NAME, "127.1:9000"},
    {"0x7f000001:9000", "0x7f000001", 9000, AUTHORITY_NAME, "0x7f000001:9000"},
    {"0X7F.0.0.1:9000", "0x7f.0.0.1", 9000, AUTHORITY_NAME, "0x7f.0.0.1:9000"},
    {"2130706433:9000", "2130706433", 9000, AUTHORITY_NAME, "2130706433:9000"},
    {"127.0.0.01:80", "127.0.0.01", 80, AUTHORITY_NAME, "127.0.0.01:80"},
    {"0177.0.0.1:80", "0177.0.0.1", 80, AUTHORITY_NAME, "0177.0.0.1:80"},
    {"256.1.1.1:80", "256.1.1.1", 80, AUTHORITY_NAME, "256.1.1.1:80"},
    {"1.2.3.4.5:80", "1.2.3.4.5", 80, AUTHORITY_NAME, "1.2.3.4.5:80"},
    {"1.2.3.:80", "1.2.3.", 80, AUTHORITY_NAME, "1.2.3.:80"},
    /* H1C-03: bracketed IPv6, stored in canonical lowercase text. */
    {"[::1]:9000", "::1", 9000, AUTHORITY_IPV6, "[::1]:9000"},
    {"[::]:443", "::", 443, AUTHORITY_IPV6, "[::]:443"},
    {"[2001:db8::1]:443", "2001:db8::1", 443, AUTHORITY_IPV6, "[2001:db8::1]:443"},
    {"[2001:DB8::A]:443", "2001:db8::a", 443, AUTHORITY_IPV6, "[2001:db8::a]:443"},
    {"[2001:0db8:0:0:0:0:0:1]:443", "2001:db8::1", 443, AUTHORITY_IPV6, "[2001:db8::1]:443"},
    {"[::ffff:127.0.0.1]:9000", "::ffff:127.0.0.1", 9000, AUTHORITY_IPV6,
     "[::ffff:127.0.0.1]:9000"},
    {"[fe80::1]:22", "fe80::1", 22, AUTHORITY_IPV6, "[fe80::1]:22"},
    {"[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:1",
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1, AUTHORITY_IPV6,
     "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:1"},
};

static void check_round_trip(const struct authority *a, const char *ctx) {
  char buf[AUTHORITY_FORMAT_MAX];
  struct authority b;
  const char *why = NULL;
  size_t n = authority_format(a, buf, sizeof(buf));

  assert_int_equal(n, strlen(buf));
  if (authority_parse(buf, n, &b, &why) != 0) fail_msg("%s: \"%s\" does not reparse: %s", ctx, buf, why);
  if (strcmp(a->host, b.host) != 0 || a->port != b.port || a->kind != b.kind) {
    fail_msg("%s: \"%s\" reparses differently", ctx, buf);
  }
}

static void test_accept_table(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(accept_cases); i++) {
    const struct accept_case *c = &accept_cases[i];
    struct authority a;
    char buf[AUTHORITY_FORMAT_MAX];
    const char *why = NULL;
    int rv = authority_parse(c->in, strlen(c->in), &a, &why);

    if (rv != 0) fail_msg("accept case %zu (%s): rv %d why %s", i, c->in, rv, why);
    if (strcmp(a.host, c->host) != 0 || a.port != c->port || a.kind != c->kind) {
      fail_msg("accept case %zu (%s): got host \"%s\" port %u kind %d", i, c->in, a.host,
               (unsigned)a.port, (int)a.kind);
    }
    assert_int_equal(authority_format(&a, buf, sizeof(buf)), strlen(c->formatted));
    assert_string_equal(buf, c->formatted);
    check_round_trip(&a, c->in);
  }
}

/* The parser takes a length, not a C string: bytes after |len| are never read. */
static void test_length_bounded(void **state) {
  struct authority a;
  (void)state;
  assert_int_equal(authority_parse("example.com:4430000", 15, &a, NULL), 0);
  assert_string_equal(a.host, "example.com");
  assert_int_equal(a.port, 443);
  assert_int_equal(authority_parse("[::1]:9000junk", 10, &a, NULL), 0);
  assert_int_equal(a.port, 9000);
}

/* H1C-03: the host may be AUTHORITY_HOST_MAX bytes, not one more. */
static void test_host_length(void **state) {
  char in[AUTHORITY_HOST_MAX + 16];
  struct authority a;
  const char *why = NULL;
  (void)state;

  memset(in, 'a', AUTHORITY_HOST_MAX);
  memcpy(in + AUTHORITY_HOST_MAX, ":1", 2);
  assert_int_equal(authority_parse(in, AUTHORITY_HOST_MAX + 2, &a, &why), 0);
  assert_int_equal(strlen(a.host), AUTHORITY_HOST_MAX);
  check_round_trip(&a, "255-byte host");

  memset(in, 'b', AUTHORITY_HOST_MAX + 1);
  memcpy(in + AUTHORITY_HOST_MAX + 1, ":1", 2);
  assert_int_equal(authority_parse(in, AUTHORITY_HOST_MAX + 3, &a, &why), -EINVAL);
  assert_string_equal(why, "host too long");
}

/* H1C-03: sweep every byte as a one-byte host; only unreserved and sub-delims pass. */
static void test_host_byte_sweep(void **state) {
  static const char allowed[] = "-._~!$&'()*+,;=";
  (void)state;
  for (int c = 0; c < 256; c++) {
    char in[3] = {(char)c, ':', '1'};
    struct authority a;
    int want = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                (c != 0 && strchr(allowed, c) != NULL))
                   ? 0
                   : -EINVAL;
    int rv = authority_parse(in, sizeof(in), &a, NULL);
    if (rv != want) fail_msg("host byte 0x%02x: rv %d, want %d", c, rv, want);
    if (rv == 0 && c >= 'A' && c <= 'Z') assert_int_equal(a.host[0], c - 'A' + 'a');
  }
}

/* H1C-02: every valid port parses and formats back; the neighbours 0 and 65536 do not. */
static void test_every_port(void **state) {
  (void)state;
  for (unsigned port = 0; port <= 65536; port++) {
    char in[32];
    struct authority a;
    int n = snprintf(in, sizeof(in), "h:%u", port);
    int rv = authority_parse(in, (size_t)n, &a, NULL);
    int want = (port >= 1 && port <= 65535) ? 0 : -EINVAL;
    if (rv != want) fail_msg("port %u: rv %d", port, rv);
    if (rv == 0) {
      char out[AUTHORITY_FORMAT_MAX];
      assert_int_equal(a.port, port);
      assert_int_equal(authority_format(&a, out, sizeof(out)), (size_t)n);
      assert_string_equal(out, in);
    }
  }
}

/* authority_format never overruns and always terminates. */
static void test_format_truncation(void **state) {
  struct authority a;
  char buf[8];
  (void)state;

  assert_int_equal(authority_parse(S("[2001:db8::1]:443"), &a, NULL), 0);
  memset(buf, 'x', sizeof(buf));
  assert_int_equal(authority_format(&a, buf, 0), 0);
  assert_int_equal(buf[0], 'x');
  assert_int_equal(authority_format(&a, buf, 1), 0);
  assert_string_equal(buf, "");
  assert_int_equal(authority_format(&a, buf, sizeof(buf)), sizeof(buf) - 1);
  assert_string_equal(buf, "[2001:d");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reject_table),    cmocka_unit_test(test_accept_table),
      cmocka_unit_test(test_length_bounded),  cmocka_unit_test(test_host_length),
      cmocka_unit_test(test_host_byte_sweep), cmocka_unit_test(test_every_port),
      cmocka_unit_test(test_format_truncation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
