/* Small helpers shared by every layer (header only). */
#ifndef H2T_UTIL_H
#define H2T_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The struct that embeds |ptr| as its member |member|. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* CHECK aborts in every build: for calls that cannot fail unless we have a bug or no memory.
 * Peer misbehaviour is never a CHECK; it becomes a status code, an RST or a GOAWAY. */
#define CHECK(expr)                                                                         \
  do {                                                                                      \
    if (!(expr)) {                                                                          \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);             \
      abort();                                                                              \
    }                                                                                       \
  } while (0)

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

/* malloc/calloc that abort on exhaustion: a proxy that cannot allocate 100 bytes cannot log either. */
static inline void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  CHECK(p != NULL);
  return p;
}
static inline void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  CHECK(p != NULL);
  return p;
}

static inline void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  CHECK(p != NULL);
  return p;
}
/* Makes room for element |n| of an array |p| that holds |n| elements of |size| bytes and grows by
 * doubling: it reallocates only when |n| is 0 or a power of two, so appending is amortised O(1). */
static inline void *xgrow(void *p, size_t n, size_t size) {
  if (n & (n - 1)) return p;
  return xrealloc(p, (n ? 2 * n : 1) * size);
}
/* A NUL-terminated copy of the first |n| bytes of |s|. */
static inline char *xstrndup(const char *s, size_t n) {
  char *p = (char *)xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

/* An intrusive doubly linked list node; the list head is a node whose next/prev point to itself. */
struct list {
  struct list *next, *prev;
};
static inline void list_init(struct list *l) { l->next = l->prev = l; }
static inline int list_empty(const struct list *l) { return l->next == l; }
static inline void list_insert_tail(struct list *head, struct list *n) {
  n->prev = head->prev;
  n->next = head;
  head->prev->next = n;
  head->prev = n;
}
static inline void list_remove(struct list *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n->prev = n;
}

#endif
