/* The write side of a libuv stream: a chunk queue with at most one uv_write in flight, so the
 * number of bytes not yet on the wire is exact (the tunnel's backpressure reads it). Shared by
 * client connections and upstream TCP endpoints. Embedded in its owner. */
#ifndef H2T_SOCKOUT_H
#define H2T_SOCKOUT_H

#include <uv.h>

#include "src/buf.h"

#define SOCKOUT_MAX_IOV 16

struct sockout {
  struct bufq q;                                /* waiting for the socket; chunks owned */
  struct buf_chunk *inflight[SOCKOUT_MAX_IOV];  /* owned by the pending write until sockout_done */
  int ninflight;
  size_t inflight_bytes;
  uv_write_t wreq;                              /* wreq.data is left to the owner */
  struct buf_pool *pool;                        /* borrowed: the worker's */
};

void sockout_init(struct sockout *o, struct buf_pool *pool);
static inline size_t sockout_queued(const struct sockout *o) { return o->q.bytes + o->inflight_bytes; }
static inline int sockout_busy(const struct sockout *o) { return o->ninflight > 0; }
/* Unless a write is in flight or the queue is empty: writes what the socket takes at once
 * (uv_try_write), then starts one uv_write of up to SOCKOUT_MAX_IOV of the chunks left. Returns
 * 1 when the queue was written whole at once (no callback comes), 0 when a write is in flight
 * or there was nothing to write, or a negative libuv error (the chunks are then dropped). */
int sockout_flush(struct sockout *o, uv_stream_t *s, uv_write_cb cb);
/* Call from the write callback: releases the chunks that were written (or cancelled). */
void sockout_done(struct sockout *o);
/* Drops everything queued (not the in-flight chunks, which the write callback releases). */
void sockout_clear(struct sockout *o);

#endif
