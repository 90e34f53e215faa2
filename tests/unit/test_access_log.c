/* The access log and error log under hostile field sizes (issue 8 item 2): every access line is
 * one valid flat JSON object whatever the bytes and lengths of its fields (cut, never
 * overflowing), and an error-log line longer than its buffer is cut, not dropped or overrun.
 * A small strict parser below checks the JSON, decoding each string so the cut can be compared
 * with the input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "src/config.h"
#include "src/log.h"
#include "src/strbuf.h"
#include "src/util.h"
#include "src/worker.h"
#include "proxy/request.h"

/* ---- a strict parser for the flat objects we log: {"key":"string"|integer,...} -------------- */

struct member {
  char key[32];
  char *str;      /* decoded string value (heap), or NULL for a number */
  long long num;
};

static const char *p_str(const char *p, const char *end, char **out) {
  size_t cap = (size_t)(end - p) + 1, n = 0;
  char *buf = xmalloc(cap);
  if (p >= end || *p != '"') goto bad;
  for (p++; p < end && *p != '"'; p++) {
    unsigned char c = (unsigned char)*p;
    if (c < 0x20 || c >= 0x7f) goto bad; /* we escape everything outside printable ASCII */
    if (c != '\\') {
      buf[n++] = (char)c;
      continue;
    }
    if (++p >= end) goto bad;
    if (*p == '"' || *p == '\\' || *p == '/') {
      buf[n++] = *p;
    } else if (*p == 'u' && end - p > 4) {
      unsigned v;
      if (sscanf(p + 1, "%4x", &v) != 1 || v > 0xff) goto bad;
      buf[n++] = (char)v;
      p += 4;
    } else {
      goto bad;
    }
  }
  if (p >= end) goto bad;
  buf[n] = '\0';
  *out = buf;
  return p + 1;
bad:
  free(buf);
  return NULL;
}

/* Returns the member count, or -1 if |s| is not exactly one flat JSON object. */
static int parse_flat(const char *s, size_t len, struct member *m, int max) {
  const char *p = s, *end = s + len;
  int n = 0;
  if (p >= end || *p++ != '{') return -1;
  while (p < end && n < max) {
    char *key = NULL;
    memset(&m[n], 0, sizeof(m[n]));
    p = p_str(p, end, &key);
    if (!p || strlen(key) >= sizeof(m[n].key)) {
      free(key);
      return -1;
    }
    strcpy(m[n].key, key);
    free(key);
    if (p >= end || *p++ != ':') return -1;
    if (p < end && *p == '"') {
      p = p_str(p, end, &m[n].str);
      if (!p) return -1;
    } else {
      char *e;
      m[n].num = strtoll(p, &e, 10);
      if (e == p || e > end) return -1;
      p = e;
    }
    n++;
    if (p < end && *p == ',') {
      p++;
      continue;
    }
    if (p < end && *p == '}' && p + 1 == end) return n;
    return -1;
  }
  return -1;
}

static void free_members(struct member *m, int n) {
  for (int i = 0; i < n; i++) free(m[i].str);
}

static const struct member *find(const struct member *m, int n, const char *key) {
  for (int i = 0; i < n; i++) {
    if (strcmp(m[i].key, key) == 0) return &m[i];
  }
  fail_msg("no member \"%s\"", key);
  return NULL;
}

/* The decoded value is |input| cut to a prefix and marked with "...", or |input| whole. */
static void assert_cut_of(const char *decoded, const char *input) {
  size_t n = strlen(decoded);
  if (strcmp(decoded, input) == 0) return;
  assert_true(n > 3);
  assert_string_equal(decoded + n - 3, "...");
  assert_int_equal(strncmp(decoded, input, n - 3), 0);
}

/* ---- fixture --------------------------------------------------------------------------------- */

static char *read_all(FILE *f, size_t *len) {
  static char buf[1 << 16];
  ssize_t n = pread(fileno(f), buf, sizeof(buf) - 1, 0);
  assert_true(n >= 0);
  buf[n] = '\0';
  *len = (size_t)n;
  return buf;
}

static void fill(char *dst, size_t size, const char *pattern) {
  size_t plen = strlen(pattern);
  for (size_t i = 0; i + 1 < size; i++) dst[i] = pattern[i % plen];
  dst[size - 1] = '\0';
}

static int g_answered;
static void m_answer_error(void *fe, const struct px_outcome *out) { g_answered = out->status; }
static const struct px_front_ops g_ops = {.answer_error = m_answer_error};

/* A refused request's line (written by the request path) with every outside field at its
 * largest, full of bytes that need escaping (6 bytes each for most). */
static void test_rejected_line_huge_fields(void **state) {
  static char target[10000], detail[20000];
  struct config cfg;
  struct worker *w = xcalloc(1, sizeof(*w));
  FILE *f = tmpfile();
  (void)state;
  assert_non_null(f);
  log_set_access_stream(f);
  config_init(&cfg);
  w->cfg = &cfg;
  assert_int_equal(uv_loop_init(&w->loop), 0);
  struct px_request *rq = px_request_new(w, PX_FRONT_H2, PX_PROTO_WEBSOCKET, &g_ops, NULL);
  fill(rq->client, sizeof(rq->client), "\"\x01\xff\\");
  fill(target, sizeof(target), "\\\x7f\"\x1f");
  fill(detail, sizeof(detail), "\x80\x02\"\\d");
  rq->authority = target; /* refused before it was interpreted: logged as asked for */

  g_answered = 0;
  px_request_fail(rq, PXERR_HEAD_TOO_LARGE, detail);
  assert_int_equal(g_answered, 431);

  size_t len;
  char *out = read_all(f, &len);
  assert_true(len > 2 && len <= LOG_ACCESS_LINE_MAX + 1);
  assert_int_equal(out[len - 1], '\n');
  assert_null(memchr(out, '\n', len - 1)); /* one line */
  struct member m[16];
  int n = parse_flat(out, len - 1, m, 16);
  if (n < 0) fail_msg("not a flat JSON object: %s", out);
  assert_int_equal(find(m, n, "status")->num, 431);
  assert_string_equal(find(m, n, "proto")->str, "websocket");
  assert_string_equal(find(m, n, "front")->str, "h2");
  assert_string_equal(find(m, n, "error")->str, "http_request_error");
  assert_true(strlen(find(m, n, "client")->str) > 0);
  assert_cut_of(find(m, n, "target")->str, target);
  assert_cut_of(find(m, n, "detail")->str, detail);
  assert_true(strlen(find(m, n, "detail")->str) < strlen(detail)); /* really cut */
  assert_true(strlen(find(m, n, "target")->str) < strlen(target));
  assert_non_null(find(m, n, "duration_ms"));
  free_members(m, n);

  log_set_access_stream(NULL);
  fclose(f);
  assert_int_equal(uv_loop_close(&w->loop), 0);
  config_dispose(&cfg);
  free(w);
}

/* log_json_str: short text whole, long text cut between characters (never inside an escape) and
 * bounded; NULL is "". */
static void test_json_str_bounds(void **state) {
  static char in[5000];
  char line[2048];
  struct strbuf sb;
  (void)state;
  for (size_t pick = 0; pick < 4; pick++) {
    static const char *const patterns[] = {"a", "\"", "\x01", "ab\\\xc3\xa9"};
    fill(in, sizeof(in), patterns[pick]);
    strbuf_init_fixed(&sb, line, sizeof(line));
    log_json_str(&sb, in);
    assert_int_equal(sb.overflow, 0);
    assert_true(sb.len <= LOG_JSON_STR_MAX);
    char *dec = NULL;
    const char *end = p_str(sb.p, sb.p + sb.len, &dec);
    assert_ptr_equal(end, sb.p + sb.len);
    assert_cut_of(dec, in);
    free(dec);
  }
  strbuf_init_fixed(&sb, line, sizeof(line));
  log_json_str(&sb, NULL);
  log_json_str(&sb, "ok");
  assert_string_equal(line, "\"\"\"ok\"");
  /* All or nothing: no room, no half string. */
  strbuf_init_fixed(&sb, line, 8);
  log_json_str(&sb, "0123456789");
  assert_string_equal(line, "");
  assert_int_equal(sb.overflow, 1);
}

/* An error-log line longer than its buffer is cut to one whole line ending in a newline. */
static void test_log_msg_long_line_cut(void **state) {
  static char msg[5000];
  FILE *f = tmpfile();
  (void)state;
  assert_non_null(f);
  fill(msg, sizeof(msg), "m");
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  assert_true(saved >= 0);
  assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
  log_msg(LOG_ERROR, "long: %s", msg);
  log_msg(LOG_ERROR, "short");
  assert_true(dup2(saved, STDERR_FILENO) >= 0);
  close(saved);
  size_t len;
  char *out = read_all(f, &len);
  char *nl = strchr(out, '\n');
  assert_non_null(nl);
  assert_int_equal((size_t)(nl - out), 1022); /* the 1024-byte buffer, less NUL and newline */
  assert_non_null(strstr(out, "[error] long: mmm"));
  assert_non_null(strstr(nl + 1, "[error] short\n"));
  fclose(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rejected_line_huge_fields),
      cmocka_unit_test(test_json_str_bounds),
      cmocka_unit_test(test_log_msg_long_line_cut),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
