/* Bounded text building: the safe replacement for `n += snprintf(buf + n, sizeof(buf) - n, ...)`.
 *
 * A strbuf holds NUL-terminated text of at most |max| bytes. It either grows on the heap up to
 * that limit (strbuf_init) or writes into fixed storage the caller owns (strbuf_init_fixed). An
 * append is all or nothing: one that would pass |max| leaves the text unchanged, returns -ENOSPC
 * and sets |overflow|, which stays set. So a builder can append freely and check once at the
 * end, and nothing is ever written past the storage.
 *
 * Owned by whoever embeds it; used from one thread. */
#ifndef H2T_STRBUF_H
#define H2T_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
  char *p;      /* the text (NUL-terminated once anything was appended); owned unless |fixed| */
  size_t len;   /* bytes of text, without the NUL */
  size_t cap;   /* bytes of storage at |p| */
  size_t max;   /* the largest |len| allowed */
  int fixed;    /* |p| is the caller's storage: never grown, never freed */
  int overflow; /* some append did not fit and was dropped */
};

/* A heap buffer of up to |max| (< SIZE_MAX) bytes of text. Nothing is allocated until the first
 * append. */
void strbuf_init(struct strbuf *sb, size_t max);
/* Text in the caller's |buf| of |size| bytes (at most |size| - 1 of text); |size| >= 1. The
 * buffer holds "" at once. */
void strbuf_init_fixed(struct strbuf *sb, char *buf, size_t size);
/* Frees heap storage (nothing for a fixed buffer) and empties |sb|. */
void strbuf_dispose(struct strbuf *sb);

/* Each returns 0, or -ENOSPC (text unchanged, |overflow| set) when the result would pass |max|. */
int strbuf_append(struct strbuf *sb, const void *data, size_t len);
int strbuf_puts(struct strbuf *sb, const char *s);
int strbuf_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* For text where a cut line beats none (error-log lines): appends as much of the formatted text
 * as fits and sets |overflow| if some was cut. */
void strbuf_vprintf_cut(struct strbuf *sb, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* The text; "" for a heap buffer nothing was appended to. */
const char *strbuf_str(const struct strbuf *sb);
/* Bytes that can still be appended. */
size_t strbuf_room(const struct strbuf *sb);

#endif
