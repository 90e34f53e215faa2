#include "src/log.h"

#include <errno.h>
#include <fcntl.h>
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

int log_reopen_access(const char *path) {
  if (!g_access) return -EINVAL;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return -errno;
  int r = dup2(fd, fileno(g_access)) < 0 ? -errno : 0;
  close(fd);
  return r;
}

void log_msg(enum log_level level, const char *fmt, ...) {
  static const char *const tags[] = {"error", "warn", "info", "debug"};
  if (level > g_level) return;
  char line[1024];
  char ts[32];
  struct strbuf sb;
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  if (strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm) == 0) ts[0] = '\0';
  /* One byte of |line| stays out of the strbuf for the newline. */
  strbuf_init_fixed(&sb, line, sizeof(line) - 1);
  strbuf_printf(&sb, "%s.%03dZ [%s] ", ts, (int)(tv.tv_usec / 1000), tags[level]);
  va_list ap;
  va_start(ap, fmt);
  strbuf_vprintf_cut(&sb, fmt, ap); /* a long message is cut, never dropped */
  va_end(ap);
  line[sb.len] = '\n';
  /* One write(2) per line so lines from several workers never interleave. */
  ssize_t r = write(STDERR_FILENO, line, sb.len + 1);
  (void)r;
}

void log_access_line(const char *line, size_t len) {
  FILE *f = g_access ? g_access : stdout;
  char buf[LOG_ACCESS_LINE_MAX + 1];
  if (len > LOG_ACCESS_LINE_MAX) len = LOG_ACCESS_LINE_MAX;
  memcpy(buf, line, len);
  buf[len++] = '\n';
  ssize_t r = write(fileno(f), buf, len);
  (void)r;
}

void log_json_str(struct strbuf *sb, const char *s) {
  static const char hex[] = "0123456789abcdef";
  static const char cut[] = "...";
  char out[LOG_JSON_STR_MAX];
  size_t n = 0;
  /* The longest escape is 6 bytes; stop while a worst-case character, the "..." and the closing
   * quote still fit, so the text is cut between characters, never inside an escape. */
  const size_t stop = sizeof(out) - 6 - (sizeof(cut) - 1) - 1;
  out[n++] = '"';
  for (; s && *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (n > stop) {
      memcpy(out + n, cut, sizeof(cut) - 1);
      n += sizeof(cut) - 1;
      break;
    }
    if (ch == '"' || ch == '\\') {
      out[n++] = '\\';
      out[n++] = (char)ch;
    } else if (ch < 0x20 || ch >= 0x7f) {
      memcpy(out + n, "\\u00", 4);
      out[n + 4] = hex[ch >> 4];
      out[n + 5] = hex[ch & 0xf];
      n += 6;
    } else {
      out[n++] = (char)ch;
    }
  }
  out[n++] = '"';
  strbuf_append(sb, out, n);
}

void log_access_head(struct strbuf *sb, const char *front, const char *proto, const char *client,
                     const char *target) {
  char ts[40];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  if (strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) ts[0] = '\0';
  strbuf_printf(sb, "{\"time\":\"%s\",\"client\":", ts);
  log_json_str(sb, client);
  strbuf_printf(sb, ",\"front\":\"%s\",\"proto\":\"%s\",\"target\":", front, proto);
  log_json_str(sb, target);
}

void log_access_write(const struct strbuf *sb) {
  if (sb->overflow) {
    log_error("access log: line over %d bytes dropped", LOG_ACCESS_LINE_MAX);
    return;
  }
  log_access_line(sb->p, sb->len);
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
