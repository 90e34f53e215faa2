/* Upstream TCP endpoint. It wraps a socket the dialer (proxy/dialer.c) connected; with TLS it
 * then runs the client handshake. After that it is a tun_ep: reads go straight into pooled
 * chunks handed to the tunnel; writes are queued and flushed once per loop turn; shutdown is a FIN
 * after the queue drains; abort is an RST (SO_LINGER 0).
 *
 * Lifecycle (|state|):
 *
 *   from        event                                     to          what happens
 *   (start)     tcp_ep_new                                OPEN        the socket is ours
 *   OPEN        tcp_ep_tls_start                          HANDSHAKE   its deadline on |timer|
 *   HANDSHAKE   verified / failed / deadline / EOF        DELIVERING  result deferred to the loop
 *   DELIVERING  deferred delivery: success                OPEN        owner's callback with |t|
 *   DELIVERING  deferred delivery: failure                CLOSING     owner's callback with NULL
 *   OPEN        ops->close, bytes or FIN left to send     DRAINING    close deadline on |timer|
 *   OPEN        ops->close, nothing left / ops->abort     CLOSING     (abort: RST)
 *   DRAINING    queue flushed and FIN done, or deadline   CLOSING     (deadline: RST)
 *   any but CLOSING  tcp_ep_cancel                        CLOSING     cancel the delivery; RST
 *                                                                     the socket
 *   CLOSING     tcp_ep_cancel, ops->close                 CLOSING     nothing
 *   CLOSING     last handle closed                        (freed)
 *
 * Upcalls (tunnel or pre-reader) happen only in OPEN. Apart from |state|, two facts stay on
 * their own because they move independently of it and of each other: the write side |wr| (FIN
 * and close_notify progress, or a failed write) and the read side (|reading|, |eof_seen|). An
 * endpoint can be OPEN with its write side shut and its read side still at work, or DRAINING
 * with the peer's EOF seen or not. */
#include "tunnel/tcp_ep.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "src/authority.h"
#include "src/buf.h"
#include "src/log.h"
#include "src/net.h"
#include "src/sockout.h"
#include "src/tls.h"
#include "src/worker.h"
#include "tunnel/tunnel.h"

enum tcp_ep_state {
  TCP_EP_HANDSHAKE,  /* TLS client handshake on |tcp| */
  TCP_EP_DELIVERING, /* handshake outcome in |err|; the owner's callback waits in |defer| */
  TCP_EP_OPEN,       /* the owner's: tun_ep ops and upcalls */
  TCP_EP_DRAINING,   /* closed by the tunnel: flushing what it wrote, no upcalls */
  TCP_EP_CLOSING,    /* handles closing; freed in the last close callback */
};

/* The write side, in the order it moves (a failure can come at any point). */
enum tcp_ep_wr {
  TCP_WR_OPEN,        /* writing; after ep.wr_shut, flushing toward the FIN */
  TCP_WR_NOTIFY_SENT, /* TLS close_notify queued; the FIN follows it */
  TCP_WR_FIN_SENT,    /* uv_shutdown issued (|sreq| busy until its callback) */
  TCP_WR_FAILED,      /* a write failed; the queue was dropped */
};

struct tcp_ep {
  struct tun_ep ep;              /* the tunnel's view of this side */
  struct worker *w;              /* back-pointer: the owning worker */
  enum tcp_ep_state state;
  enum tcp_ep_wr wr;
  uv_tcp_t *tcp;                 /* owned: handed over by the dialer (its own allocation, freed in
                                    its close callback) */
  uv_timer_t timer;              /* TLS handshake deadline, then the close (drain) deadline */
  int handles;                   /* open libuv handles (|timer|, |tcp|); freed at 0 */
  uv_shutdown_t sreq;            /* sreq.handle != NULL while a shutdown is in flight */
  struct sockout so;
  struct worker_defer defer;     /* flush, or the deferred handshake outcome */
  tcp_tls_cb cb;                 /* the handshake's owner */
  void *cb_arg;
  enum pxerr err;                /* DELIVERING: the handshake outcome */
  const char *err_detail;
  char peer[64];
  SSL *ssl;                      /* owned: TLS to the upstream (tcp_ep_tls_start), or NULL */
  struct tls_io tio;             /* ciphertext in; out goes to |so| */
  tcp_pre_read_cb pre_cb;        /* reads before a tunnel attaches, or NULL */
  void *pre_arg;
  unsigned reading : 1;          /* the tunnel (or pre-reader) wants on_read */
  unsigned eof_seen : 1;         /* TLS: the socket hit EOF; plaintext may still be buffered */
  unsigned pump_pending : 1;     /* TLS plaintext may wait inside OpenSSL: |defer| pumps it */
};

static const struct tun_ep_ops tcp_ep_ops;
static void flush(struct tcp_ep *t);

struct tun_ep *tcp_ep_tun(struct tcp_ep *t) { return &t->ep; }
const char *tcp_ep_peer(const struct tcp_ep *t) { return t->peer; }

/* ---- lifetime -------------------------------------------------------------------------------- */

/* A handle of |t| has closed: frees |t| after the last one. */
static void handle_closed(struct tcp_ep *t) {
  if (--t->handles > 0) return;
  worker_defer_cancel(&t->defer);
  sockout_done(&t->so);
  sockout_clear(&t->so);
  bufq_clear(&t->tio.in, &t->w->pool);
  if (t->ssl) SSL_free(t->ssl);
  free(t);
}

static void on_ep_timer_closed(uv_handle_t *h) { handle_closed(h->data); }

static void on_tcp_closed(uv_handle_t *h) {
  struct tcp_ep *t = h->data;
  free(h); /* the dialer's allocation, ours since the hand-over */
  t->tcp = NULL;
  handle_closed(t);
}

/* Enters CLOSING (once): stops a pending delivery and closes both handles, with an RST when
 * |reset| and the FIN was not sent. */
static void close_handles(struct tcp_ep *t, int reset) {
  if (t->state == TCP_EP_CLOSING) return;
  t->state = TCP_EP_CLOSING;
  worker_defer_cancel(&t->defer);
  if (!reset || t->wr == TCP_WR_FIN_SENT || uv_tcp_close_reset(t->tcp, on_tcp_closed) != 0)
    uv_close((uv_handle_t *)t->tcp, on_tcp_closed);
  uv_close((uv_handle_t *)&t->timer, on_ep_timer_closed);
}

/* ---- construction and the TLS handshake ------------------------------------------------------ */

static void tls_start(struct tcp_ep *t);

static void on_handshake_result(struct worker_defer *d) {
  struct tcp_ep *t = container_of(d, struct tcp_ep, defer);
  d->cb = NULL;
  if (t->err == PXERR_NONE) {
    t->state = TCP_EP_OPEN;
    t->cb(t->cb_arg, t, PXERR_NONE, NULL);
  } else {
    close_handles(t, 0);
    t->cb(t->cb_arg, NULL, t->err, t->err_detail);
  }
}

/* HANDSHAKE -> DELIVERING: the outcome reaches the owner from the loop's deferred queue, never
 * from inside the read callback that finished the handshake. */
static void handshake_done(struct tcp_ep *t, enum pxerr err, const char *detail) {
  if (t->state != TCP_EP_HANDSHAKE) return;
  t->state = TCP_EP_DELIVERING;
  uv_timer_stop(&t->timer);
  t->err = err;
  t->err_detail = detail;
  t->defer.cb = on_handshake_result;
  worker_defer(t->w, &t->defer);
}

static void on_handshake_timer(uv_timer_t *h) { handshake_done(h->data, PXERR_CONN_TIMEOUT, "connect timed out"); }

/* The TLS client: |name| is SNI and the name to verify (a host name or an IP literal). */
static void tls_setup(struct tcp_ep *t, const char *name) {
  struct authority tmp;
  t->ssl = SSL_new(t->w->client_ssl_ctx);
  CHECK(t->ssl != NULL);
  SSL_set_connect_state(t->ssl);
  SSL_set_verify(t->ssl, SSL_VERIFY_PEER, NULL);
  if (authority_from_host(name, 1, &tmp) == 0 && tmp.kind != AUTHORITY_NAME) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name);
  } else {
    SSL_set_tlsext_host_name(t->ssl, name);
    SSL_set1_host(t->ssl, name);
  }
}

struct tcp_ep *tcp_ep_new(struct worker *w, uv_tcp_t *connected, const struct sockaddr *peer) {
  struct tcp_ep *t = xcalloc(1, sizeof(*t));
  t->w = w;
  t->state = TCP_EP_OPEN;
  t->ep.ops = &tcp_ep_ops;
  sockout_init(&t->so, &w->pool);
  t->tio.pool = &w->pool;
  t->tio.out = &t->so.q;
  list_init(&t->defer.link);
  uv_timer_init(&w->loop, &t->timer);
  t->timer.data = t;
  t->tcp = connected;
  connected->data = t;
  t->handles = 2;
  net_format_addr(peer, t->peer, sizeof(t->peer));
  uv_tcp_nodelay(connected, 1);
  return t;
}

void tcp_ep_tls_start(struct tcp_ep *t, const char *name, uint64_t timeout_ms, tcp_tls_cb cb, void *arg) {
  CHECK(t->state == TCP_EP_OPEN && !t->ssl && !t->ep.tun);
  t->cb = cb;
  t->cb_arg = arg;
  tls_setup(t, name);
  t->state = TCP_EP_HANDSHAKE;
  uv_timer_start(&t->timer, on_handshake_timer, timeout_ms, 0);
  tls_start(t);
}

void tcp_ep_cancel(struct tcp_ep *t) { close_handles(t, 1); }

/* ---- the tun_ep side ---- */

void tcp_ep_set_pre_reader(struct tcp_ep *t, tcp_pre_read_cb cb, void *arg) {
  t->pre_cb = cb;
  t->pre_arg = arg;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct tcp_ep *t = h->data;
  struct buf_chunk *c = buf_get(&t->w->pool);
  buf->base = c->data;
  buf->len = BUF_CHUNK_SIZE;
}

/* Plaintext goes to the pre-reader until a tunnel takes the endpoint. */
static void dispatch(struct tcp_ep *t, struct buf_chunk *c) {
  if (t->ep.tun)
    tunnel_on_read(&t->ep, c);
  else if (t->pre_cb)
    t->pre_cb(t->pre_arg, c, 0);
  else
    buf_put(&t->w->pool, c);
}

static void dispatch_end(struct tcp_ep *t, int err) {
  if (t->ep.tun) {
    if (err == UV_EOF)
      tunnel_on_eof(&t->ep);
    else
      tunnel_on_error(&t->ep, err == UV_ECONNRESET ? TUN_CLOSE_UPSTREAM_RST : TUN_CLOSE_UPSTREAM_ERROR);
  } else if (t->pre_cb) {
    t->pre_cb(t->pre_arg, NULL, err);
  }
}

static void stop_reading(struct tcp_ep *t) {
  if (!t->reading) return;
  uv_read_stop((uv_stream_t *)t->tcp);
  t->reading = 0;
}

/* TLS: decrypts what has arrived while someone reads; reports EOF after the last byte. */
static void tls_pump(struct tcp_ep *t) {
  while (t->ssl && t->reading && t->state == TCP_EP_OPEN) {
    /* Without ciphertext SSL_read would only allocate its record buffer (see conn.c). */
    if (t->tio.in.bytes == 0 && !SSL_has_pending(t->ssl) && !t->eof_seen) {
      SSL_free_buffers(t->ssl);
      break;
    }
    struct buf_chunk *c = buf_get(&t->w->pool);
    int n = SSL_read(t->ssl, c->data, BUF_CHUNK_SIZE);
    if (n > 0) {
      c->len = (uint32_t)n;
      dispatch(t, c);
      continue;
    }
    buf_put(&t->w->pool, c);
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ && !t->eof_seen) break;
    ERR_clear_error();
    stop_reading(t);
    dispatch_end(t, (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_WANT_READ) ? UV_EOF : UV_EPROTO);
    break;
  }
  if (t->so.q.bytes) flush(t);
}

static const char *tls_failure(struct tcp_ep *t, enum pxerr *err) {
  long v = SSL_get_verify_result(t->ssl);
  ERR_clear_error();
  if (v != X509_V_OK) {
    *err = PXERR_TLS_CERT;
    return X509_verify_cert_error_string(v);
  }
  *err = PXERR_TLS_PROTOCOL;
  return "TLS handshake with the upstream failed";
}

static void tls_handshake(struct tcp_ep *t) {
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    stop_reading(t);
    handshake_done(t, PXERR_NONE, NULL);
  } else if (SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ || t->eof_seen) {
    enum pxerr e;
    const char *why = tls_failure(t, &e);
    const char *name = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name); /* NULL for an IP */
    if (name)
      log_info("dial %s: %s: %s", name, t->peer, why);
    else
      log_info("dial %s: %s", t->peer, why);
    stop_reading(t);
    handshake_done(t, e, why);
  }
  flush(t);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void tls_start(struct tcp_ep *t) {
  BIO *b = tls_bio_new(&t->tio);
  SSL_set_bio(t->ssl, b, b);
  if (uv_read_start((uv_stream_t *)t->tcp, on_alloc, on_read) == 0) t->reading = 1;
  tls_handshake(t);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct tcp_ep *t = s->data;
  struct buf_chunk *c = buf->base ? container_of(buf->base, struct buf_chunk, data) : NULL;
  int handshake = t->state == TCP_EP_HANDSHAKE;
  int live = handshake || t->state == TCP_EP_OPEN;
  if (nread > 0 && live) {
    c->len = (uint32_t)nread;
    if (!t->ssl) {
      dispatch(t, c);
      return;
    }
    bufq_push(&t->tio.in, &t->w->pool, c);
    if (handshake)
      tls_handshake(t);
    else
      tls_pump(t);
    return;
  }
  buf_put(&t->w->pool, c);
  if (nread == 0 || !live) return;
  if (t->ssl && nread == UV_EOF) {
    t->eof_seen = 1;
    if (handshake)
      tls_handshake(t);
    else
      tls_pump(t); /* delivers what is left, then EOF */
    return;
  }
  stop_reading(t);
  if (handshake) {
    handshake_done(t, PXERR_TLS_PROTOCOL, "upstream closed during the TLS handshake");
    return;
  }
  dispatch_end(t, (int)nread);
}

static void on_pump(struct worker_defer *d);

static void ep_read_start(struct tun_ep *self) {
  struct tcp_ep *t = container_of(self, struct tcp_ep, ep);
  if (t->reading || t->state != TCP_EP_OPEN) return;
  if (!t->eof_seen && uv_read_start((uv_stream_t *)t->tcp, on_alloc, on_read) == 0) t->reading = 1;
  if (t->eof_seen) t->reading = 1; /* only buffered TLS plaintext and the EOF are left */
  if (t->ssl && (t->tio.in.bytes || SSL_pending(t->ssl) || t->eof_seen)) {
    t->pump_pending = 1;
    t->defer.cb = on_pump;
    worker_defer(t->w, &t->defer);
  }
}

static void ep_read_stop(struct tun_ep *self) { stop_reading(container_of(self, struct tcp_ep, ep)); }

/* DRAINING -> CLOSING once everything the tunnel wrote (and the FIN it asked for) is out. */
static void maybe_release(struct tcp_ep *t) {
  if (t->state == TCP_EP_DRAINING && !sockout_busy(&t->so) && t->so.q.bytes == 0 &&
      (t->wr >= TCP_WR_FIN_SENT || !t->ep.wr_shut) && !t->sreq.handle)
    close_handles(t, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct tcp_ep *t = req->data;
  t->sreq.handle = NULL;
  maybe_release(t);
}

static void write_failed(struct tcp_ep *t, enum tun_close_reason why) {
  t->wr = TCP_WR_FAILED;
  sockout_clear(&t->so);
  t->ep.queued = 0;
  if (t->state == TCP_EP_OPEN && t->ep.tun) tunnel_on_error(&t->ep, why);
  maybe_release(t);
}

static void on_write(uv_write_t *req, int status) {
  struct tcp_ep *t = req->data;
  sockout_done(&t->so);
  t->ep.queued = sockout_queued(&t->so);
  if (status < 0) {
    write_failed(t, status == UV_ECONNRESET || status == UV_EPIPE ? TUN_CLOSE_UPSTREAM_RST : TUN_CLOSE_UPSTREAM_ERROR);
    return;
  }
  flush(t);
  if (t->ep.tun && t->ep.queued <= t->w->cfg->low_water) tunnel_on_drain(&t->ep);
  maybe_release(t);
}

static void flush(struct tcp_ep *t) {
  if (t->state == TCP_EP_CLOSING || t->wr == TCP_WR_FAILED) return;
  if (t->so.q.bytes) {
    t->so.wreq.data = t;
    if (sockout_flush(&t->so, (uv_stream_t *)t->tcp, on_write) < 0) write_failed(t, TUN_CLOSE_UPSTREAM_ERROR);
    return;
  }
  if (!t->ep.wr_shut) {
    maybe_release(t);
    return;
  }
  if (t->ssl && t->wr == TCP_WR_OPEN) {
    t->wr = TCP_WR_NOTIFY_SENT;
    SSL_shutdown(t->ssl);
    ERR_clear_error();
    if (t->so.q.bytes) {
      flush(t);
      return;
    }
  }
  if (!sockout_busy(&t->so) && t->wr < TCP_WR_FIN_SENT) {
    t->wr = TCP_WR_FIN_SENT;
    t->sreq.data = t;
    if (uv_shutdown(&t->sreq, (uv_stream_t *)t->tcp, on_shutdown) != 0) t->sreq.handle = NULL;
  }
  maybe_release(t);
}

static void on_flush(struct worker_defer *d) {
  struct tcp_ep *t = container_of(d, struct tcp_ep, defer);
  if (t->pump_pending) {
    t->pump_pending = 0;
    tls_pump(t);
  }
  flush(t);
}

static void on_pump(struct worker_defer *d) { on_flush(d); }

static void ep_write(struct tun_ep *self, struct buf_chunk *c) {
  struct tcp_ep *t = container_of(self, struct tcp_ep, ep);
  if (t->wr == TCP_WR_FAILED || t->state == TCP_EP_CLOSING) {
    buf_put(&t->w->pool, c);
    return;
  }
  if (t->ssl) {
    if (c->len && tls_write_all(t->ssl, buf_rd(c), c->len) != 0) {
      ERR_clear_error();
      t->wr = TCP_WR_FAILED;
    }
    buf_put(&t->w->pool, c);
  } else {
    bufq_push(&t->so.q, &t->w->pool, c);
  }
  self->queued = sockout_queued(&t->so);
  t->defer.cb = on_flush;
  worker_defer(t->w, &t->defer);
}

static void ep_shutdown(struct tun_ep *self) {
  struct tcp_ep *t = container_of(self, struct tcp_ep, ep);
  self->wr_shut = 1;
  if (t->state == TCP_EP_CLOSING) return;
  t->defer.cb = on_flush;
  worker_defer(t->w, &t->defer);
}

static void ep_abort(struct tun_ep *self) {
  struct tcp_ep *t = container_of(self, struct tcp_ep, ep);
  self->aborted = 1;
  sockout_clear(&t->so);
  self->queued = 0;
  close_handles(t, 1);
}

static void on_close_timer(uv_timer_t *h) { close_handles(h->data, 1); }

static void ep_close(struct tun_ep *self) {
  struct tcp_ep *t = container_of(self, struct tcp_ep, ep);
  if (t->state != TCP_EP_OPEN) return; /* aborted (CLOSING) already */
  stop_reading(t);
  if (self->aborted || t->wr == TCP_WR_FAILED) {
    close_handles(t, self->aborted);
    return;
  }
  /* Finish writing what the tunnel gave us, bounded by the idle timeout. */
  t->state = TCP_EP_DRAINING;
  uv_timer_start(&t->timer, on_close_timer, t->w->cfg->idle_timeout_ms, 0);
  flush(t);
}

static const struct tun_ep_ops tcp_ep_ops = {
    .kind = "tcp",
    .read_start = ep_read_start,
    .read_stop = ep_read_stop,
    .write = ep_write,
    .shutdown = ep_shutdown,
    .abort = ep_abort,
    .close = ep_close,
};
