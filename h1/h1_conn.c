/* HTTP/1.1 front end: feeds bytes to the request-head parser (h1_req.c, which makes every check
 * on a head), hands CONNECT, connect-udp and forward (absolute-form) requests to the request path
 * (proxy/request.h), and writes the answers in HTTP/1.1 framing.
 *
 *   state      | reads         | on event
 *   -----------+---------------+---------------------------------------------------------------
 *   HEAD       | h1_req        | local request -> answer, stay in HEAD (keep-alive) or close
 *              |               | CONNECT, connect-udp -> DIALING (reading stopped; early bytes
 *              |               |                         go with the request)
 *              |               | absolute-form for another authority -> DIALING (forward: the
 *              |               |                         bytes after the head wait in |held|)
 *              |               | bad input -> refused by the request path, CLOSED
 *   DIALING    | nothing       | answer_forward -> FWD (the exchange, proxy/fwd.h, starts)
 *   FWD        | the body      | body bytes -> h1_req -> the origin; after the body's end the
 *              |               | next request waits in |held| until the response is out, then
 *              |               | HEAD (keep-alive) or CLOSED; an upgrade request's 101 ->
 *              |               | TUNNEL (FWD-14: |held| goes to the origin first)
 *   DIALING    | nothing       | answer_ok    -> "200 Connection Established" (or 101), TUNNEL
 *              |               | answer_error -> 4xx/5xx with Proxy-Status, CLOSED (RFC 9931);
 *              |               |   a 407 too: bytes after a rejected head may still be in flight
 *              |               |   and are the tunnel's, never a next request (H1C-09); curl
 *              |               |   reconnects to answer the challenge
 *   TUNNEL     | the tunnel    | the conn is an endpoint (h1 ep) of the tunnel
 *   CLOSED     | nothing       | the conn is flushing and closing
 *
 * Ownership: struct h1_conn is the conn's fe_data, freed from on_close. It embeds the tunnel
 * endpoint that stands for this connection, and holds the request being decided (|rq|) and the
 * forward exchange running (|fx|, which it cancels when the connection closes). */
#include "h1/h1_conn.h"

#include <string.h>
#include <strings.h>

#include "h1/h1_req.h"
#include "h1/h1_resp.h"
#include "proxy/fwd.h"
#include "proxy/request.h"
#include "src/conn.h"
#include "src/frontend.h"
#include "src/local.h"
#include "src/log.h"
#include "src/strbuf.h"
#include "tunnel/tunnel.h"

enum h1_state { H1_HEAD, H1_DIALING, H1_TUNNEL, H1_FWD, H1_CLOSED };

struct h1_conn {
  struct conn *c;           /* back-pointer: the owning connection */
  struct h1_req req;        /* the request-head parser (h1_req.h): owns llhttp and the target */
  enum h1_state state;
  uint64_t start_ms;        /* loop time the current request began */
  struct px_request *rq;    /* the request being decided (DIALING), or NULL */
  struct tun_ep ep;         /* this connection as a tunnel side */
  struct sockaddr_storage local; /* the address the client connected to (local_is_own) */
  /* Forwarding (H1_DIALING for a forward request, then H1_FWD): */
  struct fwd *fx;           /* the exchange with the origin (proxy/fwd.h), or NULL */
  struct bufq held;         /* client bytes read but not parsed yet: the body while the origin
                               is being reached, or the next request while a response runs */
  char *fwd_authority;      /* owned: the target's authority, NUL-terminated */
  unsigned fwd_body_done : 1;  /* the request body was read whole */
  unsigned resp_chunked : 1;   /* the response goes to the client chunked */
  unsigned close_after : 1;    /* close the connection once the response is out */
  unsigned client_eof : 1;     /* the client half-closed during an exchange */
  unsigned resp_started : 1;   /* a response head of the exchange went to the client */
  uint64_t nrequests;          /* requests begun on this connection (a stop may close it
                                  between requests, never before its first) */
};

static const struct tun_ep_ops h1_ep_ops;
static const struct conn_fe_ops h1_fe_ops;
static const struct px_front_ops h1_px_ops;

/* ---- answers ---- */

static void answer_local(struct h1_conn *h) {
  struct conn *c = h->c;
  const char *method = h->req.head.method;
  struct local_resp r;
  char host[sizeof(h->req.host)]; /* the Host value is not NUL-terminated */
  size_t hl = h->req.host_len < sizeof(host) ? h->req.host_len : 0;
  memcpy(host, h->req.host, hl);
  host[hl] = '\0';
  /* absolute-form for the proxy's own authority: its path */
  const char *path = h->req.head.path && h->req.head.path[0] == '/' ? h->req.head.path : "/";
  local_handle(c->w, c->listener, method, path, hl ? host : NULL, &r);
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
  char buf[1536];
  /* The reason phrase explains our own refusals; a backend's relayed status keeps its plain one. */
  size_t n = h1_resp_error(buf, sizeof(buf), out->status, out->relayed ? NULL : out->detail, out->proxy_status,
                           out->body, out->extra, out->nextra);
  h->rq = NULL;
  h->state = H1_CLOSED;
  conn_write_copy(h->c, buf, n);
  /* After a rejected request nothing more is parsed from this connection (RFC 9931), a 407
   * included (see the state table). */
  conn_close(h->c);
}

/* ---- requests ---- */

/* The request path's view of the request h1_req holds (strings borrowed until it decides). */
static struct px_request *new_request(struct h1_conn *h, enum px_proto proto) {
  struct px_request *rq = px_request_new(h->c->w, PX_FRONT_H1, proto, &h1_px_ops, h);
  px_request_set_client(rq, h->c);
  rq->start_ms = h->start_ms;
  rq->first_on_conn = h->nrequests == 1;
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

/* ---- forwarding (issue 11) ---- */

static void parse(struct h1_conn *h, struct buf_chunk *chunk);
static const struct fwd_front_ops h1_fwd_ops;

/* Keeps |chunk| (taken) from |off| on for later. Reading goes on, so that a client that goes
 * away is noticed, until a chunk's worth waits; then it stops until the bytes are parsed. */
static void hold(struct h1_conn *h, struct buf_chunk *chunk, size_t off) {
  struct conn *c = h->c;
  chunk->off += (uint32_t)off;
  chunk->len -= (uint32_t)off;
  bufq_push(&h->held, &c->w->pool, chunk);
  if (h->held.bytes >= BUF_CHUNK_SIZE) conn_read_stop(c);
}

/* Request body bytes from h1_req (chunked framing removed) go to the origin. */
static void on_req_body(void *arg, const char *data, size_t len) {
  struct h1_conn *h = arg;
  if (!h->fx) return;
  if (fwd_send_body(h->fx, data, len) > h->c->w->cfg->high_water) conn_read_stop(h->c);
}

/* Writes a response head: status line, |fields|, our framing. */
static void write_head(struct h1_conn *h, int status, const struct fwd_field *fields, size_t n, const char *framing) {
  struct strbuf sb;
  strbuf_init(&sb, 1u << 20);
  strbuf_printf(&sb, "HTTP/1.1 %d %s\r\n", status, http_reason(status));
  for (size_t i = 0; i < n; i++) {
    strbuf_append(&sb, fields[i].name, fields[i].name_len);
    strbuf_puts(&sb, ": ");
    strbuf_append(&sb, fields[i].value, fields[i].value_len);
    strbuf_puts(&sb, "\r\n");
  }
  if (framing) strbuf_puts(&sb, framing);
  strbuf_puts(&sb, "\r\n");
  conn_write_copy(h->c, strbuf_str(&sb), sb.len);
  strbuf_dispose(&sb);
}

static void fx_interim(void *fe, int status, const struct fwd_field *fields, size_t n) {
  struct h1_conn *h = fe;
  /* RFC 9110 §15.2: no 1xx to an HTTP/1.0 client. */
  if (h->req.head.minor == 1) write_head(h, status, fields, n, NULL);
}

static int fx_head(void *fe, int status, const struct fwd_field *fields, size_t n, int body, int64_t length) {
  struct h1_conn *h = fe;
  char framing[96];
  framing[0] = '\0';
  h->close_after = !h->req.head.keep_alive || h->c->w->stopping || h->client_eof;
  h->resp_chunked = 0;
  h->resp_started = 1;
  if (body && length >= 0) {
    snprintf(framing, sizeof(framing), "Content-Length: %lld\r\n", (long long)length);
  } else if (body && h->req.head.minor == 1) {
    h->resp_chunked = 1; /* re-framed so the connection stays usable (FWD-08) */
    snprintf(framing, sizeof(framing), "Transfer-Encoding: chunked\r\n");
  } else if (body) {
    h->close_after = 1; /* HTTP/1.0: the body ends with the connection */
  }
  if (h->close_after)
    strcat(framing, "Connection: close\r\n");
  else if (h->req.head.minor == 0)
    strcat(framing, "Connection: keep-alive\r\n"); /* HTTP/1.0 persists only when told (RFC 9112 §C.2.2) */
  write_head(h, status, fields, n, framing);
  return 0;
}

static void fx_body(void *fe, const char *data, size_t len) {
  struct h1_conn *h = fe;
  if (h->resp_chunked) {
    char hd[24];
    int n = snprintf(hd, sizeof(hd), "%zx\r\n", len);
    conn_write_copy(h->c, hd, (size_t)n);
    conn_write_copy(h->c, data, len);
    conn_write_copy(h->c, "\r\n", 2);
  } else {
    conn_write_copy(h->c, data, len);
  }
}

/* The exchange is over: the connection carries the next request, or closes. */
static void fwd_done(struct h1_conn *h, int close) {
  struct conn *c = h->c;
  h->fx = NULL;
  if (close || h->close_after || !h->fwd_body_done || h->client_eof || c->w->stopping) {
    h->state = H1_CLOSED;
    conn_close(c);
    return;
  }
  h->state = H1_HEAD;
  conn_set_timer(c, c->w->cfg->header_timeout_ms);
  /* Pipelined bytes read meanwhile come first, then reading resumes (H1S-14). */
  while (h->state == H1_HEAD && h->held.head) parse(h, bufq_pop(&h->held));
  if (h->state == H1_HEAD) conn_read_start(c);
}

static void fx_end(void *fe, const struct fwd_field *trailers, size_t n, int req_done) {
  struct h1_conn *h = fe;
  if (h->resp_chunked) {
    /* The last chunk, then the trailers (FWD-10). */
    struct strbuf sb;
    strbuf_init(&sb, 1u << 20);
    strbuf_puts(&sb, "0\r\n");
    for (size_t i = 0; i < n; i++) {
      strbuf_append(&sb, trailers[i].name, trailers[i].name_len);
      strbuf_puts(&sb, ": ");
      strbuf_append(&sb, trailers[i].value, trailers[i].value_len);
      strbuf_puts(&sb, "\r\n");
    }
    strbuf_puts(&sb, "\r\n");
    conn_write_copy(h->c, strbuf_str(&sb), sb.len);
    strbuf_dispose(&sb);
  }
  fwd_done(h, !req_done);
}

static void fx_error(void *fe, const struct px_outcome *out) {
  struct h1_conn *h = fe;
  char buf[1536];
  size_t n = h1_resp_error(buf, sizeof(buf), out->status, out->relayed ? NULL : out->detail, out->proxy_status,
                           out->body, out->extra, out->nextra);
  conn_write_copy(h->c, buf, n);
  fwd_done(h, 1);
}

static void fx_abort(void *fe) {
  /* The response is cut: the connection ends without the body's end (FWD-08). */
  fwd_done(fe, 1);
}

static size_t fx_queued(void *fe) { return conn_queued(((struct h1_conn *)fe)->c); }

/* The origin switched protocols (FWD-14): relay its 101, and this connection becomes the client
 * side of a tunnel to it, as after CONNECT. */
static struct tun_ep *fx_upgraded(void *fe, const struct fwd_field *fields, size_t n, struct bufq *early) {
  struct h1_conn *h = fe;
  h->fx = NULL;
  if (h->state != H1_FWD) return NULL;
  write_head(h, 101, fields, n, "Connection: upgrade\r\n");
  h->state = H1_TUNNEL;
  conn_set_timer(h->c, 0);
  *early = h->held; /* what the client sent after the head is the new protocol's */
  bufq_init(&h->held);
  h1_req_dispose(&h->req);
  return &h->ep;
}

static void fx_req_drain(void *fe) {
  struct h1_conn *h = fe;
  if (h->state == H1_FWD && !h->fwd_body_done) conn_read_start(h->c);
}

static const struct fwd_front_ops h1_fwd_ops = {
    .interim = fx_interim,
    .head = fx_head,
    .body = fx_body,
    .end = fx_end,
    .error = fx_error,
    .abort = fx_abort,
    .queued = fx_queued,
    .req_drain = fx_req_drain,
    .upgraded = fx_upgraded,
};

/* Feeds request body bytes (|chunk|, taken) to h1_req, which hands them to the origin. */
static void feed_body(struct h1_conn *h, struct buf_chunk *chunk) {
  struct conn *c = h->c;
  const char *data = chunk ? buf_rd(chunk) : "";
  size_t len = chunk ? chunk->len : 0;
  size_t used = 0;
  enum h1_req_status st = h1_req_feed(&h->req, data, len, &used);
  if (st == H1_REQ_BODY_END) {
    h->fwd_body_done = 1;
    if (h->fx) {
      struct fwd_field tr[64];
      size_t n = 0;
      for (size_t i = h->req.nhead_fields; i < h->req.nfl && n < ARRAY_SIZE(tr); i++)
        tr[n++] = (struct fwd_field){h1_req_fl_name(&h->req, i), h->req.fl[i].name_len,
                                     h1_req_fl_value(&h->req, i), h->req.fl[i].value_len};
      fwd_send_end(h->fx, tr, n);
    }
    if (chunk && used < len) {
      hold(h, chunk, used); /* the next request waits for this response (H1S-14) */
      return;
    }
  } else if (st == H1_REQ_ERROR) {
    /* The client's framing is in doubt (FWD-07): nothing more is read from it. */
    log_info("h1 %s: forwarded request body refused: %s", c->peer, h->req.detail);
    if (h->fx) fwd_cancel(h->fx);
    h->fx = NULL;
    h->state = H1_CLOSED;
    if (h->resp_started) {
      /* A response is on its way: it is cut, no second answer is written into it. */
      conn_close(c);
      buf_put(&c->w->pool, chunk);
      return;
    }
    char buf[1024];
    char ps[PXERR_PROXY_STATUS_MAX], body[PXERR_BODY_MAX];
    pxerr_proxy_status(ps, sizeof(ps), h->req.err, h->req.detail);
    pxerr_body(body, sizeof(body), pxerr_status(h->req.err), h->req.detail);
    size_t n = h1_resp_error(buf, sizeof(buf), pxerr_status(h->req.err), h->req.detail, ps, body, NULL, 0);
    conn_write_copy(c, buf, n);
    conn_close(c);
  }
  buf_put(&c->w->pool, chunk);
}

static void px_answer_forward(void *fe, struct px_request *rq, struct fwd_up *up) {
  struct h1_conn *h = fe;
  struct h1_req *r = &h->req;
  struct fwd_field *fields = xcalloc(r->nhead_fields + 1, sizeof(*fields));
  size_t n = 0;
  h->rq = NULL;
  for (size_t i = 0; i < r->nhead_fields; i++)
    fields[n++] = (struct fwd_field){h1_req_fl_name(r, i), r->fl[i].name_len, h1_req_fl_value(r, i), r->fl[i].value_len};
  /* origin-form: the path, or "/" before a query (RFC 9112 §3.2.1). */
  const char *path = r->head.path;
  char *alloc = NULL;
  if (path[0] != '/') {
    size_t l = strlen(path);
    alloc = xmalloc(l + 2);
    alloc[0] = '/';
    memcpy(alloc + 1, path, l + 1);
    path = alloc;
  }
  struct fwd_req req = {.method = r->head.method,
                        .authority = h->fwd_authority,
                        .path = path,
                        .https = r->head.https,
                        .proto = r->head.minor ? "1.1" : "1.0",
                        .fields = fields,
                        .nfields = n,
                        .length = r->head.length,
                        .upgrade = r->head.upgrade};
  h->state = H1_FWD;
  h->fwd_body_done = 0;
  h->resp_started = 0;
  h->fx = fwd_start(up, rq, &req, &h1_fwd_ops, h);
  free(fields);
  free(alloc);
  free(h->fwd_authority);
  h->fwd_authority = NULL;
  /* The body read so far, then more from the client. */
  struct buf_chunk *first = bufq_pop(&h->held);
  feed_body(h, first);
  while (h->state == H1_FWD && !h->fwd_body_done && h->held.head) feed_body(h, bufq_pop(&h->held));
  if (h->state == H1_FWD && !h->fwd_body_done) conn_read_start(h->c);
}

/* Does some Via field of the request name this proxy (a loop, FWD-04)? */
static int via_loops(const struct h1_req *r, const char *via_name) {
  for (size_t i = 0; i < r->nhead_fields; i++)
    if (r->fl[i].name_len == 3 && strncasecmp(h1_req_fl_name(r, i), "via", 3) == 0 &&
        fwd_via_names(h1_req_fl_value(r, i), r->fl[i].value_len, via_name))
      return 1;
  return 0;
}

/* An absolute-form request for another authority (FWD-01): to the request path, which decides
 * and reaches the origin; the bytes after the head (|chunk| from |off|) wait until then. */
static void start_forward(struct h1_conn *h, struct buf_chunk *chunk, size_t off) {
  struct conn *c = h->c;
  struct px_request *rq = new_request(h, PX_PROTO_FORWARD);
  free(h->fwd_authority);
  h->fwd_authority = xmalloc(h->req.head.scheme_auth_len + 1);
  memcpy(h->fwd_authority, h->req.head.scheme_auth, h->req.head.scheme_auth_len);
  h->fwd_authority[h->req.head.scheme_auth_len] = '\0';
  rq->authority = h->fwd_authority;
  rq->tls = h->req.head.https;
  h->state = H1_DIALING;
  hold(h, chunk, off);
  conn_set_timer(c, 0);
  if (via_loops(&h->req, c->w->cfg->via_name)) {
    px_request_fail(rq, PXERR_LOOP, "request loop: Via names this proxy");
    return;
  }
  for (size_t i = 0; i < h->req.nhead_fields; i++) {
    if (h->req.fl[i].name_len == 12 && strncasecmp(h1_req_fl_name(&h->req, i), "max-forwards", 12) == 0 &&
        fwd_max_forwards_zero(h->req.head.method, h1_req_fl_value(&h->req, i), h->req.fl[i].value_len)) {
      /* FWD-05: the last hop answers itself (then closes: the body, if any, is not read). */
      static const char r200[] = "HTTP/1.1 200 OK\r\nAllow: GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE\r\n"
                                 "Via: 1.1 h2tunnel\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      px_request_answered(rq, 200, h->req.head.method, "Max-Forwards: 0");
      h->rq = NULL;
      h->state = H1_CLOSED;
      conn_write_copy(c, r200, sizeof(r200) - 1);
      conn_close(c);
      return;
    }
  }
  px_request_start(rq);
}

/* Feeds |chunk| (taken) to the parser and acts on every complete request in it. */
static void parse(struct h1_conn *h, struct buf_chunk *chunk) {
  struct conn *c = h->c;
  const char *data = buf_rd(chunk);
  size_t len = chunk->len;
  while (len > 0 && h->state == H1_HEAD) {
    size_t used = 0;
    if (!h1_req_started(&h->req)) { /* a new request begins */
      h->start_ms = uv_now(&c->w->loop);
      h->nrequests++;
    }
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
      start_forward(h, chunk, (size_t)(data - buf_rd(chunk)));
      return;
    }
    if (h->req.head.kind == H1_REQ_ABSOLUTE) {
      /* The proxy's own: its body is read and dropped like a local request's. */
      size_t used2 = 0;
      enum h1_req_status st2 = h1_req_feed(&h->req, data, len, &used2);
      if (st2 == H1_REQ_MORE) {
        /* The rest of the body comes later: simplest is to close after answering. */
        h->req.head.keep_alive = 0;
        len = 0;
      } else if (st2 == H1_REQ_ERROR) {
        h->state = H1_CLOSED;
        conn_close(c);
        break;
      } else {
        data += used2;
        len -= used2;
      }
    }
    answer_local(h);
  }
  buf_put(&c->w->pool, chunk);
}

static const struct px_front_ops h1_px_ops = {
    .answer_ok = px_answer_ok,
    .answer_error = px_answer_error,
    .client_ep = px_client_ep,
    .answer_forward = px_answer_forward,
};

/* ---- conn front-end ops ---- */

static void fe_on_read(struct conn *c, struct buf_chunk *chunk) {
  struct h1_conn *h = c->fe_data;
  if (h->state == H1_TUNNEL && h->ep.tun) {
    tunnel_on_read(&h->ep, chunk);
  } else if (h->state == H1_HEAD) {
    parse(h, chunk);
  } else if (h->state == H1_FWD && !h->fwd_body_done) {
    feed_body(h, chunk);
  } else if (h->state == H1_FWD || h->state == H1_DIALING) {
    hold(h, chunk, 0);
  } else {
    buf_put(&c->w->pool, chunk);
  }
}

static void fe_on_eof(struct conn *c) {
  struct h1_conn *h = c->fe_data;
  if (h->state == H1_TUNNEL && h->ep.tun) {
    tunnel_on_eof(&h->ep);
  } else if (h->state == H1_FWD || (h->state == H1_DIALING && h->fwd_authority)) {
    /* The client went away during the exchange: the origin's connection is closed too (as
     * nginx does by default), so a slow origin does not hold it (or a stop) for nothing. */
    h->client_eof = 1;
    h->state = H1_CLOSED;
    conn_close(c); /* on_close cancels the request or the exchange */
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
  if (h->state == H1_FWD && h->fx) fwd_resume(h->fx);
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
  /* Between requests: close now. A request begun, or the first one not sent yet (the connection
   * was accepted just before the stop), is served, with Connection: close; --header-timeout
   * bounds the wait. Tunnels and dials finish on their own (or at the deadline). */
  if (h->state == H1_HEAD && h->nrequests && !h1_req_started(&h->req)) {
    h->state = H1_CLOSED;
    conn_close(c);
  }
}

static void fe_on_close(struct conn *c) {
  struct h1_conn *h = c->fe_data;
  if (h->rq) px_request_cancel(h->rq);
  if (h->fx) fwd_cancel(h->fx);
  h->fx = NULL;
  bufq_clear(&h->held, &c->w->pool);
  free(h->fwd_authority);
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
  h->req.on_body = on_req_body;
  h->req.body_arg = h;
  bufq_init(&h->held);
  h->ep.ops = &h1_ep_ops;
  int llen = sizeof(h->local);
  if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&h->local, &llen) != 0) h->local.ss_family = AF_UNSPEC;
  c->fe = &h1_fe_ops;
  c->fe_data = h;
  conn_set_timer(c, c->w->cfg->header_timeout_ms);
}

const struct frontend h1_frontend = {.name = "h1", .alpn = "http/1.1", .preface = NULL, .attach = h1_conn_attach};
