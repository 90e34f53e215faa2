/* Unit tests for h1/h1_resp.c: RFC 8941 sf-string escaping (and its truncation safety), response
 * heads, and error responses whose Content-Length matches the body and whose Proxy-Status cannot
 * be used for header injection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h1/h1_resp.h"

static void test_sf_string(void **state) {
  (void)state;
  char out[64];
  assert_int_equal(h1_sf_string(out, sizeof(out), "connection refused"), 20);
  assert_string_equal(out, "\"connection refused\"");
  assert_int_equal(h1_sf_string(out, sizeof(out), ""), 2);
  assert_string_equal(out, "\"\"");
  assert_int_equal(h1_sf_string(out, sizeof(out), NULL), 2);
  assert_string_equal(out, "\"\"");
  h1_sf_string(out, sizeof(out), "say \"hi\" \\o/");
  assert_string_equal(out, "\"say \\\"hi\\\" \\\\o/\"");
  /* Controls, DEL and non-ASCII bytes become '?'; sf-strings are printable ASCII only. */
  h1_sf_string(out, sizeof(out), "a\r\nb\tc\x7f" "d\xc3\xa9");
  assert_string_equal(out, "\"a??b?c?d??\"");
  h1_sf_string(out, sizeof(out), " ~");
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
      size_t n = h1_sf_string(buf, cap, inputs[i]);
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
  assert_int_equal(h1_sf_string(big, sizeof(big), "abcdefghij"), 12);
}

static void test_resp_head(void **state) {
  (void)state;
  char buf[512];
  size_t n = h1_resp_head(buf, sizeof(buf), 200, "text/plain", 3, 0);
  assert_int_equal(n, strlen(buf));
  assert_string_equal(buf,
                      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
                      "Cache-Control: no-store\r\n\r\n");
  n = h1_resp_head(buf, sizeof(buf), 503, "text/plain", 9, 1);
  assert_int_equal(n, strlen(buf));
  assert_true(strncmp(buf, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
  assert_non_null(strstr(buf, "\r\nConnection: close\r\n\r\n"));
  assert_non_null(strstr(buf, "\r\nContent-Length: 9\r\n"));
  /* Too small: 0, and never a partial head. */
  size_t full = n;
  assert_int_equal(h1_resp_head(buf, full, 503, "text/plain", 9, 1), 0);
  assert_int_equal(h1_resp_head(buf, full + 1, 503, "text/plain", 9, 1), full);
}

/* Splits a response into head and body and checks Content-Length against the body. */
static const char *check_framing(const char *resp, size_t n) {
  assert_int_equal(strlen(resp), n);
  const char *end = strstr(resp, "\r\n\r\n");
  assert_non_null(end);
  const char *cl = strstr(resp, "\r\nContent-Length: ");
  assert_non_null(cl);
  assert_true(cl < end);
  size_t len = strtoul(cl + 18, NULL, 10);
  const char *body = end + 4;
  assert_int_equal(strlen(body), len);
  return body;
}

static void test_resp_error(void **state) {
  (void)state;
  char buf[1024];
  size_t n = h1_resp_error(buf, sizeof(buf), 502, "connection_refused", "connection refused");
  assert_true(n > 0);
  const char *body = check_framing(buf, n);
  assert_true(strncmp(buf, "HTTP/1.1 502 Bad Gateway\r\n", 26) == 0);
  assert_non_null(
      strstr(buf, "\r\nProxy-Status: h2tunnel; error=connection_refused; details=\"connection refused\"\r\n"));
  assert_non_null(strstr(buf, "\r\nConnection: close\r\n"));
  assert_non_null(strstr(buf, "\r\nCache-Control: no-store\r\n"));
  assert_non_null(strstr(buf, "\r\nContent-Type: text/plain; charset=utf-8\r\n"));
  assert_string_equal(body, "502 Bad Gateway: connection refused\n");

  /* No detail: no details parameter. */
  n = h1_resp_error(buf, sizeof(buf), 403, "destination_ip_prohibited", NULL);
  body = check_framing(buf, n);
  assert_non_null(strstr(buf, "\r\nProxy-Status: h2tunnel; error=destination_ip_prohibited\r\n"));
  assert_null(strstr(buf, "details="));
  assert_string_equal(body, "403 Forbidden\n");

  /* Too small: 0. */
  assert_int_equal(h1_resp_error(buf, 40, 502, "connection_refused", "x"), 0);
}

static void test_resp_error_no_injection(void **state) {
  (void)state;
  char buf[1024];
  size_t n = h1_resp_error(buf, sizeof(buf), 400, "http_request_error",
                           "bad\r\nSet-Cookie: evil=1\r\n\"quoted\"");
  const char *body = check_framing(buf, n);
  /* The head gets no new header line: the detail stays inside Proxy-Status as an sf-string. */
  char head[1024];
  size_t hlen = (size_t)(strstr(buf, "\r\n\r\n") - buf);
  memcpy(head, buf, hlen);
  head[hlen] = '\0';
  assert_null(strstr(head, "\r\nSet-Cookie"));
  assert_non_null(strstr(head, "details=\"bad??Set-Cookie: evil=1??\\\"quoted\\\"\"\r\n"));
  /* The text/plain body, framed by Content-Length, carries the detail as given. */
  assert_string_equal(body, "400 Bad Request: bad\r\nSet-Cookie: evil=1\r\n\"quoted\"\n");
}

static void test_resp_error_long_detail(void **state) {
  (void)state;
  char detail[600];
  memset(detail, 'd', sizeof(detail) - 1);
  detail[sizeof(detail) - 1] = '\0';
  char buf[2048];
  size_t n = h1_resp_error(buf, sizeof(buf), 504, "connection_timeout", detail);
  assert_true(n > 0);
  const char *body = check_framing(buf, n); /* Content-Length still matches a truncated body */
  assert_true(strlen(body) < sizeof(detail));
  const char *ps = strstr(buf, "details=\"");
  assert_non_null(ps);
  const char *close_q = strchr(ps + 9, '"');
  assert_non_null(close_q);
  assert_true(strncmp(close_q, "\"\r\n", 3) == 0);
}

static void test_unknown_status_reason(void **state) {
  (void)state;
  char buf[512];
  size_t n = h1_resp_head(buf, sizeof(buf), 299, "text/plain", 0, 0);
  assert_true(n > 0);
  assert_true(strncmp(buf, "HTTP/1.1 299 Unknown\r\n", 22) == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sf_string),
      cmocka_unit_test(test_sf_string_truncation),
      cmocka_unit_test(test_resp_head),
      cmocka_unit_test(test_resp_error),
      cmocka_unit_test(test_resp_error_no_injection),
      cmocka_unit_test(test_resp_error_long_detail),
      cmocka_unit_test(test_unknown_status_reason),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
