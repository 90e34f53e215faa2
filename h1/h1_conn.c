/* HTTP/1.1 front end: feeds bytes to the request-head parser (h1_req.c, which makes every check
 * on a head), acts on what it returns and writes the answers.
 *
 *   state      | reads         | on event
 *   -----------+---------------+---------------------------------------------------------------
 *   HEAD       | h1_req        | local request -> answer, stay in HEAD (keep-alive) or close
 *              |               | CONNECT       -> DIALING (reading stopped; early bytes kept)
 *              |               | bad input     -> error response, CLOSED
 *   DIALING    | nothing       | dial ok  -> "200 Connection Established", TUNNEL
 *              |               | dial err -> 4xx/5xx with Proxy-Status, CLOSED (RFC 9931)
 *   TUNNEL     | the tunnel    | the conn is an endpoint (h1 ep) of the tunnel
 *   CLOSED     | nothing       | the conn is flushing and closing
 *
 * Ownership: struct h1_conn is the conn's fe_data, freed from on_close. It embeds the tunnel
 * endpoint that stands for this connection. */
#include "h1/h1_conn.h"

#include <string.h>

#include "h1/h1_req.h"
#include "h1/h1_resp.h"
#include "src/authority.h"
#include "src/conn.h"
#include "src/frontend.h"
#include "src/local.h"
#include "src/log.h"
#include "src/pxerr.h"
#include "src/udp_tmpl.h"
#include "tunnel/tcp_ep.h"
#include "tunnel/udp_ep.h"
#include "tunnel/tunnel.h"

enum h1_state { H1_HEAD, H1_DIALING, H1_TUNNEL, H1_CLOSED };

struct h1_conn {
  struct conn *c;           /* back-pointer: the owning connection */
  struct h1_req req;        /* the request-head parser (h1_req.h): owns llhttp and the target */
  enum h1_state state;
  /* CONNECT: */
  struct buf_chunk *first;  /* owned until the tunnel starts: bytes after the head */
  struct tcp_ep *dial;      /* the dial in progress, or NULL */
  struct udp_ep *udp;       /* connect-udp dial in progress, or NULL */
  struct tun_ep ep;         /* this connection as a tunnel side */
  struct tun_info info;
};

static const struct tun_ep_ops h1_ep_ops;
static const struct conn_fe_ops h1_fe_ops;

/* ---- responses ---- */

static void send_error(struct h1_conn *h, enum pxerr e, const char *detail) {
  struct conn *c = h->c;
  char buf[1024];
  int status = pxerr_status(e);
  size_t n = h1_resp_error(buf, sizeof(buf), status, pxerr_token(e), detail);
  METRIC_ADD(&c->w->metrics, errors[e], 1);
  h->info.status = status;
  if (h->info.target[0] == '\0' && h->req.target)
    snprintf(h->info.target, sizeof(h->info.target), "%s", h->req.target);
  tunnel_log_rejected(c->w, &h->info, pxerr_token(e), detail);
  log_debug("h1 %s: %d %s (%s)", c->peer, status, pxerr_token(e), detail ? detail : "");
  h->state = H1_CLOSED;
  conn_write_copy(c, buf, n);
  /* After a rejected request nothing more is parsed from this connection (RFC 9931). */
  conn_close(c);
}

static void answer_local(struct h1_conn *h) {
  struct conn *c = h->c;
  const char *method = h->req.head.method;
  struct local_resp r;
  local_handle(c->w, method, h->req.target, &r);
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

/* ---- CONNECT ---- */

/* The upstream is ready: send |head|, and the connection becomes tunnel side a. */
static void start_tunnel(struct h1_conn *h, int status, const char *head, struct tun_ep *b,
                         const char *peer) {
  struct conn *c = h->c;
  conn_write_copy(c, head, strlen(head));
  h->state = H1_TUNNEL;
  h->info.status = status;
  snprintf(h->info.resolved, sizeof(h->info.resolved), "%s", peer);
  /* The request is done with: a long-lived tunnel should not carry its head. */
  h1_req_dispose(&h->req);
  struct tunnel *t = tunnel_new(c->w, &h->ep, b, &h->info);
  struct buf_chunk *first = h->first;
  h->first = NULL;
  tunnel_start(t, first);
}

static void dial_failed(struct h1_conn *h, enum pxerr err, const char *detail) {
  buf_put(&h->c->w->pool, h->first);
  h->first = NULL;
  send_error(h, err, detail);
}

static void on_dial(void *arg, struct tcp_ep *ep, enum pxerr err, const char *detail) {
  struct h1_conn *h = arg;
  h->dial = NULL;
  if (err != PXERR_NONE)
    dial_failed(h, err, detail);
  else
    start_tunnel(h, 200, "HTTP/1.1 200 Connection Established\r\n\r\n", tcp_ep_tun(ep), tcp_ep_peer(ep));
}

static void on_udp_dial(void *arg, struct udp_ep *ep, enum pxerr err, const char *detail) {
  struct h1_conn *h = arg;
  h->udp = NULL;
  if (err != PXERR_NONE)
    dial_failed(h, err, detail);
  else
    start_tunnel(h, 101,
                 "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: connect-udp\r\n"
                 "Capsule-Protocol: ?1\r\n\r\n",
                 udp_ep_tun(ep), udp_ep_peer(ep));
}

/* Keeps the bytes that followed the head; an empty remainder is not worth a chunk held for the
 * whole dial (thousands of dials at once would pin a chunk each). */
static void keep_first(struct h1_conn *h, struct buf_chunk *rest) {
  if (rest && rest->len == 0) {
    buf_put(&h->c->w->pool, rest);
    rest = NULL;
  }
  h->first = rest;
}

/* connect-udp over HTTP/1.1 (RFC 9298 §3.2): h1_req checked the GET, the Upgrade and that no
 * content follows; the target comes from the path through the URI template. */
static void start_connect_udp(struct h1_conn *h, struct buf_chunk *rest) {
  struct conn *c = h->c;
  const char *path = h->req.head.path;
  keep_first(h, rest);
  h->info.proto = "connect-udp";
  char host[AUTHORITY_HOST_MAX + 1];
  uint16_t port;
  struct authority target;
  if (udp_tmpl_match(c->w->cfg->udp_template, path, strlen(path), host, sizeof(host), &port) != 0) {
    send_error(h, PXERR_BAD_REQUEST, "path does not match the connect-udp template");
    return;
  }
  if (authority_from_host(host, port, &target) != 0) {
    send_error(h, PXERR_BAD_REQUEST, "bad connect-udp target");
    return;
  }
  authority_format(&target, h->info.target, sizeof(h->info.target));
  h->state = H1_DIALING;
  conn_read_stop(c);
  conn_set_timer(c, 0);
  h->udp = udp_ep_dial(c->w, &target, on_udp_dial, h);
}

/* CONNECT host:port: h1_req checked the target, the Host and that no content follows. */
static void start_connect(struct h1_conn *h, struct buf_chunk *rest) {
  struct conn *c = h->c;
  keep_first(h, rest);
  authority_format(&h->req.head.authority, h->info.target, sizeof(h->info.target));
  h->state = H1_DIALING;
  conn_read_stop(c);
  conn_set_timer(c, 0);
  h->dial = tcp_ep_dial(c->w, &h->req.head.authority, on_dial, h);
}

/* A new request begins: its access-log record starts now. */
static void begin_request(struct h1_conn *h) {
  h->info.proto = "connect";
  h->info.start_ms = uv_now(&h->c->w->loop);
  h->info.target[0] = '\0';
}

/* Feeds |chunk| (taken) to the parser and acts on every complete request in it. */
static void parse(struct h1_conn *h, struct buf_chunk *chunk) {
  struct conn *c = h->c;
  const char *data = buf_rd(chunk);
  size_t len = chunk->len;
  while (len > 0 && h->state == H1_HEAD) {
    size_t used = 0;
    if (!h1_req_started(&h->req)) begin_request(h);
    enum h1_req_status st = h1_req_feed(&h->req, data, len, &used);
    if (st == H1_REQ_MORE) break;
    if (st == H1_REQ_ERROR) {
      log_debug("h1 %s: request refused: %s", c->peer, h->req.detail);
      if (h->req.head.kind == H1_REQ_CONNECT_UDP) h->info.proto = "connect-udp";
      send_error(h, h->req.err, h->req.detail);
      break;
    }
    data += used;
    len -= used;
    if (h->req.head.kind == H1_REQ_CONNECT || h->req.head.kind == H1_REQ_CONNECT_UDP) {
      /* Whatever follows the head is the tunnel's first payload (H1C-08). Earlier pipelined
       * requests in this chunk were consumed too: count from the chunk's start. */
      uint32_t consumed = (uint32_t)(data - buf_rd(chunk));
      chunk->off += consumed;
      chunk->len -= consumed;
      if (h->req.head.kind == H1_REQ_CONNECT)
        start_connect(h, chunk);
      else
        start_connect_udp(h, chunk);
      return;
    }
    if (h->req.head.kind == H1_REQ_ABSOLUTE) {
      send_error(h, PXERR_NOT_IMPLEMENTED, "forwarding of absolute-form requests is not supported; use CONNECT");
      break;
    }
    answer_local(h);
  }
  buf_put(&c->w->pool, chunk);
}

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
  if (h->dial) tcp_ep_cancel(h->dial);
  if (h->udp) udp_ep_cancel(h->udp);
  if (h->ep.tun) tunnel_kill(h->ep.tun, c->w->stopping == WORKER_DEADLINE ? TUN_CLOSE_SHUTDOWN : TUN_CLOSE_CLIENT_ERROR);
  buf_put(&c->w->pool, h->first);
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
  h->info.front = "h1";
  h->info.proto = "connect";
  h->info.start_ms = uv_now(&c->w->loop);
  snprintf(h->info.client, sizeof(h->info.client), "%s", c->peer);
  c->fe = &h1_fe_ops;
  c->fe_data = h;
  conn_set_timer(c, c->w->cfg->header_timeout_ms);
}

const struct frontend h1_frontend = {.name = "h1", .alpn = "http/1.1", .preface = NULL, .attach = h1_conn_attach};
