/* The origin's response to a forwarded request (see fwd_resp.h).
 *
 * llhttp callbacks only record, and pause where an event is due (a complete head, the end of a
 * message); fwd_resp_feed turns each pause into one event. Body bytes go to on_body from the
 * callback itself. */
#include "proxy/fwd_resp.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "src/util.h"

static int name_is(const char *n, size_t len, const char *lit) {
  return strlen(lit) == len && strncasecmp(n, lit, len) == 0;
}

int fwd_resp_hop_by_hop(const char *n, size_t len) {
  static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "proxy-authorization",
                                    "proxy-authenticate", "te", "transfer-encoding", "upgrade"};
  for (size_t i = 0; i < ARRAY_SIZE(hop); i++)
    if (name_is(n, len, hop[i])) return 1;
  return 0;
}

int fwd_resp_list_has(const char *v, size_t vlen, const char *name, size_t nlen) {
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

int fwd_resp_connection_lists(const struct fwd_field *fields, size_t n, const char *name, size_t len) {
  for (size_t i = 0; i < n; i++)
    if (name_is(fields[i].name, fields[i].name_len, "connection") &&
        fwd_resp_list_has(fields[i].value, fields[i].value_len, name, len))
      return 1;
  return 0;
}

/* ---- llhttp callbacks ---- */

static struct fwd_resp *resp_of(llhttp_t *p) { return container_of(p, struct fwd_resp, parser); }

static int on_message_begin(llhttp_t *p) {
  struct fwd_resp *r = resp_of(p);
  r->nfl = 0;
  r->in_value = 0;
  r->value_done = 0;
  r->fbuf.len = 0;
  if (r->fbuf.p) r->fbuf.p[0] = '\0';
  return 0;
}

static int add_piece(struct fwd_resp *r, const char *at, size_t len, int value) {
  if (!value && (r->nfl == 0 || r->in_value)) {
    /* A new field begins. */
    if (r->nfl == FWD_RESP_MAX_FIELDS) {
      r->too_big = 1;
      return -1;
    }
    r->fl[r->nfl].name = r->fbuf.len;
    r->fl[r->nfl].name_len = 0;
    r->fl[r->nfl].value = 0;
    r->fl[r->nfl].value_len = 0;
    r->nfl++;
    r->in_value = 0;
  }
  if (value && !r->in_value) {
    r->fl[r->nfl - 1].value = r->fbuf.len;
    r->in_value = 1;
  }
  if (strbuf_append(&r->fbuf, at, len) != 0) {
    r->too_big = 1;
    return -1;
  }
  if (value)
    r->fl[r->nfl - 1].value_len += len;
  else
    r->fl[r->nfl - 1].name_len += len;
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  struct fwd_resp *r = resp_of(p);
  r->value_done = 0;
  return add_piece(r, at, len, 0) == 0 ? 0 : HPE_USER;
}

static int on_header_value_complete(llhttp_t *p) {
  resp_of(p)->value_done = 1; /* the next value needs a name first */
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  struct fwd_resp *r = resp_of(p);
  /* llhttp 8.1 takes a line starting with ':' as a field with an empty name; no such field may
   * be passed on (RFC 9110 §5.1: a name is a token). */
  if (r->nfl == 0 || r->value_done || (!r->in_value && r->fl[r->nfl - 1].name_len == 0)) {
    r->bad_name = 1;
    return HPE_USER;
  }
  /* llhttp folds obs-fold into the value; a proxy must not pass it on (RFC 9112 §5.2). */
  if (memchr(at, '\r', len) || memchr(at, '\n', len)) {
    r->obs_fold = 1;
    return HPE_USER;
  }
  return add_piece(r, at, len, 1) == 0 ? 0 : HPE_USER;
}

static int on_headers_complete(llhttp_t *p) {
  struct fwd_resp *r = resp_of(p);
  r->status = p->status_code;
  /* llhttp takes any one to three digits; RFC 9110 §15 defines 100..599, and a client would be
   * handed a status it cannot read (HTTP/2 refuses it). */
  if (r->status < 100 || r->status > 599) {
    r->bad_status = 1;
    return HPE_USER;
  }
  if (r->status == 101) return HPE_PAUSED; /* judged in feed: relayed or refused */
  /* Interim: reported at its end. It never has content (RFC 9110 §15.2), whatever its fields
   * say: 1 tells llhttp (which would read a body after a 1xx with Transfer-Encoding). */
  if (r->status >= 100 && r->status < 200) return 1;
  /* A response to HEAD has no body whatever its fields say (RFC 9110 §9.3.2): 1 tells llhttp. */
  if (r->is_head) return 1;
  return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  struct fwd_resp *r = resp_of(p);
  r->on_body(r->body_arg, at, len);
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  resp_of(p)->paused_at_end = 1;
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- the parser ---- */

void fwd_resp_init(struct fwd_resp *r, size_t max_head, int is_head, int upgrade_asked, fwd_resp_body_cb body_cb,
                   void *body_arg) {
  memset(r, 0, sizeof(*r));
  r->max_head = max_head;
  r->is_head = is_head;
  r->upgrade_asked = upgrade_asked;
  r->on_body = body_cb;
  r->body_arg = body_arg;
  r->length = -1;
  strbuf_init(&r->fbuf, max_head);
  llhttp_init(&r->parser, HTTP_RESPONSE, &settings);
}

void fwd_resp_dispose(struct fwd_resp *r) { strbuf_dispose(&r->fbuf); }

static enum fwd_resp_ev fail(struct fwd_resp *r, enum pxerr err, const char *why) {
  r->state = FWD_RESP_S_FAILED;
  r->err = err;
  r->error = why;
  return FWD_RESP_ERROR;
}

/* llhttp 8.1 takes obs-fold in a response head and hands the folded value on, ends a status line
 * at a bare CR and a line at a bare LF, so a line scanner looks at each head first and holds it
 * to CRLF (RFC 9112 §2.2, §5.2): two readings of where a head ends would let body bytes pass for
 * head or the reverse. Returns 1 when a line starts with whitespace, 2 at a bare CR, 3 at a bare
 * LF. */
static int head_scan(struct fwd_resp *r, const char *d, size_t n) {
  for (size_t i = 0; i < n && r->scan_crlf < 4; i++) {
    char ch = d[i];
    switch (r->scan_crlf) {
    case 1: /* CR */
    case 3: /* CRLF CR */
      if (ch != '\n') return 2;
      r->scan_crlf++;
      break;
    case 2: /* CRLF: a line begins */
      if (ch == ' ' || ch == '\t') return 1;
      /* fall through */
    default:
      if (ch == '\n') return 3;
      r->scan_crlf = ch == '\r' ? (r->scan_crlf == 2 ? 3 : 1) : 0;
      break;
    }
  }
  return 0;
}

/* After the final head, fields read are the trailers: the head's go once it was reported. */
static void clear_stale(struct fwd_resp *r) {
  if (!r->head_reported) return;
  r->head_reported = 0;
  r->nfl = 0;
  r->in_value = 0;
  r->value_done = 0;
  r->fbuf.len = 0;
  if (r->fbuf.p) r->fbuf.p[0] = '\0';
}

static enum fwd_resp_ev end(struct fwd_resp *r, int trailing) {
  r->state = FWD_RESP_S_DONE;
  r->keep_alive = llhttp_should_keep_alive(&r->parser) && !trailing;
  return FWD_RESP_END;
}

/* The final head is out: what the client is told about the body. */
static enum fwd_resp_ev final_head(struct fwd_resp *r) {
  const llhttp_t *p = &r->parser;
  r->state = FWD_RESP_S_BODY;
  r->head_reported = 1;
  r->http_minor = p->http_minor;
  r->body = !r->is_head && r->status != 204 && r->status != 304;
  r->has_length = (p->flags & F_CONTENT_LENGTH) != 0;
  r->content_length = p->content_length;
  r->length = -1;
  if (r->body && r->has_length && !(p->flags & F_CHUNKED)) r->length = (int64_t)p->content_length;
  return FWD_RESP_HEAD;
}

/* llhttp paused: the event it stands for. Fields of an END are the trailers. */
static enum fwd_resp_ev on_pause(struct fwd_resp *r, int trailing) {
  int at_end = r->paused_at_end;
  r->paused_at_end = 0;
  if (r->state == FWD_RESP_S_HEAD && r->status == 101) {
    r->http_minor = r->parser.http_minor;
    if (!r->upgrade_asked) return fail(r, PXERR_RESP_INVALID, "the origin switched protocols without being asked");
    struct fwd_field fl[FWD_RESP_MAX_FIELDS];
    size_t n = fwd_resp_fields(r, fl, FWD_RESP_ALL);
    int named = 0;
    for (size_t i = 0; i < n; i++) named |= name_is(fl[i].name, fl[i].name_len, "upgrade") && fl[i].value_len > 0;
    if (!named) return fail(r, PXERR_RESP_INVALID, "101 without an Upgrade field");
    r->state = FWD_RESP_S_DONE;
    return FWD_RESP_UPGRADE;
  }
  if (r->state == FWD_RESP_S_HEAD && r->status >= 100 && r->status < 200) {
    r->scan_crlf = 0; /* the next head is scanned afresh */
    return FWD_RESP_INTERIM;
  }
  if (r->state == FWD_RESP_S_HEAD) {
    /* Paused in on_headers_complete, or, for HEAD, at the message's end. */
    enum fwd_resp_ev ev = final_head(r);
    if (at_end) r->end_pending = 1 + trailing;
    return ev;
  }
  return end(r, trailing);
}

enum fwd_resp_ev fwd_resp_feed(struct fwd_resp *r, const char *data, size_t len, size_t *used) {
  *used = 0;
  switch (r->state) {
  case FWD_RESP_S_DONE:
    return r->status == 101 ? FWD_RESP_UPGRADE : FWD_RESP_END;
  case FWD_RESP_S_FAILED:
    return FWD_RESP_ERROR;
  default:
    break;
  }
  clear_stale(r);
  if (r->end_pending) {
    /* A body-less message ended with its head: bytes after it belong to no request. */
    int trailing = r->end_pending == 2 || len > 0;
    r->end_pending = 0;
    return end(r, trailing);
  }
  if (len > 0) r->got_bytes = 1;
  int bad = r->state == FWD_RESP_S_HEAD ? head_scan(r, data, len) : 0;
  if (bad)
    return fail(r, PXERR_RESP_INVALID, bad == 1   ? "invalid response from the origin: obs-fold (line folding) in a field"
                                       : bad == 2 ? "invalid response from the origin: a bare CR in the head"
                                                  : "invalid response from the origin: a bare LF in the head");
  /* After a pause at the very end of |data| llhttp still runs with no bytes: a message without
   * a body (204, 304) completes without another byte. */
  if (llhttp_get_errno(&r->parser) == HPE_PAUSED) llhttp_resume(&r->parser);
  llhttp_errno_t e = llhttp_execute(&r->parser, data, len);
  if (e == HPE_OK) {
    *used = len;
    return FWD_RESP_MORE;
  }
  if (e == HPE_PAUSED) {
    const char *at = llhttp_get_error_pos(&r->parser);
    *used = at ? (size_t)(at - data) : len;
    if (*used > len) *used = len;
    return on_pause(r, *used < len);
  }
  const char *why = r->too_big      ? "the origin's response head is too large"
                    : r->obs_fold   ? "obs-fold (line folding) in a field"
                    : r->bad_status ? "status code out of 100..599"
                    : r->bad_name   ? "a field with an empty name"
                                  : llhttp_get_error_reason(&r->parser);
  snprintf(r->error_buf, sizeof(r->error_buf), "invalid response from the origin: %s", why ? why : "?");
  return fail(r, PXERR_RESP_INVALID, r->error_buf);
}

enum fwd_resp_ev fwd_resp_finish(struct fwd_resp *r) {
  size_t used;
  if (r->state == FWD_RESP_S_DONE || r->state == FWD_RESP_S_FAILED || r->end_pending)
    return fwd_resp_feed(r, "", 0, &used);
  if (llhttp_get_errno(&r->parser) == HPE_PAUSED) {
    /* A head was reported from the middle of the input: what remains of it is parsed first. */
    enum fwd_resp_ev ev = fwd_resp_feed(r, "", 0, &used);
    if (ev != FWD_RESP_MORE) return ev;
  }
  clear_stale(r);
  /* A close-delimited body ends here (FWD-08); anything else is cut short. */
  llhttp_errno_t e = llhttp_finish(&r->parser);
  if (e == HPE_PAUSED) {
    enum fwd_resp_ev ev = on_pause(r, 0);
    r->keep_alive = 0; /* the connection is closing */
    return ev;
  }
  if (e == HPE_OK && r->state == FWD_RESP_S_HEAD && !r->got_bytes)
    return fail(r, PXERR_RESP_INCOMPLETE, "the origin closed the connection without a response");
  return fail(r, PXERR_RESP_INCOMPLETE, r->state == FWD_RESP_S_HEAD
                                            ? "the origin closed the connection inside the response head"
                                            : "the origin closed the connection before the end of the body");
}

size_t fwd_resp_fields(const struct fwd_resp *r, struct fwd_field *out, enum fwd_resp_filter filter) {
  const char *b = strbuf_str(&r->fbuf);
  size_t n = 0;
  for (size_t i = 0; i < r->nfl; i++) {
    struct fwd_field fl = {b + r->fl[i].name, r->fl[i].name_len, b + r->fl[i].value, r->fl[i].value_len};
    while (fl.value_len > 0 && (fl.value[fl.value_len - 1] == ' ' || fl.value[fl.value_len - 1] == '\t'))
      fl.value_len--;
    out[n++] = fl;
  }
  if (filter == FWD_RESP_ALL) return n;
  /* Judged on the whole list first: the Connection fields go too, and must still be there to
   * name the fields after them. */
  unsigned char drop[FWD_RESP_MAX_FIELDS];
  for (size_t i = 0; i < n; i++) {
    int keep_upgrade = filter == FWD_RESP_UPGRADED && name_is(out[i].name, out[i].name_len, "upgrade");
    drop[i] = !keep_upgrade &&
              (fwd_resp_hop_by_hop(out[i].name, out[i].name_len) || name_is(out[i].name, out[i].name_len, "content-length") ||
               fwd_resp_connection_lists(out, n, out[i].name, out[i].name_len));
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!drop[i]) out[k++] = out[i];
  return k;
}
