/* One forwarded request over an upstream HTTP/1.1 connection (see fwd.h).
 *
 * The request side and the response side move independently:
 *   req:  BODY (body bytes still to come from the client) -> DONE
 *   resp: HEAD (waiting for the final head; 1xx passed on) -> BODY -> DONE
 * The exchange ends when the response is DONE (ops->end) or fails (ops->error before the head,
 * ops->abort after it), or on fwd_cancel. The upstream connection goes back to the pool only
 * when both sides are DONE, the origin kept the connection alive, and nothing was left over.
 *
 * The response is parsed by proxy/fwd_resp.c, which turns the origin's bytes into events (a 1xx, the
 * head, the end, a relayed 101, a fault) acted on here; body bytes are passed on from its body
 * callback directly (ops->body never ends the exchange).
 *
 * An upgrade request (FWD-14) answered with 101 becomes a tunnel (tunnel/tunnel.h) between the
 * front end's side and the origin's connection (fwd_up_tunnel), holding the request's limits
 * ticket; the tunnel writes the access-log line then. */
#include "proxy/fwd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/fwd_resp.h"
#include "proxy/pool.h"
#include "proxy/request.h"
#include "src/limits.h"
#include "src/log.h"
#include "src/net.h"
#include "src/policy.h"
#include "src/access.h"
#include "src/pxerr.h"
#include "src/strbuf.h"
#include "src/worker.h"
#include "tunnel/tunnel.h"

enum fwd_req_state { FWD_REQ_BODY, FWD_REQ_DONE };
enum fwd_resp_side { FWD_R_HEAD, FWD_R_BODY, FWD_R_DONE };

#define FWD_MAX_FIELDS 256

struct fwd {
  struct worker *w;                /* borrowed */
  struct fwd_up *up;               /* owned: BUSY with us; NULL while a retry dials */
  struct fwd_get *get;             /* a retry's new connection being opened */
  const struct fwd_front_ops *ops;
  void *fe;
  enum fwd_req_state req;
  enum fwd_resp_side resp;
  struct strbuf head;              /* owned: the request head, kept until a response byte (retry) */
  int chunked_up;                  /* the request body goes chunked */
  int is_head;                     /* HEAD: the response has no body */
  int retry_ok;                    /* idempotent, without body: may be re-sent once */
  int got_bytes;                   /* some response byte arrived on this connection */
  int head_sent;                   /* ops->head was called */
  int failed;                      /* the response was refused: the connection is not reused */
  int bad_head;                    /* the request head could not be built: 431 from the loop */
  int reused;                      /* the connection served an exchange before */
  int upgrade;                     /* the request asks for a protocol upgrade (FWD-14) */
  struct lim_ticket *ticket;       /* owned (upgrade only): the tunnel's hold on its limits */
  struct config *cfg;              /* a reference: the snapshot that decided (|rule| points into it) */
  struct sockaddr_storage client_addr; /* what a reload re-checks an upgrade's tunnel on */
  int keep_on_reload, cert_user;
  const char *rule;                /* the rule that allowed the request, or NULL */
  struct authority dest;
  int tls;
  struct fwd_resp rp;              /* the response parser */
  /* Access log. */
  enum px_front front;
  char client[64];
  char target[AUTHORITY_FORMAT_MAX];
  char method[24];
  char scheme[8];
  char path[512];
  char user[128];
  char peer[64];
  uint64_t start_ms;
  uint64_t bytes_up, bytes_down;
  int final_status;                /* what the client got: the origin's, ours, or 0 (cut) */
  const char *error;               /* Proxy-Status type of a failure, for the log */
  const char *detail;
  char detail_buf[160];            /* |detail| when it is not static text */
};

static const struct fwd_up_ops up_ops;

/* ---- fields ---- */

static int name_is(const char *n, size_t len, const char *lit) {
  return strlen(lit) == len && strncasecmp(n, lit, len) == 0;
}

int fwd_is_hop_by_hop(const char *n, size_t len) { return fwd_resp_hop_by_hop(n, len); }

int fwd_max_forwards_zero(const char *method, const char *v, size_t len) {
  if (strcmp(method, "OPTIONS") != 0 && strcmp(method, "TRACE") != 0) return 0;
  size_t i = 0;
  while (i < len && (v[i] == ' ' || v[i] == '\t')) i++;
  if (i == len) return 0;
  for (; i < len && v[i] != ' ' && v[i] != '\t'; i++)
    if (v[i] != '0') return 0;
  return 1;
}

int fwd_via_names(const char *v, size_t len, const char *via_name) {
  /* Via = #( received-protocol RWS received-by [ RWS comment ] ) (RFC 9110 §7.6.3). */
  size_t i = 0, nlen = strlen(via_name);
  while (i < len) {
    while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    while (i < len && v[i] != ' ' && v[i] != '\t' && v[i] != ',') i++; /* received-protocol */
    while (i < len && (v[i] == ' ' || v[i] == '\t')) i++;
    size_t s = i;
    while (i < len && v[i] != ' ' && v[i] != '\t' && v[i] != ',') i++;
    if (i - s == nlen && strncasecmp(v + s, via_name, nlen) == 0) return 1;
    while (i < len && v[i] != ',') i++; /* comment */
  }
  return 0;
}

/* ---- the request head ---- */

static int build_head(struct fwd *f, const struct px_request *rq, const struct fwd_req *req) {
  const struct config *cfg = f->w->cfg;
  struct strbuf *sb = &f->head;
  const char *via_prev = NULL;
  size_t via_prev_len = 0;
  strbuf_printf(sb, "%s %s HTTP/1.1\r\nHost: %s\r\n", req->method, req->path[0] ? req->path : "/", req->authority);
  int trace_like = strcmp(req->method, "OPTIONS") == 0 || strcmp(req->method, "TRACE") == 0;
  for (size_t i = 0; i < req->nfields; i++) {
    const struct fwd_field *fl = &req->fields[i];
    if (f->upgrade && name_is(fl->name, fl->name_len, "upgrade")) {
      /* Relayed: the upgrade is the origin's to accept (FWD-14, RFC 9110 §7.8). */
      strbuf_puts(sb, "Upgrade: ");
      strbuf_append(sb, fl->value, fl->value_len);
      strbuf_puts(sb, "\r\n");
      continue;
    }
    if (fwd_is_hop_by_hop(fl->name, fl->name_len) || name_is(fl->name, fl->name_len, "host") ||
        name_is(fl->name, fl->name_len, "content-length") ||
        fwd_resp_connection_lists(req->fields, req->nfields, fl->name, fl->name_len))
      continue;
    if (name_is(fl->name, fl->name_len, "via")) {
      /* Kept, joined into one field with ours appended. */
      if (!via_prev) {
        via_prev = fl->value;
        via_prev_len = fl->value_len;
      } else {
        strbuf_puts(sb, "Via: ");
        strbuf_append(sb, fl->value, fl->value_len);
        strbuf_puts(sb, "\r\n");
      }
      continue;
    }
    if (trace_like && name_is(fl->name, fl->name_len, "max-forwards")) {
      /* FWD-05: decremented on the way (0 was answered by the front end). */
      unsigned long v = strtoul(fl->value, NULL, 10);
      strbuf_printf(sb, "Max-Forwards: %lu\r\n", v > 0 ? v - 1 : 0);
      continue;
    }
    strbuf_append(sb, fl->name, fl->name_len);
    strbuf_puts(sb, ": ");
    strbuf_append(sb, fl->value, fl->value_len);
    strbuf_puts(sb, "\r\n");
  }
  if (via_prev) {
    strbuf_puts(sb, "Via: ");
    strbuf_append(sb, via_prev, via_prev_len);
    strbuf_puts(sb, ", ");
  } else {
    strbuf_puts(sb, "Via: ");
  }
  strbuf_printf(sb, "%s %s\r\n", req->proto, cfg->via_name);
  if (cfg->forwarded_for && rq->client_addr.ss_family != AF_UNSPEC) {
    char ip[64];
    net_format_ip((const struct sockaddr *)&rq->client_addr, ip, sizeof(ip));
    if (rq->client_addr.ss_family == AF_INET6)
      strbuf_printf(sb, "Forwarded: for=\"[%s]\"\r\nX-Forwarded-For: %s\r\n", ip, ip);
    else
      strbuf_printf(sb, "Forwarded: for=%s\r\nX-Forwarded-For: %s\r\n", ip, ip);
  }
  if (f->upgrade) strbuf_puts(sb, "Connection: upgrade\r\n");
  if (req->length > 0) {
    strbuf_printf(sb, "Content-Length: %lld\r\n", (long long)req->length);
  } else if (req->length < 0) {
    strbuf_puts(sb, "Transfer-Encoding: chunked\r\n");
    f->chunked_up = 1;
  }
  strbuf_puts(sb, "\r\n");
  return sb->overflow ? -1 : 0;
}

/* ---- the end ---- */

static void log_line(struct fwd *f) {
  char line[LOG_ACCESS_LINE_MAX + 1];
  struct strbuf sb;
  strbuf_init_fixed(&sb, line, sizeof(line));
  log_access_head(&sb, px_front_name(f->front), "forward", f->client, f->target);
  strbuf_puts(&sb, ",\"method\":");
  log_json_str(&sb, f->method);
  strbuf_printf(&sb, ",\"scheme\":\"%s\",\"path\":", f->scheme);
  log_json_str(&sb, f->path);
  if (f->peer[0]) {
    strbuf_puts(&sb, ",\"resolved\":");
    log_json_str(&sb, f->peer);
  }
  strbuf_printf(&sb, ",\"status\":%d,\"bytes_up\":%llu,\"bytes_down\":%llu,\"duration_ms\":%llu,\"upstream\":\"%s\"",
                f->final_status, (unsigned long long)f->bytes_up, (unsigned long long)f->bytes_down,
                (unsigned long long)(uv_now(&f->w->loop) - f->start_ms), f->reused ? "reused" : "new");
  if (f->user[0]) {
    strbuf_puts(&sb, ",\"user\":");
    log_json_str(&sb, f->user);
  }
  if (f->error) {
    strbuf_puts(&sb, ",\"error\":");
    log_json_str(&sb, f->error);
    strbuf_puts(&sb, ",\"detail\":");
    log_json_str(&sb, f->detail);
  }
  strbuf_puts(&sb, "}");
  log_access_write(&sb);
}

/* Logs, counts, lets go of the upstream (pooled when |reuse|) and frees |f|. */
static void finish(struct fwd *f, int reuse) {
  struct metrics *m = &f->w->metrics;
  int cls = f->final_status >= 100 && f->final_status <= 599 ? f->final_status / 100 : 0;
  METRIC_ADD(m, fwd_requests[cls], 1);
  METRIC_ADD(m, fwd_bytes_up, f->bytes_up);
  METRIC_ADD(m, fwd_bytes_down, f->bytes_down);
  if (f->final_status != 101) log_line(f); /* an upgrade's line is its tunnel's */
  lim_ticket_release(f->ticket);
  if (f->get) fwd_get_cancel(f->get);
  if (f->up) {
    if (reuse)
      fwd_up_release(f->up);
    else
      fwd_up_close(f->up, 0);
  }
  strbuf_dispose(&f->head);
  fwd_resp_dispose(&f->rp);
  config_unref(f->cfg);
  free(f);
}

/* Fails before any response byte reached the client: an error answer. */
static void fail_before_head(struct fwd *f, enum pxerr err, const char *detail) {
  struct px_outcome o;
  char proxy_status[PXERR_PROXY_STATUS_MAX], body[PXERR_BODY_MAX];
  memset(&o, 0, sizeof(o));
  o.err = err;
  o.detail = detail;
  o.status = pxerr_status(err);
  pxerr_proxy_status(proxy_status, sizeof(proxy_status), err, detail);
  pxerr_body(body, sizeof(body), o.status, detail);
  o.proxy_status = proxy_status;
  o.body = body;
  METRIC_ADD(&f->w->metrics, errors[err], 1);
  f->final_status = o.status;
  f->error = pxerr_token(err);
  f->detail = detail;
  log_debug("forward %s: %s %s: %d %s (%s)", f->client, f->method, f->target, o.status, f->error, detail);
  f->ops->error(f->fe, &o);
  finish(f, 0);
}

/* Fails after the head went to the client: the response is cut (FWD-08). */
static void fail_after_head(struct fwd *f, const char *why) {
  f->error = "http_response_incomplete";
  f->detail = why;
  log_info("forward %s: %s %s: response cut: %s", f->client, f->method, f->target, why);
  f->ops->abort(f->fe);
  finish(f, 0);
}

static void fail(struct fwd *f, enum pxerr err, const char *detail) {
  if (f->head_sent)
    fail_after_head(f, detail);
  else
    fail_before_head(f, err, detail);
}

/* ---- sending ---- */

static void arm_timer(struct fwd *f) {
  const struct config *cfg = f->w->cfg;
  uint64_t ms = f->resp == FWD_R_HEAD ? cfg->fwd_response_timeout_ms : cfg->fwd_body_timeout_ms;
  if (f->up) xport_set_timer(&f->up->x, ms);
}

static void send_head(struct fwd *f) {
  xport_write_copy(&f->up->x, strbuf_str(&f->head), f->head.len);
  xport_read_start(&f->up->x);
  arm_timer(f);
}

size_t fwd_send_body(struct fwd *f, const char *data, size_t len) {
  if (!f->up || f->req != FWD_REQ_BODY || len == 0 || f->bad_head) return f->up ? xport_queued(&f->up->x) : 0;
  struct xport *x = &f->up->x;
  if (f->chunked_up) {
    char hd[24];
    int n = snprintf(hd, sizeof(hd), "%zx\r\n", len);
    xport_write_copy(x, hd, (size_t)n);
    xport_write_copy(x, data, len);
    xport_write_copy(x, "\r\n", 2);
  } else {
    xport_write_copy(x, data, len);
  }
  f->bytes_up += len;
  arm_timer(f); /* the response timeout counts from the last request byte */
  return xport_queued(x);
}

void fwd_send_end(struct fwd *f, const struct fwd_field *trailers, size_t n) {
  if (f->req != FWD_REQ_BODY) return;
  f->req = FWD_REQ_DONE;
  if (!f->up || !f->chunked_up || f->bad_head) return;
  struct strbuf sb;
  strbuf_init(&sb, f->w->cfg->max_header_bytes);
  strbuf_puts(&sb, "0\r\n");
  for (size_t i = 0; i < n; i++) {
    if (fwd_is_hop_by_hop(trailers[i].name, trailers[i].name_len) ||
        name_is(trailers[i].name, trailers[i].name_len, "content-length"))
      continue;
    strbuf_append(&sb, trailers[i].name, trailers[i].name_len);
    strbuf_puts(&sb, ": ");
    strbuf_append(&sb, trailers[i].value, trailers[i].value_len);
    strbuf_puts(&sb, "\r\n");
  }
  strbuf_puts(&sb, "\r\n");
  if (sb.overflow) {
    strbuf_dispose(&sb);
    strbuf_init(&sb, 8);
    strbuf_puts(&sb, "0\r\n\r\n");
  }
  xport_write_copy(&f->up->x, strbuf_str(&sb), sb.len);
  strbuf_dispose(&sb);
}

void fwd_resume(struct fwd *f) {
  if (f->up && f->resp == FWD_R_BODY) xport_read_start(&f->up->x);
}

void fwd_cancel(struct fwd *f) {
  if (!f->error) {
    f->error = "client_gone";
    f->detail = "the client went away";
  }
  finish(f, 0);
}

/* ---- the response ---- */

static void on_resp_body(void *arg, const char *data, size_t len) {
  struct fwd *f = arg;
  f->bytes_down += len;
  f->ops->body(f->fe, data, len);
}

/* Adds our Via to a response's fields (the origin's Via fields stay, ours follows). */
static size_t add_via(struct fwd *f, struct fwd_field *out, size_t n, char *buf, size_t cap) {
  int len = snprintf(buf, cap, "1.%d %s", f->rp.http_minor, f->w->cfg->via_name);
  if (n < FWD_RESP_MAX_FIELDS + 1) out[n++] = (struct fwd_field){"via", 3, buf, (size_t)len};
  return n;
}

/* The response is complete: can the connection carry another exchange? */
static void complete(struct fwd *f) {
  struct fwd_field tr[FWD_RESP_MAX_FIELDS];
  size_t n = fwd_resp_fields(&f->rp, tr, FWD_RESP_END_TO_END); /* the trailers (FWD-10) */
  int keep = f->rp.keep_alive && f->req == FWD_REQ_DONE && !f->failed;
  f->resp = FWD_R_DONE;
  f->ops->end(f->fe, tr, n, f->req == FWD_REQ_DONE);
  if (f->up) xport_set_timer(&f->up->x, 0);
  finish(f, keep);
}

/* The final head goes to the client. Returns 0, or -1 when |f| is gone. */
static int pass_head(struct fwd *f) {
  struct fwd_field fl[FWD_RESP_MAX_FIELDS + 2];
  char via[96], clen[24];
  size_t n = fwd_resp_fields(&f->rp, fl, FWD_RESP_END_TO_END);
  n = add_via(f, fl, n, via, sizeof(via));
  if ((f->is_head || f->rp.status == 304) && f->rp.has_length) {
    /* HEAD and 304 keep the length the origin announced (RFC 9110 §8.6). */
    int l = snprintf(clen, sizeof(clen), "%llu", (unsigned long long)f->rp.content_length);
    fl[n++] = (struct fwd_field){"content-length", 14, clen, (size_t)l};
  }
  f->final_status = f->rp.status;
  f->head_sent = 1;
  f->resp = FWD_R_BODY;
  strbuf_dispose(&f->head); /* no retry from here on */
  if (f->ops->head(f->fe, f->rp.status, fl, n, f->rp.body, f->rp.length) != 0) {
    f->error = "client_gone";
    f->detail = "the client went away";
    finish(f, 0);
    return -1;
  }
  arm_timer(f);
  return 0;
}

/* The origin's 101 to an upgrade request (FWD-14): the front end relays it and the exchange
 * becomes a tunnel on the origin's connection; |rest| (taken, may be NULL) holds the origin's
 * bytes after the 101. |f| is gone afterwards. */
static void upgrade(struct fwd *f, struct buf_chunk *rest) {
  struct worker *w = f->w;
  struct fwd_field fl[FWD_RESP_MAX_FIELDS + 2];
  char via[96];
  size_t n = fwd_resp_fields(&f->rp, fl, FWD_RESP_UPGRADED);
  n = add_via(f, fl, n, via, sizeof(via));
  f->final_status = 101;
  f->head_sent = 1;
  f->resp = FWD_R_DONE;
  struct bufq early;
  bufq_init(&early);
  struct tun_ep *a = f->ops->upgraded(f->fe, fl, n, &early);
  if (!a) {
    buf_put(&w->pool, rest);
    f->error = "client_gone";
    f->detail = "the client went away";
    finish(f, 0);
    return;
  }
  char proto[16];
  size_t plen = 0;
  for (size_t i = 0; i < n; i++)
    if (fl[i].name_len == 7 && strncasecmp(fl[i].name, "upgrade", 7) == 0) plen = fl[i].value_len < 15 ? fl[i].value_len : 15;
  for (size_t i = 0; i < n && plen; i++)
    if (fl[i].name_len == 7 && strncasecmp(fl[i].name, "upgrade", 7) == 0) {
      memcpy(proto, fl[i].value, plen);
      break;
    }
  proto[plen] = '\0';
  struct tun_info info = {.proto = strcasecmp(proto, "websocket") == 0 ? TUN_PROTO_WEBSOCKET : TUN_PROTO_CONNECT,
                          .front = px_front_name(f->front),
                          .front_id = (enum metrics_front)f->front,
                          .status = 101,
                          .start_ms = f->start_ms,
                          .rule = f->rule,
                          .cfg = f->cfg, /* tunnel_new takes its own reference */
                          .ticket = f->ticket,
                          .user = f->user[0] ? f->user : NULL};
  f->ticket = NULL; /* the tunnel's now */
  /* What a reload re-checks (proxy/recheck.h); the origin's address is not kept: not re-checked. */
  info.client_addr = f->client_addr;
  info.peer_addr.ss_family = AF_UNSPEC;
  info.asked = f->dest;
  info.keep_on_reload = f->keep_on_reload;
  info.cert_user = f->cert_user;
  snprintf(info.client, sizeof(info.client), "%s", f->client);
  snprintf(info.target, sizeof(info.target), "%s", f->target);
  snprintf(info.resolved, sizeof(info.resolved), "%s", f->peer);
  xport_set_timer(&f->up->x, 0);
  struct tun_ep *b = fwd_up_tunnel(f->up);
  f->up = NULL; /* the tunnel's now */
  log_debug("forward %s: %s %s: upgraded to %s", f->client, f->method, f->target, proto);
  struct tunnel *t = tunnel_new(w, a, b, &info);
  /* Client bytes that came after the request head go first, then the origin's after the 101. */
  struct buf_chunk *c;
  while ((c = bufq_pop(&early)) != NULL) tunnel_on_read(a, c);
  if (rest && rest->len > 0)
    tunnel_on_read(b, rest);
  else
    buf_put(&w->pool, rest);
  tunnel_start(t, NULL);
  finish(f, 0);
}

/* Feeds |chunk| (taken) to the response parser and acts on each event. Returns 0, or -1 when
 * |f| is gone. */
static int feed(struct fwd *f, struct buf_chunk *chunk) {
  struct worker *w = f->w;
  const char *data = buf_rd(chunk);
  size_t len = chunk->len, off = 0;
  for (;;) {
    size_t used = 0;
    enum fwd_resp_ev ev = fwd_resp_feed(&f->rp, data + off, len - off, &used);
    off += used;
    switch (ev) {
    case FWD_RESP_MORE:
      buf_put(&w->pool, chunk);
      return 0;
    case FWD_RESP_INTERIM: {
      struct fwd_field fl[FWD_RESP_MAX_FIELDS];
      size_t n = fwd_resp_fields(&f->rp, fl, FWD_RESP_END_TO_END);
      f->ops->interim(f->fe, f->rp.status, fl, n);
      continue;
    }
    case FWD_RESP_HEAD:
      if (pass_head(f) != 0) {
        buf_put(&w->pool, chunk);
        return -1;
      }
      continue;
    case FWD_RESP_UPGRADE:
      chunk->off += (uint32_t)off;
      chunk->len -= (uint32_t)off;
      upgrade(f, chunk);
      return -1;
    case FWD_RESP_END:
      buf_put(&w->pool, chunk);
      /* Bytes after a complete response belong to no request: the connection is not reused. */
      if (!f->rp.keep_alive) f->failed = 1;
      complete(f);
      return -1;
    case FWD_RESP_ERROR:
      buf_put(&w->pool, chunk);
      f->failed = 1;
      log_info("forward %s: %s %s: %s", f->client, f->method, f->target, f->rp.error);
      fail(f, f->rp.err, f->rp.error);
      return -1;
    }
  }
}

/* The connection failed before any byte of the response: once, an idempotent request without a
 * body is sent again on a new connection (FWD-13). Returns 1 if a retry began. */
static void on_retry_up(void *arg, struct fwd_up *up, enum pxerr err, const char *detail);
static int check_addr(void *arg, const struct sockaddr *sa, const char **why) {
  const struct fwd *f = arg;
  return policy_check_addr(f->w->cfg->policy, sa, why);
}

static int maybe_retry(struct fwd *f) {
  if (!f->reused || !f->retry_ok || f->got_bytes || f->head_sent || !f->head.len) return 0;
  f->retry_ok = 0;
  fwd_up_close(f->up, 1);
  f->up = NULL;
  METRIC_ADD(&f->w->metrics, fwd_retries, 1);
  log_debug("forward %s: %s %s: reused connection failed, retrying on a new one", f->client, f->method, f->target);
  f->get = fwd_pool_get(f->w, &f->dest, f->tls, check_addr, f, on_retry_up, f);
  return 1;
}

static void on_retry_up(void *arg, struct fwd_up *up, enum pxerr err, const char *detail) {
  struct fwd *f = arg;
  f->get = NULL;
  if (!up) {
    fail(f, err, detail);
    return;
  }
  f->up = up;
  f->reused = up->reused > 0;
  snprintf(f->peer, sizeof(f->peer), "%s", up->peer);
  fwd_up_own(up, &up_ops, f);
  send_head(f);
}

/* ---- upstream upcalls ---- */

static void up_on_read(void *owner, struct buf_chunk *chunk) {
  struct fwd *f = owner;
  struct worker *w = f->w;
  f->got_bytes = 1;
  if (feed(f, chunk) != 0) return;
  if (f->resp == FWD_R_BODY) {
    arm_timer(f);
    if (f->ops->queued(f->fe) > w->cfg->high_water) xport_read_stop(&f->up->x);
  }
}

static void up_on_eof(void *owner) {
  struct fwd *f = owner;
  if (maybe_retry(f)) return;
  for (;;) {
    enum fwd_resp_ev ev = fwd_resp_finish(&f->rp);
    switch (ev) {
    case FWD_RESP_HEAD:
      if (pass_head(f) != 0) return;
      continue;
    case FWD_RESP_END:
      f->failed = 1; /* the connection is closing: never reused */
      complete(f);
      return;
    case FWD_RESP_INTERIM: /* a 1xx cut short: nothing final follows */
    case FWD_RESP_UPGRADE:
    case FWD_RESP_MORE:
    case FWD_RESP_ERROR:
      break;
    }
    f->failed = 1;
    fail(f, f->rp.state == FWD_RESP_S_FAILED ? f->rp.err : PXERR_RESP_INCOMPLETE,
         f->rp.state == FWD_RESP_S_FAILED ? f->rp.error : "the origin closed the connection inside the response");
    return;
  }
}

static void up_on_error(void *owner, int err) {
  struct fwd *f = owner;
  if (maybe_retry(f)) return;
  fail(f, PXERR_RESP_INCOMPLETE, f->head_sent ? "the origin connection failed during the body"
                                              : "the origin connection failed before a response");
}

static void up_on_drain(void *owner) {
  struct fwd *f = owner;
  if (f->req == FWD_REQ_BODY) f->ops->req_drain(f->fe);
}

static void up_on_timeout(void *owner) {
  struct fwd *f = owner;
  if (f->bad_head)
    fail_before_head(f, PXERR_HEAD_TOO_LARGE, "request head too large for the origin");
  else if (f->resp == FWD_R_HEAD)
    fail(f, PXERR_RESP_TIMEOUT, "no response head from the origin within --fwd-response-timeout");
  else
    fail_after_head(f, "no body byte within --fwd-body-timeout");
}

static const struct fwd_up_ops up_ops = {
    .on_read = up_on_read,
    .on_eof = up_on_eof,
    .on_error = up_on_error,
    .on_drain = up_on_drain,
    .on_timeout = up_on_timeout,
};

/* ---- start ---- */

static void set_text(char *dst, size_t cap, const char *src, size_t len) {
  size_t n = len < cap - 1 ? len : cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

struct fwd *fwd_start(struct fwd_up *up, struct px_request *rq, const struct fwd_req *req,
                      const struct fwd_front_ops *ops, void *fe) {
  struct worker *w = rq->w;
  struct fwd *f = xcalloc(1, sizeof(*f));
  f->w = w;
  f->up = up;
  f->ops = ops;
  f->fe = fe;
  f->req = req->length != 0 ? FWD_REQ_BODY : FWD_REQ_DONE;
  f->resp = FWD_R_HEAD;
  f->is_head = strcmp(req->method, "HEAD") == 0;
  static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"};
  for (size_t i = 0; i < ARRAY_SIZE(idem); i++)
    if (strcmp(req->method, idem[i]) == 0) f->retry_ok = req->length == 0;
  f->reused = up->reused > 0;
  f->upgrade = req->upgrade;
  if (f->upgrade) {
    /* The tunnel it may become holds the request's limits, as any tunnel does. */
    f->ticket = rq->ticket;
    rq->ticket = NULL;
  }
  f->cfg = config_ref(rq->cfg); /* a reload may come before the log line or the upgrade */
  f->client_addr = rq->client_addr;
  f->keep_on_reload = rq->out.rule && rq->out.rule->keep_on_reload;
  f->cert_user = rq->out.user && rq->auth.cert_user[0] && strcmp(rq->out.user, rq->auth.cert_user) == 0;
  f->rule = rq->out.rule ? rq->out.rule->name : NULL;
  f->dest = rq->dest;
  f->tls = req->https;
  f->front = rq->front;
  f->start_ms = rq->start_ms;
  set_text(f->client, sizeof(f->client), rq->client, strlen(rq->client));
  set_text(f->target, sizeof(f->target), rq->target, strlen(rq->target));
  set_text(f->method, sizeof(f->method), req->method, strlen(req->method));
  set_text(f->scheme, sizeof(f->scheme), req->https ? "https" : "http", req->https ? 5 : 4);
  size_t plen = strlen(req->path);
  if (!w->cfg->log_query) plen = strcspn(req->path, "?");
  set_text(f->path, sizeof(f->path), req->path, plen);
  if (rq->out.user) set_text(f->user, sizeof(f->user), rq->out.user, strlen(rq->out.user));
  set_text(f->peer, sizeof(f->peer), up->peer, strlen(up->peer));
  strbuf_init(&f->head, w->cfg->max_header_bytes + 4096);
  fwd_resp_init(&f->rp, w->cfg->max_header_bytes, f->is_head, f->upgrade, on_resp_body, f);
  fwd_up_own(up, &up_ops, f);
  if (build_head(f, rq, req) != 0) {
    /* Reported from the loop, like every other outcome: arm a zero-time timer. */
    f->bad_head = 1;
    f->retry_ok = 0;
    xport_set_timer(&up->x, 1);
    return f;
  }
  send_head(f);
  return f;
}
