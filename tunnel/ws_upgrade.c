/* Backend WebSocket handshake: dial -> write the Upgrade request -> parse the response head with
 * llhttp -> 101 with the right Sec-WebSocket-Accept hands the connection over; another status is
 * passed back to the client; anything else is a 502 (http_upgrade_failed). */
#include "tunnel/ws_upgrade.h"

#include <llhttp.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "src/buf.h"
#include "src/log.h"
#include "src/worker.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_HEAD 16384

struct ws_upgrade {
  struct worker *w;          /* borrowed */
  struct tcp_ep *ep;         /* owned until handed over: the backend connection */
  uv_timer_t timer;          /* handshake deadline; its close callback frees the struct */
  llhttp_t parser;
  ws_upgrade_cb cb;
  void *arg;
  char *request;             /* owned: the serialized request */
  size_t request_len;
  char accept_expected[32];
  char field[32];            /* current header name (lowercased, truncated) */
  size_t field_len;
  char accept[64];
  size_t head_bytes;
  struct ws_upgrade_result res;
  int done;                  /* the callback ran or the upgrade was cancelled */
  int dialed;                /* |ep| is connected (else it is still dialing) */
};

void ws_accept_for_key(const char *key, char *out) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  char buf[128];
  int n = snprintf(buf, sizeof(buf), "%s" WS_GUID, key);
  EVP_Digest(buf, (size_t)n, digest, NULL, EVP_sha1(), NULL);
  EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}

static void on_timer_closed(uv_handle_t *h) {
  struct ws_upgrade *u = h->data;
  free(u->request);
  free(u);
}

static void drop_ep(struct ws_upgrade *u) {
  if (!u->ep) return;
  if (!u->dialed) {
    tcp_ep_cancel(u->ep);
    u->ep = NULL;
    return;
  }
  struct tun_ep *e = tcp_ep_tun(u->ep);
  tcp_ep_set_pre_reader(u->ep, NULL, NULL);
  e->aborted = 1;
  e->ops->abort(e);
  e->ops->close(e);
  u->ep = NULL;
}

/* Runs the callback once and releases the upgrade. |ep| is handed over only on success. */
static void finish(struct ws_upgrade *u, enum pxerr err, const char *detail, struct buf_chunk *leftover) {
  if (u->done) {
    buf_put(&u->w->pool, leftover);
    return;
  }
  u->done = 1;
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
    drop_ep(u);
  }
  u->cb(u->arg, ep, &u->res, leftover, err, detail);
}

static struct ws_upgrade *of(llhttp_t *p) { return container_of(p, struct ws_upgrade, parser); }

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  struct ws_upgrade *u = of(p);
  for (size_t i = 0; i < len && u->field_len < sizeof(u->field) - 1; i++)
    u->field[u->field_len++] = (char)((at[i] >= 'A' && at[i] <= 'Z') ? at[i] + 32 : at[i]);
  u->field[u->field_len] = '\0';
  return 0;
}

static void append(char *dst, size_t cap, const char *at, size_t len) {
  size_t n = strlen(dst);
  if (n + len >= cap) len = cap - n - 1;
  memcpy(dst + n, at, len);
  dst[n + len] = '\0';
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  struct ws_upgrade *u = of(p);
  if (strcmp(u->field, "sec-websocket-accept") == 0)
    append(u->accept, sizeof(u->accept), at, len);
  else if (strcmp(u->field, "sec-websocket-protocol") == 0)
    append(u->res.protocol, sizeof(u->res.protocol), at, len);
  else if (strcmp(u->field, "sec-websocket-extensions") == 0)
    append(u->res.extensions, sizeof(u->res.extensions), at, len);
  return 0;
}

static int on_header_value_complete(llhttp_t *p) {
  struct ws_upgrade *u = of(p);
  u->field_len = 0;
  u->field[0] = '\0';
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  int status = llhttp_get_status_code(p);
  of(p)->res.status = status;
  return status == 101 ? 0 : 1; /* 101: llhttp stops at the upgrade; others: no body wanted */
}

static int on_message_complete(llhttp_t *p) { return llhttp_get_status_code(p) == 101 ? 0 : HPE_PAUSED; }

static const llhttp_settings_t settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

static void on_backend_read(void *arg, struct buf_chunk *c, int err) {
  struct ws_upgrade *u = arg;
  if (!c) {
    finish(u, PXERR_UPGRADE_FAILED, "backend closed before answering the upgrade", NULL);
    return;
  }
  u->head_bytes += c->len;
  llhttp_errno_t e = llhttp_execute(&u->parser, buf_rd(c), c->len);
  if (e == HPE_OK && u->res.status == 0) {
    buf_put(&u->w->pool, c);
    if (u->head_bytes > WS_MAX_HEAD) finish(u, PXERR_UPGRADE_FAILED, "backend response head too large", NULL);
    return;
  }
  if (e == HPE_PAUSED_UPGRADE && u->res.status == 101) {
    if (strcmp(u->accept, u->accept_expected) != 0) {
      buf_put(&u->w->pool, c);
      finish(u, PXERR_UPGRADE_FAILED, "backend sent a wrong Sec-WebSocket-Accept", NULL);
      return;
    }
    size_t used = (size_t)(llhttp_get_error_pos(&u->parser) - buf_rd(c));
    c->off += (uint32_t)used;
    c->len -= (uint32_t)used;
    if (c->len == 0) {
      buf_put(&u->w->pool, c);
      c = NULL;
    }
    finish(u, PXERR_NONE, NULL, c);
    return;
  }
  buf_put(&u->w->pool, c);
  if (u->res.status >= 200 && u->res.status != 101) {
    finish(u, PXERR_NONE, "backend refused the upgrade", NULL);
    return;
  }
  log_info("ws backend: bad upgrade response (%s, status %d)", llhttp_errno_name(e), u->res.status);
  u->res.status = 0;
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
  u->dialed = 1;
  struct tun_ep *e = tcp_ep_tun(ep);
  tcp_ep_set_pre_reader(ep, on_backend_read, u);
  struct buf_chunk *c = buf_get(&u->w->pool);
  memcpy(c->data, u->request, u->request_len);
  c->len = (uint32_t)u->request_len;
  e->ops->write(e, c);
  e->ops->read_start(e);
}

static void on_timeout(uv_timer_t *h) {
  finish(h->data, PXERR_CONN_TIMEOUT, "backend did not answer the upgrade in time", NULL);
}

struct ws_upgrade *ws_upgrade_start(struct worker *w, const struct authority *backend,
                                    const struct tcp_dial_opts *opts, const struct ws_upgrade_req *req,
                                    ws_upgrade_cb cb, void *arg) {
  struct ws_upgrade *u = xcalloc(1, sizeof(*u));
  u->w = w;
  u->cb = cb;
  u->arg = arg;
  llhttp_init(&u->parser, HTTP_RESPONSE, &settings);
  unsigned char nonce[16];
  CHECK(RAND_bytes(nonce, sizeof(nonce)) == 1);
  char key[32];
  EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce));
  ws_accept_for_key(key, u->accept_expected);
  char buf[BUF_CHUNK_SIZE];
  int n = snprintf(buf, sizeof(buf),
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n",
                   req->path, req->host, key, req->version ? req->version : "13");
  if (req->protocol) n += snprintf(buf + n, sizeof(buf) - (size_t)n, "Sec-WebSocket-Protocol: %s\r\n", req->protocol);
  if (req->extensions)
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, "Sec-WebSocket-Extensions: %s\r\n", req->extensions);
  if (req->origin) n += snprintf(buf + n, sizeof(buf) - (size_t)n, "Origin: %s\r\n", req->origin);
  n += snprintf(buf + n, sizeof(buf) - (size_t)n, "\r\n");
  if (n <= 0 || (size_t)n >= sizeof(buf)) n = 0;
  u->request = xmalloc((size_t)n + 1);
  memcpy(u->request, buf, (size_t)n);
  u->request_len = (size_t)n;
  uv_timer_init(&w->loop, &u->timer);
  u->timer.data = u;
  uv_timer_start(&u->timer, on_timeout, w->cfg->connect_timeout_ms + w->cfg->header_timeout_ms, 0);
  u->ep = tcp_ep_dial2(w, backend, opts, on_dial, u);
  return u;
}

void ws_upgrade_cancel(struct ws_upgrade *u) {
  if (u->done) return;
  u->done = 1;
  drop_ep(u);
  uv_close((uv_handle_t *)&u->timer, on_timer_closed);
}
