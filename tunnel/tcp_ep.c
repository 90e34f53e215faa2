/* Upstream TCP endpoint: a tun_ep over the shared byte-stream transport (src/xport.c), which does
 * the reading (within --read-budget per loop turn), TLS, the output queue, FIN and RST. What is
 * left here is the tunnel's view of it and the TLS client handshake's outcome as the request path
 * wants it (enum pxerr).
 *
 * Lifecycle (|state|):
 *
 *   from        event                                     to          what happens
 *   (start)     tcp_ep_new                                OPEN        the socket is ours
 *   OPEN        tcp_ep_tls_start                          HANDSHAKE   its deadline on the xport
 *                                                                     timer
 *   HANDSHAKE   verified (on_handshake 0)                 OPEN        owner's callback with |t|
 *   HANDSHAKE   failed / deadline / peer closed           CLOSING     owner's callback with NULL
 *   OPEN        ops->close                                DRAINING    xport_close: queue, FIN,
 *                                                                     bounded by --idle-timeout
 *   OPEN        ops->close after abort or failure         CLOSING     xport_abort
 *   any but CLOSING  tcp_ep_cancel, ops->abort            CLOSING     xport_abort: RST
 *   DRAINING    xport closed                              (freed)
 *   CLOSING     xport closed and the owner let go         (freed)
 *
 * Upcalls (tunnel or pre-reader) happen only in OPEN. The memory is held by two parties, the
 * xport until its on_close and the owner until it lets go (ops->close, tcp_ep_cancel, or a failed
 * handshake reported to it): freed when both are done. */
#include "tunnel/tcp_ep.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "src/buf.h"
#include "src/log.h"
#include "src/net.h"
#include "src/worker.h"
#include "src/xport.h"
#include "tunnel/tunnel.h"

enum tcp_ep_state {
  TCP_EP_HANDSHAKE, /* TLS client handshake; the outcome goes to |cb| */
  TCP_EP_OPEN,      /* the owner's: tun_ep ops and upcalls */
  TCP_EP_DRAINING,  /* closed by the tunnel: the xport flushes what it wrote, no upcalls */
  TCP_EP_CLOSING,   /* reset or abandoned: the xport's handles are closing */
};

struct tcp_ep {
  struct tun_ep ep;              /* the tunnel's view of this side */
  struct worker *w;              /* back-pointer: the owning worker */
  struct xport x;                /* the transport over |tcp| */
  uv_tcp_t *tcp;                 /* owned: handed over by the dialer (its own allocation), freed
                                    after the xport's on_close */
  enum tcp_ep_state state;
  tcp_tls_cb cb;                 /* the handshake's owner */
  void *cb_arg;
  struct worker_defer fail;      /* a handshake that cannot start, reported from the loop */
  tcp_pre_read_cb pre_cb;        /* reads before a tunnel attaches, or NULL */
  void *pre_arg;
  char peer[64];
  struct sockaddr_storage peer_addr; /* the same, as an address (a reload's re-check) */
  unsigned owner_gone : 1;       /* close, cancel or a failed handshake: the owner holds no pointer */
  unsigned x_closed : 1;         /* the xport's on_close ran */
};

static const struct tun_ep_ops tcp_ep_ops;
static const struct xport_ops tcp_xport_ops;

struct tun_ep *tcp_ep_tun(struct tcp_ep *t) { return &t->ep; }
const struct sockaddr *tcp_ep_peer_addr(const struct tcp_ep *ep) { return (const struct sockaddr *)&ep->peer_addr; }

const char *tcp_ep_peer(const struct tcp_ep *t) { return t->peer; }
static struct tcp_ep *ep_of(struct xport *x) { return container_of(x, struct tcp_ep, x); }

/* ---- lifetime -------------------------------------------------------------------------------- */

static void maybe_free(struct tcp_ep *t) {
  if (!t->owner_gone || !t->x_closed) return;
  worker_defer_cancel(&t->fail);
  free(t->tcp); /* the dialer's allocation, ours since the hand-over */
  free(t);
}

static void let_go(struct tcp_ep *t) {
  t->owner_gone = 1;
  maybe_free(t);
}

/* Any state: reset the socket; nothing calls back afterwards. */
static void reset(struct tcp_ep *t) {
  if (t->state == TCP_EP_CLOSING) return;
  t->state = TCP_EP_CLOSING;
  worker_defer_cancel(&t->fail);
  xport_abort(&t->x);
}

/* ---- the transport's upcalls ------------------------------------------------------------------ */

/* Plaintext goes to the pre-reader until a tunnel takes the endpoint. */
static void on_x_read(struct xport *x, struct buf_chunk *c) {
  struct tcp_ep *t = ep_of(x);
  if (t->state == TCP_EP_OPEN && t->ep.tun)
    tunnel_on_read(&t->ep, c);
  else if (t->state == TCP_EP_OPEN && t->pre_cb)
    t->pre_cb(t->pre_arg, c, 0);
  else
    buf_put(&t->w->pool, c);
}

static void dispatch_end(struct tcp_ep *t, int err) {
  if (t->state != TCP_EP_OPEN) return;
  if (t->ep.tun) {
    if (err == UV_EOF)
      tunnel_on_eof(&t->ep);
    else
      tunnel_on_error(&t->ep, err == UV_ECONNRESET || err == UV_EPIPE ? TUN_CLOSE_UPSTREAM_RST
                                                                      : TUN_CLOSE_UPSTREAM_ERROR);
  } else if (t->pre_cb) {
    t->pre_cb(t->pre_arg, NULL, err);
  }
}

static void on_x_eof(struct xport *x) { dispatch_end(ep_of(x), UV_EOF); }

/* A read or write failed: the tunnel (or pre-reader) ends the endpoint; if nobody does, the
 * xport resets itself. */
static void on_x_error(struct xport *x, int err) {
  struct tcp_ep *t = ep_of(x);
  t->ep.queued = 0;
  dispatch_end(t, err);
}

static void on_x_drain(struct xport *x) {
  struct tcp_ep *t = ep_of(x);
  t->ep.queued = xport_queued(x);
  if (t->state == TCP_EP_OPEN && t->ep.tun) tunnel_on_drain(&t->ep);
}

/* HANDSHAKE -> CLOSING with |err|: the owner hears it and lets go. */
static void handshake_failed(struct tcp_ep *t, enum pxerr err, const char *why) {
  const char *name = t->x.ssl ? SSL_get_servername(t->x.ssl, TLSEXT_NAMETYPE_host_name) : NULL;
  if (name)
    log_info("dial %s: %s: %s", name, t->peer, why);
  else
    log_info("dial %s: %s", t->peer, why);
  reset(t);          /* as before the shared transport: no alert, nothing to flush */
  t->owner_gone = 1; /* freed on the xport's on_close, after the callback below */
  t->cb(t->cb_arg, NULL, err, why);
}

static void on_x_handshake(struct xport *x, int status) {
  struct tcp_ep *t = ep_of(x);
  if (t->state != TCP_EP_HANDSHAKE) return;
  if (status == 0) {
    xport_set_timer(x, 0);
    t->state = TCP_EP_OPEN;
    t->cb(t->cb_arg, t, PXERR_NONE, NULL);
    return;
  }
  if (status != UV_EPROTO) {
    handshake_failed(t, PXERR_TLS_PROTOCOL, "upstream closed during the TLS handshake");
    return;
  }
  long v = SSL_get_verify_result(x->ssl);
  if (v != X509_V_OK)
    handshake_failed(t, PXERR_TLS_CERT, X509_verify_cert_error_string(v));
  else
    handshake_failed(t, PXERR_TLS_PROTOCOL, "TLS handshake with the upstream failed");
}

/* The timer runs only during the handshake: its deadline. */
static void on_x_timeout(struct xport *x) {
  struct tcp_ep *t = ep_of(x);
  if (t->state == TCP_EP_HANDSHAKE) handshake_failed(t, PXERR_CONN_TIMEOUT, "connect timed out");
}

static void on_x_close(struct xport *x) {
  struct tcp_ep *t = ep_of(x);
  t->x_closed = 1;
  maybe_free(t);
}

static const struct xport_ops tcp_xport_ops = {
    .on_read = on_x_read,
    .on_eof = on_x_eof,
    .on_error = on_x_error,
    .on_drain = on_x_drain,
    .on_handshake = on_x_handshake,
    .on_timeout = on_x_timeout,
    .on_close = on_x_close,
};

/* ---- construction and the TLS handshake ------------------------------------------------------ */

struct tcp_ep *tcp_ep_new(struct worker *w, uv_tcp_t *connected, const struct sockaddr *peer) {
  const struct config *cfg = w->cfg;
  struct tcp_ep *t = xcalloc(1, sizeof(*t));
  t->w = w;
  t->state = TCP_EP_OPEN;
  t->ep.ops = &tcp_ep_ops;
  t->tcp = connected;
  list_init(&t->fail.link);
  /* Upstream output has no peer to linger for: the tunnel has already relayed the close. */
  const struct xport_opts opts = {.read_budget = cfg->read_budget,
                                  .low_water = cfg->low_water,
                                  .close_timeout_ms = cfg->idle_timeout_ms,
                                  .linger_ms = 0};
  xport_init(&t->x, w, connected, &tcp_xport_ops, &opts);
  net_format_addr(peer, t->peer, sizeof(t->peer));
  memcpy(&t->peer_addr, peer, net_addr_len(peer));
  uv_tcp_nodelay(connected, 1);
  return t;
}

static void on_fail_deferred(struct worker_defer *d) {
  struct tcp_ep *t = container_of(d, struct tcp_ep, fail);
  handshake_failed(t, PXERR_TLS_PROTOCOL, "the upstream name cannot be verified");
}

void tcp_ep_tls_start(struct tcp_ep *t, const char *name, uint64_t timeout_ms, tcp_tls_cb cb, void *arg) {
  CHECK(t->state == TCP_EP_OPEN && !t->x.ssl && !t->ep.tun);
  t->cb = cb;
  t->cb_arg = arg;
  t->state = TCP_EP_HANDSHAKE;
  if (xport_tls_connect(&t->x, t->w->client_ssl_ctx, name) != 0) {
    t->fail.cb = on_fail_deferred; /* never from inside this call */
    worker_defer(t->w, &t->fail);
    return;
  }
  /* A zero deadline (spent by the dial already) still fires from the loop. */
  xport_set_timer(&t->x, timeout_ms ? timeout_ms : 1);
}

void tcp_ep_cancel(struct tcp_ep *t) {
  reset(t);
  let_go(t);
}

void tcp_ep_set_pre_reader(struct tcp_ep *t, tcp_pre_read_cb cb, void *arg) {
  t->pre_cb = cb;
  t->pre_arg = arg;
}

/* ---- the tun_ep side -------------------------------------------------------------------------- */

static void ep_read_start(struct tun_ep *self) {
  struct tcp_ep *t = container_of(self, struct tcp_ep, ep);
  if (t->state == TCP_EP_OPEN) xport_read_start(&t->x);
}

static void ep_read_stop(struct tun_ep *self) { xport_read_stop(&container_of(self, struct tcp_ep, ep)->x); }

static void ep_write(struct tun_ep *self, struct buf_chunk *c) {
  struct tcp_ep *t = container_of(self, struct tcp_ep, ep);
  xport_write(&t->x, c); /* dropped once closed or failed */
  self->queued = xport_queued(&t->x);
}

static void ep_shutdown(struct tun_ep *self) {
  self->wr_shut = 1;
  xport_shutdown(&container_of(self, struct tcp_ep, ep)->x);
}

static void ep_abort(struct tun_ep *self) {
  struct tcp_ep *t = container_of(self, struct tcp_ep, ep);
  self->aborted = 1;
  self->queued = 0;
  reset(t);
}

/* The tunnel detaches: what it wrote is flushed (then FIN), unless it aborted. */
static void ep_close(struct tun_ep *self) {
  struct tcp_ep *t = container_of(self, struct tcp_ep, ep);
  if (t->state == TCP_EP_OPEN && !self->aborted) {
    t->state = TCP_EP_DRAINING;
    xport_close(&t->x); /* an xport whose write side failed closes at once */
  } else {
    reset(t);
  }
  let_go(t);
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
