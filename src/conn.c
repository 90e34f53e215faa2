/* Client connection: read path  socket -> [TLS] -> pending -> front end,
 *                     write path front end -> [TLS] -> so (sockout) -> socket (flushed once per turn).
 *
 * States: handshake (TLS only) -> sniff (cleartext only: until the front end is chosen) -> open ->
 * closing (flush, FIN, linger) -> handles closed -> freed. Flags, not a state number, say which
 * side has ended, because both directions end independently. */
#include "src/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include <openssl/err.h>

#include "h1/h1_conn.h"
#include "h2/h2_session.h"
#include "src/log.h"
#include "src/net.h"

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24
#define LINGER_MS 2000

static void flush(struct conn *c);
static void pump(struct conn *c);
static void close_handles(struct conn *c);
static void on_timer(uv_timer_t *t);

size_t conn_queued(const struct conn *c) { return sockout_queued(&c->so); }

static void on_deferred(struct worker_defer *d) {
  struct conn *c = container_of(d, struct conn, flush);
  if (c->pump_pending) {
    c->pump_pending = 0;
    pump(c);
  }
  flush(c);
}

static void schedule(struct conn *c) { worker_defer(c->w, &c->flush); }

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct conn *c = h->data;
  struct buf_chunk *chunk = buf_get(&c->w->pool);
  buf->base = chunk->data;
  buf->len = BUF_CHUNK_SIZE;
}

static void release_read_buf(struct conn *c, const uv_buf_t *buf) {
  if (buf->base) buf_put(&c->w->pool, container_of(buf->base, struct buf_chunk, data));
}

static void fail(struct conn *c, int err) {
  if (c->closing) return;
  if (c->fe) {
    c->fe->on_error(c, err);
  }
  if (!c->closing) conn_abort(c);
}

/* Chooses the front end; pending bytes are delivered by the pump. */
static void attach(struct conn *c, int h2) {
  c->proto = h2 ? "h2" : "http/1.1";
  conn_set_timer(c, 0); /* the handshake is over; the front end arms its own timers */
  if (h2) {
    METRIC_ADD(&c->w->metrics, conns_h2, 1);
    h2_session_attach(c);
  } else {
    METRIC_ADD(&c->w->metrics, conns_h1, 1);
    h1_conn_attach(c);
  }
  CHECK(c->fe != NULL);
}

/* Cleartext: the HTTP/2 connection preface picks h2 (prior knowledge), anything else h1. */
static void sniff(struct conn *c) {
  char head[H2_PREFACE_LEN];
  size_t n = bufq_peek(&c->pending, head, sizeof(head));
  if (memcmp(head, H2_PREFACE, n) != 0)
    attach(c, 0);
  else if (n == H2_PREFACE_LEN)
    attach(c, 1);
}

static void deliver_eof(struct conn *c) {
  if (c->eof && !c->eof_delivered && c->fe && c->reading && c->pending.bytes == 0 &&
      c->tio.in.bytes == 0 && !c->closing) {
    c->eof_delivered = 1;
    c->fe->on_eof(c);
  }
}

/* Delivers pending plaintext (and, on TLS, decrypts more) while the front end reads. */
static void pump(struct conn *c) {
  while (!c->closing && c->fe && c->reading) {
    struct buf_chunk *chunk = bufq_pop(&c->pending);
    if (!chunk && c->ssl && c->handshake_done) {
      /* With nothing to decrypt, SSL_read would allocate its 16 KiB record buffer only to
       * report WANT_READ -- and keep it, on every idle connection. */
      if (c->tio.in.bytes == 0 && !SSL_has_pending(c->ssl)) break;
      chunk = buf_get(&c->w->pool);
      int n = SSL_read(c->ssl, chunk->data, BUF_CHUNK_SIZE);
      if (n > 0) {
        chunk->len = (uint32_t)n;
      } else {
        buf_put(&c->w->pool, chunk);
        chunk = NULL;
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN) {
          c->eof = 1;
          bufq_clear(&c->tio.in, &c->w->pool);
        } else if (e == SSL_ERROR_WANT_READ && c->eof) {
          bufq_clear(&c->tio.in, &c->w->pool); /* a truncated record after TCP EOF */
        } else if (e != SSL_ERROR_WANT_READ) {
          char buf[160];
          log_debug("conn %s: TLS read error: %s", c->peer, tls_error_string(buf, sizeof(buf)));
          fail(c, -EPROTO);
          return;
        }
      }
    }
    if (!chunk) break;
    c->fe->on_read(c, chunk);
  }
  deliver_eof(c);
  /* An idle TLS connection keeps no 16 KiB record buffers (fails harmlessly if data waits). */
  if (c->ssl && c->handshake_done && c->tio.in.bytes == 0) SSL_free_buffers(c->ssl);
  if (c->ssl && c->so.q.bytes) schedule(c); /* alerts, tickets, key updates */
}

static void tls_progress(struct conn *c) {
  if (!c->handshake_done) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_WANT_READ) {
        flush(c);
        if (c->eof) conn_abort(c); /* the client hung up mid-handshake */
        return;
      }
      char buf[160];
      log_debug("conn %s: TLS handshake failed: %s", c->peer, tls_error_string(buf, sizeof(buf)));
      METRIC_ADD(&c->w->metrics, tls_handshake_failures, 1);
      conn_close(c); /* sends the alert OpenSSL queued */
      return;
    }
    c->handshake_done = 1;
    const char *alpn = tls_alpn(c->ssl);
    attach(c, alpn && strcmp(alpn, "h2") == 0);
  }
  pump(c);
  flush(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = s->data;
  if (nread <= 0) {
    release_read_buf(c, buf);
    if (nread == 0) return;
    if (c->lingering) {
      close_handles(c);
      return;
    }
    if (c->closing) {
      c->eof = 1;
      return;
    }
    if (nread == UV_EOF) {
      c->eof = 1;
      uv_read_stop(s);
      c->uv_reading = 0;
      if (!c->fe) {
        if (c->ssl || c->pending.bytes == 0) {
          conn_abort(c);
          return;
        }
        attach(c, 0);
      }
      pump(c);
      return;
    }
    log_debug("conn %s: read error: %s", c->peer, uv_strerror((int)nread));
    fail(c, (int)nread);
    return;
  }
  struct buf_chunk *chunk = container_of(buf->base, struct buf_chunk, data);
  chunk->len = (uint32_t)nread;
  if (c->lingering || c->closing) {
    buf_put(&c->w->pool, chunk);
    return;
  }
  if (c->ssl) {
    bufq_push(&c->tio.in, &c->w->pool, chunk);
    tls_progress(c);
    return;
  }
  bufq_push(&c->pending, &c->w->pool, chunk);
  if (!c->fe) sniff(c);
  pump(c);
  /* The front end stopped reading with bytes left over: stop the socket too. */
  if (!c->closing && !c->reading && c->uv_reading) {
    uv_read_stop(s);
    c->uv_reading = 0;
  }
}

static void on_write(uv_write_t *req, int status) {
  struct conn *c = req->data;
  sockout_done(&c->so);
  if (status < 0) {
    c->write_failed = 1;
    sockout_clear(&c->so);
    if (!c->closing) {
      log_debug("conn %s: write error: %s", c->peer, uv_strerror(status));
      fail(c, status);
    } else {
      close_handles(c);
    }
    return;
  }
  flush(c);
  if (!c->closing && c->fe && conn_queued(c) <= c->w->cfg->low_water) c->fe->on_drain(c);
}

/* A closing conn whose output is all written and whose FIN is out either closes (the client has
 * closed too) or lingers: it keeps reading and discarding until the client closes or a timer
 * fires, so that our last response is not destroyed by an RST for unread input (RFC 9112 §9.6). */
static void maybe_finish_close(struct conn *c) {
  if (!c->closing || c->handles_closing || c->lingering) return;
  if (c->write_failed) {
    close_handles(c);
    return;
  }
  if (sockout_busy(&c->so) || c->so.q.bytes || !c->shutdown_done) return;
  if (c->eof) {
    close_handles(c);
    return;
  }
  c->lingering = 1;
  if (!c->uv_reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->uv_reading = 1;
  uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct conn *c = req->data;
  c->shutdown_done = 1;
  if (status < 0) c->write_failed = 1;
  maybe_finish_close(c);
}

static void flush(struct conn *c) {
  if (sockout_busy(&c->so) || c->write_failed || c->handles_closing) return;
  if (c->so.q.bytes == 0) {
    if (c->want_shutdown && !c->shutdown_sent) {
      c->shutdown_sent = 1;
      c->sreq.data = c;
      if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        c->shutdown_done = 1;
        c->write_failed = 1;
      }
    }
    maybe_finish_close(c);
    return;
  }
  c->so.wreq.data = c;
  int r = sockout_flush(&c->so, (uv_stream_t *)&c->tcp, on_write);
  if (r < 0) {
    c->write_failed = 1;
    if (c->closing)
      close_handles(c);
    else
      fail(c, r);
  }
}

void conn_write(struct conn *c, struct buf_chunk *chunk) {
  if (c->write_failed || c->shutdown_sent || c->aborted) {
    buf_put(&c->w->pool, chunk);
    return;
  }
  if (c->ssl) {
    if (chunk->len > 0) {
      if (tls_write_all(c->ssl, buf_rd(chunk), chunk->len) != 0) {
        char buf[160];
        log_debug("conn %s: TLS write failed: %s", c->peer, tls_error_string(buf, sizeof(buf)));
        c->write_failed = 1;
      }
    }
    buf_put(&c->w->pool, chunk);
  } else {
    bufq_push(&c->so.q, &c->w->pool, chunk);
  }
  schedule(c);
}

void conn_write_copy(struct conn *c, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    struct buf_chunk *chunk = buf_get(&c->w->pool);
    size_t n = MIN(len, (size_t)BUF_CHUNK_SIZE);
    memcpy(chunk->data, p, n);
    chunk->len = (uint32_t)n;
    conn_write(c, chunk);
    p += n;
    len -= n;
  }
}

void conn_read_start(struct conn *c) {
  if (c->closing) return;
  c->reading = 1;
  if (!c->eof && !c->uv_reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
    c->uv_reading = 1;
  /* Plaintext may already be waiting (pending, or inside OpenSSL); deliver it outside this stack. */
  if (c->pending.bytes || c->tio.in.bytes || (c->ssl && SSL_pending(c->ssl)) || c->eof) {
    c->pump_pending = 1;
    schedule(c);
  }
}

void conn_read_stop(struct conn *c) {
  c->reading = 0;
  if (c->uv_reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->uv_reading = 0;
  }
}

void conn_shutdown(struct conn *c) {
  if (c->want_shutdown || c->closing) return;
  c->want_shutdown = 1;
  if (c->ssl && c->handshake_done && !c->write_failed) {
    SSL_shutdown(c->ssl); /* queues close_notify; we do not wait for the client's */
    ERR_clear_error();
  }
  schedule(c);
}

void conn_close(struct conn *c) {
  if (c->closing) return;
  conn_read_stop(c);
  conn_shutdown(c);
  c->closing = 1;
  conn_set_timer(c, 0);
  bufq_clear(&c->pending, &c->w->pool);
  if (c->write_failed) {
    close_handles(c);
    return;
  }
  /* A client that stops reading must not keep us forever: bound the flush as well. */
  uv_timer_start(&c->timer, on_timer, c->w->cfg->idle_timeout_ms, 0);
  schedule(c);
}

void conn_abort(struct conn *c) {
  if (c->aborted || c->handles_closing) return;
  c->closing = 1;
  c->aborted = 1;
  conn_read_stop(c);
  bufq_clear(&c->pending, &c->w->pool);
  sockout_clear(&c->so);
  close_handles(c);
}

void conn_set_timer(struct conn *c, uint64_t ms) {
  if (c->handles_closing) return;
  if (ms == 0) {
    uv_timer_stop(&c->timer);
    return;
  }
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

void conn_stop(struct conn *c) {
  if (c->closing) return;
  if (!c->fe) {
    conn_abort(c);
    return;
  }
  c->fe->on_stop(c);
}

static void free_conn(struct conn *c) {
  struct worker *w = c->w;
  if (c->fe) c->fe->on_close(c);
  worker_defer_cancel(&c->flush);
  sockout_done(&c->so);
  sockout_clear(&c->so);
  bufq_clear(&c->pending, &w->pool);
  bufq_clear(&c->tio.in, &w->pool);
  if (c->ssl) SSL_free(c->ssl);
  list_remove(&c->link);
  METRIC_SUB(&w->metrics, conns_active, 1);
  free(c);
  worker_maybe_finish(w);
}

static void on_handle_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  if (--c->handles == 0) free_conn(c);
}

static void close_handles(struct conn *c) {
  if (c->handles_closing) return;
  c->handles_closing = 1;
  c->closing = 1;
  c->reading = 0;
  if (c->aborted && !c->shutdown_sent) {
    if (uv_tcp_close_reset(&c->tcp, on_handle_closed) != 0) uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  } else {
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  }
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_timer(uv_timer_t *t) {
  struct conn *c = t->data;
  if (c->closing) {
    close_handles(c);
  } else if (!c->fe) {
    log_debug("conn %s: handshake timeout", c->peer);
    conn_abort(c);
  } else {
    c->fe->on_timeout(c);
  }
}

void conn_accept(struct listener *lst) {
  struct worker *w = lst->w;
  struct conn *c = xcalloc(1, sizeof(*c));
  c->w = w;
  uv_tcp_init(&w->loop, &c->tcp);
  uv_timer_init(&w->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->handles = 2;
  c->flush.cb = on_deferred;
  list_init(&c->flush.link);
  c->tio.pool = &w->pool;
  sockout_init(&c->so, &w->pool);
  c->tio.out = &c->so.q;
  list_insert_tail(&w->conns, &c->link);
  METRIC_ADD(&w->metrics, conns_active, 1);
  if (uv_accept((uv_stream_t *)&lst->tcp, (uv_stream_t *)&c->tcp) != 0) {
    conn_abort(c);
    return;
  }
  METRIC_ADD(&w->metrics, conns_accepted, 1);
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
    net_format_addr((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
  if (w->cfg->max_connections &&
      atomic_load_explicit(&w->metrics.conns_active, memory_order_relaxed) > w->cfg->max_connections) {
    log_warn("conn %s: over --max-connections (%zu per worker), closing", c->peer,
             w->cfg->max_connections);
    conn_abort(c);
    return;
  }
  if (lst->cfg->tls) {
    c->tls = 1;
    c->ssl = SSL_new(w->ssl_ctx);
    CHECK(c->ssl != NULL);
    BIO *b = tls_bio_new(&c->tio);
    SSL_set_bio(c->ssl, b, b);
    SSL_set_accept_state(c->ssl);
  }
  uv_timer_start(&c->timer, on_timer, w->cfg->handshake_timeout_ms, 0);
  c->reading = 1;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->uv_reading = 1;
}
