/* Unit tests for src/proxyproto.c: PROXY protocol v1 and v2 headers accepted (with the client
 * address they carry), incomplete ones waiting for more at every split, malformed ones refused
 * with a reason, and the trusted-source match. (The checklist has no PROXY protocol item; this is
 * issue 13 item 3, against HAProxy's proxy-protocol.txt.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "src/access.h"
#include "src/net.h"
#include "src/proxyproto.h"
#include "src/util.h"

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap) {
  net_format_addr((const struct sockaddr *)ss, out, cap);
}

/* Parses |p| whole, and checks that every strict prefix asks for more. */
static int parse_all_splits(const uint8_t *p, size_t len, struct pp_header *h, const char **why) {
  int r = pp_parse(p, len, h, why);
  if (r > 0) {
    for (size_t i = 0; i < (size_t)r; i++) {
      struct pp_header tmp;
      const char *w = NULL;
      int q = pp_parse(p, i, &tmp, &w);
      if (q != 0) fail_msg("prefix of %zu bytes: %d (%s), want 0", i, q, w ? w : "");
    }
  }
  return r;
}

static void test_v1_accepted(void **state) {
  (void)state;
  struct {
    const char *in;
    int has_addr;
    const char *src;
  } cases[] = {
      {"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n", 1, "192.0.2.7:56324"},
      {"PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n", 1, "[2001:db8::7]:65535"},
      {"PROXY UNKNOWN\r\n", 0, NULL},
      {"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", 0, NULL},
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    char buf[200];
    size_t n = strlen(cases[i].in);
    snprintf(buf, sizeof(buf), "%sGET /", cases[i].in); /* bytes after the header are not read */
    struct pp_header h;
    const char *why = NULL;
    int r = parse_all_splits((const uint8_t *)buf, strlen(buf), &h, &why);
    if (r != (int)n) fail_msg("'%s': %d (%s), want %zu", cases[i].in, r, why ? why : "", n);
    assert_int_equal(h.version, 1);
    assert_int_equal(h.has_addr, cases[i].has_addr);
    if (cases[i].src) {
      char t[64];
      addr_text(&h.src, t, sizeof(t));
      assert_string_equal(t, cases[i].src);
    }
  }
}

static void test_v1_refused(void **state) {
  (void)state;
  const char *cases[] = {
      "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\n",      /* LF without CR */
      "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\rX",     /* CR without LF */
      "PROXY TCP4  192.0.2.7 198.51.100.1 56324 443\r\n",   /* double space */
      "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443 \r\n",   /* trailing space */
      "PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",        /* a field missing */
      "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443 1\r\n",  /* one too many */
      "PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n",        /* family mismatch */
      "PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",           /* family mismatch */
      "PROXY TCP4 192.0.2.7 198.51.100.1 65536 443\r\n",    /* port out of range */
      "PROXY TCP4 192.0.2.7 198.51.100.1 0443 443\r\n",     /* leading zero */
      "PROXY TCP4 192.0.2.7 198.51.100.1 -1 443\r\n",       /* sign */
      "PROXY TCP4 192.0.2.777 198.51.100.1 1 443\r\n",      /* bad address */
      "PROXY UDP4 192.0.2.7 198.51.100.1 1 443\r\n",        /* not TCP */
      "PROXY \r\n",                                         /* nothing */
      "PROXY UNKNOWNX\r\n",                                 /* not the keyword */
      "PROXY TCP4 192.0.2.7\0 198.51.100.1 1 443\r\n",      /* NUL (strlen stops: no CRLF) */
      "GET / HTTP/1.1\r\n",                                 /* not a header at all */
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    struct pp_header h;
    const char *why = NULL;
    size_t n = strlen(cases[i]);
    int r = pp_parse((const uint8_t *)cases[i], n, &h, &why);
    if (i == 15) { /* the NUL case: the line so far is a valid beginning */
      static const char nul[] = "PROXY TCP4 192.0.2.7\0 198.51.100.1 1 443\r\n";
      r = pp_parse((const uint8_t *)nul, sizeof(nul) - 1, &h, &why);
    }
    if (r != -EINVAL) fail_msg("case %zu '%s': %d, want -EINVAL", i, cases[i], r);
    assert_non_null(why);
  }
  /* No CRLF within 107 bytes. */
  char longline[200];
  memset(longline, 'x', sizeof(longline));
  memcpy(longline, "PROXY TCP4 ", 11);
  struct pp_header h;
  const char *why = NULL;
  assert_int_equal(pp_parse((const uint8_t *)longline, PP_V1_MAX - 1, &h, &why), 0);
  assert_int_equal(pp_parse((const uint8_t *)longline, PP_V1_MAX, &h, &why), -EINVAL);
  assert_int_equal(pp_parse((const uint8_t *)longline, sizeof(longline), &h, &why), -EINVAL);
  /* 106 bytes and CRLF past it: too long, even though it would be well formed. */
  char lng[120];
  snprintf(lng, sizeof(lng), "PROXY UNKNOWN %0*d\r\n", 92, 0);
  assert_int_equal(strlen(lng), 108);
  assert_int_equal(pp_parse((const uint8_t *)lng, strlen(lng), &h, &why), -EINVAL);
}

/* Builds a v2 header: |cmd| 0 LOCAL / 1 PROXY, |famproto| the 14th byte, |body| after it. */
static size_t v2(uint8_t *out, int ver, int cmd, uint8_t famproto, const uint8_t *body, size_t blen) {
  memcpy(out, sig, 12);
  out[12] = (uint8_t)(ver << 4 | cmd);
  out[13] = famproto;
  out[14] = (uint8_t)(blen >> 8);
  out[15] = (uint8_t)blen;
  if (blen) memcpy(out + 16, body, blen);
  return 16 + blen;
}

static void test_v2_accepted(void **state) {
  (void)state;
  uint8_t b[300], body[256];
  struct pp_header h;
  const char *why = NULL;
  char t[64];

  /* INET over STREAM, with a TLV after the addresses (skipped). */
  const uint8_t in4[] = {192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0x01, 0xbb, 0x04, 0x00, 0x02, 'h', 'i'};
  size_t n = v2(b, 2, 1, 0x11, in4, sizeof(in4));
  memcpy(b + n, "\x16\x03\x01", 3); /* a TLS ClientHello follows */
  assert_int_equal(parse_all_splits(b, n + 3, &h, &why), (int)n);
  assert_int_equal(h.version, 2);
  assert_int_equal(h.has_addr, 1);
  addr_text(&h.src, t, sizeof(t));
  assert_string_equal(t, "192.0.2.7:56324");
  addr_text(&h.dst, t, sizeof(t));
  assert_string_equal(t, "198.51.100.1:443");

  /* INET6. */
  memset(body, 0, sizeof(body));
  inet_pton(AF_INET6, "2001:db8::7", body);
  inet_pton(AF_INET6, "2001:db8::1", body + 16);
  body[32] = 0x30, body[33] = 0x39; /* 12345 */
  body[34] = 0x01, body[35] = 0xbb;
  n = v2(b, 2, 1, 0x21, body, 36);
  assert_int_equal(parse_all_splits(b, n, &h, &why), (int)n);
  addr_text(&h.src, t, sizeof(t));
  assert_string_equal(t, "[2001:db8::7]:12345");

  /* LOCAL (a health check), UNSPEC, UNIX: no address to use. */
  n = v2(b, 2, 0, 0x00, NULL, 0);
  assert_int_equal(parse_all_splits(b, n, &h, &why), 16);
  assert_int_equal(h.has_addr, 0);
  n = v2(b, 2, 0, 0x11, in4, 12); /* LOCAL with addresses: ignored */
  assert_int_equal(pp_parse(b, n, &h, &why), 28);
  assert_int_equal(h.has_addr, 0);
  n = v2(b, 2, 1, 0x00, NULL, 0);
  assert_int_equal(pp_parse(b, n, &h, &why), 16);
  assert_int_equal(h.has_addr, 0);
  memset(body, 'u', 216);
  n = v2(b, 2, 1, 0x31, body, 216);
  assert_int_equal(pp_parse(b, n, &h, &why), (int)n);
  assert_int_equal(h.has_addr, 0);

  /* The largest length the field can say. */
  static uint8_t big[16 + 65535 + 1];
  memset(big, 0, sizeof(big));
  memcpy(big, sig, 12);
  big[12] = 0x21, big[13] = 0x11, big[14] = 0xff, big[15] = 0xff;
  assert_int_equal(pp_parse(big, sizeof(big) - 2, &h, &why), 0);
  assert_int_equal(pp_parse(big, sizeof(big), &h, &why), 16 + 65535);
}

static void test_v2_refused(void **state) {
  (void)state;
  uint8_t b[300];
  const uint8_t in4[12] = {192, 0, 2, 7, 198, 51, 100, 1, 0, 1, 0, 2};
  struct pp_header h;
  const char *why;
  struct {
    int ver, cmd;
    uint8_t fp;
    size_t blen;
  } cases[] = {
      {1, 1, 0x11, 12}, /* version 1 in binary form */
      {3, 1, 0x11, 12}, /* version 3 */
      {2, 2, 0x11, 12}, /* command 2 */
      {2, 1, 0x41, 12}, /* family 4 */
      {2, 1, 0x13, 12}, /* protocol 3 */
      {2, 1, 0x12, 12}, /* PROXY over DGRAM on a stream listener */
      {2, 1, 0x11, 11}, /* INET addresses cut short */
      {2, 1, 0x21, 12}, /* INET6 addresses cut short */
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    size_t n = v2(b, cases[i].ver, cases[i].cmd, cases[i].fp, in4, cases[i].blen);
    why = NULL;
    int r = pp_parse(b, n, &h, &why);
    if (r != -EINVAL) fail_msg("case %zu: %d, want -EINVAL", i, r);
    assert_non_null(why);
  }
  /* A signature that goes wrong after the sixth byte. */
  size_t n = v2(b, 2, 1, 0x11, in4, 12);
  b[9] = 'X';
  assert_int_equal(pp_parse(b, 8, &h, &why), 0);
  assert_int_equal(pp_parse(b, 10, &h, &why), -EINVAL);
  assert_int_equal(pp_parse(b, n, &h, &why), -EINVAL);
}

static void test_sniff(void **state) {
  (void)state;
  assert_int_equal(pp_sniff((const uint8_t *)"PROXY TCP4", 10), 1);
  assert_int_equal(pp_sniff((const uint8_t *)"PROX", 4), -1);
  assert_int_equal(pp_sniff((const uint8_t *)"PUT / HTTP/1.1", 14), 0);
  assert_int_equal(pp_sniff((const uint8_t *)"PRI * HTTP/2.0", 14), 0); /* the h2 preface */
  assert_int_equal(pp_sniff((const uint8_t *)"CONNECT a:1", 11), 0);
  assert_int_equal(pp_sniff((const uint8_t *)"\x16\x03\x01", 3), 0);
  assert_int_equal(pp_sniff(sig, 3), -1);
  assert_int_equal(pp_sniff(sig, 12), 1);
  assert_int_equal(pp_sniff((const uint8_t *)"", 0), -1);
}

static void test_trusted(void **state) {
  (void)state;
  struct access_nets nets;
  memset(&nets, 0, sizeof(nets));
  const char *why;
  assert_int_equal(access_nets_add(&nets, "10.1.0.0/16", 1, &why), 0);
  assert_int_equal(access_nets_add(&nets, "192.0.2.9", 1, &why), 0);
  assert_int_equal(access_nets_add(&nets, "2001:db8:1::/48", 1, &why), 0);
  assert_int_equal(access_nets_add(&nets, "10.2.0.0/15", 1, &why), 0);
  struct {
    const char *addr;
    int want;
  } cases[] = {{"10.1.2.3", 1},    {"10.0.255.255", 0}, {"192.0.2.9", 1},    {"192.0.2.10", 0},
               {"10.3.255.1", 1},  {"10.4.0.1", 0},     {"2001:db8:1::5", 1}, {"2001:db8:2::5", 0},
               {"127.0.0.1", 0},   {"::ffff:10.1.2.3", 0}};
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(cases[i].addr, ':')) {
      ss.ss_family = AF_INET6;
      inet_pton(AF_INET6, cases[i].addr, &((struct sockaddr_in6 *)&ss)->sin6_addr);
    } else {
      ss.ss_family = AF_INET;
      inet_pton(AF_INET, cases[i].addr, &((struct sockaddr_in *)&ss)->sin_addr);
    }
    if (pp_source_trusted(&nets, (struct sockaddr *)&ss) != cases[i].want)
      fail_msg("%s: want %d", cases[i].addr, cases[i].want);
  }
  assert_int_equal(access_nets_add(&nets, "loopback", 1, &why), 0);
  struct sockaddr_in lo = {.sin_family = AF_INET};
  inet_pton(AF_INET, "127.0.0.2", &lo.sin_addr);
  assert_int_equal(pp_source_trusted(&nets, (struct sockaddr *)&lo), 1);
  access_nets_dispose(&nets);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_v1_accepted), cmocka_unit_test(test_v1_refused), cmocka_unit_test(test_v2_accepted),
      cmocka_unit_test(test_v2_refused),  cmocka_unit_test(test_sniff),      cmocka_unit_test(test_trusted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
