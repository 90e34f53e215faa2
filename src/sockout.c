#include "src/sockout.h"

#include <string.h>

void sockout_init(struct sockout *o, struct buf_pool *pool) {
  memset(o, 0, sizeof(*o));
  bufq_init(&o->q);
  o->pool = pool;
}

int sockout_flush(struct sockout *o, uv_stream_t *s, uv_write_cb cb) {
  if (o->ninflight > 0 || o->q.bytes == 0) return 0;
  uv_buf_t bufs[SOCKOUT_MAX_IOV];
  /* First write(2) at once: a socket with room takes it all, and no write request, no
   * completion callback and no epoll re-arm (libuv's drain MODs the fd) are needed. */
  while (o->q.bytes > 0) {
    unsigned n = 0;
    size_t want = 0;
    for (struct buf_chunk *c = o->q.head; c && n < SOCKOUT_MAX_IOV; c = c->next, n++) {
      bufs[n] = uv_buf_init(buf_rd(c), c->len);
      want += c->len;
    }
    int r = uv_try_write(s, bufs, n);
    if (r == UV_EAGAIN) break;
    if (r < 0) {
      sockout_clear(o);
      return r;
    }
    bufq_skip(&o->q, o->pool, (size_t)r);
    if ((size_t)r < want) break; /* the socket is full: the rest waits for it below */
  }
  if (o->q.bytes == 0) return 1;
  while (o->ninflight < SOCKOUT_MAX_IOV && o->q.head) {
    struct buf_chunk *c = bufq_pop(&o->q);
    bufs[o->ninflight] = uv_buf_init(buf_rd(c), c->len);
    o->inflight[o->ninflight++] = c;
    o->inflight_bytes += c->len;
  }
  int r = uv_write(&o->wreq, s, bufs, (unsigned)o->ninflight, cb);
  if (r < 0) {
    sockout_done(o);
    sockout_clear(o);
  }
  return r;
}

void sockout_done(struct sockout *o) {
  for (int i = 0; i < o->ninflight; i++) buf_put(o->pool, o->inflight[i]);
  o->ninflight = 0;
  o->inflight_bytes = 0;
}

void sockout_clear(struct sockout *o) { bufq_clear(&o->q, o->pool); }
