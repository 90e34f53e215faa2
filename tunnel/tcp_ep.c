/* Upstream TCP endpoint. Dial: [port policy] -> DNS (c-ares) -> [address policy on each result]
 * -> connect to each allowed address in turn, all under one connect deadline. Then a tun_ep:
 * reads go straight into pooled chunks handed to the tunnel; writes are queued and flushed once
 * per loop turn; shutdown is a FIN after the queue drains; abort is an RST (SO_LINGER 0). */
#include "tunnel/tcp_ep.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "src/buf.h"
#include "src/tls.h"
#include "src/log.h"
#include "src/net.h"
#include "src/sockout.h"
#include "src/worker.h"
#include "tunnel/resolve.h"
#include "tunnel/tunnel.h"

struct tcp_ep {
  struct tun_ep ep;              /* the tunnel's view of this side */
  struct worker *w;              /* back-pointer: the owning worker */
  uv_tcp_t tcp;
  uv_timer_t timer;              /* dial deadline, then the close deadline */
  int handles;                   /* open libuv handles; freed at 0 */
  uv_connect_t creq;
  uv_shutdown_t sreq;
  struct sockout so;
  struct worker_defer defer;     /* flush, or the async dial result */
  struct resolve *res;           /* owned: the resolution in progress, or NULL */
  struct dns_result addrs;       /* policy-allowed addresses */
  size_t next_addr;
  tcp_dial_cb cb;
  void *cb_arg;
  struct authority target;
  enum pxerr err;                /* dial result waiting for delivery */
  const char *err_detail;
  int last_connect_err;
  char peer[64];
  SSL *ssl;                      /* owned: TLS to the upstream, or NULL */
  struct tls_io tio;             /* ciphertext in; out goes to |so| */
  char verify_name[AUTHORITY_HOST_MAX + 1];
  tcp_pre_read_cb pre_cb;        /* reads before a tunnel attaches, or NULL */
  void *pre_arg;
  unsigned tls : 1;
  unsigned pump_pending : 1;     /* TLS plaintext may wait inside OpenSSL */
  unsigned close_notify_sent : 1;
  unsigned eof_seen : 1;
  unsigned dialing : 1;
  unsigned in_dns : 1;
  unsigned connected : 1;
  unsigned reading : 1;
  unsigned shut_sent : 1;
  unsigned detached : 1;         /* closed by the tunnel or cancelled */
  unsigned write_failed : 1;
  unsigned handles_closing : 1;
};

static const struct tun_ep_ops tcp_ep_ops;
static void connect_next(struct tcp_ep *t);
static void flush(struct tcp_ep *t);

struct tun_ep *tcp_ep_tun(struct tcp_ep *t) { return &t->ep; }
const char *tcp_ep_peer(const struct tcp_ep *t) { return t->peer; }

static void on_handle_closed(uv_handle_t *h) {
  struct tcp_ep *t = h->data;
  if (--t->handles > 0) return;
  worker_defer_cancel(&t->defer);
  sockout_done(&t->so);
  sockout_clear(&t->so);
  bufq_clear(&t->tio.in, &t->w->pool);
  if (t->ssl) SSL_free(t->ssl);
  free(t);
}

static void close_handles(struct tcp_ep *t, int reset) {
  if (t->handles_closing) return;
  t->handles_closing = 1;
  if (t->res) {
    resolve_cancel(t->res);
    t->res = NULL;
  }
  if (reset && t->connected && !t->shut_sent && uv_tcp_close_reset(&t->tcp, on_handle_closed) == 0) {
    /* RST sent */
  } else {
    uv_close((uv_handle_t *)&t->tcp, on_handle_closed);
  }
  uv_close((uv_handle_t *)&t->timer, on_handle_closed);
}

/* Delivers the dial result from the loop (the deferred callback). */
static void deliver_result(struct worker_defer *d) {
  struct tcp_ep *t = container_of(d, struct tcp_ep, defer);
  d->cb = NULL;
  t->dialing = 0;
  if (t->detached) return;
  if (t->err == PXERR_NONE) {
    t->cb(t->cb_arg, t, PXERR_NONE, NULL);
  } else {
    t->detached = 1;
    t->cb(t->cb_arg, NULL, t->err, t->err_detail);
    close_handles(t, 0);
  }
}

static void dial_done(struct tcp_ep *t, enum pxerr err, const char *detail) {
  if (!t->dialing) return;
  uv_timer_stop(&t->timer);
  t->err = err;
  t->err_detail = detail;
  t->defer.cb = deliver_result;
  worker_defer(t->w, &t->defer);
}

static enum pxerr map_connect_error(int err, const char **detail) {
  switch (err) {
  case UV_ECONNREFUSED: *detail = "connection refused"; return PXERR_CONN_REFUSED;
  case UV_ETIMEDOUT: *detail = "connect timed out"; return PXERR_CONN_TIMEOUT;
  case UV_ENETUNREACH:
  case UV_EHOSTUNREACH:
  case UV_EADDRNOTAVAIL:
  case UV_EAFNOSUPPORT: *detail = "destination unreachable"; return PXERR_UNREACHABLE;
  default: *detail = "connect failed"; return PXERR_CONN_ERROR;
  }
}

static void tls_start(struct tcp_ep *t);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);

static void on_tcp_reinit_closed(uv_handle_t *h) {
  struct tcp_ep *t = h->data;
  t->handles--;
  if (t->detached) {
    if (t->handles == 1) close_handles(t, 0);
    return;
  }
  uv_tcp_init(&t->w->loop, &t->tcp);
  t->tcp.data = t;
  t->handles++;
  connect_next(t);
}

static void on_connect(uv_connect_t *req, int status) {
  struct tcp_ep *t = req->data;
  if (status == UV_ECANCELED || t->detached) return;
  if (status < 0) {
    t->last_connect_err = status;
    log_debug("dial %s: %s: %s", t->target.host, t->peer, uv_strerror(status));
    if (t->next_addr < t->addrs.n) {
      /* A failed connect leaves the handle unusable: close it and try the next address. */
      uv_close((uv_handle_t *)&t->tcp, on_tcp_reinit_closed);
      return;
    }
    const char *detail;
    enum pxerr e = map_connect_error(status, &detail);
    dial_done(t, e, detail);
    return;
  }
  t->connected = 1;
  uv_tcp_nodelay(&t->tcp, 1);
  if (t->tls)
    tls_start(t);
  else
    dial_done(t, PXERR_NONE, NULL);
}

static void connect_next(struct tcp_ep *t) {
  const struct sockaddr *sa = (const struct sockaddr *)&t->addrs.addrs[t->next_addr++];
  net_format_addr(sa, t->peer, sizeof(t->peer));
  t->creq.data = t;
  int r = uv_tcp_connect(&t->creq, &t->tcp, sa, on_connect);
  if (r < 0) {
    /* Synchronous failure (e.g. no route): the callback will not run; report from the loop. */
    t->last_connect_err = r;
    if (t->next_addr < t->addrs.n) {
      uv_close((uv_handle_t *)&t->tcp, on_tcp_reinit_closed);
      return;
    }
    const char *detail;
    enum pxerr e = map_connect_error(r, &detail);
    dial_done(t, e, detail);
  }
}

static void on_resolved(void *arg, enum pxerr err, const char *detail, const struct dns_result *allowed) {
  struct tcp_ep *t = arg;
  t->res = NULL;
  t->in_dns = 0;
  if (err != PXERR_NONE) {
    dial_done(t, err, detail);
    return;
  }
  t->addrs = *allowed;
  connect_next(t);
}

static void on_dial_timer(uv_timer_t *h) {
  struct tcp_ep *t = h->data;
  if (!t->dialing) return;
  if (t->in_dns) {
    if (t->res) resolve_cancel(t->res);
    t->res = NULL;
    dial_done(t, PXERR_DNS_TIMEOUT, "dns timeout");
  } else {
    dial_done(t, PXERR_CONN_TIMEOUT, "connect timed out");
  }
}

struct tcp_ep *tcp_ep_dial(struct worker *w, const struct authority *target, tcp_dial_cb cb, void *arg) {
  return tcp_ep_dial2(w, target, NULL, cb, arg);
}

struct tcp_ep *tcp_ep_dial2(struct worker *w, const struct authority *target,
                            const struct tcp_dial_opts *opts, tcp_dial_cb cb, void *arg) {
  struct tcp_ep *t = xcalloc(1, sizeof(*t));
  if (opts && opts->tls) {
    t->tls = 1;
    snprintf(t->verify_name, sizeof(t->verify_name), "%s", opts->verify_name ? opts->verify_name : target->host);
  }
  t->w = w;
  t->ep.ops = &tcp_ep_ops;
  t->cb = cb;
  t->cb_arg = arg;
  t->target = *target;
  t->dialing = 1;
  sockout_init(&t->so, &w->pool);
  t->tio.pool = &w->pool;
  t->tio.out = &t->so.q;
  list_init(&t->defer.link);
  uv_tcp_init(&w->loop, &t->tcp);
  uv_timer_init(&w->loop, &t->timer);
  t->tcp.data = t;
  t->timer.data = t;
  t->handles = 2;
  uv_timer_start(&t->timer, on_dial_timer, w->cfg->connect_timeout_ms, 0);
  t->in_dns = 1;
  t->res = (opts && opts->trusted) ? resolve_start_trusted(w, target, on_resolved, t)
                                    : resolve_start(w, target, on_resolved, t);
  return t;
}

void tcp_ep_cancel(struct tcp_ep *t) {
  t->detached = 1;
  worker_defer_cancel(&t->defer);
  close_handles(t, 1);
}

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
  uv_read_stop((uv_stream_t *)&t->tcp);
  t->reading = 0;
}

/* TLS: decrypts what has arrived while someone reads; reports EOF after the last byte. */
static void tls_pump(struct tcp_ep *t) {
  while (t->ssl && t->reading && !t->detached) {
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
    dial_done(t, PXERR_NONE, NULL);
  } else if (SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ || t->eof_seen) {
    enum pxerr e;
    const char *why = tls_failure(t, &e);
    log_info("dial %s: %s: %s", t->target.host, t->peer, why);
    stop_reading(t);
    dial_done(t, e, why);
  }
  flush(t);
}

static void tls_start(struct tcp_ep *t) {
  t->ssl = SSL_new(t->w->client_ssl_ctx);
  CHECK(t->ssl != NULL);
  BIO *b = tls_bio_new(&t->tio);
  SSL_set_bio(t->ssl, b, b);
  SSL_set_connect_state(t->ssl);
  SSL_set_verify(t->ssl, SSL_VERIFY_PEER, NULL);
  struct authority tmp;
  if (authority_from_host(t->verify_name, 1, &tmp) == 0 && tmp.kind != AUTHORITY_NAME) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), t->verify_name);
  } else {
    SSL_set_tlsext_host_name(t->ssl, t->verify_name);
    SSL_set1_host(t->ssl, t->verify_name);
  }
  if (uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_read) == 0) t->reading = 1;
  tls_handshake(t);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct tcp_ep *t = s->data;
  struct buf_chunk *c = buf->base ? container_of(buf->base, struct buf_chunk, data) : NULL;
  if (nread > 0 && !t->detached) {
    c->len = (uint32_t)nread;
    if (!t->ssl) {
      dispatch(t, c);
      return;
    }
    bufq_push(&t->tio.in, &t->w->pool, c);
    if (t->dialing)
      tls_handshake(t);
    else
      tls_pump(t);
    return;
  }
  buf_put(&t->w->pool, c);
  if (nread == 0 || t->detached) return;
  if (t->ssl && nread == UV_EOF) {
    t->eof_seen = 1;
    if (t->dialing)
      tls_handshake(t);
    else
      tls_pump(t); /* delivers what is left, then EOF */
    return;
  }
  stop_reading(t);
  if (t->dialing) {
    enum pxerr e = PXERR_TLS_PROTOCOL;
    dial_done(t, e, "upstream closed during the TLS handshake");
    return;
  }
  dispatch_end(t, (int)nread);
}

static void on_pump(struct worker_defer *d);

static void ep_read_start(struct tun_ep *self) {
  struct tcp_ep *t = container_of(self, struct tcp_ep, ep);
  if (t->reading || t->detached) return;
  if (!t->eof_seen && uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_read) == 0) t->reading = 1;
  if (t->eof_seen) t->reading = 1; /* only buffered TLS plaintext and the EOF are left */
  if (t->ssl && (t->tio.in.bytes || SSL_pending(t->ssl) || t->eof_seen)) {
    t->pump_pending = 1;
    t->defer.cb = on_pump;
    worker_defer(t->w, &t->defer);
  }
}

static void ep_read_stop(struct tun_ep *self) { stop_reading(container_of(self, struct tcp_ep, ep)); }

static void maybe_release(struct tcp_ep *t) {
  if (t->detached && !sockout_busy(&t->so) && t->so.q.bytes == 0 &&
      (t->shut_sent || !t->ep.wr_shut || t->write_failed) && !t->sreq.handle)
    close_handles(t, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct tcp_ep *t = req->data;
  t->sreq.handle = NULL;
  maybe_release(t);
}

static void on_write(uv_write_t *req, int status) {
  struct tcp_ep *t = req->data;
  sockout_done(&t->so);
  t->ep.queued = sockout_queued(&t->so);
  if (status < 0) {
    t->write_failed = 1;
    sockout_clear(&t->so);
    t->ep.queued = 0;
    if (!t->detached && t->ep.tun) {
      tunnel_on_error(&t->ep, status == UV_ECONNRESET || status == UV_EPIPE ? TUN_CLOSE_UPSTREAM_RST
                                                                            : TUN_CLOSE_UPSTREAM_ERROR);
    }
    maybe_release(t);
    return;
  }
  flush(t);
  if (t->ep.tun && t->ep.queued <= t->w->cfg->low_water) tunnel_on_drain(&t->ep);
  maybe_release(t);
}

static void flush(struct tcp_ep *t) {
  if (t->handles_closing || t->write_failed) return;
  if (t->so.q.bytes) {
    t->so.wreq.data = t;
    int r = sockout_flush(&t->so, (uv_stream_t *)&t->tcp, on_write);
    if (r < 0) {
      t->write_failed = 1;
      t->ep.queued = 0;
      if (t->ep.tun) tunnel_on_error(&t->ep, TUN_CLOSE_UPSTREAM_ERROR);
      maybe_release(t);
    }
    return;
  }
  if (t->ssl && t->ep.wr_shut && !t->close_notify_sent && !t->dialing) {
    t->close_notify_sent = 1;
    SSL_shutdown(t->ssl);
    ERR_clear_error();
    if (t->so.q.bytes) {
      flush(t);
      return;
    }
  }
  if (!sockout_busy(&t->so) && t->ep.wr_shut && !t->shut_sent) {
    t->shut_sent = 1;
    t->sreq.data = t;
    if (uv_shutdown(&t->sreq, (uv_stream_t *)&t->tcp, on_shutdown) != 0) t->sreq.handle = NULL;
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
  if (t->write_failed || t->handles_closing) {
    buf_put(&t->w->pool, c);
    return;
  }
  if (t->ssl) {
    if (c->len && tls_write_all(t->ssl, buf_rd(c), c->len) != 0) {
      ERR_clear_error();
      t->write_failed = 1;
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
  t->detached = 1;
  ep_read_stop(self);
  if (self->aborted || t->write_failed) {
    close_handles(t, self->aborted);
    return;
  }
  /* Finish writing what the tunnel gave us, bounded by the idle timeout. */
  if (!t->handles_closing) uv_timer_start(&t->timer, on_close_timer, t->w->cfg->idle_timeout_ms, 0);
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
