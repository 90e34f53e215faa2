/* Unit tests for h1/h1_resp.c: response heads, tunnel heads, and error responses (built from the
 * request path's Proxy-Status value and body, src/pxerr.c) whose Content-Length matches the body
 * and whose Proxy-Status cannot be used for header injection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h1/h1_resp.h"
#include "proxy/request.h"
#include "src/pxerr.h"

/* An error answer as the request path describes it and h1 serialises it. */
static size_t error_resp(char *buf, size_t cap, enum pxerr e, const char *detail) {
  char ps[PXERR_PROXY_STATUS_MAX], body[PXERR_BODY_MAX];
  pxerr_proxy_status(ps, sizeof(ps), e, detail);
  pxerr_body(body, sizeof(body), pxerr_status(e), detail);
  return h1_resp_error(buf, cap, pxerr_status(e), detail, ps, body, NULL, 0);
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
  assert_true(strncmp(buf, "HTTP/1.1 503 Service Unavailable\r\n", strlen("HTTP/1.1 503 Service Unavailable\r\n")) == 0);
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
  size_t n = error_resp(buf, sizeof(buf), PXERR_CONN_REFUSED, "connection refused");
  assert_true(n > 0);
  const char *body = check_framing(buf, n);
  /* The reason phrase explains the refusal to clients that show only the status line. */
  assert_true(strncmp(buf, "HTTP/1.1 502 Bad Gateway (connection refused)\r\n", strlen("HTTP/1.1 502 Bad Gateway (connection refused)\r\n")) == 0);
  assert_non_null(
      strstr(buf, "\r\nProxy-Status: h2tunnel; error=connection_refused; details=\"connection refused\"\r\n"));
  assert_non_null(strstr(buf, "\r\nConnection: close\r\n"));
  assert_non_null(strstr(buf, "\r\nCache-Control: no-store\r\n"));
  assert_non_null(strstr(buf, "\r\nContent-Type: text/plain; charset=utf-8\r\n"));
  assert_string_equal(body, "502 Bad Gateway: connection refused\n");

  /* No detail: no details parameter. */
  n = error_resp(buf, sizeof(buf), PXERR_DEST_PROHIBITED, NULL);
  body = check_framing(buf, n);
  assert_true(strncmp(buf, "HTTP/1.1 403 Forbidden\r\n", strlen("HTTP/1.1 403 Forbidden\r\n")) == 0);
  assert_non_null(strstr(buf, "\r\nProxy-Status: h2tunnel; error=destination_ip_prohibited\r\n"));
  assert_null(strstr(buf, "details="));
  assert_string_equal(body, "403 Forbidden\n");

  /* Too small: 0. */
  assert_int_equal(error_resp(buf, 40, PXERR_CONN_REFUSED, "x"), 0);

  /* A status relayed from a WebSocket backend: no Proxy-Status. */
  n = h1_resp_error(buf, sizeof(buf), 403, NULL, "", "403: refused\n", NULL, 0);
  body = check_framing(buf, n);
  assert_null(strstr(buf, "Proxy-Status"));
  assert_string_equal(body, "403: refused\n");

  /* A 407 carries its challenge (and still closes: H1C-09). */
  const struct px_header challenge[] = {{"proxy-authenticate", "Basic realm=\"r\", charset=\"UTF-8\""}};
  n = h1_resp_error(buf, sizeof(buf), 407, NULL, "h2tunnel; error=http_request_denied", "407\n", challenge, 1);
  body = check_framing(buf, n);
  assert_non_null(strstr(buf, "\r\nproxy-authenticate: Basic realm=\"r\", charset=\"UTF-8\"\r\n"));
  assert_non_null(strstr(buf, "\r\nConnection: close\r\n"));
  assert_string_equal(body, "407\n");
}

/* H1C-12, H1C-14: "403 Forbidden (port 22 not allowed)"; a detail never breaks the status line
 * (control bytes become spaces) and is cut to H1_RESP_DETAIL_MAX. */
static void test_resp_reason_phrase(void **state) {
  (void)state;
  char buf[2048], longd[300];
  size_t n = error_resp(buf, sizeof(buf), PXERR_PORT_DENIED, "port 22 not allowed");
  check_framing(buf, n);
  assert_true(strncmp(buf, "HTTP/1.1 403 Forbidden (port 22 not allowed)\r\n", strlen("HTTP/1.1 403 Forbidden (port 22 not allowed)\r\n")) == 0);
  n = h1_resp_error(buf, sizeof(buf), 502, "bad\r\nInjected: 1\x7f", "", "x\n", NULL, 0);
  check_framing(buf, n);
  assert_true(strncmp(buf, "HTTP/1.1 502 Bad Gateway (bad  Injected: 1 )\r\n", strlen("HTTP/1.1 502 Bad Gateway (bad  Injected: 1 )\r\n")) == 0);
  assert_null(strstr(buf, "\r\nInjected"));
  memset(longd, 'd', sizeof(longd) - 1);
  longd[sizeof(longd) - 1] = '\0';
  n = h1_resp_error(buf, sizeof(buf), 502, longd, "", "x\n", NULL, 0);
  check_framing(buf, n);
  const char *eol = strstr(buf, "\r\n");
  assert_int_equal((size_t)(eol - buf), strlen("HTTP/1.1 502 Bad Gateway ()") + H1_RESP_DETAIL_MAX);
}

static void test_resp_tunnel(void **state) {
  (void)state;
  char buf[512];
  struct px_header cp[] = {{"capsule-protocol", "?1"}};
  size_t n = h1_resp_tunnel(buf, sizeof(buf), NULL, NULL, 0);
  assert_int_equal(n, strlen(buf));
  assert_string_equal(buf, "HTTP/1.1 200 Connection Established\r\n\r\n");
  n = h1_resp_tunnel(buf, sizeof(buf), "connect-udp", cp, 1);
  assert_int_equal(n, strlen(buf));
  assert_string_equal(buf, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: connect-udp\r\n"
                           "capsule-protocol: ?1\r\n\r\n");
  assert_int_equal(h1_resp_tunnel(buf, 20, "connect-udp", cp, 1), 0); /* too small: nothing */
}

static void test_resp_error_no_injection(void **state) {
  (void)state;
  char buf[1024];
  size_t n = error_resp(buf, sizeof(buf), PXERR_BAD_REQUEST, "bad\r\nSet-Cookie: evil=1\r\n\"quoted\"");
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
  size_t n = error_resp(buf, sizeof(buf), PXERR_CONN_TIMEOUT, detail);
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
  assert_true(strncmp(buf, "HTTP/1.1 299 Unknown\r\n", strlen("HTTP/1.1 299 Unknown\r\n")) == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resp_head),
      cmocka_unit_test(test_resp_error),
      cmocka_unit_test(test_resp_reason_phrase),
      cmocka_unit_test(test_resp_tunnel),
      cmocka_unit_test(test_resp_error_no_injection),
      cmocka_unit_test(test_resp_error_long_detail),
      cmocka_unit_test(test_unknown_status_reason),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
