/* Unit tests for proxy/ws_resp.c, the WebSocket backend response head parser (checklist XC-07,
 * XC-09; issue 8 fuzzing item). Every case is fed whole, one byte at a time and split at every
 * position: the result must not depend on the split, and the head end is exact. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "src/util.h"
#include "proxy/ws_resp.h"

#define HEAD_MAX 16384

struct outcome {
  enum ws_resp_state state;
  size_t head_end; /* absolute offset where the head ended (DONE) */
  struct ws_resp r;
};

/* Feeds |len| bytes in pieces that end at the offsets in |cuts| (ascending, < len), then the rest. */
static struct outcome run(const char *s, size_t len, size_t max, const size_t *cuts, size_t ncuts) {
  struct outcome o;
  size_t off = 0;
  memset(&o, 0, sizeof(o));
  ws_resp_init(&o.r, max);
  o.state = WS_RESP_MORE;
  for (size_t i = 0; i <= ncuts && o.state == WS_RESP_MORE; i++) {
    size_t end = i < ncuts ? cuts[i] : len;
    size_t used = 0;
    o.state = ws_resp_feed(&o.r, s + off, end - off, &used);
    if (o.state == WS_RESP_DONE) {
      assert_true(used > 0 && used <= end - off);
      o.head_end = off + used;
    } else if (o.state == WS_RESP_MORE) {
      assert_int_equal(used, end - off);
    }
    off = end;
  }
  return o;
}

static void assert_same(const struct outcome *a, const struct outcome *b, const char *what) {
  if (a->state != b->state) fail_msg("%s: state %d vs %d", what, a->state, b->state);
  if (a->state != WS_RESP_DONE) return;
  assert_int_equal(a->head_end, b->head_end);
  assert_int_equal(a->r.status, b->r.status);
  assert_string_equal(a->r.accept, b->r.accept);
  assert_string_equal(a->r.protocol, b->r.protocol);
  assert_string_equal(a->r.extensions, b->r.extensions);
  assert_int_equal(a->r.upgrade_websocket, b->r.upgrade_websocket);
  assert_int_equal(a->r.connection_upgrade, b->r.connection_upgrade);
}

/* Parses |s| whole, byte by byte and in two pieces at every split; returns the whole outcome. */
static struct outcome parse(const char *s, size_t max) {
  size_t len = strlen(s);
  struct outcome whole = run(s, len, max, NULL, 0);
  size_t *every = xmalloc(len * sizeof(size_t));
  for (size_t i = 1; i < len; i++) every[i - 1] = i;
  struct outcome bytes = run(s, len, max, every, len ? len - 1 : 0);
  assert_same(&whole, &bytes, "byte by byte");
  for (size_t i = 1; i < len; i++) {
    struct outcome two = run(s, len, max, &i, 1);
    assert_same(&whole, &two, "two pieces");
  }
  free(every);
  return whole;
}

#define HEAD_101                                                                                  \
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"          \
  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"

static void test_101_with_frame_after(void **state) {
  (void)state;
  const char *head = HEAD_101 "Sec-WebSocket-Protocol: chat  \r\n"
                              "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
  char buf[512];
  snprintf(buf, sizeof(buf), "%s\x81\x05hello", head);
  struct outcome o = parse(buf, HEAD_MAX);
  assert_int_equal(o.state, WS_RESP_DONE);
  assert_int_equal(o.head_end, strlen(head)); /* the frame is not part of the head (XC-09) */
  assert_int_equal(o.r.status, 101);
  assert_string_equal(o.r.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert_string_equal(o.r.protocol, "chat"); /* trailing whitespace is not part of the value */
  assert_string_equal(o.r.extensions, "permessage-deflate");
  assert_int_equal(o.r.upgrade_websocket, 1);
  assert_int_equal(o.r.connection_upgrade, 1);
  /* Once done, more input is not parsed. */
  size_t used = 0;
  assert_int_equal(ws_resp_feed(&o.r, "junk", 4, &used), WS_RESP_DONE);
}

static void test_upgrade_and_connection_tokens(void **state) {
  (void)state;
  struct outcome o = parse("HTTP/1.1 101 OK\r\nUPGRADE: WebSocket\r\nConnection: keep-alive, upgrade\r\n\r\n", HEAD_MAX);
  assert_int_equal(o.state, WS_RESP_DONE);
  assert_int_equal(o.r.upgrade_websocket, 1);
  assert_int_equal(o.r.connection_upgrade, 1);
  assert_string_equal(o.r.accept, "");
  o = parse("HTTP/1.1 101 OK\r\nUpgrade: websocket, h2c\r\n\r\n", HEAD_MAX);
  assert_int_equal(o.state, WS_RESP_DONE);
  assert_int_equal(o.r.upgrade_websocket, 0); /* a 101 switches to one protocol */
  assert_int_equal(o.r.connection_upgrade, 0);
  o = parse("HTTP/1.1 101 OK\r\nUpgrade: websocketwebsocketwebsocket\r\nConnection: close\r\n\r\n", HEAD_MAX);
  assert_int_equal(o.r.upgrade_websocket, 0);
  assert_int_equal(o.r.connection_upgrade, 0);
}

static void test_refusal_with_body(void **state) {
  (void)state;
  const char *head = "HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\nSec-WebSocket-Version: 13\r\n\r\n";
  char buf[256];
  snprintf(buf, sizeof(buf), "%snope!", head);
  struct outcome o = parse(buf, HEAD_MAX);
  assert_int_equal(o.state, WS_RESP_DONE);
  assert_int_equal(o.r.status, 403);
  assert_int_equal(o.head_end, strlen(head));
  o = parse("HTTP/1.0 426 Upgrade Required\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", HEAD_MAX);
  assert_int_equal(o.state, WS_RESP_DONE);
  assert_int_equal(o.r.status, 426);
}

/* Interim responses are skipped with their fields and any body they claim. */
static void test_interim_responses(void **state) {
  (void)state;
  const char *s = "HTTP/1.1 100 Continue\r\nSec-WebSocket-Protocol: stale\r\n\r\n"
                  "HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\nLink: </a>\r\n\r\n" HEAD_101 "\r\nXYZ";
  struct outcome o = parse(s, HEAD_MAX);
  assert_int_equal(o.state, WS_RESP_DONE);
  assert_int_equal(o.r.status, 101);
  assert_string_equal(o.r.protocol, "");
  assert_int_equal(o.head_end, strlen(s) - 3);
}

static void test_repeated_fields(void **state) {
  (void)state;
  struct outcome o = parse("HTTP/1.1 101 OK\r\nSec-WebSocket-Extensions: a\r\nSec-WebSocket-Extensions:\r\n"
                           "Sec-WebSocket-Extensions: b; x=1\r\n\r\n",
                           HEAD_MAX);
  assert_int_equal(o.state, WS_RESP_DONE);
  assert_string_equal(o.r.extensions, "a, b; x=1"); /* RFC 9110 §5.3; the empty line adds nothing */
  o = parse("HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: a\r\nSec-WebSocket-Accept: a\r\n\r\n", HEAD_MAX);
  assert_int_equal(o.state, WS_RESP_ERROR);
  assert_string_equal(o.r.error, "Sec-WebSocket-Accept repeated");
  o = parse("HTTP/1.1 101 OK\r\nSec-WebSocket-Protocol: a\r\nsec-websocket-protocol: b\r\n\r\n", HEAD_MAX);
  assert_int_equal(o.state, WS_RESP_ERROR);
  assert_string_equal(o.r.error, "Sec-WebSocket-Protocol repeated");
}

/* A value past its buffer is an error, never a silently cut value; the limits are exact. */
static void test_value_limits(void **state) {
  static char buf[4096], val[1024];
  (void)state;
  memset(val, 'p', WS_RESP_PROTOCOL_MAX);
  val[WS_RESP_PROTOCOL_MAX] = '\0';
  snprintf(buf, sizeof(buf), "HTTP/1.1 101 OK\r\nSec-WebSocket-Protocol: %s\r\n\r\n", val);
  struct outcome o = run(buf, strlen(buf), HEAD_MAX, NULL, 0);
  assert_int_equal(o.state, WS_RESP_DONE);
  assert_int_equal(strlen(o.r.protocol), WS_RESP_PROTOCOL_MAX);
  snprintf(buf, sizeof(buf), "HTTP/1.1 101 OK\r\nSec-WebSocket-Protocol: %sp\r\n\r\n", val);
  o = parse(buf, HEAD_MAX);
  assert_int_equal(o.state, WS_RESP_ERROR);
  assert_string_equal(o.r.error, "Sec-WebSocket-Protocol too long");
  memset(val, 'e', WS_RESP_EXTENSIONS_MAX + 1);
  val[WS_RESP_EXTENSIONS_MAX + 1] = '\0';
  snprintf(buf, sizeof(buf), "HTTP/1.1 101 OK\r\nSec-WebSocket-Extensions: %s\r\n\r\n", val);
  o = run(buf, strlen(buf), HEAD_MAX, NULL, 0);
  assert_int_equal(o.state, WS_RESP_ERROR);
  /* A long name we do not keep is fine. */
  memset(val, 'n', 100);
  val[100] = '\0';
  snprintf(buf, sizeof(buf), "HTTP/1.1 101 OK\r\nsec-websocket-accept%s: x\r\n\r\n", val);
  o = parse(buf, HEAD_MAX);
  assert_int_equal(o.state, WS_RESP_DONE);
  assert_string_equal(o.r.accept, "");
}

/* The whole-head limit, interim heads included, whatever the split. */
static void test_head_limit(void **state) {
  (void)state;
  const char *s = HEAD_101 "\r\n";
  size_t len = strlen(s);
  struct outcome o = parse(s, len);
  assert_int_equal(o.state, WS_RESP_DONE);
  o = parse(s, len - 1);
  assert_int_equal(o.state, WS_RESP_ERROR);
  assert_string_equal(o.r.error, "response head too large");
  char two[512];
  snprintf(two, sizeof(two), "HTTP/1.1 100 Continue\r\n\r\n%s", s);
  o = parse(two, len + 10);
  assert_int_equal(o.state, WS_RESP_ERROR);
}

static void test_malformed(void **state) {
  static const char *const bad[] = {
      "FOO\r\n\r\n",
      "HTTP/1.1 abc\r\n\r\n",
      "HTTP/1.1 099 Low\r\n\r\n",
      "HTTP/1.1 101 OK\r\nUpgrade websocket\r\n\r\n",
      "HTTP/1.1 101 OK\r\nX: a\x01" "b\r\n\r\n",
  };
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    struct outcome o = parse(bad[i], HEAD_MAX);
    if (o.state != WS_RESP_ERROR) fail_msg("case %zu parsed: state %d", i, o.state);
    assert_non_null(o.r.error);
  }
  /* Incomplete is not an error, just more to read. */
  struct outcome o = parse("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n", HEAD_MAX);
  assert_int_equal(o.state, WS_RESP_MORE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_101_with_frame_after), cmocka_unit_test(test_upgrade_and_connection_tokens),
      cmocka_unit_test(test_refusal_with_body),    cmocka_unit_test(test_interim_responses),
      cmocka_unit_test(test_repeated_fields),      cmocka_unit_test(test_value_limits),
      cmocka_unit_test(test_head_limit),           cmocka_unit_test(test_malformed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
