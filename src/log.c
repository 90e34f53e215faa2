#include "src/log.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Set once before workers start; read-only afterwards. */
static enum log_level g_level = LOG_INFO;
static FILE *g_access;

int log_set_level_name(const char *name) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  for (int i = 0; i < 4; i++) {
    if (strcmp(name, names[i]) == 0) {
      g_level = (enum log_level)i;
      return 0;
    }
  }
  return -EINVAL;
}

void log_set_level(enum log_level level) { g_level = level; }
enum log_level log_get_level(void) { return g_level; }
void log_set_access_stream(FILE *f) { g_access = f; }

void log_msg(enum log_level level, const char *fmt, ...) {
  static const char *const tags[] = {"error", "warn", "info", "debug"};
  if (level > g_level) return;
  char line[1024];
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
  n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03dZ [%s] ", (int)(tv.tv_usec / 1000), tags[level]);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0) m = 0;
  n += m;
  if (n > (int)sizeof(line) - 2) n = (int)sizeof(line) - 2;
  line[n++] = '\n';
  /* One write(2) per line so lines from several workers never interleave. */
  ssize_t r = write(STDERR_FILENO, line, (size_t)n);
  (void)r;
}

void log_access_line(const char *line, size_t len) {
  FILE *f = g_access ? g_access : stdout;
  char buf[4096];
  if (len > sizeof(buf) - 1) len = sizeof(buf) - 1;
  memcpy(buf, line, len);
  buf[len++] = '\n';
  ssize_t r = write(fileno(f), buf, len);
  (void)r;
}

void log_json_str(char *out, size_t cap, size_t *len, const char *s) {
  size_t n = *len;
  if (cap == 0) return;
  if (n + 1 < cap) out[n++] = '"';
  for (; s && *s && n + 8 < cap; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      out[n++] = '\\';
      out[n++] = (char)ch;
    } else if (ch < 0x20 || ch == 0x7f) {
      n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
    } else {
      out[n++] = (char)ch;
    }
  }
  if (n + 1 < cap) out[n++] = '"';
  out[n < cap ? n : cap - 1] = '\0';
  *len = n;
}

int log_limit_pass(struct log_limit *l, uint64_t now_ms, uint64_t interval_ms, uint32_t burst,
                   uint64_t *suppressed) {
  if (l->lines == 0 || now_ms - l->window_start_ms >= interval_ms) {
    l->window_start_ms = now_ms;
    l->lines = 0;
  }
  if (l->lines >= burst) {
    l->suppressed++;
    return 0;
  }
  l->lines++;
  *suppressed = l->suppressed;
  l->suppressed = 0;
  return 1;
}
