/* HTTP/1.1 front end.
 *
 *   state      | reads         | on event
 *   -----------+---------------+---------------------------------------------------------------
 *   HEAD       | llhttp        | local request -> answer, stay in HEAD (keep-alive) or close
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

#include <errno.h>
#include <llhttp.h>
#include <string.h>
#include <strings.h>

#include "h1/h1_resp.h"
#include "src/authority.h"
#include "src/conn.h"
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
  llhttp_t parser;
  enum h1_state state;
  /* Per request head: */
  size_t head_bytes;        /* bytes of URL + fields seen, against max_header_bytes */
  size_t nheaders;
  char *url;                /* owned; NUL-terminated */
  size_t url_len, url_cap;
  char field[24];           /* first bytes of the current field name, lowercased */
  char upgrade[32];         /* Upgrade field value (truncated), lowercased */
  size_t field_len;
  int host_count;
  int in_url;
  enum pxerr err;           /* set by a callback that failed the request */
  const char *err_detail;
  /* CONNECT: */
  struct buf_chunk *first;  /* owned until the tunnel starts: bytes after the head */
  struct tcp_ep *dial;      /* the dial in progress, or NULL */
  struct udp_ep *udp;       /* connect-udp dial in progress, or NULL */
  struct tun_ep ep;         /* this connection as a tunnel side */
  struct tun_info info;
};

static const struct tun_ep_ops h1_ep_ops;
static const struct conn_fe_ops h1_fe_ops;

static struct h1_conn *h1_of(llhttp_t *p) { return container_of(p, struct h1_conn, parser); }

/* ---- llhttp callbacks: they only record; decisions are taken after llhttp_execute returns ---- */

static int fail_cb(struct h1_conn *h, enum pxerr e, const char *detail) {
  if (h->err == PXERR_NONE) {
    h->err = e;
    h->err_detail = detail;
  }
  return HPE_USER;
}

static int count_head(struct h1_conn *h, size_t n) {
  h->head_bytes += n;
  if (h->head_bytes > h->c->w->cfg->max_header_bytes)
    return fail_cb(h, h->in_url ? PXERR_URI_TOO_LONG : PXERR_HEAD_TOO_LARGE,
                   h->in_url ? "request target too long" : "request head too large");
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  struct h1_conn *h = h1_of(p);
  h->head_bytes = 0;
  h->nheaders = 0;
  h->url_len = 0;
  h->host_count = 0;
  h->upgrade[0] = '\0';
  h->info.proto = "connect";
  h->in_url = 1;
  h->info.start_ms = uv_now(&h->c->w->loop);
  h->info.target[0] = '\0';
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  struct h1_conn *h = h1_of(p);
  if (count_head(h, len)) return HPE_USER;
  if (h->url_len + len + 1 > h->url_cap) {
    size_t cap = MAX(h->url_cap * 2, h->url_len + len + 1);
    cap = MAX(cap, (size_t)256);
    char *n = realloc(h->url, cap);
    CHECK(n != NULL);
    h->url = n;
    h->url_cap = cap;
  }
  memcpy(h->url + h->url_len, at, len);
  h->url_len += len;
  h->url[h->url_len] = '\0';
  return 0;
}

static int on_url_complete(llhttp_t *p) {
  h1_of(p)->in_url = 0;
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  struct h1_conn *h = h1_of(p);
  if (count_head(h, len + 4)) return HPE_USER; /* + ": " and CRLF */
  for (size_t i = 0; i < len && h->field_len < sizeof(h->field) - 1; i++)
    h->field[h->field_len++] = (char)((at[i] >= 'A' && at[i] <= 'Z') ? at[i] + 32 : at[i]);
  h->field[h->field_len] = '\0';
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  struct h1_conn *h = h1_of(p);
  if (++h->nheaders > h->c->w->cfg->max_headers)
    return fail_cb(h, PXERR_HEAD_TOO_LARGE, "too many header fields");
  if (strcmp(h->field, "host") == 0) h->host_count++;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  struct h1_conn *h = h1_of(p);
  if (strcmp(h->field, "upgrade") == 0) {
    size_t n = strlen(h->upgrade);
    for (size_t i = 0; i < len && n < sizeof(h->upgrade) - 1; i++)
      h->upgrade[n++] = (char)((at[i] >= 'A' && at[i] <= 'Z') ? at[i] + 32 : at[i]);
    h->upgrade[n] = '\0';
  }
  return count_head(h, len);
}

static int on_header_value_complete(llhttp_t *p) {
  struct h1_conn *h = h1_of(p);
  h->field_len = 0;
  h->field[0] = '\0';
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  struct h1_conn *h = h1_of(p);
  /* RFC 9112 §3.2: an HTTP/1.1 request needs exactly one Host; HTTP/1.0 at most one (H1C-04). */
  int v11 = llhttp_get_http_major(p) == 1 && llhttp_get_http_minor(p) >= 1;
  if (h->host_count > 1 || (v11 && h->host_count == 0))
    return fail_cb(h, PXERR_BAD_REQUEST, h->host_count ? "more than one Host field" : "missing Host field");
  if (llhttp_get_method(p) == HTTP_CONNECT) {
    /* A CONNECT has no content (H1C-10). */
    if ((p->flags & (F_TRANSFER_ENCODING | F_CHUNKED)) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0))
      return fail_cb(h, PXERR_BAD_REQUEST, "CONNECT with a body");
  }
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  /* Stop after each message so one request is answered before the next is parsed (H1S-14). */
  return (llhttp_get_method(p) == HTTP_CONNECT || llhttp_get_upgrade(p)) ? 0 : HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

/* ---- responses ---- */

static void send_error(struct h1_conn *h, enum pxerr e, const char *detail) {
  struct conn *c = h->c;
  char buf[1024];
  int status = pxerr_status(e);
  size_t n = h1_resp_error(buf, sizeof(buf), status, pxerr_token(e), detail);
  METRIC_ADD(&c->w->metrics, errors[e], 1);
  h->info.status = status;
  if (h->info.target[0] == '\0' && h->url) snprintf(h->info.target, sizeof(h->info.target), "%s", h->url);
  tunnel_log_rejected(c->w, &h->info, pxerr_token(e), detail);
  log_debug("h1 %s: %d %s (%s)", c->peer, status, pxerr_token(e), detail ? detail : "");
  h->state = H1_CLOSED;
  conn_write_copy(c, buf, n);
  /* After a rejected request nothing more is parsed from this connection (RFC 9931). */
  conn_close(c);
}

static void answer_local(struct h1_conn *h, const char *method) {
  struct conn *c = h->c;
  struct local_resp r;
  local_handle(c->w, method, h->url ? h->url : "/", &r);
  int close = !llhttp_should_keep_alive(&h->parser) || c->w->stopping;
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
static void start_tunnel(struct h1_conn *h, const char *head, struct tun_ep *b, const char *peer) {
  struct conn *c = h->c;
  conn_write_copy(c, head, strlen(head));
  h->state = H1_TUNNEL;
  h->info.status = head[9] == '1' ? 101 : 200;
  snprintf(h->info.resolved, sizeof(h->info.resolved), "%s", peer);
  /* The request is done with: a long-lived tunnel should not carry its head. */
  free(h->url);
  h->url = NULL;
  h->url_len = h->url_cap = 0;
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
    start_tunnel(h, "HTTP/1.1 200 Connection Established\r\n\r\n", tcp_ep_tun(ep), tcp_ep_peer(ep));
}

static void on_udp_dial(void *arg, struct udp_ep *ep, enum pxerr err, const char *detail) {
  struct h1_conn *h = arg;
  h->udp = NULL;
  if (err != PXERR_NONE)
    dial_failed(h, err, detail);
  else
    start_tunnel(h,
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

/* connect-udp over HTTP/1.1 (RFC 9298 §3.2): GET + Upgrade: connect-udp; target from the path. */
static void start_connect_udp(struct h1_conn *h, struct buf_chunk *rest) {
  struct conn *c = h->c;
  keep_first(h, rest);
  h->info.proto = "connect-udp";
  const char *path = h->url ? h->url : "";
  /* Absolute-form: the template applies to the path after the authority. */
  if (strncasecmp(path, "https://", 8) == 0 || strncasecmp(path, "http://", 7) == 0) {
    const char *slash = strchr(strstr(path, "://") + 3, '/');
    path = slash ? slash : "";
  }
  char host[AUTHORITY_HOST_MAX + 1];
  uint16_t port;
  struct authority target;
  if (llhttp_get_method(&h->parser) != HTTP_GET ||
      udp_tmpl_match(c->w->cfg->udp_template, path, strlen(path), host, sizeof(host), &port) != 0) {
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

static void start_connect(struct h1_conn *h, struct buf_chunk *rest) {
  struct conn *c = h->c;
  const char *why = NULL;
  struct authority target;
  keep_first(h, rest);
  if (authority_parse(h->url, h->url_len, &target, &why) != 0) {
    send_error(h, PXERR_BAD_REQUEST, why ? why : "bad CONNECT target");
    return;
  }
  authority_format(&target, h->info.target, sizeof(h->info.target));
  h->state = H1_DIALING;
  conn_read_stop(c);
  conn_set_timer(c, 0);
  h->dial = tcp_ep_dial(c->w, &target, on_dial, h);
}

/* Feeds |chunk| (taken) to the parser and acts on every complete request in it. */
static void parse(struct h1_conn *h, struct buf_chunk *chunk) {
  struct conn *c = h->c;
  const char *data = buf_rd(chunk);
  size_t len = chunk->len;
  while (len > 0 && h->state == H1_HEAD) {
    llhttp_errno_t e = llhttp_execute(&h->parser, data, len);
    if (e == HPE_OK) break;
    const char *pos = llhttp_get_error_pos(&h->parser);
    size_t used = pos ? (size_t)(pos - data) : len;
    if (e == HPE_PAUSED_UPGRADE && llhttp_get_method(&h->parser) == HTTP_CONNECT) {
      /* Whatever follows the head is the tunnel's first payload (H1C-08). Earlier pipelined
       * requests in this chunk were consumed too: count from the chunk's start, not |data|. */
      uint32_t consumed = (uint32_t)(data + used - buf_rd(chunk));
      chunk->off += consumed;
      chunk->len -= consumed;
      start_connect(h, chunk);
      return;
    }
    if (e == HPE_PAUSED) {
      const char *m = llhttp_method_name((llhttp_method_t)llhttp_get_method(&h->parser));
      if (h->url && (strncasecmp(h->url, "http://", 7) == 0 || strncasecmp(h->url, "https://", 8) == 0)) {
        send_error(h, PXERR_NOT_IMPLEMENTED, "forwarding of absolute-form requests is not supported; use CONNECT");
        break;
      }
      if (!h->url || h->url[0] != '/') {
        send_error(h, PXERR_BAD_REQUEST, "bad request target");
        break;
      }
      answer_local(h, m);
      llhttp_resume(&h->parser);
      data += used;
      len -= used;
      continue;
    }
    if (e == HPE_PAUSED_UPGRADE) {
      if (strcmp(h->upgrade, "connect-udp") == 0) {
        chunk->off += (uint32_t)used;
        chunk->len -= (uint32_t)used;
        start_connect_udp(h, chunk);
        return;
      }
      send_error(h, PXERR_NOT_IMPLEMENTED, "protocol upgrade not supported");
      break;
    }
    if (h->err != PXERR_NONE) {
      send_error(h, h->err, h->err_detail);
    } else {
      log_debug("h1 %s: parse error %s: %s", c->peer, llhttp_errno_name(e), llhttp_get_error_reason(&h->parser));
      send_error(h, PXERR_BAD_REQUEST, "malformed request");
    }
    break;
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
  if (h->parser.method || h->url_len) {
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
  if (h->ep.tun) tunnel_kill(h->ep.tun, TUN_CLOSE_CLIENT_ERROR);
  buf_put(&c->w->pool, h->first);
  free(h->url);
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
  struct h1_conn *h = xcalloc(1, sizeof(*h));
  h->c = c;
  llhttp_init(&h->parser, HTTP_REQUEST, &parser_settings);
  h->ep.ops = &h1_ep_ops;
  h->info.front = "h1";
  h->info.proto = "connect";
  h->info.start_ms = uv_now(&c->w->loop);
  snprintf(h->info.client, sizeof(h->info.client), "%s", c->peer);
  c->fe = &h1_fe_ops;
  c->fe_data = h;
  conn_set_timer(c, c->w->cfg->header_timeout_ms);
}
