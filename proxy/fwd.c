/* One forwarded request over an upstream HTTP/1.1 connection (see fwd.h).
 *
 * The request side and the response side move independently:
 *   req:  BODY (body bytes still to come from the client) -> DONE
 *   resp: HEAD (waiting for the final head; 1xx passed on) -> BODY -> DONE
 * The exchange ends when the response is DONE (ops->end) or fails (ops->error before the head,
 * ops->abort after it), or on fwd_cancel. The upstream connection goes back to the pool only
 * when both sides are DONE, the origin kept the connection alive, and nothing was left over.
 *
 * llhttp callbacks only record, and pause where plain code must act (a complete head, the end of
 * a message); body bytes are passed on from on_body directly (ops->body never ends the
 * exchange). */
#include "proxy/fwd.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/pool.h"
#include "proxy/request.h"
#include "src/log.h"
#include "src/net.h"
#include "src/policy.h"
#include "src/pxerr.h"
#include "src/strbuf.h"
#include "src/worker.h"

enum fwd_req_state { FWD_REQ_BODY, FWD_REQ_DONE };
enum fwd_resp_state { FWD_RESP_HEAD, FWD_RESP_BODY, FWD_RESP_DONE };

#define FWD_MAX_FIELDS 256

struct fwd {
  struct worker *w;                /* borrowed */
  struct fwd_up *up;               /* owned: BUSY with us; NULL while a retry dials */
  struct fwd_get *get;             /* a retry's new connection being opened */
  const struct fwd_front_ops *ops;
  void *fe;
  enum fwd_req_state req;
  enum fwd_resp_state resp;
  struct strbuf head;              /* owned: the request head, kept until a response byte (retry) */
  int chunked_up;                  /* the request body goes chunked */
  int is_head;                     /* HEAD: the response has no body */
  int retry_ok;                    /* idempotent, without body: may be re-sent once */
  int got_bytes;                   /* some response byte arrived on this connection */
  int head_sent;                   /* ops->head was called */
  int failed;                      /* llhttp refused the response */
  int bad_head;                    /* the request head could not be built: 431 from the loop */
  int reused;                      /* the connection served an exchange before */
  struct authority dest;
  int tls;
  llhttp_t parser;
  /* The response head being read: fields packed in |fbuf| as offsets. */
  struct strbuf fbuf;
  struct { size_t name, name_len, value, value_len; } fl[FWD_MAX_FIELDS];
  size_t nfl;
  int in_value;
  int too_big;
  int obs_fold;
  int scan_crlf;                   /* the head scanner: 0, CR 1, CRLF 2, CRLFCR 3, end 4 */
  int status;
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
static const llhttp_settings_t resp_settings;

/* ---- fields ---- */

static int name_is(const char *n, size_t len, const char *lit) {
  return strlen(lit) == len && strncasecmp(n, lit, len) == 0;
}

int fwd_is_hop_by_hop(const char *n, size_t len) {
  static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "proxy-authorization",
                                    "proxy-authenticate", "te", "transfer-encoding", "upgrade"};
  for (size_t i = 0; i < ARRAY_SIZE(hop); i++)
    if (name_is(n, len, hop[i])) return 1;
  return 0;
}

/* Is |name| one of the tokens of the comma list |v| (a Connection value)? */
static int list_has(const char *v, size_t vlen, const char *name, size_t nlen) {
  size_t i = 0;
  while (i < vlen) {
    while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    size_t s = i;
    while (i < vlen && v[i] != ',') i++;
    size_t e = i;
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
    if (e - s == nlen && strncasecmp(v + s, name, nlen) == 0) return 1;
  }
  return 0;
}

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

/* Is the field |i| of |fields| named in one of the Connection fields (RFC 9110 §7.6.1)? */
static int connection_lists(const struct fwd_field *fields, size_t n, const char *name, size_t len) {
  for (size_t i = 0; i < n; i++)
    if (name_is(fields[i].name, fields[i].name_len, "connection") &&
        list_has(fields[i].value, fields[i].value_len, name, len))
      return 1;
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
    if (fwd_is_hop_by_hop(fl->name, fl->name_len) || name_is(fl->name, fl->name_len, "host") ||
        name_is(fl->name, fl->name_len, "content-length") ||
        connection_lists(req->fields, req->nfields, fl->name, fl->name_len))
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
  log_line(f);
  if (f->get) fwd_get_cancel(f->get);
  if (f->up) {
    if (reuse)
      fwd_up_release(f->up);
    else
      fwd_up_close(f->up, 0);
  }
  strbuf_dispose(&f->head);
  strbuf_dispose(&f->fbuf);
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
  uint64_t ms = f->resp == FWD_RESP_HEAD ? cfg->fwd_response_timeout_ms : cfg->fwd_body_timeout_ms;
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
  if (f->up && f->resp == FWD_RESP_BODY) xport_read_start(&f->up->x);
}

void fwd_cancel(struct fwd *f) {
  if (!f->error) {
    f->error = "client_gone";
    f->detail = "the client went away";
  }
  finish(f, 0);
}

/* ---- the response ---- */

static struct fwd *fwd_of(llhttp_t *p) { return container_of(p, struct fwd, parser); }

static int on_message_begin(llhttp_t *p) {
  struct fwd *f = fwd_of(p);
  f->nfl = 0;
  f->in_value = 0;
  f->fbuf.len = 0;
  if (f->fbuf.p) f->fbuf.p[0] = '\0';
  return 0;
}

static int add_piece(struct fwd *f, const char *at, size_t len, int value) {
  if (!value && (f->nfl == 0 || f->in_value)) {
    /* A new field begins. */
    if (f->nfl == FWD_MAX_FIELDS) {
      f->too_big = 1;
      return -1;
    }
    f->fl[f->nfl].name = f->fbuf.len;
    f->fl[f->nfl].name_len = 0;
    f->fl[f->nfl].value = 0;
    f->fl[f->nfl].value_len = 0;
    f->nfl++;
    f->in_value = 0;
  }
  if (value && !f->in_value) {
    f->fl[f->nfl - 1].value = f->fbuf.len;
    f->in_value = 1;
  }
  if (strbuf_append(&f->fbuf, at, len) != 0) {
    f->too_big = 1;
    return -1;
  }
  if (value)
    f->fl[f->nfl - 1].value_len += len;
  else
    f->fl[f->nfl - 1].name_len += len;
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  return add_piece(fwd_of(p), at, len, 0) == 0 ? 0 : HPE_USER;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  struct fwd *f = fwd_of(p);
  if (f->nfl == 0) return HPE_USER;
  /* llhttp folds obs-fold into the value; a proxy must not pass it on (RFC 9112 §5.2): 502. */
  if (memchr(at, '\r', len) || memchr(at, '\n', len)) {
    f->obs_fold = 1;
    return HPE_USER;
  }
  return add_piece(f, at, len, 1) == 0 ? 0 : HPE_USER;
}

static int on_headers_complete(llhttp_t *p) {
  struct fwd *f = fwd_of(p);
  f->status = p->status_code;
  if (f->status >= 100 && f->status < 200) return 0; /* interim: acted on at its end */
  /* A response to HEAD has no body whatever its fields say (RFC 9110 §9.3.2): 1 tells llhttp. */
  if (f->is_head) return 1;
  return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  struct fwd *f = fwd_of(p);
  f->bytes_down += len;
  f->ops->body(f->fe, at, len);
  return 0;
}

static int on_message_complete(llhttp_t *p) { return HPE_PAUSED; }

static const llhttp_settings_t resp_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* The fields of the head (or trailers) just read, trimmed, as fwd_fields; hop-by-hop ones and
 * those Connection lists are dropped when |filter|. Returns the count. */
static size_t collect(struct fwd *f, struct fwd_field *out, int filter) {
  const char *b = strbuf_str(&f->fbuf);
  size_t n = 0;
  for (size_t i = 0; i < f->nfl; i++) {
    struct fwd_field fl = {b + f->fl[i].name, f->fl[i].name_len, b + f->fl[i].value, f->fl[i].value_len};
    while (fl.value_len > 0 && (fl.value[fl.value_len - 1] == ' ' || fl.value[fl.value_len - 1] == '\t')) fl.value_len--;
    out[n++] = fl;
  }
  if (!filter) return n;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (fwd_is_hop_by_hop(out[i].name, out[i].name_len) || name_is(out[i].name, out[i].name_len, "content-length") ||
        connection_lists(out, n, out[i].name, out[i].name_len))
      continue;
    out[k++] = out[i];
  }
  return k;
}

/* Adds our Via to a response's fields (the origin's Via fields stay, ours follows). */
static size_t add_via(struct fwd *f, struct fwd_field *out, size_t n, char *buf, size_t cap) {
  int len = snprintf(buf, cap, "1.%d %s", f->parser.http_minor, f->w->cfg->via_name);
  if (n < FWD_MAX_FIELDS + 1) out[n++] = (struct fwd_field){"via", 3, buf, (size_t)len};
  return n;
}

/* The response is complete: can the connection carry another exchange? */
static void complete(struct fwd *f) {
  struct fwd_field tr[FWD_MAX_FIELDS];
  size_t n = 0;
  /* Fields read after the head are the trailers (FWD-10). */
  if (f->head_sent && f->nfl) n = collect(f, tr, 1);
  int keep = llhttp_should_keep_alive(&f->parser) && f->req == FWD_REQ_DONE && !f->failed;
  f->resp = FWD_RESP_DONE;
  f->ops->end(f->fe, tr, n, f->req == FWD_REQ_DONE);
  if (f->up) xport_set_timer(&f->up->x, 0);
  finish(f, keep);
}

/* Acts on where llhttp paused. Returns 0 to go on reading, -1 when |f| is gone. */
static int on_pause(struct fwd *f) {
  if (f->resp == FWD_RESP_HEAD && f->status >= 100 && f->status < 200) {
    if (f->status == 101) {
      fail(f, PXERR_RESP_INVALID, "the origin switched protocols without being asked");
      return -1;
    }
    struct fwd_field fl[FWD_MAX_FIELDS];
    size_t n = collect(f, fl, 1);
    f->ops->interim(f->fe, f->status, fl, n);
    f->scan_crlf = 0;
    return 0;
  }
  if (f->resp == FWD_RESP_HEAD) {
    /* The final head (paused in on_headers_complete, or, for HEAD, at the message end). */
    struct fwd_field fl[FWD_MAX_FIELDS + 1];
    char via[96];
    size_t n = collect(f, fl, 1);
    n = add_via(f, fl, n, via, sizeof(via));
    char clen[24];
    if ((f->is_head || f->status == 304) && (f->parser.flags & F_CONTENT_LENGTH) && n < FWD_MAX_FIELDS + 1) {
      /* HEAD and 304 keep the length the origin announced (RFC 9110 §8.6). */
      int l = snprintf(clen, sizeof(clen), "%llu", (unsigned long long)f->parser.content_length);
      fl[n++] = (struct fwd_field){"content-length", 14, clen, (size_t)l};
    }
    int body = !f->is_head && f->status != 204 && f->status != 304;
    int64_t length = -1;
    if (body && (f->parser.flags & F_CONTENT_LENGTH) && !(f->parser.flags & F_CHUNKED))
      length = (int64_t)f->parser.content_length;
    f->final_status = f->status;
    f->head_sent = 1;
    f->resp = FWD_RESP_BODY;
    strbuf_dispose(&f->head); /* no retry from here on */
    if (f->ops->head(f->fe, f->status, fl, n, body, length) != 0) {
      f->error = "client_gone";
      f->detail = "the client went away";
      finish(f, 0);
      return -1;
    }
    f->nfl = 0; /* what comes next are trailers */
    f->fbuf.len = 0;
    arm_timer(f);
    if (llhttp_get_errno(&f->parser) == HPE_PAUSED && f->is_head) {
      complete(f);
      return -1;
    }
    return 0;
  }
  complete(f);
  return -1;
}

/* Feeds |len| bytes to llhttp. Returns 0, or -1 when |f| is gone. */
static int feed(struct fwd *f, const char *data, size_t len) {
  size_t off = 0;
  for (;;) {
    /* After a pause at the very end of |data| llhttp still runs with no bytes: a message
     * without a body (204, 304) completes without another byte. */
    llhttp_errno_t e = llhttp_execute(&f->parser, data + off, len - off);
    if (e == HPE_OK) return 0;
    if (e == HPE_PAUSED) {
      const char *at = llhttp_get_error_pos(&f->parser);
      off = at ? (size_t)(at - data) : len;
      /* Bytes after a complete response belong to no request: the connection is not reused. */
      if (off < len && f->resp == FWD_RESP_BODY) f->failed = 1;
      if (on_pause(f) != 0) return -1;
      llhttp_resume(&f->parser);
      continue;
    }
    f->failed = 1;
    const char *why = f->too_big    ? "the origin's response head is too large"
                      : f->obs_fold ? "obs-fold (line folding) in a field"
                                    : llhttp_get_error_reason(&f->parser);
    snprintf(f->detail_buf, sizeof(f->detail_buf), "invalid response from the origin: %s", why ? why : "?");
    log_info("forward %s: %s %s: %s", f->client, f->method, f->target, f->detail_buf);
    fail(f, PXERR_RESP_INVALID, f->detail_buf);
    return -1;
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

/* llhttp 8.1 takes obs-fold in a response head and hands the folded value on; a proxy must
 * not pass it on (RFC 9112 §5.2), so a line scanner looks at the head first: 1 when a line of
 * it starts with whitespace. */
static int head_has_fold(struct fwd *f, const char *d, size_t n) {
  for (size_t i = 0; i < n && f->scan_crlf < 4; i++) {
    char ch = d[i];
    if (f->scan_crlf == 2 && (ch == ' ' || ch == '\t')) return 1;
    if (ch == '\r')
      f->scan_crlf = f->scan_crlf == 2 ? 3 : 1;
    else if (ch == '\n')
      f->scan_crlf = f->scan_crlf == 3 ? 4 : 2;
    else
      f->scan_crlf = 0;
  }
  return 0;
}

static void up_on_read(void *owner, struct buf_chunk *chunk) {
  struct fwd *f = owner;
  struct worker *w = f->w;
  f->got_bytes = 1;
  if (f->resp == FWD_RESP_HEAD && head_has_fold(f, buf_rd(chunk), chunk->len)) {
    buf_put(&w->pool, chunk);
    f->failed = 1;
    fail(f, PXERR_RESP_INVALID, "invalid response from the origin: obs-fold (line folding) in a field");
    return;
  }
  int r = feed(f, buf_rd(chunk), chunk->len);
  buf_put(&w->pool, chunk);
  if (r != 0) return;
  if (f->resp == FWD_RESP_BODY) {
    arm_timer(f);
    if (f->ops->queued(f->fe) > w->cfg->high_water) xport_read_stop(&f->up->x);
  }
}

static void up_on_eof(void *owner) {
  struct fwd *f = owner;
  if (maybe_retry(f)) return;
  /* A close-delimited body ends here (FWD-08); anything else is cut short. */
  llhttp_errno_t e = llhttp_finish(&f->parser);
  if (e == HPE_PAUSED) {
    if (f->resp == FWD_RESP_BODY || f->resp == FWD_RESP_HEAD) {
      f->failed = 1; /* the connection is closing: never reused */
      on_pause(f);
    }
    return;
  }
  if (e == HPE_OK && f->resp == FWD_RESP_HEAD && !f->got_bytes) {
    fail(f, PXERR_RESP_INCOMPLETE, "the origin closed the connection without a response");
    return;
  }
  fail(f, PXERR_RESP_INCOMPLETE, f->resp == FWD_RESP_HEAD ? "the origin closed the connection inside the response head"
                                                          : "the origin closed the connection before the end of the body");
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
  else if (f->resp == FWD_RESP_HEAD)
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

struct fwd *fwd_start(struct fwd_up *up, const struct px_request *rq, const struct fwd_req *req,
                      const struct fwd_front_ops *ops, void *fe) {
  struct worker *w = rq->w;
  struct fwd *f = xcalloc(1, sizeof(*f));
  f->w = w;
  f->up = up;
  f->ops = ops;
  f->fe = fe;
  f->req = req->length != 0 ? FWD_REQ_BODY : FWD_REQ_DONE;
  f->resp = FWD_RESP_HEAD;
  f->is_head = strcmp(req->method, "HEAD") == 0;
  static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"};
  for (size_t i = 0; i < ARRAY_SIZE(idem); i++)
    if (strcmp(req->method, idem[i]) == 0) f->retry_ok = req->length == 0;
  f->reused = up->reused > 0;
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
  strbuf_init(&f->fbuf, w->cfg->max_header_bytes);
  llhttp_init(&f->parser, HTTP_RESPONSE, &resp_settings);
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
