/* Unit tests for the request half of proxy/ws_upgrade.c: ws_upgrade_build_request checks the
 * client's fields and serializes the backend Upgrade request (checklist XC-06; issue 8 item 2:
 * the request used to be built with `n += snprintf` into a stack buffer and ran off it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "src/strbuf.h"
#include "src/util.h"
#include "proxy/ws_upgrade.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define REQ_MAX 32768

static enum pxerr build(const struct ws_upgrade_req *req, size_t max, struct strbuf *out, const char **why) {
  *why = NULL;
  enum pxerr e = ws_upgrade_build_request(req, KEY, max, out, why);
  if (e == PXERR_NONE) {
    assert_null(*why);
  } else {
    assert_non_null(*why);
    assert_null(out->p); /* nothing is kept on error */
  }
  return e;
}

static void test_request_bytes(void **state) {
  struct ws_upgrade_req req = {.path = "/chat?room=1&x=%41", .host = "chat.example:443"};
  struct strbuf out;
  const char *why;
  (void)state;
  assert_int_equal(build(&req, REQ_MAX, &out, &why), PXERR_NONE);
  assert_string_equal(strbuf_str(&out), "GET /chat?room=1&x=%41 HTTP/1.1\r\nHost: chat.example:443\r\n"
                                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                        "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n");
  strbuf_dispose(&out);
  req.version = "8";
  req.protocol = "chat, superchat";
  req.extensions = "permessage-deflate; client_max_window_bits";
  req.origin = "https://app.example";
  assert_int_equal(build(&req, REQ_MAX, &out, &why), PXERR_NONE);
  assert_string_equal(strbuf_str(&out), "GET /chat?room=1&x=%41 HTTP/1.1\r\nHost: chat.example:443\r\n"
                                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                        "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 8\r\n"
                                        "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                                        "Origin: https://app.example\r\n\r\n");
  strbuf_dispose(&out);
}

struct text_case {
  const char *text;
  int ok;
};

/* RFC 6455 §4.1 / §11.3.5: 0..255, digits only, no leading zero. */
static const struct text_case versions[] = {
    {"0", 1},    {"13", 1},   {"8", 1},    {"255", 1},  {"256", 0},  {"013", 0}, {"00", 0},
    {"", 0},     {"1a", 0},   {"+1", 0},   {" 13", 0},  {"13 ", 0},  {"1000", 0}, {"-1", 0},
    {"13,8", 0}, {"9999999999999999999999", 0},
};

/* origin-form (RFC 9112 §3.2.1) with RFC 3986 characters only. */
static const struct text_case paths[] = {
    {"/", 1},          {"/chat", 1},     {"//a", 1},        {"/a@b:c", 1},      {"/a?b=c&d=%2F", 1},
    {"/~-._!$&'()*+,;=", 1}, {"/?", 1},  {"", 0},           {"chat", 0},        {"*", 0},
    {"http://x/", 0},  {"/a b", 0},      {"/a#b", 0},       {"/%", 0},          {"/%4", 0},
    {"/%zz", 0},       {"/a\r\nX: y", 0}, {"/a\n", 0},      {"/\x7f", 0},       {"/\xc3\xa9", 0},
    {"/a\\b", 0},      {"/a|b", 0},      {"/{x}", 0},       {"/\"", 0},         {"/a\tb", 0},
};

static void test_version_and_path(void **state) {
  struct strbuf out;
  const char *why;
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(versions); i++) {
    struct ws_upgrade_req req = {.path = "/", .host = "h:1", .version = versions[i].text};
    enum pxerr e = build(&req, REQ_MAX, &out, &why);
    if (e != (versions[i].ok ? PXERR_NONE : PXERR_BAD_REQUEST)) fail_msg("version \"%s\": %d", versions[i].text, e);
    if (!versions[i].ok) assert_non_null(strstr(why, "Sec-WebSocket-Version"));
    strbuf_dispose(&out);
  }
  for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
    struct ws_upgrade_req req = {.path = paths[i].text, .host = "h:1"};
    enum pxerr e = build(&req, REQ_MAX, &out, &why);
    if (e != (paths[i].ok ? PXERR_NONE : PXERR_BAD_REQUEST)) fail_msg("path \"%s\": %d", paths[i].text, e);
    if (!paths[i].ok) assert_non_null(strstr(why, "origin-form"));
    strbuf_dispose(&out);
  }
  struct ws_upgrade_req nopath = {.host = "h:1"};
  assert_int_equal(build(&nopath, REQ_MAX, &out, &why), PXERR_BAD_REQUEST);
}

/* No control byte but HTAB in anything copied into the request: CR/LF would split it. */
static void test_field_values(void **state) {
  static const char *const bad[] = {"a\r\nX-Injected: 1", "a\n", "a\r", "\x01", "a\x7f", "\x1b[0m"};
  static const char *const good[] = {"a\tb", "chat", "x y", "\xc3\xa9", "~!@#$%^&*()"};
  struct strbuf out;
  const char *why;
  (void)state;
  for (int field = 0; field < 4; field++) {
    for (size_t i = 0; i < ARRAY_SIZE(bad) + ARRAY_SIZE(good); i++) {
      int is_bad = i < ARRAY_SIZE(bad);
      const char *v = is_bad ? bad[i] : good[i - ARRAY_SIZE(bad)];
      struct ws_upgrade_req req = {.path = "/", .host = "h:1"};
      const char **slot[] = {&req.host, &req.protocol, &req.extensions, &req.origin};
      *slot[field] = v;
      enum pxerr e = build(&req, REQ_MAX, &out, &why);
      if (e != (is_bad ? PXERR_BAD_REQUEST : PXERR_NONE)) fail_msg("field %d value %zu: %d", field, i, e);
      if (!is_bad) assert_non_null(strstr(strbuf_str(&out), v));
      strbuf_dispose(&out);
    }
  }
  struct ws_upgrade_req nohost = {.path = "/", .host = ""};
  assert_int_equal(build(&nohost, REQ_MAX, &out, &why), PXERR_BAD_REQUEST);
}

/* The limit is exact, and the sizes (25 KB path, 40 KB field) end in 431, not a crash. */
static void test_size_limit(void **state) {
  static char path[25001], ext[40001];
  struct strbuf out;
  const char *why;
  (void)state;
  struct ws_upgrade_req req = {.path = "/x", .host = "h:1", .protocol = "chat"};
  assert_int_equal(build(&req, REQ_MAX, &out, &why), PXERR_NONE);
  size_t exact = out.len;
  strbuf_dispose(&out);
  assert_int_equal(build(&req, exact, &out, &why), PXERR_NONE);
  assert_int_equal(out.len, exact);
  strbuf_dispose(&out);
  assert_int_equal(build(&req, exact - 1, &out, &why), PXERR_HEAD_TOO_LARGE);
  assert_non_null(strstr(why, "--max-header-bytes"));

  path[0] = '/';
  memset(path + 1, 'a', sizeof(path) - 2);
  memset(ext, 'x', sizeof(ext) - 1);
  struct ws_upgrade_req big = {.path = path, .host = "h:1", .extensions = ext, .protocol = ext, .origin = ext};
  assert_int_equal(build(&big, REQ_MAX, &out, &why), PXERR_HEAD_TOO_LARGE);
  /* With room enough (1 MiB, the largest --max-header-bytes) the same fields are sent whole. */
  assert_int_equal(build(&big, 1 << 20, &out, &why), PXERR_NONE);
  assert_true(out.len > 25000 + 3 * 40000);
  assert_int_equal(strncmp(strbuf_str(&out) + out.len - 4, "\r\n\r\n", 4), 0);
  strbuf_dispose(&out);
}

static void test_accept_for_key(void **state) {
  char out[32];
  (void)state;
  ws_accept_for_key(KEY, out); /* RFC 6455 §1.3's example */
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_request_bytes),  cmocka_unit_test(test_version_and_path),
      cmocka_unit_test(test_field_values),   cmocka_unit_test(test_size_limit),
      cmocka_unit_test(test_accept_for_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
