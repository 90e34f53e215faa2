/* Error log (stderr, human lines) and access log (JSON lines, one per tunnel or request).
 * The level and the access-log stream are set once in main before workers start, then only read. */
#ifndef H2T_LOG_H
#define H2T_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "src/strbuf.h"

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* |level_name| is one of error, warn, info, debug. Returns 0 or -EINVAL. */
int log_set_level_name(const char *level_name);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Where access-log lines go; NULL means stdout. The stream stays open for the process lifetime. */
void log_set_access_stream(FILE *f);
/* Reopens the access log at |path| (after logrotate moved it: SIGUSR1): the new file is opened
 * (created 0640 if missing) and put in place of the stream's descriptor with dup2, so writers on
 * any thread switch files atomically between two lines. Returns 0 or -errno (the old file is kept). */
int log_reopen_access(const char *path);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                           \
  do {                                                                                           \
    if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__);                           \
  } while (0)

/* Writes one complete line (a trailing newline is added) to the access log with a single write.
 * Lines longer than LOG_ACCESS_LINE_MAX are cut there (callers build lines that fit). */
#define LOG_ACCESS_LINE_MAX 4095 /* with its newline, one PIPE_BUF: atomic even on a pipe */
void log_access_line(const char *line, size_t len);

/* Appends |s| (NULL means "") to |sb| as a quoted JSON string: '"' and '\\' escaped, control
 * bytes and bytes >= 0x80 as \u00XX, so the line is valid JSON whatever the bytes. At most
 * LOG_JSON_STR_MAX bytes are appended: longer text is cut at a character and ends in "...".
 * Like every strbuf append it is all or nothing. */
#define LOG_JSON_STR_MAX 512
void log_json_str(struct strbuf *sb, const char *s);

/* An access line is a flat JSON object built in a fixed buffer of LOG_ACCESS_LINE_MAX + 1 bytes.
 * At most five of its strings come from outside (client, target, user, then resolved, or error
 * and detail), each cut to LOG_JSON_STR_MAX, and everything else is short (LOG_ACCESS_FIXED_MAX:
 * keys, time, numbers, names), so a line always fits whole: never cut into invalid JSON, never
 * written past the buffer. */
#define LOG_ACCESS_FIXED_MAX 512
_Static_assert(5 * LOG_JSON_STR_MAX + LOG_ACCESS_FIXED_MAX <= LOG_ACCESS_LINE_MAX,
               "an access line must fit in one atomic write");

/* Starts an access line in |sb| with the fields every line begins with -- time, client, front
 * end, protocol, target -- and leaves the object open. |front| and |proto| are static names. */
void log_access_head(struct strbuf *sb, const char *front, const char *proto, const char *client,
                     const char *target);
/* Writes the line built in |sb|. It cannot overflow (see LOG_ACCESS_FIXED_MAX), but if a change
 * ever makes it, the line is dropped with an error line: a broken line is worse than none. */
void log_access_write(const struct strbuf *sb);

/* A rate limit for one kind of log line (one per worker and kind: no locking). Floods from
 * clients -- refused connections, failing accepts, protocol mismatches -- would otherwise write a
 * line per connection. At most |burst| lines per |interval_ms|; the lines held back are counted,
 * and the next line written reports how many. */
struct log_limit {
  uint64_t window_start_ms;
  uint32_t lines;      /* written in the current window */
  uint64_t suppressed; /* held back since the last line written */
};

/* Returns 1 when a line may be written at |now_ms| (and sets *|suppressed| to the number held back
 * before it), 0 when it is to be dropped (and counted). */
int log_limit_pass(struct log_limit *l, uint64_t now_ms, uint64_t interval_ms, uint32_t burst,
                   uint64_t *suppressed);

#endif
