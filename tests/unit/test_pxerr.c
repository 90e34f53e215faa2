/* Unit tests for src/pxerr.c: each proxy error's HTTP status, RFC 9209 error type and metric name
 * come from one table, and every status it uses has a reason phrase. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_every_entry),
      cmocka_unit_test(test_reasons),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
