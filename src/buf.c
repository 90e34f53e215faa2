#include "src/buf.h"

#include <assert.h>
#include <string.h>

#include "src/membudget.h"
#include "src/util.h"

void buf_pool_init(struct buf_pool *pool, size_t max_free) {
  memset(pool, 0, sizeof(*pool));
  pool->max_free = max_free;
}

/* Every malloc'd chunk is charged to the memory budget until it is freed. */
static void chunk_free(struct buf_pool *pool, struct buf_chunk *c) {
  membudget_uncharge(pool->mb, sizeof(*c) + c->cap);
  free(c);
}

static void free_list(struct buf_pool *pool, struct buf_chunk **list) {
  while (*list) {
    struct buf_chunk *c = *list;
    *list = c->next;
    chunk_free(pool, c);
  }
}

void buf_pool_dispose(struct buf_pool *pool) {
  free_list(pool, &pool->free);
  free_list(pool, &pool->small_free);
  pool->nfree = pool->nsmall = 0;
}

static struct buf_chunk *get(struct buf_pool *pool, struct buf_chunk **list, size_t *n, uint32_t cap) {
  struct buf_chunk *c = *list;
  if (c) {
    *list = c->next;
    (*n)--;
  } else {
    c = xmalloc(sizeof(*c) + cap);
    c->cap = cap;
    membudget_charge(pool->mb, sizeof(*c) + cap);
  }
  c->next = NULL;
  c->off = c->len = 0;
  pool->in_use++;
  return c;
}

struct buf_chunk *buf_get(struct buf_pool *pool) {
  return get(pool, &pool->free, &pool->nfree, BUF_CHUNK_SIZE);
}

struct buf_chunk *buf_get_small(struct buf_pool *pool) {
  return get(pool, &pool->small_free, &pool->nsmall, BUF_SMALL_SIZE);
}

void buf_put(struct buf_pool *pool, struct buf_chunk *c) {
  if (!c) return;
  assert(pool->in_use > 0);
  pool->in_use--;
  int small = c->cap == BUF_SMALL_SIZE;
  struct buf_chunk **list = small ? &pool->small_free : &pool->free;
  size_t *n = small ? &pool->nsmall : &pool->nfree;
  /* Small blocks are cheap to keep: as many as eight times the large cache. */
  if (*n >= (small ? 8 * pool->max_free : pool->max_free)) {
    chunk_free(pool, c);
    return;
  }
  c->next = *list;
  *list = c;
  (*n)++;
}

void bufq_init(struct bufq *q) { memset(q, 0, sizeof(*q)); }

void bufq_push(struct bufq *q, struct buf_pool *pool, struct buf_chunk *c) {
  if (c->len == 0) {
    buf_put(pool, c);
    return;
  }
  c->next = NULL;
  if (q->tail)
    q->tail->next = c;
  else
    q->head = c;
  q->tail = c;
  q->bytes += c->len;
  q->nchunks++;
}

void bufq_append(struct bufq *q, struct buf_pool *pool, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    struct buf_chunk *t = q->tail;
    if (!t || buf_room(t) == 0) {
      t = buf_get(pool);
      t->next = NULL;
      if (q->tail)
        q->tail->next = t;
      else
        q->head = t;
      q->tail = t;
      q->nchunks++;
    }
    size_t n = MIN(len, buf_room(t));
    memcpy(t->data + t->off + t->len, p, n);
    t->len += (uint32_t)n;
    q->bytes += n;
    p += n;
    len -= n;
  }
}

struct buf_chunk *bufq_pop(struct bufq *q) {
  struct buf_chunk *c = q->head;
  if (!c) return NULL;
  q->head = c->next;
  if (!q->head) q->tail = NULL;
  q->bytes -= c->len;
  q->nchunks--;
  c->next = NULL;
  return c;
}

void bufq_skip(struct bufq *q, struct buf_pool *pool, size_t n) {
  while (n > 0 && q->head) {
    struct buf_chunk *c = q->head;
    if (n < c->len) {
      c->off += (uint32_t)n;
      c->len -= (uint32_t)n;
      q->bytes -= n;
      return;
    }
    n -= c->len;
    buf_put(pool, bufq_pop(q));
  }
}

size_t bufq_peek(const struct bufq *q, void *out, size_t len) {
  size_t got = 0;
  for (const struct buf_chunk *c = q->head; c && got < len; c = c->next) {
    size_t n = MIN(len - got, (size_t)c->len);
    memcpy((char *)out + got, c->data + c->off, n);
    got += n;
  }
  return got;
}

void bufq_clear(struct bufq *q, struct buf_pool *pool) {
  struct buf_chunk *c;
  while ((c = bufq_pop(q)) != NULL) buf_put(pool, c);
}
