/* The byte-stream transport (see xport.h).
 *
 * Lifecycle (|state|):
 *
 *   from      event                                          to        what happens
 *   OPEN      xport_close, write side failed                 CLOSED    handles closed
 *   OPEN      xport_close                                    CLOSING   reading stops, the close
 *                                                                      bound runs on |timer|
 *   CLOSING   queue written and FIN done, peer's EOF seen    CLOSED
 *             or no linger
 *   CLOSING   queue written and FIN done, else               LINGER    read and discard, the
 *                                                                      linger bound on |timer|
 *   OPEN      a failure (on_error, a failed on_handshake)    CLOSED    as xport_abort
 *             the owner answered with neither close nor abort
 *   CLOSING   close bound / write failed                     CLOSED
 *   LINGER    peer's EOF or error / linger bound             CLOSED
 *   any       xport_abort                                    CLOSED    RST unless FIN sent
 *   CLOSED    last handle closed                             (on_close: the owner frees)
 *
 * Beside |state|, three parts move on their own, each with its own enum: the TLS layer (|tls|:
 * NONE, or HANDSHAKE -> ON / FAILED), the read side (|rd|: OPEN -> EOF -> EOF_DELIVERED, back to
 * EOF by xport_unread) and the write side (|wr|: OPEN -> SHUT_WANTED -> NOTIFY_SENT -> FIN_SENT
 * -> FIN_DONE, or FAILED from any). A stream can be OPEN with its write side shut and its read
 * side still delivering, or CLOSING with the peer's EOF seen or not.
 *
 * Whether libuv reads the socket is decided in one place (update_reads) from those parts and the
 * owner's wish (|reading|). Work that would call the owner from inside an xport_* call -- a
 * deferred delivery, the first handshake step, a failure to report -- runs from |defer| instead,
 * at the end of the loop turn, together with the flush.
 *
 * Fairness: one stream reads at most |read_budget| bytes per loop turn (on_alloc), so a peer that
 * floods cannot hold the worker for the 32 x 64 KiB libuv would read, decrypt and deliver in one
 * callback while the other streams wait. */
#include "src/xport.h"

#include <errno.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "src/authority.h"

static void flush(struct xport *x);
static void pump(struct xport *x);
static void handshake_step(struct xport *x);
static void close_handles(struct xport *x, int reset);
static void on_timer(uv_timer_t *t);

static void schedule(struct xport *x) { worker_defer(x->w, &x->defer); }

/* ---- reading ---------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct xport *x = h->data;
  struct worker *w = x->w;
  if (x->turn != w->turn) {
    x->turn = w->turn;
    x->turn_bytes = 0;
  }
  if (x->opts.read_budget && x->turn_bytes >= x->opts.read_budget) {
    /* This turn's budget is spent: an empty buffer ends libuv's read loop with UV_ENOBUFS. The
     * socket stays readable (level-triggered), so the next turn reads on, after the others. */
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  struct buf_chunk *chunk = x->small_reads ? buf_get_small(&w->pool) : buf_get(&w->pool);
  buf->base = chunk->data;
  buf->len = chunk->cap;
}

static void on_uv_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* The one place that decides whether libuv reads the socket: while the owner reads or a
 * handshake needs bytes, and while lingering; never after the read side ended. */
static void update_reads(struct xport *x) {
  int want = x->rd == XPORT_RD_OPEN &&
             ((x->state == XPORT_OPEN && (x->reading || x->tls == XPORT_TLS_HANDSHAKE)) || x->state == XPORT_LINGER);
  if (want && !x->uv_reading) {
    if (uv_read_start((uv_stream_t *)x->tcp, on_alloc, on_uv_read) == 0) x->uv_reading = 1;
  } else if (!want && x->uv_reading) {
    uv_read_stop((uv_stream_t *)x->tcp);
    x->uv_reading = 0;
  }
}

/* The stream failed while OPEN: the owner hears it, and if it did nothing about it, abort. */
static void fail(struct xport *x, int err) {
  if (x->state != XPORT_OPEN) return;
  x->ops->on_error(x, err);
  if (x->state == XPORT_OPEN) xport_abort(x);
}

static void deliver_eof(struct xport *x) {
  if (x->state == XPORT_OPEN && x->reading && x->rd == XPORT_RD_EOF && x->pending.bytes == 0 &&
      x->tio.in.bytes == 0) {
    x->rd = XPORT_RD_EOF_DELIVERED;
    x->ops->on_eof(x);
  }
}

/* Decrypts one chunk of plaintext, or returns NULL: nothing more for now, the peer's
 * close_notify (rd becomes EOF), or a TLS error (reported; the stream is aborted).
 *
 * SSL_read hands out one record (16 KiB at most) per call, so the chunk is filled from as many
 * records as are in: a chunk then carries up to 64 KiB downstream instead of 16 KiB in a 64 KiB
 * block -- a quarter of the chunks (and iovecs, and h2 DATA pieces) per byte, and no 48 KiB of
 * dead room pinned per queued record. */
static struct buf_chunk *tls_read(struct xport *x) {
  /* With nothing to decrypt, SSL_read would allocate its 16 KiB record buffer only to report
   * WANT_READ -- and keep it, on every idle connection. */
  if (x->tio.in.bytes == 0 && !SSL_has_pending(x->ssl)) return NULL;
  struct buf_chunk *chunk = buf_get(&x->w->pool);
  int n;
  while ((n = SSL_read(x->ssl, chunk->data + chunk->len, (int)buf_room(chunk))) > 0) {
    chunk->len += (uint32_t)n;
    if (buf_room(chunk) == 0 || (x->tio.in.bytes == 0 && !SSL_has_pending(x->ssl))) return chunk;
  }
  int e = SSL_get_error(x->ssl, n);
  if (e == SSL_ERROR_ZERO_RETURN) {
    /* What came before the close_notify is delivered first; deliver_eof follows it. */
    if (x->rd == XPORT_RD_OPEN) x->rd = XPORT_RD_EOF;
    bufq_clear(&x->tio.in, &x->w->pool);
    update_reads(x);
  } else if (e == SSL_ERROR_WANT_READ) {
    if (x->rd != XPORT_RD_OPEN) bufq_clear(&x->tio.in, &x->w->pool); /* a truncated record at EOF */
  } else {
    /* A fatal TLS error: the stream is aborted, so plaintext decrypted before it goes too. */
    buf_put(&x->w->pool, chunk);
    x->tls_err = ERR_get_error();
    ERR_clear_error();
    fail(x, UV_EPROTO);
    return NULL;
  }
  if (chunk->len > 0) return chunk;
  buf_put(&x->w->pool, chunk);
  return NULL;
}

/* Delivers plaintext (pending, then decrypted) while the owner reads, then the EOF. */
static void pump(struct xport *x) {
  while (x->state == XPORT_OPEN && x->reading) {
    struct buf_chunk *chunk = bufq_pop(&x->pending);
    if (!chunk && x->tls == XPORT_TLS_ON) chunk = tls_read(x);
    if (!chunk) break;
    x->ops->on_read(x, chunk);
  }
  deliver_eof(x);
  if (x->tls == XPORT_TLS_ON && x->state != XPORT_CLOSED) {
    /* An idle TLS stream keeps no 16 KiB record buffers (fails harmlessly if data waits). */
    if (x->tio.in.bytes == 0) SSL_free_buffers(x->ssl);
    if (x->so.q.bytes) schedule(x); /* alerts, tickets, key updates */
  }
}

/* The socket's read side ended with |err| (UV_EOF or an error). */
static void read_ended(struct xport *x, int err) {
  if (x->rd == XPORT_RD_OPEN) x->rd = XPORT_RD_EOF;
  if (x->state == XPORT_LINGER) {
    close_handles(x, 0);
    return;
  }
  update_reads(x);
  if (x->state != XPORT_OPEN) return; /* CLOSING: the EOF only means no lingering */
  if (x->tls == XPORT_TLS_HANDSHAKE) {
    x->tls = XPORT_TLS_FAILED;
    x->ops->on_handshake(x, err);
    if (x->state == XPORT_OPEN) xport_abort(x);
    return;
  }
  if (err == UV_EOF)
    pump(x); /* what is left, then on_eof */
  else
    fail(x, err);
}

static void on_uv_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct xport *x = s->data;
  if (nread == UV_ENOBUFS) return; /* the turn's read budget is spent (on_alloc) */
  struct buf_chunk *chunk = buf->base ? container_of(buf->base, struct buf_chunk, data) : NULL;
  if (nread <= 0) {
    buf_put(&x->w->pool, chunk);
    if (nread < 0) read_ended(x, (int)nread);
    return;
  }
  chunk->len = (uint32_t)nread;
  x->turn_bytes += (size_t)nread;
  if (x->state != XPORT_OPEN) { /* lingering: discard */
    buf_put(&x->w->pool, chunk);
    return;
  }
  switch (x->tls) {
  case XPORT_TLS_NONE:
    if (x->pending.bytes || !x->reading) {
      bufq_push(&x->pending, &x->w->pool, chunk);
      pump(x);
    } else {
      x->ops->on_read(x, chunk);
    }
    break;
  case XPORT_TLS_HANDSHAKE:
    bufq_push(&x->tio.in, &x->w->pool, chunk);
    handshake_step(x);
    break;
  case XPORT_TLS_ON:
    bufq_push(&x->tio.in, &x->w->pool, chunk);
    pump(x);
    flush(x);
    break;
  case XPORT_TLS_FAILED:
    buf_put(&x->w->pool, chunk);
    break;
  }
  update_reads(x); /* the owner may have stopped reading */
}

void xport_read_start(struct xport *x) {
  if (x->state != XPORT_OPEN) return;
  x->reading = 1;
  update_reads(x);
  /* Plaintext may wait already (pending, or inside OpenSSL); deliver it outside this stack. */
  if (x->pending.bytes || x->rd == XPORT_RD_EOF ||
      (x->tls == XPORT_TLS_ON && (x->tio.in.bytes || SSL_has_pending(x->ssl)))) {
    x->step_pending = 1;
    schedule(x);
  }
}

void xport_read_stop(struct xport *x) {
  x->reading = 0;
  update_reads(x);
}

void xport_unread(struct xport *x, struct bufq *q) {
  struct buf_chunk *chunk;
  if (q->bytes == 0) return;
  /* q's chunks go before what pending holds: append pending to q, then take q whole. */
  while ((chunk = bufq_pop(&x->pending))) bufq_push(q, &x->w->pool, chunk);
  x->pending = *q;
  bufq_init(q);
  if (x->rd == XPORT_RD_EOF_DELIVERED) x->rd = XPORT_RD_EOF;
  if (x->reading) {
    x->step_pending = 1;
    schedule(x);
  }
}

void xport_set_small_reads(struct xport *x, int on) { x->small_reads = on ? 1 : 0; }

/* ---- TLS -------------------------------------------------------------------------------------- */

static void handshake_step(struct xport *x) {
  int r = SSL_do_handshake(x->ssl);
  if (r == 1) {
    x->tls = XPORT_TLS_ON;
    update_reads(x);
    x->ops->on_handshake(x, 0);
    pump(x); /* application data that came with the last flight */
    flush(x);
    return;
  }
  if (SSL_get_error(x->ssl, r) == SSL_ERROR_WANT_READ) {
    /* Waiting for the peer's next flight: keep no empty 16 KiB record buffers meanwhile. */
    if (x->tio.in.bytes == 0) SSL_free_buffers(x->ssl);
    flush(x);
    return;
  }
  x->tls = XPORT_TLS_FAILED;
  x->tls_err = ERR_get_error();
  ERR_clear_error();
  update_reads(x);
  x->ops->on_handshake(x, UV_EPROTO);
  if (x->state == XPORT_OPEN) xport_abort(x);
  flush(x); /* the alert, when the owner closed gracefully */
}

void xport_tls_accept(struct xport *x, SSL_CTX *ctx, struct bufq *received) {
  x->ssl = tls_ssl_new(ctx, &x->tio);
  SSL_set_accept_state(x->ssl);
  x->tio.in = *received;
  bufq_init(received);
  x->tls = XPORT_TLS_HANDSHAKE;
  update_reads(x);
  x->step_pending = 1;
  schedule(x);
}

int xport_tls_connect(struct xport *x, SSL_CTX *ctx, const char *name) {
  struct authority ip;
  x->ssl = tls_ssl_new(ctx, &x->tio);
  SSL_set_connect_state(x->ssl);
  SSL_set_verify(x->ssl, SSL_VERIFY_PEER, NULL);
  int ok;
  if (authority_from_host(name, 1, &ip) == 0 && ip.kind != AUTHORITY_NAME)
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(x->ssl), name);
  else
    ok = SSL_set_tlsext_host_name(x->ssl, name) && SSL_set1_host(x->ssl, name);
  ERR_clear_error();
  if (!ok) return UV_EINVAL;
  x->tls = XPORT_TLS_HANDSHAKE;
  update_reads(x);
  x->step_pending = 1;
  schedule(x);
  return 0;
}

const char *xport_tls_error(const struct xport *x, char *buf, size_t cap) {
  if (x->tls_err == 0)
    snprintf(buf, cap, "no OpenSSL error");
  else
    ERR_error_string_n(x->tls_err, buf, cap);
  return buf;
}

/* ---- writing ---------------------------------------------------------------------------------- */

/* A write failed: nothing more goes out. The owner hears it while OPEN; a closing stream just
 * closes. */
static void write_failed(struct xport *x, int err) {
  x->wr = XPORT_WR_FAILED;
  sockout_clear(&x->so);
  if (x->state == XPORT_OPEN)
    fail(x, err);
  else
    close_handles(x, 0);
}

/* A closing stream whose output is all written and whose FIN is done either closes (the peer has
 * closed too, or no linger) or lingers. */
static void maybe_finish_close(struct xport *x) {
  if (x->state != XPORT_CLOSING) return;
  if (x->wr == XPORT_WR_FAILED) {
    close_handles(x, 0);
    return;
  }
  if (sockout_busy(&x->so) || x->so.q.bytes || x->wr != XPORT_WR_FIN_DONE) return;
  if (x->rd != XPORT_RD_OPEN || x->opts.linger_ms == 0) {
    close_handles(x, 0);
    return;
  }
  x->state = XPORT_LINGER;
  update_reads(x);
  uv_timer_start(&x->timer, on_timer, x->opts.linger_ms, 0);
}

static void on_write(uv_write_t *req, int status) {
  struct xport *x = req->data;
  sockout_done(&x->so);
  if (status < 0) {
    write_failed(x, status);
    return;
  }
  flush(x);
  x->drain_pending = 0; /* said here */
  if (x->state == XPORT_OPEN && xport_queued(x) <= x->opts.low_water) x->ops->on_drain(x);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct xport *x = req->data;
  if (x->wr == XPORT_WR_FIN_SENT) x->wr = status < 0 ? XPORT_WR_FAILED : XPORT_WR_FIN_DONE;
  maybe_finish_close(x);
}

/* Starts the next write, or once the queue is empty the close_notify and FIN that were asked
 * for. Called from loop callbacks only. */
static void flush(struct xport *x) {
  if (x->state == XPORT_CLOSED || x->wr == XPORT_WR_FAILED || sockout_busy(&x->so)) return;
  if (x->so.q.bytes) {
    x->so.wreq.data = x;
    int r = sockout_flush(&x->so, (uv_stream_t *)x->tcp, on_write);
    if (r < 0) {
      write_failed(x, r);
      return;
    }
    if (r == 0) return; /* on_write goes on */
    /* Written at once: the owner hears on_drain from |defer|, never from inside this call. */
    x->drain_pending = 1;
    if (!x->in_defer) schedule(x);
  }
  if (x->wr == XPORT_WR_SHUT_WANTED) {
    x->wr = XPORT_WR_NOTIFY_SENT;
    if (x->tls == XPORT_TLS_ON) {
      SSL_shutdown(x->ssl); /* queues close_notify; we do not wait for the peer's */
      ERR_clear_error();
      if (x->so.q.bytes) {
        flush(x);
        return;
      }
    }
  }
  if (x->wr == XPORT_WR_NOTIFY_SENT) {
    x->wr = XPORT_WR_FIN_SENT;
    x->sreq.data = x;
    if (uv_shutdown(&x->sreq, (uv_stream_t *)x->tcp, on_shutdown) != 0) x->wr = XPORT_WR_FAILED;
  }
  maybe_finish_close(x);
}

static void on_deferred(struct worker_defer *d) {
  struct xport *x = container_of(d, struct xport, defer);
  x->in_defer = 1;
  if (x->err_pending) {
    int err = x->err_pending;
    x->err_pending = 0;
    write_failed(x, err);
  }
  if (x->step_pending) {
    x->step_pending = 0;
    if (x->state == XPORT_OPEN && x->tls == XPORT_TLS_HANDSHAKE)
      handshake_step(x);
    else
      pump(x);
  }
  flush(x);
  x->in_defer = 0;
  if (x->drain_pending) {
    x->drain_pending = 0;
    if (x->state == XPORT_OPEN && xport_queued(x) <= x->opts.low_water) x->ops->on_drain(x);
  }
}

void xport_write(struct xport *x, struct buf_chunk *chunk) {
  /* Nothing of the owner's goes out before a handshake has ended, or after it failed. */
  int tls_busy = x->tls == XPORT_TLS_HANDSHAKE || x->tls == XPORT_TLS_FAILED;
  if (x->state == XPORT_CLOSED || x->wr > XPORT_WR_SHUT_WANTED || tls_busy) {
    buf_put(&x->w->pool, chunk);
    return;
  }
  if (x->tls == XPORT_TLS_ON) {
    if (chunk->len > 0 && tls_write_all(x->ssl, buf_rd(chunk), chunk->len) != 0) {
      /* Our BIO never blocks: this is a TLS state error. Reported from the loop. */
      x->tls_err = ERR_get_error();
      ERR_clear_error();
      x->wr = XPORT_WR_FAILED;
      sockout_clear(&x->so);
      x->err_pending = UV_EPROTO;
    }
    buf_put(&x->w->pool, chunk);
  } else {
    bufq_push(&x->so.q, &x->w->pool, chunk);
  }
  schedule(x);
}

void xport_write_copy(struct xport *x, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    struct buf_chunk *chunk = len <= BUF_SMALL_SIZE ? buf_get_small(&x->w->pool) : buf_get(&x->w->pool);
    size_t n = MIN(len, (size_t)chunk->cap);
    memcpy(chunk->data, p, n);
    chunk->len = (uint32_t)n;
    xport_write(x, chunk);
    p += n;
    len -= n;
  }
}

void xport_shutdown(struct xport *x) {
  if (x->state != XPORT_OPEN || x->wr != XPORT_WR_OPEN) return;
  x->wr = XPORT_WR_SHUT_WANTED;
  schedule(x);
}

/* ---- closing ---------------------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {
  struct xport *x = h->data;
  if (--x->handles > 0) return;
  worker_defer_cancel(&x->defer);
  sockout_done(&x->so);
  sockout_clear(&x->so);
  bufq_clear(&x->pending, &x->w->pool);
  bufq_clear(&x->tio.in, &x->w->pool);
  if (x->ssl) SSL_free(x->ssl);
  x->ssl = NULL;
  x->ops->on_close(x); /* may free |x| */
}

/* Enters CLOSED (once) and closes both handles: with an RST when |reset| and no FIN went out. */
static void close_handles(struct xport *x, int reset) {
  if (x->state == XPORT_CLOSED) return;
  x->state = XPORT_CLOSED;
  x->reading = 0;
  x->uv_reading = 0; /* uv_close stops it */
  worker_defer_cancel(&x->defer);
  int fin = x->wr == XPORT_WR_FIN_SENT || x->wr == XPORT_WR_FIN_DONE;
  if (!reset || fin || uv_tcp_close_reset(x->tcp, on_handle_closed) != 0)
    uv_close((uv_handle_t *)x->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&x->timer, on_handle_closed);
}

void xport_close(struct xport *x) {
  if (x->state != XPORT_OPEN) return;
  x->reading = 0;
  x->state = XPORT_CLOSING;
  update_reads(x);
  bufq_clear(&x->pending, &x->w->pool);
  if (x->wr == XPORT_WR_OPEN) x->wr = XPORT_WR_SHUT_WANTED;
  if (x->wr == XPORT_WR_FAILED) {
    close_handles(x, 0);
    return;
  }
  /* A peer that stops reading must not keep us forever: bound the flush as well. */
  uv_timer_start(&x->timer, on_timer, x->opts.close_timeout_ms, 0);
  schedule(x);
}

void xport_abort(struct xport *x) {
  if (x->state == XPORT_CLOSED) return;
  bufq_clear(&x->pending, &x->w->pool);
  sockout_clear(&x->so);
  close_handles(x, 1);
}

void xport_set_timer(struct xport *x, uint64_t ms) {
  if (x->state != XPORT_OPEN) return;
  if (ms == 0)
    uv_timer_stop(&x->timer);
  else
    uv_timer_start(&x->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *t) {
  struct xport *x = t->data;
  if (x->state == XPORT_OPEN)
    x->ops->on_timeout(x);
  else
    close_handles(x, 0); /* the close or linger bound */
}

void xport_init(struct xport *x, struct worker *w, uv_tcp_t *tcp, const struct xport_ops *ops,
                const struct xport_opts *opts) {
  memset(x, 0, sizeof(*x));
  x->w = w;
  x->ops = ops;
  x->opts = *opts;
  x->tcp = tcp;
  tcp->data = x;
  uv_timer_init(&w->loop, &x->timer);
  x->timer.data = x;
  x->handles = 2;
  sockout_init(&x->so, &w->pool);
  x->tio.pool = &w->pool;
  x->tio.out = &x->so.q;
  bufq_init(&x->tio.in);
  bufq_init(&x->pending);
  x->defer.cb = on_deferred;
  list_init(&x->defer.link);
}
