/* HTTP/1.1 front end: feeds bytes to the request-head parser (h1_req.c, which makes every check
 * on a head), hands CONNECT and connect-udp requests to the request path (proxy/request.h), and
 * writes the answers in HTTP/1.1 framing.
 *
 *   state      | reads         | on event
 *   -----------+---------------+---------------------------------------------------------------
 *   HEAD       | h1_req        | local request -> answer, stay in HEAD (keep-alive) or close
 *              |               | CONNECT, connect-udp -> DIALING (reading stopped; early bytes
 *              |               |                         go with the request)
 *              |               | bad input, absolute-form -> refused by the request path, CLOSED
 *   DIALING    | nothing       | answer_ok    -> "200 Connection Established" (or 101), TUNNEL
 *              |               | answer_error -> 4xx/5xx with Proxy-Status, CLOSED (RFC 9931)
 *   TUNNEL     | the tunnel    | the conn is an endpoint (h1 ep) of the tunnel
 *   CLOSED     | nothing       | the conn is flushing and closing
 *
 * Ownership: struct h1_conn is the conn's fe_data, freed from on_close. It embeds the tunnel
 * endpoint that stands for this connection, and holds the request being decided (|rq|). */
#include "h1/h1_conn.h"

#include <string.h>

#include "h1/h1_req.h"
#include "h1/h1_resp.h"
#include "proxy/request.h"
#include "src/conn.h"
#include "src/frontend.h"
#include "src/local.h"
#include "src/log.h"
#include "tunnel/tunnel.h"

enum h1_state { H1_HEAD, H1_DIALING, H1_TUNNEL, H1_CLOSED };

struct h1_conn {
  struct conn *c;           /* back-pointer: the owning connection */
  struct h1_req req;        /* the request-head parser (h1_req.h): owns llhttp and the target */
  enum h1_state state;
  uint64_t start_ms;        /* loop time the current request began */
  struct px_request *rq;    /* the request being decided (DIALING), or NULL */
  struct tun_ep ep;         /* this connection as a tunnel side */
  struct sockaddr_storage local; /* the address the client connected to (local_is_own) */
};

static const struct tun_ep_ops h1_ep_ops;
static const struct conn_fe_ops h1_fe_ops;
static const struct px_front_ops h1_px_ops;

/* ---- answers ---- */

static void answer_local(struct h1_conn *h) {
  struct conn *c = h->c;
  const char *method = h->req.head.method;
  struct local_resp r;
  const char *path = h->req.head.path && h->req.head.path[0] == '/' ? h->req.head.path : "/";
  local_handle(c->w, method, path, &r);
  int close = !h->req.head.keep_alive || c->w->stopping;
  char head[512];
  size_t n = h1_resp_head(head, sizeof(head), r.status, r.content_type, r.body_len, close);
  conn_write_copy(c, head, n);
  if (strcmp(method, "HEAD") != 0) conn_write_copy(c, r.body, r.body_len);
  free(r.body);
  if (close) {
    h->state = H1_CLOSED;
    conn_close(c);
  } else {
    conn_set_timer(c, c->w->cfg->header_timeout_ms); /* for the next request */
  }
}

/* The connection itself is the tunnel's client side. */
static struct tun_ep *px_client_ep(void *fe) { return &((struct h1_conn *)fe)->ep; }

static int px_answer_ok(void *fe, const struct px_outcome *out) {
  struct h1_conn *h = fe;
  char head[1024];
  int udp = h->req.head.kind == H1_REQ_CONNECT_UDP;
  size_t n = h1_resp_tunnel(head, sizeof(head), udp ? "connect-udp" : NULL, out->extra, out->nextra);
  h->rq = NULL;
  if (n == 0) return 0;
  conn_write_copy(h->c, head, n);
  h->state = H1_TUNNEL;
  /* The request is done with: a long-lived tunnel should not carry its head. */
  h1_req_dispose(&h->req);
  return udp ? 101 : 200;
}

static void px_answer_error(void *fe, const struct px_outcome *out) {
  struct h1_conn *h = fe;
  char buf[1024];
  size_t n = h1_resp_error(buf, sizeof(buf), out->status, out->proxy_status, out->body);
  h->rq = NULL;
  h->state = H1_CLOSED;
  conn_write_copy(h->c, buf, n);
  /* After a rejected request nothing more is parsed from this connection (RFC 9931). */
  conn_close(h->c);
}

/* ---- requests ---- */

/* The request path's view of the request h1_req holds (strings borrowed until it decides). */
static struct px_request *new_request(struct h1_conn *h, enum px_proto proto) {
  struct px_request *rq = px_request_new(h->c->w, PX_FRONT_H1, proto, &h1_px_ops, h);
  px_request_set_client(rq, h->c);
  rq->start_ms = h->start_ms;
  rq->authority = h->req.target;
  rq->credentials = h1_req_take_credentials(&h->req);
  h->rq = rq;
  return rq;
}

/* CONNECT host:port or connect-udp (RFC 9298 §3.2): h1_req checked the head (target, Host, no
 * content); |rest| (taken) holds the bytes after it, the tunnel's first payload (H1C-08). */
static void start_request(struct h1_conn *h, struct buf_chunk *rest) {
  struct conn *c = h->c;
  int udp = h->req.head.kind == H1_REQ_CONNECT_UDP;
  struct px_request *rq = new_request(h, udp ? PX_PROTO_CONNECT_UDP : PX_PROTO_CONNECT);
  if (udp)
    rq->path = h->req.head.path;
  else
    rq->parsed = &h->req.head.authority; /* h1_req parsed and checked it (H1C-01..04) */
  /* An empty remainder is not worth a chunk held for the whole dial (thousands of dials at once
   * would pin a chunk each). */
  if (rest && rest->len == 0) {
    buf_put(&c->w->pool, rest);
    rest = NULL;
  }
  rq->early = rest;
  h->state = H1_DIALING;
  conn_read_stop(c);
  conn_set_timer(c, 0);
  px_request_start(rq);
}

/* Feeds |chunk| (taken) to the parser and acts on every complete request in it. */
static void parse(struct h1_conn *h, struct buf_chunk *chunk) {
  struct conn *c = h->c;
  const char *data = buf_rd(chunk);
  size_t len = chunk->len;
  while (len > 0 && h->state == H1_HEAD) {
    size_t used = 0;
    if (!h1_req_started(&h->req)) h->start_ms = uv_now(&c->w->loop); /* a new request begins */
    enum h1_req_status st = h1_req_feed(&h->req, data, len, &used);
    if (st == H1_REQ_MORE) break;
    if (st == H1_REQ_ERROR) {
      /* Answered, logged and counted by the request path like any refusal. */
      log_debug("h1 %s: request refused: %s", c->peer, h->req.detail);
      enum px_proto proto = h->req.head.kind == H1_REQ_CONNECT_UDP ? PX_PROTO_CONNECT_UDP : PX_PROTO_CONNECT;
      px_request_fail(new_request(h, proto), h->req.err, h->req.detail);
      break;
    }
    data += used;
    len -= used;
    if (h->req.head.kind == H1_REQ_CONNECT || h->req.head.kind == H1_REQ_CONNECT_UDP) {
      /* Earlier pipelined requests in this chunk were consumed too: count from its start. */
      uint32_t consumed = (uint32_t)(data - buf_rd(chunk));
      chunk->off += consumed;
      chunk->len -= consumed;
      start_request(h, chunk);
      return;
    }
    /* An absolute-form request for the proxy itself is a local one (RFC 9112 §3.2.2); any
     * other is forwarded (issue 11). */
    if (h->req.head.kind == H1_REQ_ABSOLUTE &&
        !local_is_own(c->w->cfg, (const struct sockaddr *)&h->local, h->req.head.scheme_auth,
                      h->req.head.scheme_auth_len)) {
      px_request_start(new_request(h, PX_PROTO_FORWARD)); /* refused there: not implemented */
      break;
    }
    answer_local(h);
  }
  buf_put(&c->w->pool, chunk);
}

static const struct px_front_ops h1_px_ops = {
    .answer_ok = px_answer_ok,
    .answer_error = px_answer_error,
    .client_ep = px_client_ep,
};

/* ---- conn front-end ops ---- */

static void fe_on_read(struct conn *c, struct buf_chunk *chunk) {
  struct h1_conn *h = c->fe_data;
  if (h->state == H1_TUNNEL && h->ep.tun) {
    tunnel_on_read(&h->ep, chunk);
  } else if (h->state == H1_HEAD) {
    parse(h, chunk);
  } else {
    buf_put(&c->w->pool, chunk);
  }
}

static void fe_on_eof(struct conn *c) {
  struct h1_conn *h = c->fe_data;
  if (h->state == H1_TUNNEL && h->ep.tun) {
    tunnel_on_eof(&h->ep);
  } else if (h->state == H1_HEAD) {
    h->state = H1_CLOSED;
    conn_close(c);
  }
}

static void fe_on_error(struct conn *c, int err) {
  struct h1_conn *h = c->fe_data;
  if (h->state == H1_TUNNEL && h->ep.tun) {
    tunnel_on_error(&h->ep, err == UV_ECONNRESET ? TUN_CLOSE_CLIENT_RST : TUN_CLOSE_CLIENT_ERROR);
  }
  h->state = H1_CLOSED;
  conn_abort(c);
}

static void fe_on_drain(struct conn *c) {
  struct h1_conn *h = c->fe_data;
  h->ep.queued = conn_queued(c);
  if (h->state == H1_TUNNEL && h->ep.tun) tunnel_on_drain(&h->ep);
}

static void fe_on_timeout(struct conn *c) {
  struct h1_conn *h = c->fe_data;
  if (h->state != H1_HEAD) return;
  log_debug("h1 %s: request head timeout", c->peer);
  h->state = H1_CLOSED;
  if (h1_req_started(&h->req)) {
    static const char r408[] = "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    conn_write_copy(c, r408, sizeof(r408) - 1);
  }
  conn_close(c);
}

static void fe_on_stop(struct conn *c) {
  struct h1_conn *h = c->fe_data;
  /* Between requests: close now. Tunnels and dials finish on their own (or at the deadline). */
  if (h->state == H1_HEAD) {
    h->state = H1_CLOSED;
    conn_close(c);
  }
}

static void fe_on_close(struct conn *c) {
  struct h1_conn *h = c->fe_data;
  if (h->rq) px_request_cancel(h->rq);
  if (h->ep.tun) tunnel_kill(h->ep.tun, c->w->stopping == WORKER_DEADLINE ? TUN_CLOSE_SHUTDOWN : TUN_CLOSE_CLIENT_ERROR);
  h1_req_dispose(&h->req);
  free(h);
  c->fe_data = NULL;
}

static const struct conn_fe_ops h1_fe_ops = {
    .on_read = fe_on_read,
    .on_eof = fe_on_eof,
    .on_error = fe_on_error,
    .on_drain = fe_on_drain,
    .on_timeout = fe_on_timeout,
    .on_stop = fe_on_stop,
    .on_close = fe_on_close,
};

/* ---- this connection as a tunnel endpoint ---- */

static struct h1_conn *h1_of_ep(struct tun_ep *ep) { return container_of(ep, struct h1_conn, ep); }

static void ep_read_start(struct tun_ep *self) { conn_read_start(h1_of_ep(self)->c); }
static void ep_read_stop(struct tun_ep *self) { conn_read_stop(h1_of_ep(self)->c); }

static void ep_write(struct tun_ep *self, struct buf_chunk *chunk) {
  struct conn *c = h1_of_ep(self)->c;
  conn_write(c, chunk);
  self->queued = conn_queued(c);
}

static void ep_shutdown(struct tun_ep *self) { conn_shutdown(h1_of_ep(self)->c); }

static void ep_abort(struct tun_ep *self) {
  struct h1_conn *h = h1_of_ep(self);
  h->state = H1_CLOSED;
  conn_abort(h->c);
}

static void ep_close(struct tun_ep *self) {
  struct h1_conn *h = h1_of_ep(self);
  h->state = H1_CLOSED;
  if (self->aborted)
    conn_abort(h->c);
  else
    conn_close(h->c);
}

static const struct tun_ep_ops h1_ep_ops = {
    .kind = "h1",
    .read_start = ep_read_start,
    .read_stop = ep_read_stop,
    .write = ep_write,
    .shutdown = ep_shutdown,
    .abort = ep_abort,
    .close = ep_close,
};

void h1_conn_attach(struct conn *c) {
  METRIC_ADD(&c->w->metrics, conns_h1, 1);
  struct h1_conn *h = xcalloc(1, sizeof(*h));
  h->c = c;
  struct h1_req_limits limits = {.max_head_bytes = c->w->cfg->max_header_bytes,
                                 .max_fields = c->w->cfg->max_headers};
  h1_req_init(&h->req, &limits);
  h->ep.ops = &h1_ep_ops;
  int llen = sizeof(h->local);
  if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&h->local, &llen) != 0) h->local.ss_family = AF_UNSPEC;
  c->fe = &h1_fe_ops;
  c->fe_data = h;
  conn_set_timer(c, c->w->cfg->header_timeout_ms);
}

const struct frontend h1_frontend = {.name = "h1", .alpn = "http/1.1", .preface = NULL, .attach = h1_conn_attach};
