/* Client connection: read path  socket -> [TLS] -> pending -> front end,
 *                     write path front end -> [TLS] -> so (sockout) -> socket (flushed once per turn).
 *
 * Opening phases (enum conn_phase), until a front end owns the connection:
 *
 *   phase          | holds                      | on bytes
 *   ---------------+----------------------------+-----------------------------------------------
 *   PEEK           | nothing                    | 0x16 (a TLS handshake record) -> TLS_HELLO, on
 *                  |                            |   any listener (logged on a cleartext one)
 *                  |                            | TLS listener, an HTTP method's first letter ->
 *                  |                            |   plaintext 400 "this port expects TLS", close
 *                  |                            | TLS listener, anything else -> close (logged)
 *                  |                            | cleartext listener -> SNIFF
 *   TLS_HELLO      | the first record, in small | record complete (or one OpenSSL will refuse)
 *                  | blocks; no SSL object      |   -> SSL_new, TLS_HANDSHAKE
 *   TLS_HANDSHAKE  | OpenSSL's handshake state  | done -> OPEN with the front end ALPN chose;
 *                  |                            | failed (incl. no ALPN we speak) -> close
 *   SNIFF          | pending plaintext          | h2 preface -> OPEN (h2), anything else -> OPEN (h1)
 *   OPEN           | what the front end keeps   |
 *
 * A stalled handshake is what a flood holds open, so it is kept cheap: no SSL object (about
 * 9 KiB) and none of OpenSSL's 16 KiB buffers until the client has sent a whole ClientHello
 * record, reads into 2 KiB blocks, and at most --max-handshakes of them per worker, the oldest
 * closed to make room (a real client finishes within a round trip or two, a flood's connections
 * are the old ones).
 *
 * Closing: closing (flush, FIN, linger) -> handles closed -> freed. Flags, not a state number,
 * say which side has ended, because both directions end independently.
 *
 * Fairness: one connection reads at most --read-budget bytes per loop turn (on_alloc), so a
 * client that floods cannot hold the worker for the 32 x 64 KiB libuv would read, and decrypt
 * and deliver, in one callback while the other connections wait. */
#include "src/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "h1/h1_conn.h"
#include "h2/h2_session.h"
#include "src/log.h"
#include "src/net.h"
#include "src/pxerr.h"

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24
#define LINGER_MS 2000
/* A TLS record starts with its type (22 = handshake), version (3, x) and a 16-bit length. */
#define TLS_RECORD_HANDSHAKE 0x16
#define TLS_RECORD_HEADER 5
#define TLS_MAX_PLAINTEXT_RECORD 16384 /* RFC 8446 §5.1: 2^14 */

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
  struct worker *w = c->w;
  if (c->turn != w->turn) {
    c->turn = w->turn;
    c->turn_bytes = 0;
  }
  if (c->turn_bytes >= w->cfg->read_budget) {
    /* This turn's budget is spent: an empty buffer ends libuv's read loop with UV_ENOBUFS. The
     * socket stays readable (level-triggered), so the next turn reads on, after the others. */
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  /* Before a front end owns the connection, small blocks: a stalled handshake holds 2 KiB. */
  struct buf_chunk *chunk = c->phase == CONN_OPEN ? buf_get(&w->pool) : buf_get_small(&w->pool);
  buf->base = chunk->data;
  buf->len = chunk->cap;
}

/* Appends |chunk| (taken) to |q|, copied into the tail block when it fits: a client sending its
 * handshake a byte at a time must not hold a block per byte. */
static void hold(struct conn *c, struct bufq *q, struct buf_chunk *chunk) {
  struct buf_chunk *t = q->tail;
  if (t && buf_room(t) >= chunk->len) {
    memcpy(t->data + t->off + t->len, buf_rd(chunk), chunk->len);
    t->len += chunk->len;
    q->bytes += chunk->len;
    buf_put(&c->w->pool, chunk);
    return;
  }
  bufq_push(q, &c->w->pool, chunk);
}

/* Leaves w->handshakes: a front end took over, or the conn is closing. */
static void hs_leave(struct conn *c) {
  if (list_empty(&c->hs_link)) return;
  list_remove(&c->hs_link);
  c->w->nhandshakes--;
  METRIC_SUB(&c->w->metrics, handshakes_active, 1);
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
  c->phase = CONN_OPEN;
  hs_leave(c);
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
    if (!chunk && c->ssl && c->phase == CONN_OPEN) {
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
  if (c->ssl && c->phase == CONN_OPEN && c->tio.in.bytes == 0) SSL_free_buffers(c->ssl);
  if (c->ssl && c->so.q.bytes) schedule(c); /* alerts, tickets, key updates */
}

static void tls_progress(struct conn *c) {
  if (c->phase == CONN_TLS_HANDSHAKE) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_WANT_READ) {
        /* Waiting for the client's next flight: keep no empty 16 KiB record buffers meanwhile. */
        if (c->tio.in.bytes == 0) SSL_free_buffers(c->ssl);
        flush(c);
        if (c->eof) conn_abort(c); /* the client hung up mid-handshake */
        return;
      }
      METRIC_ADD(&c->w->metrics, tls_handshake_failures, 1);
      if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_NO_APPLICATION_PROTOCOL) {
        ERR_clear_error();
        worker_log(c->w, WLOG_TLS_FAILED, LOG_INFO,
                   "conn %s: TLS client offered no ALPN protocol we speak (h2, http/1.1): sent the "
                   "no_application_protocol alert (RFC 7301)",
                   c->peer);
      } else {
        char buf[160];
        worker_log(c->w, WLOG_TLS_FAILED, LOG_INFO, "conn %s: TLS handshake failed: %s", c->peer,
                   tls_error_string(buf, sizeof(buf)));
      }
      conn_close(c); /* sends the alert OpenSSL queued */
      return;
    }
    const char *alpn = tls_alpn(c->ssl);
    attach(c, alpn && strcmp(alpn, "h2") == 0);
  }
  pump(c);
  flush(c);
}

/* The first TLS record is complete (or OpenSSL will refuse it anyway): only now the SSL object. */
static void start_tls(struct conn *c) {
  c->ssl = tls_ssl_new(c->w->ssl_ctx, &c->tio);
  SSL_set_accept_state(c->ssl);
  c->phase = CONN_TLS_HANDSHAKE;
  tls_progress(c);
}

static void collect_hello(struct conn *c) {
  unsigned char h[TLS_RECORD_HEADER];
  if (bufq_peek(&c->tio.in, h, sizeof(h)) < sizeof(h)) return;
  size_t len = ((size_t)h[3] << 8) | h[4];
  if (h[1] == 3 && len <= TLS_MAX_PLAINTEXT_RECORD && c->tio.in.bytes < TLS_RECORD_HEADER + len) return;
  start_tls(c);
}

/* A plaintext request on a TLS listener: say so in plaintext, so that curl, wget and urllib
 * users read why instead of "Remote end closed connection". */
static void answer_plaintext_on_tls(struct conn *c) {
  static const char body[] = "this port expects TLS: use an https:// proxy URL\n";
  char head[320];
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                   "Proxy-Status: h2tunnel; error=%s; details=\"this port expects TLS\"\r\n"
                   "Connection: close\r\n\r\n",
                   sizeof(body) - 1, pxerr_token(PXERR_BAD_REQUEST));
  CHECK(n > 0 && (size_t)n < sizeof(head));
  worker_log(c->w, WLOG_PLAIN_ON_TLS, LOG_INFO,
             "conn %s: plaintext HTTP on a TLS listener: answered 400 \"this port expects TLS\"", c->peer);
  METRIC_ADD(&c->w->metrics, errors[PXERR_BAD_REQUEST], 1);
  conn_write_copy(c, head, (size_t)n);
  conn_write_copy(c, body, sizeof(body) - 1);
  conn_close(c);
}

/* The first byte decides; returns 1 when |chunk| (taken) still needs the cleartext path. */
static int peek(struct conn *c, struct buf_chunk *chunk) {
  unsigned char first = (unsigned char)buf_rd(chunk)[0];
  if (first == TLS_RECORD_HANDSHAKE) {
    if (!c->w->ssl_ctx) {
      worker_log(c->w, WLOG_TLS_ON_CLEAR, LOG_INFO,
                 "conn %s: TLS on a cleartext listener, and no tls:// listener loaded a certificate: closing",
                 c->peer);
      buf_put(&c->w->pool, chunk);
      conn_abort(c);
      return 0;
    }
    if (!c->tls_listener)
      worker_log(c->w, WLOG_TLS_ON_CLEAR, LOG_INFO, "conn %s: TLS on a cleartext listener: serving TLS", c->peer);
    c->phase = CONN_TLS_HELLO;
    hold(c, &c->tio.in, chunk);
    collect_hello(c);
    return 0;
  }
  if (!c->tls_listener) {
    c->phase = CONN_SNIFF;
    return 1;
  }
  buf_put(&c->w->pool, chunk);
  if (first >= 'A' && first <= 'Z') { /* the first letter of an HTTP method */
    answer_plaintext_on_tls(c);
  } else {
    worker_log(c->w, WLOG_NOT_TLS, LOG_INFO,
               "conn %s: neither TLS nor HTTP on a TLS listener (first byte 0x%02x): closing", c->peer, first);
    conn_abort(c);
  }
  return 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = s->data;
  if (nread == UV_ENOBUFS) return; /* the turn's read budget is spent (on_alloc) */
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
      if (c->phase != CONN_OPEN) {
        if (c->phase != CONN_SNIFF || c->pending.bytes == 0) {
          conn_abort(c); /* the client hung up before a front end had anything to answer */
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
  c->turn_bytes += (size_t)nread;
  if (c->lingering || c->closing) {
    buf_put(&c->w->pool, chunk);
    return;
  }
  switch (c->phase) {
  case CONN_PEEK:
    if (!peek(c, chunk)) return;
    break;
  case CONN_TLS_HELLO:
    hold(c, &c->tio.in, chunk);
    collect_hello(c);
    return;
  case CONN_TLS_HANDSHAKE:
    bufq_push(&c->tio.in, &c->w->pool, chunk);
    tls_progress(c);
    return;
  case CONN_SNIFF:
    break;
  case CONN_OPEN:
    if (c->ssl) {
      bufq_push(&c->tio.in, &c->w->pool, chunk);
      tls_progress(c);
      return;
    }
    break;
  }
  if (c->phase == CONN_SNIFF) {
    hold(c, &c->pending, chunk);
    sniff(c);
  } else {
    bufq_push(&c->pending, &c->w->pool, chunk);
  }
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
    struct buf_chunk *chunk = len <= BUF_SMALL_SIZE ? buf_get_small(&c->w->pool) : buf_get(&c->w->pool);
    size_t n = MIN(len, (size_t)chunk->cap);
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
  if (c->ssl && c->phase == CONN_OPEN && !c->write_failed) {
    SSL_shutdown(c->ssl); /* queues close_notify; we do not wait for the client's */
    ERR_clear_error();
  }
  schedule(c);
}

void conn_close(struct conn *c) {
  if (c->closing) return;
  hs_leave(c);
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
  hs_leave(c);
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
  hs_leave(c);
  list_remove(&c->link);
  w->nconns--;
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
    log_debug("conn %s: handshake timeout (%s)", c->peer, c->ssl ? "TLS" : "no complete first flight");
    conn_abort(c);
  } else {
    c->fe->on_timeout(c);
  }
}

/* Closes the connection that has been in its handshake longest, to make room under |limit|.
 * Returns 0 when no connection is in its handshake. */
static int evict_oldest_handshake(struct worker *w, const char *limit, size_t max) {
  if (list_empty(&w->handshakes)) return 0;
  struct conn *old = container_of(w->handshakes.next, struct conn, hs_link);
  METRIC_ADD(&w->metrics, handshakes_evicted, 1);
  worker_log(w, WLOG_EVICTED, LOG_WARN, "conn %s: %s (%zu per worker) reached: closing the oldest handshake (%llu ms old)",
             old->peer, limit, max, (unsigned long long)(uv_now(&w->loop) - old->accepted_ms));
  conn_abort(old);
  return 1;
}

static void refuse(struct worker *w, uv_os_sock_t fd) {
  char peer[64] = "?";
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) net_format_addr((struct sockaddr *)&ss, peer, sizeof(peer));
  METRIC_ADD(&w->metrics, conns_refused, 1);
  worker_log(w, WLOG_REFUSED, LOG_WARN, "conn %s: over --max-connections (%zu per worker) with no handshake to close: refused",
             peer, w->cfg->max_connections);
  struct linger lg = {1, 0}; /* RST: nothing was said on it */
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(fd);
}

void conn_accept(struct listener *lst, uv_os_sock_t fd) {
  struct worker *w = lst->w;
  const struct config *cfg = w->cfg;
  /* Oldest-first: the handshakes a flood holds are the old ones, so a real client gets in. */
  if (cfg->max_connections && w->nconns >= cfg->max_connections &&
      !evict_oldest_handshake(w, "--max-connections", cfg->max_connections)) {
    refuse(w, fd);
    return;
  }
  if (cfg->max_handshakes && w->nhandshakes >= cfg->max_handshakes)
    evict_oldest_handshake(w, "--max-handshakes", cfg->max_handshakes);
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
  c->phase = CONN_PEEK;
  c->tls_listener = lst->cfg->tls ? 1 : 0;
  c->listener = lst->cfg;
  c->accepted_ms = uv_now(&w->loop);
  list_insert_tail(&w->conns, &c->link);
  w->nconns++;
  list_insert_tail(&w->handshakes, &c->hs_link);
  w->nhandshakes++;
  METRIC_ADD(&w->metrics, handshakes_active, 1);
  METRIC_ADD(&w->metrics, conns_active, 1);
  if (uv_tcp_open(&c->tcp, fd) != 0) {
    close(fd);
    conn_abort(c);
    return;
  }
  METRIC_ADD(&w->metrics, conns_accepted, 1);
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
    net_format_addr((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
  uv_timer_start(&c->timer, on_timer, cfg->handshake_timeout_ms, 0);
  c->reading = 1;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->uv_reading = 1;
}
