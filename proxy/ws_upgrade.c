/* Backend WebSocket handshake: check the client's fields and build the Upgrade request -> dial
 * (-> TLS) -> write it -> parse the response head (ws_resp) -> a 101 with Upgrade, Connection and
 * the right Sec-WebSocket-Accept hands the connection over; another status is passed back to the
 * client; anything else is a 502 (http_upgrade_failed). A request that cannot be built is refused
 * with 400 or 431 before any dial. */
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
#include "proxy/dialer.h"
#include "proxy/ws_resp.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_Static_assert(sizeof(((struct ws_upgrade_result *)0)->protocol) == WS_RESP_PROTOCOL_MAX + 1, "sizes");
_Static_assert(sizeof(((struct ws_upgrade_result *)0)->extensions) == WS_RESP_EXTENSIONS_MAX + 1, "sizes");

/* The life of an upgrade. Transitions:
 *   ws_upgrade_new: request built -> NEW; refused -> (nothing allocated)
 *   NEW:        ws_upgrade_start -> DIALING (timer running)
 *   DIALING:    dialed -> TLS (with TLS) or HANDSHAKE (request written); dial failed or
 *               deadline -> DONE
 *   TLS:        verified -> HANDSHAKE (request written); failed or deadline -> DONE
 *   HANDSHAKE:  response judged, backend closed or deadline -> DONE
 *   any but DONE: ws_upgrade_cancel -> DONE (no callback)
 * The callback runs exactly once, on the way into DONE, unless cancelled. */
enum ws_state {
  WS_NEW,       /* the request is built; nothing dialed */
  WS_DIALING,   /* |dialer| runs */
  WS_TLS,       /* |ep| is connected and runs the TLS client handshake */
  WS_HANDSHAKE, /* |ep| is connected; the request is written, the response head is being read */
  WS_DONE,      /* the callback ran or the upgrade was cancelled; the timer is closing */
};

struct ws_upgrade {
  struct worker *w;          /* borrowed */
  struct dialer *dialer;     /* owned while DIALING */
  struct tcp_ep *ep;         /* owned in TLS and HANDSHAKE: the backend connection */
  uv_timer_t timer;          /* handshake deadline; its close callback frees the struct */
  enum ws_state state;
  ws_upgrade_cb cb;
  void *arg;
  int tls;
  char tls_name[AUTHORITY_HOST_MAX + 1]; /* TLS: SNI and the name verified */
  uint64_t dial_deadline;    /* loop time by which the connection (TLS included) must stand */
  struct strbuf request;     /* owned: the serialized request */
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
static void drop_backend(struct ws_upgrade *u) {
  if (u->dialer) {
    dialer_cancel(u->dialer);
    u->dialer = NULL;
  }
  if (u->ep) {
    tcp_ep_cancel(u->ep);
    u->ep = NULL;
  }
}

/* Moves to DONE: stops everything, then runs the callback. |ep| is handed over only on a 101. */
static void finish(struct ws_upgrade *u, enum pxerr err, const char *detail, struct buf_chunk *leftover) {
  if (u->state == WS_DONE) {
    buf_put(&u->w->pool, leftover);
    return;
  }
  u->state = WS_DONE;
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
    drop_backend(u);
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
    finish(u, PXERR_NONE, "the WebSocket backend refused the upgrade", NULL);
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

/* The connection stands (TLS verified if asked): send the request and read the answer. */
static void send_request(struct ws_upgrade *u) {
  u->state = WS_HANDSHAKE;
  struct tun_ep *e = tcp_ep_tun(u->ep);
  tcp_ep_set_pre_reader(u->ep, on_backend_read, u);
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

static void on_tls(void *arg, struct tcp_ep *ep, enum pxerr err, const char *detail) {
  struct ws_upgrade *u = arg;
  if (err != PXERR_NONE) {
    u->ep = NULL; /* closing on its own */
    finish(u, err, detail, NULL);
    return;
  }
  send_request(u);
}

static void on_dialed(void *arg, uv_tcp_t *tcp, const struct sockaddr *peer, enum pxerr err, const char *detail) {
  struct ws_upgrade *u = arg;
  u->dialer = NULL;
  if (err != PXERR_NONE) {
    finish(u, err, detail, NULL);
    return;
  }
  u->ep = tcp_ep_new(u->w, tcp, peer);
  if (!u->tls) {
    send_request(u);
    return;
  }
  u->state = WS_TLS;
  uint64_t now = uv_now(&u->w->loop);
  tcp_ep_tls_start(u->ep, u->tls_name, u->dial_deadline > now ? u->dial_deadline - now : 0, on_tls, u);
}

static void on_timeout(uv_timer_t *h) {
  finish(h->data, PXERR_CONN_TIMEOUT, "backend did not answer the upgrade in time", NULL);
}

struct ws_upgrade *ws_upgrade_new(struct worker *w, const struct ws_upgrade_req *req, enum pxerr *err,
                                  const char **why) {
  unsigned char nonce[16];
  char key[32];
  struct strbuf request;
  CHECK(RAND_bytes(nonce, sizeof(nonce)) == 1);
  EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce));
  /* The request is built (and the client's fields checked) before anything is dialed: a refusal
   * costs no connection and answers before the target policy would run. */
  *err = ws_upgrade_build_request(req, key, w->cfg->max_header_bytes, &request, why);
  if (*err != PXERR_NONE) {
    log_info("ws upgrade refused before dialing: %s", *why);
    return NULL;
  }
  struct ws_upgrade *u = xcalloc(1, sizeof(*u));
  u->w = w;
  u->state = WS_NEW;
  u->request = request;
  ws_resp_init(&u->resp, w->cfg->max_header_bytes);
  ws_accept_for_key(key, u->accept_expected);
  uv_timer_init(&w->loop, &u->timer);
  u->timer.data = u;
  return u;
}

void ws_upgrade_start(struct ws_upgrade *u, const struct authority *backend, const struct ws_backend_opts *opts,
                      ws_upgrade_cb cb, void *arg) {
  const struct config *cfg = u->w->cfg;
  CHECK(u->state == WS_NEW);
  u->cb = cb;
  u->arg = arg;
  u->tls = opts->tls;
  snprintf(u->tls_name, sizeof(u->tls_name), "%s", opts->verify_name ? opts->verify_name : backend->host);
  u->state = WS_DIALING;
  u->dial_deadline = uv_now(&u->w->loop) + cfg->connect_timeout_ms;
  uv_timer_start(&u->timer, on_timeout, cfg->connect_timeout_ms + cfg->header_timeout_ms, 0);
  u->dialer = dialer_start(u->w, backend, opts->check, opts->check_arg, on_dialed, u);
}

void ws_upgrade_cancel(struct ws_upgrade *u) {
  if (u->state == WS_DONE) return;
  u->state = WS_DONE;
  drop_backend(u);
  uv_close((uv_handle_t *)&u->timer, on_timer_closed);
}
