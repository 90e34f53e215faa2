/* Fixed-size data chunks from a per-worker pool, and a bounded chunk queue (bufq).
 *
 * A chunk has exactly one owner at a time: the pool, a bufq, a pending uv_write, or the code
 * holding the pointer. Passing a chunk to a function that "takes" it moves ownership. Tunnel bytes
 * are read straight into chunks and moved, not copied, wherever the layer below allows. */
#ifndef H2T_BUF_H
#define H2T_BUF_H

#include <stddef.h>
#include <stdint.h>

#define BUF_CHUNK_SIZE 65536 /* one read(2): four TLS records or four 16 KiB h2 DATA frames */
#define BUF_SMALL_SIZE 2048  /* response heads and other short writes */

struct buf_chunk {
  struct buf_chunk *next; /* link in a bufq or the pool's free list */
  uint32_t off;           /* first valid byte */
  uint32_t len;           /* valid bytes from off */
  uint32_t cap;           /* BUF_CHUNK_SIZE or BUF_SMALL_SIZE */
  char data[];
};

struct membudget;

/* Owned by a worker; used from its loop thread only. */
struct buf_pool {
  struct membudget *mb;   /* borrowed: charged with every chunk malloc'd, uncharged when freed;
                             NULL: not accounted */
  struct buf_chunk *free; /* owned: cached free chunks of BUF_CHUNK_SIZE */
  size_t nfree;
  size_t max_free;        /* cached chunks beyond this go back to malloc */
  struct buf_chunk *small_free; /* owned: cached free chunks of BUF_SMALL_SIZE */
  size_t nsmall;
  size_t in_use;          /* chunks handed out and not yet returned */
};

void buf_pool_init(struct buf_pool *pool, size_t max_free);
/* Frees the cached chunks. Chunks still in use are the caller's bug (asserted in debug builds). */
void buf_pool_dispose(struct buf_pool *pool);
/* Returns an empty chunk of BUF_CHUNK_SIZE (off = len = 0); aborts on out-of-memory. */
struct buf_chunk *buf_get(struct buf_pool *pool);
/* The same with BUF_SMALL_SIZE bytes, for short writes: a burst of thousands of small writes
 * in flight then pins thousands of small blocks, not of 64 KiB ones. */
struct buf_chunk *buf_get_small(struct buf_pool *pool);
/* Takes |c| back. NULL is ignored. */
void buf_put(struct buf_pool *pool, struct buf_chunk *c);

static inline char *buf_rd(struct buf_chunk *c) { return c->data + c->off; }
static inline size_t buf_room(const struct buf_chunk *c) {
  return c->cap - c->off - c->len;
}

/* A FIFO of chunks. |bytes| is exact. Owned by whoever embeds it; its chunks are owned by it. */
struct bufq {
  struct buf_chunk *head, *tail;
  size_t bytes;
  size_t nchunks;
};

void bufq_init(struct bufq *q);
/* Appends |c| (taken). Empty chunks are returned to the pool instead. */
void bufq_push(struct bufq *q, struct buf_pool *pool, struct buf_chunk *c);
/* Copies |len| bytes at |data| to the tail, filling the last chunk first. */
void bufq_append(struct bufq *q, struct buf_pool *pool, const void *data, size_t len);
/* Removes and returns the head chunk (the caller owns it), or NULL. */
struct buf_chunk *bufq_pop(struct bufq *q);
/* Drops |n| bytes from the front, returning emptied chunks to the pool. */
void bufq_skip(struct bufq *q, struct buf_pool *pool, size_t n);
/* Copies up to |len| bytes from the front into |out| without removing them. Returns the count. */
size_t bufq_peek(const struct bufq *q, void *out, size_t len);
/* Returns every chunk to the pool. */
void bufq_clear(struct bufq *q, struct buf_pool *pool);

#endif
