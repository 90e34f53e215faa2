/* The per-worker pool of upstream connections for forwarded requests (see pool.h). */
#include "proxy/pool.h"

#include <stdlib.h>
#include <string.h>

#include "proxy/dialer.h"
#include "src/log.h"
#include "src/net.h"
#include "src/worker.h"
#include "tunnel/tunnel.h"

/* Owned by its worker (w->fwd_pool), created on first use; freed once the worker stops and the
 * last connection has closed. */
struct fwd_pool {
  struct worker *w;
  struct list idle;         /* struct fwd_up.link, oldest first */
  size_t nidle;
  size_t nopen;             /* connections not CLOSING: what --fwd-pool-max bounds */
  size_t nalloc;            /* connections not yet freed */
  struct worker_hook hook;  /* on stop: close the idle connections */
  int stopping;
};

/* One fwd_pool_get: a hit waits for the end of the loop turn (|defer|), a miss for the dialer
 * and then the TLS handshake. Freed after its callback or on cancel. */
struct fwd_get {
  struct fwd_pool *pool;
  struct worker_defer defer; /* a hit, or an error found at once */
  struct dialer *dialer;     /* a miss while dialing */
  struct fwd_up *up;         /* the hit, or the new connection in its TLS handshake */
  struct authority dest;
  int tls;
  resolve_check_cb check;
  void *check_arg;
  enum pxerr err;
  const char *detail;
  fwd_get_cb cb;
  void *arg;
};

static const struct xport_ops up_xops;

static void pool_maybe_free(struct fwd_pool *p) {
  if (!p->stopping || p->nalloc > 0) return;
  p->w->fwd_pool = NULL;
  free(p);
}

static void on_pool_stop(struct worker_hook *h) {
  struct fwd_pool *p = container_of(h, struct fwd_pool, hook);
  p->stopping = 1;
  while (!list_empty(&p->idle)) fwd_up_close(container_of(p->idle.next, struct fwd_up, link), 0);
  pool_maybe_free(p);
}

static struct fwd_pool *pool_of(struct worker *w) {
  if (w->fwd_pool) return w->fwd_pool;
  struct fwd_pool *p = xcalloc(1, sizeof(*p));
  p->w = w;
  list_init(&p->idle);
  p->hook.on_stop = on_pool_stop;
  worker_add_stop_hook(w, &p->hook);
  w->fwd_pool = p;
  return p;
}

static void make_key(char *key, size_t cap, const struct authority *dest, int tls) {
  size_t n = authority_format(dest, key, cap);
  if (tls && n + 5 < cap) memcpy(key + n, "/tls", 5);
}

/* ---- connections ---- */

static struct fwd_up *up_of(struct xport *x) { return container_of(x, struct fwd_up, x); }

static void idle_remove(struct fwd_up *up) {
  list_remove(&up->link);
  list_init(&up->link);
  up->pool->nidle--;
}

void fwd_up_close(struct fwd_up *up, int abort) {
  if (up->state == FWD_UP_CLOSING) return;
  if (up->state == FWD_UP_IDLE) idle_remove(up);
  up->state = FWD_UP_CLOSING;
  up->pool->nopen--;
  METRIC_SUB(&up->pool->w->metrics, fwd_upstreams_open, 1);
  up->ops = NULL;
  up->owner = NULL;
  if (abort)
    xport_abort(&up->x);
  else
    xport_close(&up->x);
}

void fwd_up_own(struct fwd_up *up, const struct fwd_up_ops *ops, void *owner) {
  up->ops = ops;
  up->owner = owner;
}

void fwd_up_release(struct fwd_up *up) {
  struct fwd_pool *p = up->pool;
  const struct config *cfg = p->w->cfg;
  size_t same = 0;
  for (struct list *n = p->idle.next; n != &p->idle; n = n->next)
    if (strcmp(container_of(n, struct fwd_up, link)->key, up->key) == 0) same++;
  if (p->stopping || p->w->stopping || same >= cfg->fwd_pool_per_origin || xport_queued(&up->x) > 0) {
    fwd_up_close(up, 0);
    return;
  }
  up->state = FWD_UP_IDLE;
  up->ops = NULL;
  up->owner = NULL;
  up->reused++;
  list_insert_tail(&p->idle, &up->link);
  p->nidle++;
  /* Idle: reading on, so that the origin's close (or stray bytes) is seen and the connection
   * dropped before a request is sent on it. */
  xport_read_start(&up->x);
  if (cfg->fwd_pool_idle_ms) xport_set_timer(&up->x, cfg->fwd_pool_idle_ms);
}

static void x_on_read(struct xport *x, struct buf_chunk *chunk) {
  struct fwd_up *up = up_of(x);
  if (up->state == FWD_UP_TUNNEL && up->ep.tun) {
    tunnel_on_read(&up->ep, chunk);
    return;
  }
  if (up->state == FWD_UP_BUSY && up->ops) {
    up->ops->on_read(up->owner, chunk);
    return;
  }
  buf_put(&x->w->pool, chunk);
  /* Bytes from an idle origin belong to no request: the connection is not reusable. */
  if (up->state == FWD_UP_IDLE) fwd_up_close(up, 1);
}

static void x_on_eof(struct xport *x) {
  struct fwd_up *up = up_of(x);
  if (up->state == FWD_UP_TUNNEL)
    tunnel_on_eof(&up->ep);
  else if (up->state == FWD_UP_BUSY && up->ops)
    up->ops->on_eof(up->owner);
  else if (up->state == FWD_UP_IDLE)
    fwd_up_close(up, 0);
}

static void finish_get(struct fwd_get *g, struct fwd_up *up, enum pxerr err, const char *detail);

static void x_on_error(struct xport *x, int err) {
  struct fwd_up *up = up_of(x);
  if (up->state == FWD_UP_TUNNEL && up->ep.tun) {
    up->ep.queued = 0;
    tunnel_on_error(&up->ep, err == UV_ECONNRESET || err == UV_EPIPE ? TUN_CLOSE_UPSTREAM_RST : TUN_CLOSE_UPSTREAM_ERROR);
    return;
  }
  if (up->state == FWD_UP_BUSY && up->ops) {
    up->ops->on_error(up->owner, err);
    return;
  }
  fwd_up_close(up, 1);
}

static void x_on_drain(struct xport *x) {
  struct fwd_up *up = up_of(x);
  up->ep.queued = xport_queued(x);
  if (up->state == FWD_UP_TUNNEL) tunnel_on_drain(&up->ep);
  if (up->state == FWD_UP_BUSY && up->ops) up->ops->on_drain(up->owner);
}

static void x_on_timeout(struct xport *x) {
  struct fwd_up *up = up_of(x);
  if (up->state == FWD_UP_BUSY && up->ops)
    up->ops->on_timeout(up->owner);
  else if (up->state == FWD_UP_IDLE)
    fwd_up_close(up, 0);
  else if (up->state == FWD_UP_CONNECTING && up->pending) {
    struct fwd_get *g = up->pending;
    up->pending = NULL;
    fwd_up_close(up, 1);
    finish_get(g, NULL, PXERR_CONN_TIMEOUT, "TLS handshake with the origin timed out");
  }
}

static void x_on_handshake(struct xport *x, int status) {
  struct fwd_up *up = up_of(x);
  struct fwd_get *g = up->pending;
  up->pending = NULL;
  if (!g) return;
  if (status != 0) {
    long vr = x->ssl ? SSL_get_verify_result(x->ssl) : X509_V_OK;
    char buf[160];
    log_info("forward: TLS to %s failed: %s", up->key,
             vr != X509_V_OK ? X509_verify_cert_error_string(vr) : xport_tls_error(x, buf, sizeof(buf)));
    fwd_up_close(up, 0);
    finish_get(g, NULL, vr != X509_V_OK ? PXERR_TLS_CERT : PXERR_TLS_PROTOCOL,
               vr != X509_V_OK ? "origin certificate not verified" : "TLS handshake with the origin failed");
    return;
  }
  xport_set_timer(x, 0);
  up->state = FWD_UP_BUSY;
  finish_get(g, up, PXERR_NONE, NULL);
}

static void x_on_close(struct xport *x) {
  struct fwd_up *up = up_of(x);
  struct fwd_pool *p = up->pool;
  free(up->tcp);
  free(up);
  p->nalloc--;
  pool_maybe_free(p);
}

static const struct xport_ops up_xops = {
    .on_read = x_on_read,
    .on_eof = x_on_eof,
    .on_error = x_on_error,
    .on_drain = x_on_drain,
    .on_handshake = x_on_handshake,
    .on_timeout = x_on_timeout,
    .on_close = x_on_close,
};

/* ---- an upgraded connection as a tunnel side (FWD-14) ---- */

static struct fwd_up *up_of_ep(struct tun_ep *ep) { return container_of(ep, struct fwd_up, ep); }

static void ep_read_start(struct tun_ep *self) {
  struct fwd_up *up = up_of_ep(self);
  if (up->state == FWD_UP_TUNNEL) xport_read_start(&up->x);
}

static void ep_read_stop(struct tun_ep *self) { xport_read_stop(&up_of_ep(self)->x); }

static void ep_write(struct tun_ep *self, struct buf_chunk *c) {
  struct fwd_up *up = up_of_ep(self);
  xport_write(&up->x, c); /* dropped once closed or failed */
  self->queued = xport_queued(&up->x);
}

static void ep_shutdown(struct tun_ep *self) {
  self->wr_shut = 1;
  xport_shutdown(&up_of_ep(self)->x);
}

static void ep_abort(struct tun_ep *self) {
  self->aborted = 1;
  self->queued = 0;
  fwd_up_close(up_of_ep(self), 1);
}

/* The tunnel detaches: what it wrote is flushed (then FIN), unless it aborted. The memory goes
 * with the transport's on_close, as for any pooled connection. */
static void ep_close(struct tun_ep *self) { fwd_up_close(up_of_ep(self), self->aborted); }

static const struct tun_ep_ops up_ep_ops = {
    .kind = "tcp",
    .read_start = ep_read_start,
    .read_stop = ep_read_stop,
    .write = ep_write,
    .shutdown = ep_shutdown,
    .abort = ep_abort,
    .close = ep_close,
};

struct tun_ep *fwd_up_tunnel(struct fwd_up *up) {
  CHECK(up->state == FWD_UP_BUSY);
  up->state = FWD_UP_TUNNEL;
  up->ops = NULL;
  up->owner = NULL;
  memset(&up->ep, 0, sizeof(up->ep));
  up->ep.ops = &up_ep_ops;
  up->ep.queued = xport_queued(&up->x);
  /* A tunnel's last bytes may take as long to flush as it may stay idle (as tunnel/tcp_ep.c). */
  up->x.opts.close_timeout_ms = up->pool->w->cfg->idle_timeout_ms;
  return &up->ep;
}

/* ---- getting one ---- */

static void finish_get(struct fwd_get *g, struct fwd_up *up, enum pxerr err, const char *detail) {
  g->cb(g->arg, up, err, detail);
  free(g);
}

static void on_dialed(void *arg, uv_tcp_t *tcp, const struct sockaddr *peer, enum pxerr err, const char *detail);

static void on_get_deferred(struct worker_defer *d) {
  struct fwd_get *g = container_of(d, struct fwd_get, defer);
  struct fwd_up *up = g->up;
  g->up = NULL;
  if (up && up->x.rd != XPORT_RD_OPEN) {
    /* The origin closed it while it was being handed over: dial a new one instead. */
    fwd_up_close(up, 1);
    g->dialer = dialer_start(g->pool->w, &g->dest, g->check, g->check_arg, on_dialed, g);
    return;
  }
  if (up) up->state = FWD_UP_BUSY;
  finish_get(g, up, g->err, g->detail);
}

static void on_dialed(void *arg, uv_tcp_t *tcp, const struct sockaddr *peer, enum pxerr err, const char *detail) {
  struct fwd_get *g = arg;
  struct fwd_pool *p = g->pool;
  struct worker *w = p->w;
  g->dialer = NULL;
  if (err != PXERR_NONE) {
    finish_get(g, NULL, err, detail);
    return;
  }
  struct fwd_up *up = xcalloc(1, sizeof(*up));
  up->pool = p;
  list_init(&up->link);
  up->tcp = tcp;
  make_key(up->key, sizeof(up->key), &g->dest, g->tls);
  net_format_addr(peer, up->peer, sizeof(up->peer));
  struct xport_opts o = {.read_budget = w->cfg->read_budget, .low_water = w->cfg->low_water,
                         .close_timeout_ms = 1000, .linger_ms = 0};
  xport_init(&up->x, w, tcp, &up_xops, &o);
  uv_tcp_nodelay(tcp, 1);
  p->nopen++;
  p->nalloc++;
  METRIC_ADD(&w->metrics, fwd_upstreams_open, 1);
  if (g->tls) {
    up->state = FWD_UP_CONNECTING;
    up->pending = g;
    g->up = up;
    if (xport_tls_connect(&up->x, w->client_ssl_ctx, g->dest.host) != 0) {
      up->pending = NULL;
      g->up = NULL;
      fwd_up_close(up, 1);
      finish_get(g, NULL, PXERR_TLS_PROTOCOL, "origin name cannot be verified");
      return;
    }
    xport_set_timer(&up->x, w->cfg->connect_timeout_ms ? w->cfg->connect_timeout_ms : 30000);
    return;
  }
  up->state = FWD_UP_BUSY;
  finish_get(g, up, PXERR_NONE, NULL);
}

struct fwd_get *fwd_pool_get(struct worker *w, const struct authority *dest, int tls, resolve_check_cb check,
                             void *check_arg, fwd_get_cb cb, void *arg) {
  struct fwd_pool *p = pool_of(w);
  struct fwd_get *g = xcalloc(1, sizeof(*g));
  char key[sizeof(((struct fwd_up *)0)->key)];
  g->pool = p;
  g->dest = *dest;
  g->tls = tls;
  g->check = check;
  g->check_arg = check_arg;
  g->cb = cb;
  g->arg = arg;
  g->defer.cb = on_get_deferred;
  list_init(&g->defer.link);
  make_key(key, sizeof(key), dest, tls);
  /* A hit: the most recently used idle connection of the key (the likeliest still open). */
  for (struct list *n = p->idle.prev; n != &p->idle; n = n->prev) {
    struct fwd_up *up = container_of(n, struct fwd_up, link);
    if (strcmp(up->key, key) != 0) continue;
    idle_remove(up);
    xport_set_timer(&up->x, 0);
    up->state = FWD_UP_CONNECTING; /* handed over at the end of the turn */
    g->up = up;
    METRIC_ADD(&w->metrics, fwd_pool_hits, 1);
    worker_defer(w, &g->defer);
    return g;
  }
  METRIC_ADD(&w->metrics, fwd_pool_misses, 1);
  size_t max = w->cfg->fwd_pool_max;
  if (max && p->nopen >= max && p->nidle > 0) /* make room: the oldest idle connection goes */
    fwd_up_close(container_of(p->idle.next, struct fwd_up, link), 0);
  if (max && p->nopen >= max) {
    g->err = PXERR_POOL_FULL;
    g->detail = "too many upstream connections (--fwd-pool-max)";
    worker_defer(w, &g->defer);
    return g;
  }
  g->dialer = dialer_start(w, dest, check, check_arg, on_dialed, g);
  return g;
}

void fwd_get_cancel(struct fwd_get *g) {
  if (g->dialer) dialer_cancel(g->dialer);
  worker_defer_cancel(&g->defer);
  if (g->up) {
    g->up->pending = NULL;
    fwd_up_close(g->up, 1);
  }
  free(g);
}
