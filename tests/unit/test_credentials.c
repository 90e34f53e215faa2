/* Unit tests for src/credentials.c: Proxy-Authorization: Basic decoded strictly (RFC 7617;
 * checklist AUTH-* rows of issue 10: malformed headers are refused, never crash). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/credentials.h"

struct good_case {
  const char *value;
  const char *user, *pass;
};

static const struct good_case good[] = {
    {"Basic YWxpY2U6YWxpY2Utc2VjcmV0", "alice", "alice-secret"},
    {"basic YWxpY2U6YWxpY2Utc2VjcmV0", "alice", "alice-secret"}, /* scheme is case-insensitive */
    {"BASIC YWxpY2U6YWxpY2Utc2VjcmV0", "alice", "alice-secret"},
    {"Basic dGVzdDoxMjPCow==", "test", "123\xc2\xa3"},               /* RFC 7617 §2.1's example */
    {"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Aladdin", "open sesame"}, /* RFC 7617 §2 */
    {"Basic YTo=", "a", ""},                                        /* empty password */
    {"Basic YTpiOmM=", "a", "b:c"},                                 /* the first ':' splits */
};

struct bad_case {
  const char *value;
  enum credentials_status want;
  const char *why;
};

static const struct bad_case bad[] = {
    {"", CREDENTIALS_MALFORMED, "empty"},
    {"Basic", CREDENTIALS_MALFORMED, "Basic without"},
    {"Basic ", CREDENTIALS_MALFORMED, "Basic without"},
    {" Basic YTpi", CREDENTIALS_MALFORMED, "no scheme"},
    {"Bearer abc.def", CREDENTIALS_OTHER_SCHEME, "not the Basic"},
    {"Digest username=\"a\"", CREDENTIALS_OTHER_SCHEME, "not the Basic"},
    {"Basicc YTpi", CREDENTIALS_OTHER_SCHEME, "not the Basic"},
    {"Basic  YTpi", CREDENTIALS_MALFORMED, "base64 length"},     /* two spaces */
    {"Basic  YTpjZA=", CREDENTIALS_MALFORMED, "not a base64"},   /* two spaces, length 4n */
    {"Basic YTpi ", CREDENTIALS_MALFORMED, "base64 length"},
    {"Basic YTp", CREDENTIALS_MALFORMED, "base64 length"},        /* unpadded */
    {"Basic YT=i", CREDENTIALS_MALFORMED, "base64 padding"},
    {"Basic ====", CREDENTIALS_MALFORMED, "base64 padding"},
    {"Basic YTpi!!!!", CREDENTIALS_MALFORMED, "not a base64"},
    {"Basic YTpi-_==", CREDENTIALS_MALFORMED, "not a base64"},    /* URL-safe alphabet */
    {"Basic YTo9", CREDENTIALS_OK, NULL},                         /* "a:=" */
    {"Basic YWxpY2U=", CREDENTIALS_MALFORMED, "no ':'"},          /* "alice" */
    {"Basic OnB3", CREDENTIALS_MALFORMED, "empty user"},          /* ":pw" */
    {"Basic YTpiAA==", CREDENTIALS_MALFORMED, "not UTF-8"},       /* "a:b\0" */
    {"Basic YQpiOmM=", CREDENTIALS_MALFORMED, "not UTF-8"},       /* "a\nb:c" */
    {"Basic YTpi/w==", CREDENTIALS_MALFORMED, "not UTF-8"},       /* "a:b\xff" */
    {"Basic wK86Yg==", CREDENTIALS_MALFORMED, "not UTF-8"},       /* overlong "\xc0\xaf:b" */
    {"Basic YTpiwoU=", CREDENTIALS_MALFORMED, "not UTF-8"},       /* "a:b" + U+0085 (C1) */
    {"Basic YTpi7aCA", CREDENTIALS_MALFORMED, "not UTF-8"},       /* a surrogate */
    {"Basic YTpj", CREDENTIALS_OK, NULL},                         /* "a:c" sanity */
    {"Basic YTpjZA=", CREDENTIALS_MALFORMED, "base64 length"},
    {"Basic YTpjZB==", CREDENTIALS_MALFORMED, "non-zero unused"},  /* 'B' leaves bits set */
    {"Basic YTpjZGU=", CREDENTIALS_OK, NULL},
    {"Basic YTpjZGV=", CREDENTIALS_MALFORMED, "non-zero unused"},
};

static void test_good(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    struct credentials c;
    const char *why = NULL;
    assert_int_equal(credentials_parse(good[i].value, strlen(good[i].value), &c, &why), CREDENTIALS_OK);
    assert_string_equal(c.user, good[i].user);
    assert_int_equal(c.user_len, strlen(good[i].user));
    assert_string_equal(c.pass, good[i].pass);
    assert_int_equal(c.pass_len, strlen(good[i].pass));
    credentials_wipe(&c);
    assert_int_equal(c.user[0], 0);
  }
}

static void test_bad(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct credentials c;
    const char *why = NULL;
    enum credentials_status st = credentials_parse(bad[i].value, strlen(bad[i].value), &c, &why);
    if (st != bad[i].want) fail_msg("case %zu \"%s\": status %d, want %d (%s)", i, bad[i].value, st, bad[i].want, why);
    if (bad[i].want == CREDENTIALS_OK) continue;
    assert_non_null(why);
    if (!strstr(why, bad[i].why)) fail_msg("case %zu: why \"%s\", want \"%s\"", i, why, bad[i].why);
    assert_int_equal(c.pass_len, 0);
    assert_int_equal(c.pass[0], 0);
  }
}

/* The input is not NUL-terminated: only |len| bytes are read. */
static void test_length_bounded(void **state) {
  (void)state;
  const char v[] = "Basic YWxpY2U6YWxpY2Utc2VjcmV0XXXX";
  struct credentials c;
  const char *why;
  assert_int_equal(credentials_parse(v, strlen(v) - 4, &c, &why), CREDENTIALS_OK);
  assert_string_equal(c.pass, "alice-secret");
}

/* 8 KiB of base64 (the malformed-header case) is refused before decoding; the longest
 * user and password fit. */
static void test_sizes(void **state) {
  (void)state;
  static char v[8192 + 7];
  memcpy(v, "Basic ", 6);
  memset(v + 6, 'Q', 8192);
  struct credentials c;
  const char *why;
  assert_int_equal(credentials_parse(v, 6 + 8192, &c, &why), CREDENTIALS_MALFORMED);
  assert_string_equal(why, "credentials too long");

  /* user of 255 'u', password of 1024 'p': base64 of 1280 bytes. */
  static unsigned char raw[CREDENTIALS_USER_MAX + 1 + CREDENTIALS_PASS_MAX + 1];
  for (int extra = 0; extra <= 1; extra++) {
    size_t n = 0;
    memset(raw, 'u', CREDENTIALS_USER_MAX);
    n = CREDENTIALS_USER_MAX;
    raw[n++] = ':';
    memset(raw + n, 'p', CREDENTIALS_PASS_MAX + (size_t)extra);
    n += CREDENTIALS_PASS_MAX + (size_t)extra;
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 6;
    for (size_t i = 0; i < n; i += 3) {
      uint32_t w = (uint32_t)raw[i] << 16 | (i + 1 < n ? (uint32_t)raw[i + 1] << 8 : 0) | (i + 2 < n ? raw[i + 2] : 0);
      v[o++] = tbl[w >> 18 & 63];
      v[o++] = tbl[w >> 12 & 63];
      v[o++] = i + 1 < n ? tbl[w >> 6 & 63] : '=';
      v[o++] = i + 2 < n ? tbl[w & 63] : '=';
    }
    enum credentials_status st = credentials_parse(v, o, &c, &why);
    if (extra == 0) {
      assert_int_equal(st, CREDENTIALS_OK);
      assert_int_equal(c.user_len, CREDENTIALS_USER_MAX);
      assert_int_equal(c.pass_len, CREDENTIALS_PASS_MAX);
    } else {
      assert_int_equal(st, CREDENTIALS_MALFORMED);
      assert_string_equal(why, "credentials too long");
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good),
      cmocka_unit_test(test_bad),
      cmocka_unit_test(test_length_bounded),
      cmocka_unit_test(test_sizes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
