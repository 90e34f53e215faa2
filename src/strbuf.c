#include "src/strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "src/util.h"

void strbuf_init(struct strbuf *sb, size_t max) {
  CHECK(max < SIZE_MAX);
  memset(sb, 0, sizeof(*sb));
  sb->max = max;
}

void strbuf_init_fixed(struct strbuf *sb, char *buf, size_t size) {
  CHECK(size >= 1);
  memset(sb, 0, sizeof(*sb));
  sb->p = buf;
  sb->cap = size;
  sb->max = size - 1;
  sb->fixed = 1;
  buf[0] = '\0';
}

void strbuf_dispose(struct strbuf *sb) {
  if (!sb->fixed) free(sb->p);
  memset(sb, 0, sizeof(*sb));
}

/* Makes room for |add| more bytes of text plus the NUL, or refuses past |max|. */
static int reserve(struct strbuf *sb, size_t add) {
  if (add > sb->max - sb->len) {
    sb->overflow = 1;
    return -ENOSPC;
  }
  size_t need = sb->len + add + 1;
  if (need <= sb->cap) return 0;
  /* Only a heap buffer gets here: a fixed one has cap == max + 1. Doubling keeps appends
   * amortised O(1); the limit keeps one buffer from growing past what the caller allowed. */
  size_t cap = sb->cap ? sb->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
  if (cap > sb->max + 1) cap = sb->max + 1;
  char *p = realloc(sb->p, cap);
  CHECK(p != NULL);
  sb->p = p;
  sb->cap = cap;
  return 0;
}

int strbuf_append(struct strbuf *sb, const void *data, size_t len) {
  if (reserve(sb, len) != 0) return -ENOSPC;
  if (len > 0) memcpy(sb->p + sb->len, data, len);
  sb->len += len;
  sb->p[sb->len] = '\0';
  return 0;
}

int strbuf_puts(struct strbuf *sb, const char *s) { return strbuf_append(sb, s, strlen(s)); }

int strbuf_printf(struct strbuf *sb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || reserve(sb, (size_t)n) != 0) {
    sb->overflow = 1;
    return -ENOSPC;
  }
  va_start(ap, fmt);
  vsnprintf(sb->p + sb->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb->len += (size_t)n;
  return 0;
}

void strbuf_vprintf_cut(struct strbuf *sb, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) {
    sb->overflow = 1;
    return;
  }
  size_t add = (size_t)n;
  if (add > strbuf_room(sb)) {
    add = strbuf_room(sb);
    sb->overflow = 1;
  }
  CHECK(reserve(sb, add) == 0);
  vsnprintf(sb->p + sb->len, add + 1, fmt, ap);
  sb->len += add;
}

const char *strbuf_str(const struct strbuf *sb) { return sb->p ? sb->p : ""; }

size_t strbuf_room(const struct strbuf *sb) { return sb->max - sb->len; }
