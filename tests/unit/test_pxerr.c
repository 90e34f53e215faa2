/* Unit tests for src/pxerr.c: each proxy error's HTTP status, RFC 9209 error type and metric name
 * come from one table, and every status it uses has a reason phrase; the one Proxy-Status
 * serialisation (RFC 8941 sf-string details, truncation safety) and the error body. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "src/pxerr.h"

static void test_table(void **state) {
  (void)state;
  assert_int_equal(pxerr_status(PXERR_NONE), 200);
  assert_int_equal(pxerr_status(PXERR_BAD_REQUEST), 400);
  assert_string_equal(pxerr_token(PXERR_BAD_REQUEST), "http_request_error");
  assert_int_equal(pxerr_status(PXERR_HEAD_TOO_LARGE), 431);
  assert_int_equal(pxerr_status(PXERR_PORT_DENIED), 403);
  assert_string_equal(pxerr_token(PXERR_PORT_DENIED), "http_request_denied");
  assert_int_equal(pxerr_status(PXERR_DEST_PROHIBITED), 403);
  assert_string_equal(pxerr_token(PXERR_DEST_PROHIBITED), "destination_ip_prohibited");
  assert_int_equal(pxerr_status(PXERR_DNS_ERROR), 502);
  assert_string_equal(pxerr_token(PXERR_DNS_ERROR), "dns_error");
  assert_int_equal(pxerr_status(PXERR_DNS_TIMEOUT), 504);
  assert_string_equal(pxerr_token(PXERR_DNS_TIMEOUT), "dns_timeout");
  assert_int_equal(pxerr_status(PXERR_CONN_REFUSED), 502);
  assert_string_equal(pxerr_token(PXERR_CONN_REFUSED), "connection_refused");
  assert_int_equal(pxerr_status(PXERR_CONN_TIMEOUT), 504);
  assert_string_equal(pxerr_token(PXERR_CONN_TIMEOUT), "connection_timeout");
  assert_string_equal(pxerr_token(PXERR_UNREACHABLE), "destination_ip_unroutable");
  assert_int_equal(pxerr_status(PXERR_LIMIT), 503);
  assert_string_equal(pxerr_token(PXERR_LIMIT), "connection_limit_reached");
  assert_int_equal(pxerr_status(PXERR_INTERNAL), 500);
}

static void test_every_entry(void **state) {
  (void)state;
  for (int e = 0; e < PXERR_COUNT; e++) {
    int st = pxerr_status((enum pxerr)e);
    const char *tok = pxerr_token((enum pxerr)e);
    const char *name = pxerr_name((enum pxerr)e);
    assert_true(st >= 200 && st <= 599);
    assert_non_null(tok);
    assert_non_null(name);
    assert_true(tok[0] != '\0' && name[0] != '\0');
    /* Tokens are sf-tokens used unquoted in Proxy-Status: lowercase letters and '_'. */
    for (const char *p = tok; *p; p++) assert_true(islower((unsigned char)*p) || *p == '_');
    /* Every status the proxy sends has a real reason phrase. */
    assert_string_not_equal(http_reason(st), "Unknown");
  }
}

static void test_reasons(void **state) {
  (void)state;
  assert_string_equal(http_reason(101), "Switching Protocols");
  assert_string_equal(http_reason(200), "OK");
  assert_string_equal(http_reason(407), "Proxy Authentication Required");
  assert_string_equal(http_reason(431), "Request Header Fields Too Large");
  assert_string_equal(http_reason(502), "Bad Gateway");
  assert_string_equal(http_reason(504), "Gateway Timeout");
  assert_string_equal(http_reason(999), "Unknown");
}

static void test_sf_string(void **state) {
  (void)state;
  char out[64];
  assert_int_equal(pxerr_sf_string(out, sizeof(out), "connection refused"), 20);
  assert_string_equal(out, "\"connection refused\"");
  assert_int_equal(pxerr_sf_string(out, sizeof(out), ""), 2);
  assert_string_equal(out, "\"\"");
  assert_int_equal(pxerr_sf_string(out, sizeof(out), NULL), 2);
  assert_string_equal(out, "\"\"");
  pxerr_sf_string(out, sizeof(out), "say \"hi\" \\o/");
  assert_string_equal(out, "\"say \\\"hi\\\" \\\\o/\"");
  /* Controls, DEL and non-ASCII bytes become '?'; sf-strings are printable ASCII only. */
  pxerr_sf_string(out, sizeof(out), "a\r\nb\tc\x7f" "d\xc3\xa9");
  assert_string_equal(out, "\"a??b?c?d??\"");
  pxerr_sf_string(out, sizeof(out), " ~");
  assert_string_equal(out, "\" ~\"");
}

/* Whatever the capacity, the result is NUL-terminated within it, quoted at both ends, and never
 * ends inside an escape. */
static void test_sf_string_truncation(void **state) {
  (void)state;
  const char *inputs[] = {"abcdefghij", "\"\"\"\"\"\"", "\\\\\\\\\\", "a\"b\\c\"d\\e"};
  for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
    for (size_t cap = 0; cap < 30; cap++) {
      char buf[32];
      memset(buf, 'Z', sizeof(buf));
      size_t n = pxerr_sf_string(buf, cap, inputs[i]);
      if (cap < 3) {
        assert_int_equal(n, 0);
        assert_int_equal(buf[0], 'Z'); /* nothing written */
        continue;
      }
      assert_true(n < cap);
      assert_int_equal(buf[n], '\0');
      assert_int_equal(strlen(buf), n);
      assert_true(buf[cap] == 'Z'); /* nothing past cap */
      assert_true(n >= 2);
      assert_int_equal(buf[0], '"');
      assert_int_equal(buf[n - 1], '"');
      /* Inner part: every backslash escapes the next char, which is " or \. */
      for (size_t k = 1; k + 1 < n; k++) {
        if (buf[k] == '\\') {
          assert_true(k + 2 < n);
          assert_true(buf[k + 1] == '"' || buf[k + 1] == '\\');
          k++;
        } else {
          assert_true(buf[k] != '"');
        }
      }
    }
  }
  /* With ample room nothing is dropped. */
  char big[64];
  assert_int_equal(pxerr_sf_string(big, sizeof(big), "abcdefghij"), 12);
}

static void test_proxy_status(void **state) {
  (void)state;
  char ps[PXERR_PROXY_STATUS_MAX];
  size_t n = pxerr_proxy_status(ps, sizeof(ps), PXERR_CONN_REFUSED, "connection refused");
  assert_int_equal(n, strlen(ps));
  assert_string_equal(ps, "h2tunnel; error=connection_refused; details=\"connection refused\"");
  pxerr_proxy_status(ps, sizeof(ps), PXERR_DEST_PROHIBITED, NULL);
  assert_string_equal(ps, "h2tunnel; error=destination_ip_prohibited");
  /* No header injection: control bytes become '?', quotes are escaped. */
  pxerr_proxy_status(ps, sizeof(ps), PXERR_BAD_REQUEST, "a\r\nSet-Cookie: x\"");
  assert_string_equal(ps, "h2tunnel; error=http_request_error; details=\"a??Set-Cookie: x\\\"\"");
  /* A long detail is cut inside the sf-string, which stays closed. */
  char detail[1000];
  memset(detail, '"', sizeof(detail) - 1);
  detail[sizeof(detail) - 1] = '\0';
  n = pxerr_proxy_status(ps, sizeof(ps), PXERR_CONN_TIMEOUT, detail);
  assert_true(n < sizeof(ps));
  assert_int_equal(ps[n - 1], '"');
  assert_int_equal(ps[n - 2], '"'); /* an escaped quote, then the closing one */
  assert_int_equal(ps[n - 3], '\\');
}

static void test_body(void **state) {
  (void)state;
  char body[PXERR_BODY_MAX];
  size_t len = pxerr_body(body, sizeof(body), 502, "connection refused");
  assert_int_equal(len, strlen(body));
  assert_string_equal(body, "502 Bad Gateway: connection refused\n");
  pxerr_body(body, sizeof(body), 403, NULL);
  assert_string_equal(body, "403 Forbidden\n");
  char detail[600];
  memset(detail, 'd', sizeof(detail) - 1);
  detail[sizeof(detail) - 1] = '\0';
  size_t n = pxerr_body(body, sizeof(body), 504, detail);
  assert_int_equal(n, sizeof(body) - 1);
  assert_int_equal(strlen(body), n);
  assert_int_equal(body[n - 1], '\n'); /* cut, but still a line */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_every_entry),
      cmocka_unit_test(test_reasons),
      cmocka_unit_test(test_sf_string),
      cmocka_unit_test(test_sf_string_truncation),
      cmocka_unit_test(test_proxy_status),
      cmocka_unit_test(test_body),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
