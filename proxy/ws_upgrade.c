/* Backend WebSocket handshake: check the client's fields and build the Upgrade request -> dial ->
 * write it -> parse the response head (ws_resp) -> a 101 with Upgrade, Connection and the right
 * Sec-WebSocket-Accept hands the connection over; another status is passed back to the client;
 * anything else is a 502 (http_upgrade_failed). A request that cannot be built is refused with
 * 400 or 431 before any dial. */
#include "proxy/ws_upgrade.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/buf.h"
#include "src/log.h"
#include "src/strbuf.h"
#include "src/worker.h"
#include "proxy/ws_resp.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_Static_assert(sizeof(((struct ws_upgrade_result *)0)->protocol) == WS_RESP_PROTOCOL_MAX + 1, "sizes");
_Static_assert(sizeof(((struct ws_upgrade_result *)0)->extensions) == WS_RESP_EXTENSIONS_MAX + 1, "sizes");

/* The life of an upgrade. Transitions:
 *   start:      request built -> DIALING (timer running); request refused -> REFUSED (deferred)
 *   DIALING:    dialed -> HANDSHAKE (request written); dial failed or deadline -> DONE
 *   HANDSHAKE:  response judged, backend closed or deadline -> DONE
 *   REFUSED:    the deferred callback runs -> DONE
 *   any but DONE: ws_upgrade_cancel -> DONE (no callback)
 * The callback runs exactly once, on the way into DONE, unless cancelled. */
enum ws_state {
  WS_DIALING,   /* |ep| is a dial in progress */
  WS_HANDSHAKE, /* |ep| is connected; the request is written, the response head is being read */
  WS_REFUSED,   /* the client's fields made no valid request; the callback is deferred */
  WS_DONE,      /* the callback ran or the upgrade was cancelled; the timer is closing */
};

struct ws_upgrade {
  struct worker *w;          /* borrowed */
  struct tcp_ep *ep;         /* owned until handed over: the backend connection (or dial) */
  uv_timer_t timer;          /* handshake deadline; its close callback frees the struct */
  struct worker_defer defer; /* REFUSED: runs the callback from the loop */
  enum ws_state state;
  ws_upgrade_cb cb;
  void *arg;
  struct strbuf request;     /* owned: the serialized request */
  enum pxerr refused;        /* REFUSED: the error and its static reason */
  const char *refused_why;
  char accept_expected[32];
  struct ws_resp resp;       /* the response head parser */
  struct ws_upgrade_result res;
};

void ws_accept_for_key(const char *key, char *out) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  char buf[128];
  int n = snprintf(buf, sizeof(buf), "%s" WS_GUID, key);
  CHECK(n > 0 && (size_t)n < sizeof(buf)); /* keys are ours: 24 base64 characters */
  EVP_Digest(buf, (size_t)n, digest, NULL, EVP_sha1(), NULL);
  EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}

/* ---- the request (pure) ---- */

static int is_hex(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* origin-form (RFC 9112 §3.2.1): "/" path ["?" query] with RFC 3986 characters only, so no
 * '#', no whitespace, no control byte and no stray '%' reaches the backend's request line. */
static int is_origin_form(const char *s) {
  if (s[0] != '/') return 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned char c = *p;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) continue;
    if (c == '%') {
      if (!is_hex(p[1]) || !is_hex(p[2])) return 0;
      p += 2;
      continue;
    }
    if (c == '\0' || !strchr("-._~!$&'()*+,;=:@/?", c)) return 0;
  }
  return 1;
}

/* A field value we may copy into the request: no control byte but HTAB (so no CR, LF, NUL). */
static int is_field_value(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return 0;
  }
  return 1;
}

/* RFC 6455 §4.1 / §11.3.5: version = 1*3DIGIT in 0..255 without leading zeros. */
static int is_ws_version(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 3 || (n > 1 && s[0] == '0')) return 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
  }
  return atoi(s) <= 255;
}

enum pxerr ws_upgrade_build_request(const struct ws_upgrade_req *req, const char *key, size_t max,
                                    struct strbuf *out, const char **why) {
  const char *version = req->version ? req->version : "13";
  strbuf_init(out, max);
  if (!req->path || !is_origin_form(req->path)) {
    *why = "WebSocket :path is not origin-form";
    return PXERR_BAD_REQUEST;
  }
  if (!req->host || !req->host[0] || !is_field_value(req->host)) {
    *why = "bad WebSocket :authority";
    return PXERR_BAD_REQUEST;
  }
  if (!is_ws_version(version)) {
    *why = "bad Sec-WebSocket-Version (want digits, 0..255)";
    return PXERR_BAD_REQUEST;
  }
  const struct {
    const char *name, *value, *bad;
  } opt[] = {
      {"Sec-WebSocket-Protocol", req->protocol, "bad Sec-WebSocket-Protocol"},
      {"Sec-WebSocket-Extensions", req->extensions, "bad Sec-WebSocket-Extensions"},
      {"Origin", req->origin, "bad Origin"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(opt); i++) {
    if (opt[i].value && !is_field_value(opt[i].value)) {
      *why = opt[i].bad;
      return PXERR_BAD_REQUEST;
    }
  }
  strbuf_printf(out,
                "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n",
                req->path, req->host, key, version);
  for (size_t i = 0; i < ARRAY_SIZE(opt); i++) {
    if (opt[i].value) strbuf_printf(out, "%s: %s\r\n", opt[i].name, opt[i].value);
  }
  strbuf_puts(out, "\r\n");
  if (out->overflow) {
    strbuf_dispose(out);
    *why = "WebSocket backend request larger than --max-header-bytes";
    return PXERR_HEAD_TOO_LARGE;
  }
  return PXERR_NONE;
}

/* ---- the handshake ---- */

static void on_timer_closed(uv_handle_t *h) {
  struct ws_upgrade *u = h->data;
  strbuf_dispose(&u->request);
  free(u);
}

/* Lets go of the backend: a dial is cancelled, a connection reset. */
static void drop_ep(struct ws_upgrade *u, enum ws_state was) {
  if (!u->ep) return;
  if (was == WS_DIALING) {
    tcp_ep_cancel(u->ep);
  } else {
    struct tun_ep *e = tcp_ep_tun(u->ep);
    tcp_ep_set_pre_reader(u->ep, NULL, NULL);
    e->aborted = 1;
    e->ops->abort(e);
    e->ops->close(e);
  }
  u->ep = NULL;
}

/* Moves to DONE: stops everything, then runs the callback. |ep| is handed over only on a 101. */
static void finish(struct ws_upgrade *u, enum pxerr err, const char *detail, struct buf_chunk *leftover) {
  enum ws_state was = u->state;
  if (was == WS_DONE) {
    buf_put(&u->w->pool, leftover);
    return;
  }
  u->state = WS_DONE;
  worker_defer_cancel(&u->defer);
  uv_close((uv_handle_t *)&u->timer, on_timer_closed);
  struct tcp_ep *ep = NULL;
  if (err == PXERR_NONE && u->res.status == 101) {
    ep = u->ep;
    u->ep = NULL;
    tcp_ep_set_pre_reader(ep, NULL, NULL);
    tcp_ep_tun(ep)->ops->read_stop(tcp_ep_tun(ep));
  } else {
    buf_put(&u->w->pool, leftover);
    leftover = NULL;
    drop_ep(u, was);
  }
  u->cb(u->arg, ep, &u->res, leftover, err, detail);
}

/* The backend's final head is in |u->resp|: a 101 must be a real WebSocket upgrade (XC-07);
 * another status is relayed; |rest| (taken) is what followed a 101 head (XC-09). */
static void judge(struct ws_upgrade *u, struct buf_chunk *rest) {
  const struct ws_resp *r = &u->resp;
  u->res.status = r->status;
  if (r->status != 101) {
    buf_put(&u->w->pool, rest);
    finish(u, PXERR_NONE, "backend refused the upgrade", NULL);
    return;
  }
  const char *bad = NULL;
  if (!r->upgrade_websocket) bad = "backend 101 without Upgrade: websocket";
  else if (!r->connection_upgrade) bad = "backend 101 without Connection: upgrade";
  else if (strcmp(r->accept, u->accept_expected) != 0) bad = "backend sent a wrong Sec-WebSocket-Accept";
  if (bad) {
    buf_put(&u->w->pool, rest);
    u->res.status = 0;
    finish(u, PXERR_UPGRADE_FAILED, bad, NULL);
    return;
  }
  memcpy(u->res.protocol, r->protocol, sizeof(u->res.protocol));
  memcpy(u->res.extensions, r->extensions, sizeof(u->res.extensions));
  if (rest && rest->len == 0) {
    buf_put(&u->w->pool, rest);
    rest = NULL;
  }
  finish(u, PXERR_NONE, NULL, rest);
}

static void on_backend_read(void *arg, struct buf_chunk *c, int err) {
  struct ws_upgrade *u = arg;
  size_t used = 0;
  if (!c) {
    finish(u, PXERR_UPGRADE_FAILED, "backend closed before answering the upgrade", NULL);
    return;
  }
  switch (ws_resp_feed(&u->resp, buf_rd(c), c->len, &used)) {
  case WS_RESP_MORE:
    buf_put(&u->w->pool, c);
    return;
  case WS_RESP_DONE:
    c->off += (uint32_t)used;
    c->len -= (uint32_t)used;
    judge(u, c);
    return;
  case WS_RESP_ERROR:
    break;
  }
  buf_put(&u->w->pool, c);
  log_info("ws backend: bad upgrade response: %s", u->resp.error);
  finish(u, PXERR_UPGRADE_FAILED, "backend did not upgrade", NULL);
}

static void on_dial(void *arg, struct tcp_ep *ep, enum pxerr err, const char *detail) {
  struct ws_upgrade *u = arg;
  if (err != PXERR_NONE) {
    u->ep = NULL;
    finish(u, err, detail, NULL);
    return;
  }
  u->ep = ep;
  u->state = WS_HANDSHAKE;
  struct tun_ep *e = tcp_ep_tun(ep);
  tcp_ep_set_pre_reader(ep, on_backend_read, u);
  /* The request is at most --max-header-bytes: it may take more than one chunk. */
  for (size_t off = 0; off < u->request.len;) {
    struct buf_chunk *c = buf_get(&u->w->pool);
    size_t n = MIN(u->request.len - off, (size_t)c->cap);
    memcpy(c->data, u->request.p + off, n);
    c->len = (uint32_t)n;
    off += n;
    e->ops->write(e, c);
  }
  e->ops->read_start(e);
}

static void on_timeout(uv_timer_t *h) {
  finish(h->data, PXERR_CONN_TIMEOUT, "backend did not answer the upgrade in time", NULL);
}

static void on_refused(struct worker_defer *d) {
  struct ws_upgrade *u = container_of(d, struct ws_upgrade, defer);
  finish(u, u->refused, u->refused_why, NULL);
}

struct ws_upgrade *ws_upgrade_start(struct worker *w, const struct authority *backend,
                                    const struct tcp_dial_opts *opts, const struct ws_upgrade_req *req,
                                    ws_upgrade_cb cb, void *arg) {
  struct ws_upgrade *u = xcalloc(1, sizeof(*u));
  u->w = w;
  u->cb = cb;
  u->arg = arg;
  u->defer.cb = on_refused;
  ws_resp_init(&u->resp, w->cfg->max_header_bytes);
  unsigned char nonce[16];
  CHECK(RAND_bytes(nonce, sizeof(nonce)) == 1);
  char key[32];
  EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce));
  ws_accept_for_key(key, u->accept_expected);
  uv_timer_init(&w->loop, &u->timer);
  u->timer.data = u;
  /* The request is built (and the client's fields checked) before anything is dialed: a refusal
   * costs no connection and answers before the target policy would run. */
  const char *why = NULL;
  enum pxerr err = ws_upgrade_build_request(req, key, w->cfg->max_header_bytes, &u->request, &why);
  if (err != PXERR_NONE) {
    log_info("ws upgrade refused before dialing: %s", why);
    u->state = WS_REFUSED;
    u->refused = err;
    u->refused_why = why;
    worker_defer(w, &u->defer);
    return u;
  }
  u->state = WS_DIALING;
  uv_timer_start(&u->timer, on_timeout, w->cfg->connect_timeout_ms + w->cfg->header_timeout_ms, 0);
  u->ep = tcp_ep_dial2(w, backend, opts, on_dial, u);
  return u;
}

void ws_upgrade_cancel(struct ws_upgrade *u) {
  enum ws_state was = u->state;
  if (was == WS_DONE) return;
  u->state = WS_DONE;
  worker_defer_cancel(&u->defer);
  drop_ep(u, was);
  uv_close((uv_handle_t *)&u->timer, on_timer_closed);
}
