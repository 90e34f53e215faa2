/* Client connection: what is specific to an accepted connection -- the opening phases, the limits
 * on handshakes and connections, the front-end dispatch and the worker's stop -- over the
 * byte-stream transport (src/xport.c), which does the reading, TLS, writing and closing.
 *
 * Opening phases (enum conn_phase), until a front end owns the connection:
 *
 *   phase          | holds                      | on bytes
 *   ---------------+----------------------------+-----------------------------------------------
 *   PROXY_HDR      | the bytes so far (|held|)  | a ?proxy-protocol listener only. Trusted source:
 *                  |                            |   a complete v1/v2 header -> its client becomes
 *                  |                            |   the peer, PEEK with the rest; a malformed one
 *                  |                            |   or none within --proxy-protocol-timeout ->
 *                  |                            |   close (logged). Anyone else: a header's
 *                  |                            |   signature -> close (logged); anything else
 *                  |                            |   -> PEEK with every byte
 *   PEEK           | nothing                    | 0x16 (a TLS handshake record) -> TLS_HELLO, on
 *                  |                            |   any listener (logged on a cleartext one)
 *                  |                            | TLS listener, an HTTP method's first letter ->
 *                  |                            |   plaintext 400 "this port expects TLS", close
 *                  |                            | TLS listener, anything else -> close (logged)
 *                  |                            | cleartext listener -> SNIFF
 *   TLS_HELLO      | the first record, in small | record complete (or one OpenSSL will refuse)
 *                  | blocks (|held|); no SSL    |   -> xport_tls_accept, TLS_HANDSHAKE
 *   TLS_HANDSHAKE  | the transport's SSL object | done -> OPEN with the front end ALPN chose;
 *                  |                            | failed (incl. no ALPN we speak) -> close
 *   SNIFF          | the plaintext so far       | a front end's preface (h2) -> OPEN with it,
 *                  |   (|held|)                 |   anything else -> OPEN with the fallback (h1);
 *                  |                            |   the bytes are given back to the transport
 *   OPEN           | what the front end keeps   |
 *
 * The client hanging up in any phase before OPEN aborts the connection (nobody to answer), except
 * in SNIFF with bytes held: the fallback front end gets them and the EOF.
 *
 * A stalled handshake is what a flood holds open, so it is kept cheap: no SSL object (about
 * 9 KiB) and none of OpenSSL's 16 KiB buffers until the client has sent a whole ClientHello
 * record, reads into 2 KiB blocks, and at most --max-handshakes of them per worker, the oldest
 * closed to make room (a real client finishes within a round trip or two, a flood's connections
 * are the old ones).
 *
 * Closing: conn_close / conn_abort set |closing| (the front end hears nothing more but on_close)
 * and close the transport, whose on_close frees the conn. */
#include "src/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "src/frontend.h"
#include "src/log.h"
#include "src/net.h"
#include "src/proxyproto.h"
#include "src/pxerr.h"

#define LINGER_MS 2000
/* A TLS record starts with its type (22 = handshake), version (3, x) and a 16-bit length. */
#define TLS_RECORD_HANDSHAKE 0x16
#define TLS_RECORD_HEADER 5
#define TLS_MAX_PLAINTEXT_RECORD 16384 /* RFC 8446 §5.1: 2^14 */

static struct conn *conn_of(struct xport *x) { return container_of(x, struct conn, x); }

/* Appends |chunk| (taken) to |held|, copied into the tail block when it fits: a client sending
 * its handshake a byte at a time must not hold a block per byte. */
static void hold(struct conn *c, struct buf_chunk *chunk) {
  struct bufq *q = &c->held;
  struct buf_chunk *t = q->tail;
  if (t && buf_room(t) >= chunk->len) {
    memcpy(t->data + t->off + t->len, buf_rd(chunk), chunk->len);
    t->len += chunk->len;
    q->bytes += chunk->len;
    buf_put(&c->w->pool, chunk);
    return;
  }
  bufq_push(q, &c->w->pool, chunk);
}

/* Leaves w->handshakes: a front end took over, or the conn is closing. */
static void hs_leave(struct conn *c) {
  if (list_empty(&c->hs_link)) return;
  list_remove(&c->hs_link);
  c->w->nhandshakes--;
  METRIC_SUB(&c->w->metrics, handshakes_active, 1);
}

/* Hands the connection to |fe|; bytes sniffed so far go back to the transport, which delivers
 * them to the front end first. */
static void attach(struct conn *c, const struct frontend *fe) {
  c->phase = CONN_OPEN;
  hs_leave(c);
  xport_set_timer(&c->x, 0); /* the handshake is over; the front end arms its own timers */
  xport_set_small_reads(&c->x, 0);
  fe->attach(c);
  CHECK(c->fe != NULL);
  xport_unread(&c->x, &c->held);
  if (c->w->stopping) c->fe->on_stop(c); /* it missed conn_stop_all in its handshake */
}

/* Cleartext: the first bytes pick the front end (the h2 preface: prior knowledge). */
static void sniff(struct conn *c) {
  char head[64];
  size_t n = bufq_peek(&c->held, head, MIN(sizeof(head), frontend_sniff_len(c->w->frontends)));
  const struct frontend *fe = frontend_sniff(c->w->frontends, head, n);
  if (fe) attach(c, fe);
}

/* The first TLS record is complete (or OpenSSL will refuse it anyway): only now the SSL object. */
static void collect_hello(struct conn *c) {
  unsigned char h[TLS_RECORD_HEADER];
  if (bufq_peek(&c->held, h, sizeof(h)) < sizeof(h)) return;
  size_t len = ((size_t)h[3] << 8) | h[4];
  if (h[1] == 3 && len <= TLS_MAX_PLAINTEXT_RECORD && c->held.bytes < TLS_RECORD_HEADER + len) return;
  c->phase = CONN_TLS_HANDSHAKE;
  xport_tls_accept(&c->x, c->w->ssl_ctx, &c->held);
}

/* A plaintext request on a TLS listener: say so in plaintext, so that curl, wget and urllib
 * users read why instead of "Remote end closed connection". */
static void answer_plaintext_on_tls(struct conn *c) {
  static const char body[] = "this port expects TLS: use an https:// proxy URL\n";
  char head[320];
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                   "Proxy-Status: h2tunnel; error=%s; details=\"this port expects TLS\"\r\n"
                   "Connection: close\r\n\r\n",
                   sizeof(body) - 1, pxerr_token(PXERR_BAD_REQUEST));
  CHECK(n > 0 && (size_t)n < sizeof(head));
  worker_log(c->w, WLOG_PLAIN_ON_TLS, LOG_INFO,
             "conn %s: plaintext HTTP on a TLS listener: answered 400 \"this port expects TLS\"", c->peer);
  METRIC_ADD(&c->w->metrics, errors[PXERR_BAD_REQUEST], 1);
  conn_write_copy(c, head, (size_t)n);
  conn_write_copy(c, body, sizeof(body) - 1);
  conn_close(c);
}

/* The PROXY header is dealt with: on to the first-byte decision with what follows it. */
static void proxy_header_done(struct conn *c) {
  c->phase = CONN_PEEK;
  xport_set_timer(&c->x, c->w->cfg->handshake_timeout_ms);
  xport_unread(&c->x, &c->held);
}

/* A ?proxy-protocol listener: the header from a trusted balancer, refused from anyone else. */
static void proxy_header(struct conn *c) {
  uint8_t small[256]; /* any v1 header, and a v2 one without TLVs, fit */
  size_t n = MIN(c->held.bytes, (size_t)PP_V2_HEAD_LEN + 65535);
  uint8_t *p = n <= sizeof(small) ? small : xmalloc(n);
  bufq_peek(&c->held, p, n);
  struct pp_header h;
  const char *why = NULL;
  int r = c->pp_trusted ? pp_parse(p, n, &h, &why) : pp_sniff(p, n);
  if (p != small) free(p);
  if (!c->pp_trusted) {
    if (r < 0) return; /* too few bytes to tell */
    if (r > 0) {
      worker_log(c->w, WLOG_PROXY_PROTO, LOG_WARN,
                 "conn %s: PROXY protocol header from a source not in proxy-protocol-from: closing", c->peer);
      METRIC_ADD(&c->w->metrics, pp_refused[METRICS_PP_UNTRUSTED], 1);
      conn_abort(c);
      return;
    }
    proxy_header_done(c);
    return;
  }
  if (r == 0) return;
  if (r < 0) {
    worker_log(c->w, WLOG_PROXY_PROTO, LOG_WARN, "conn %s: invalid PROXY protocol header: %s: closing", c->peer, why);
    METRIC_ADD(&c->w->metrics, pp_refused[METRICS_PP_INVALID], 1);
    conn_abort(c);
    return;
  }
  if (h.has_addr) {
    char was[sizeof(c->peer)];
    memcpy(was, c->peer, sizeof(was));
    c->peer_addr = h.src;
    net_format_addr((struct sockaddr *)&c->peer_addr, c->peer, sizeof(c->peer));
    log_debug("conn %s: PROXY protocol v%d: client %s", was, h.version, c->peer);
  }
  METRIC_ADD(&c->w->metrics, pp_headers, 1);
  bufq_skip(&c->held, &c->w->pool, (size_t)r);
  proxy_header_done(c);
}

/* The first byte decides (|chunk| is taken). */
static void peek(struct conn *c, struct buf_chunk *chunk) {
  unsigned char first = (unsigned char)buf_rd(chunk)[0];
  if (first == TLS_RECORD_HANDSHAKE) {
    if (!c->w->ssl_ctx) {
      worker_log(c->w, WLOG_TLS_ON_CLEAR, LOG_INFO,
                 "conn %s: TLS on a cleartext listener, and no tls:// listener loaded a certificate: closing",
                 c->peer);
      buf_put(&c->w->pool, chunk);
      conn_abort(c);
      return;
    }
    if (!c->tls_listener)
      worker_log(c->w, WLOG_TLS_ON_CLEAR, LOG_INFO, "conn %s: TLS on a cleartext listener: serving TLS", c->peer);
    c->phase = CONN_TLS_HELLO;
    hold(c, chunk);
    collect_hello(c);
    return;
  }
  if (!c->tls_listener) {
    c->phase = CONN_SNIFF;
    hold(c, chunk);
    sniff(c);
    return;
  }
  buf_put(&c->w->pool, chunk);
  if (first >= 'A' && first <= 'Z') { /* the first letter of an HTTP method */
    answer_plaintext_on_tls(c);
  } else {
    worker_log(c->w, WLOG_NOT_TLS, LOG_INFO,
               "conn %s: neither TLS nor HTTP on a TLS listener (first byte 0x%02x): closing", c->peer, first);
    conn_abort(c);
  }
}

/* ---- the transport's upcalls ------------------------------------------------------------------ */

static void on_x_read(struct xport *x, struct buf_chunk *chunk) {
  struct conn *c = conn_of(x);
  switch (c->phase) {
  case CONN_PROXY_HDR:
    hold(c, chunk);
    proxy_header(c);
    break;
  case CONN_PEEK:
    peek(c, chunk);
    break;
  case CONN_TLS_HELLO:
    hold(c, chunk);
    collect_hello(c);
    break;
  case CONN_SNIFF:
    hold(c, chunk);
    sniff(c);
    break;
  case CONN_TLS_HANDSHAKE: /* the transport delivers nothing during a handshake */
  case CONN_OPEN:
    c->fe->on_read(c, chunk);
    break;
  }
}

static void on_x_eof(struct xport *x) {
  struct conn *c = conn_of(x);
  if (c->phase == CONN_OPEN) {
    c->fe->on_eof(c);
  } else if (c->phase == CONN_SNIFF && c->held.bytes) {
    attach(c, c->w->frontends->fallback); /* the front end gets the bytes, then the EOF */
  } else {
    conn_abort(c); /* the client hung up before a front end had anything to answer */
  }
}

static void on_x_error(struct xport *x, int err) {
  struct conn *c = conn_of(x);
  char why[160];
  log_debug("conn %s: %s", c->peer, err == UV_EPROTO ? xport_tls_error(x, why, sizeof(why)) : uv_strerror(err));
  if (c->fe) c->fe->on_error(c, err);
  conn_abort(c);
}

static void on_x_drain(struct xport *x) {
  struct conn *c = conn_of(x);
  if (c->fe && !c->closing) c->fe->on_drain(c);
}

static void on_x_handshake(struct xport *x, int status) {
  struct conn *c = conn_of(x);
  if (status == 0) {
    const unsigned char *id;
    unsigned int n;
    SSL_get0_alpn_selected(x->ssl, &id, &n);
    const struct frontend *fe = n ? frontend_by_alpn(c->w->frontends, id, n) : NULL;
    attach(c, fe ? fe : c->w->frontends->fallback);
    return;
  }
  if (status != UV_EPROTO) { /* the client hung up mid-handshake */
    conn_abort(c);
    return;
  }
  METRIC_ADD(&c->w->metrics, tls_handshake_failures, 1);
  if (ERR_GET_REASON(x->tls_err) == SSL_R_NO_APPLICATION_PROTOCOL) {
    worker_log(c->w, WLOG_TLS_FAILED, LOG_INFO,
               "conn %s: TLS client offered no ALPN protocol we speak (h2, http/1.1): sent the "
               "no_application_protocol alert (RFC 7301)",
               c->peer);
  } else {
    char buf[160];
    worker_log(c->w, WLOG_TLS_FAILED, LOG_INFO, "conn %s: TLS handshake failed: %s", c->peer,
               xport_tls_error(x, buf, sizeof(buf)));
  }
  conn_close(c); /* sends the alert OpenSSL queued */
}

static void on_x_timeout(struct xport *x) {
  struct conn *c = conn_of(x);
  if (c->fe) {
    c->fe->on_timeout(c);
    return;
  }
  if (c->phase == CONN_PROXY_HDR) {
    worker_log(c->w, WLOG_PROXY_PROTO, LOG_WARN, "conn %s: no complete PROXY protocol header within %llu ms: closing",
               c->peer, (unsigned long long)c->w->cfg->pp_timeout_ms);
    METRIC_ADD(&c->w->metrics, pp_refused[METRICS_PP_TIMEOUT], 1);
    conn_abort(c);
    return;
  }
  log_debug("conn %s: handshake timeout (%s)", c->peer, x->ssl ? "TLS" : "no complete first flight");
  conn_abort(c);
}

/* The transport has closed: the last of the conn. */
static void on_x_close(struct xport *x) {
  struct conn *c = conn_of(x);
  struct worker *w = c->w;
  if (c->fe) c->fe->on_close(c);
  bufq_clear(&c->held, &w->pool);
  hs_leave(c);
  list_remove(&c->link);
  w->nconns--;
  METRIC_SUB(&w->metrics, conns_active, 1);
  free(c);
  worker_maybe_finish(w);
}

static const struct xport_ops conn_xport_ops = {
    .on_read = on_x_read,
    .on_eof = on_x_eof,
    .on_error = on_x_error,
    .on_drain = on_x_drain,
    .on_handshake = on_x_handshake,
    .on_timeout = on_x_timeout,
    .on_close = on_x_close,
};

/* ---- the front end's calls -------------------------------------------------------------------- */

void conn_write(struct conn *c, struct buf_chunk *chunk) { xport_write(&c->x, chunk); }
void conn_write_copy(struct conn *c, const void *data, size_t len) { xport_write_copy(&c->x, data, len); }
void conn_read_start(struct conn *c) { xport_read_start(&c->x); }
void conn_read_stop(struct conn *c) { xport_read_stop(&c->x); }
void conn_shutdown(struct conn *c) { xport_shutdown(&c->x); }
void conn_set_timer(struct conn *c, uint64_t ms) { xport_set_timer(&c->x, ms); }

void conn_close(struct conn *c) {
  if (c->closing) return;
  c->closing = 1;
  hs_leave(c);
  bufq_clear(&c->held, &c->w->pool);
  xport_close(&c->x);
}

/* Also after conn_close: a lingering or flushing conn is cut short. */
void conn_abort(struct conn *c) {
  c->closing = 1;
  hs_leave(c);
  bufq_clear(&c->held, &c->w->pool);
  xport_abort(&c->x);
}

/* ---- the worker's calls ----------------------------------------------------------------------- */

/* Closes the connection that has been in its handshake longest, to make room under |limit|.
 * Returns 0 when no connection is in its handshake. */
static int evict_oldest_handshake(struct worker *w, const char *limit, size_t max) {
  if (list_empty(&w->handshakes)) return 0;
  struct conn *old = container_of(w->handshakes.next, struct conn, hs_link);
  METRIC_ADD(&w->metrics, handshakes_evicted, 1);
  worker_log(w, WLOG_EVICTED, LOG_WARN, "conn %s: %s (%zu per worker) reached: closing the oldest handshake (%llu ms old)",
             old->peer, limit, max, (unsigned long long)(uv_now(&w->loop) - old->accepted_ms));
  conn_abort(old);
  return 1;
}

static void refuse(struct worker *w, uv_os_sock_t fd) {
  char peer[64] = "?";
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) net_format_addr((struct sockaddr *)&ss, peer, sizeof(peer));
  METRIC_ADD(&w->metrics, conns_refused, 1);
  worker_log(w, WLOG_REFUSED, LOG_WARN, "conn %s: over --max-connections (%zu per worker) with no handshake to close: refused",
             peer, w->cfg->max_connections);
  struct linger lg = {1, 0}; /* RST: nothing was said on it */
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(fd);
}

/* Takes the connection |fd| (non-blocking, just accepted on |lst|). Over --max-connections or
 * --max-handshakes the oldest handshake is closed to make room; with none to close, |fd| is
 * refused (closed with a log line). */
static void conn_accept(struct listener *lst, uv_os_sock_t fd) {
  struct worker *w = lst->w;
  const struct config *cfg = w->cfg;
  /* Oldest-first: the handshakes a flood holds are the old ones, so a real client gets in. */
  if (cfg->max_connections && w->nconns >= cfg->max_connections &&
      !evict_oldest_handshake(w, "--max-connections", cfg->max_connections)) {
    refuse(w, fd);
    return;
  }
  if (cfg->max_handshakes && w->nhandshakes >= cfg->max_handshakes)
    evict_oldest_handshake(w, "--max-handshakes", cfg->max_handshakes);
  struct conn *c = xcalloc(1, sizeof(*c));
  c->w = w;
  uv_tcp_init(&w->loop, &c->tcp);
  const struct xport_opts opts = {.read_budget = cfg->read_budget,
                                  .low_water = cfg->low_water,
                                  .close_timeout_ms = cfg->idle_timeout_ms,
                                  .linger_ms = LINGER_MS};
  xport_init(&c->x, w, &c->tcp, &conn_xport_ops, &opts);
  bufq_init(&c->held);
  c->phase = CONN_PEEK;
  c->tls_listener = lst->cfg->tls ? 1 : 0;
  c->listener_copy = *lst->cfg;
  c->listener = &c->listener_copy;
  c->accepted_ms = uv_now(&w->loop);
  list_insert_tail(&w->conns, &c->link);
  w->nconns++;
  list_insert_tail(&w->handshakes, &c->hs_link);
  w->nhandshakes++;
  METRIC_ADD(&w->metrics, handshakes_active, 1);
  METRIC_ADD(&w->metrics, conns_active, 1);
  if (uv_tcp_open(&c->tcp, fd) != 0) {
    close(fd);
    conn_abort(c);
    return;
  }
  METRIC_ADD(&w->metrics, conns_accepted, 1);
  uv_tcp_nodelay(&c->tcp, 1);
  int len = sizeof(c->peer_addr);
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer_addr, &len) == 0)
    net_format_addr((struct sockaddr *)&c->peer_addr, c->peer, sizeof(c->peer));
  else
    c->peer_addr.ss_family = AF_UNSPEC;
  /* Before a front end owns the connection, small blocks: a stalled handshake holds 2 KiB. */
  xport_set_small_reads(&c->x, 1);
  uint64_t first_bound = cfg->handshake_timeout_ms;
  if (lst->cfg->proxy_protocol) {
    c->phase = CONN_PROXY_HDR;
    c->pp_trusted = pp_source_trusted(cfg->pp_trusted, (struct sockaddr *)&c->peer_addr) ? 1 : 0;
    if (c->pp_trusted) first_bound = cfg->pp_timeout_ms;
  }
  xport_set_timer(&c->x, first_bound);
  xport_read_start(&c->x);
}

/* Graceful stop: each front end decides (idle h1 conns close now, h2 sessions send GOAWAY,
 * tunnels drain). A conn still in its handshake goes on (--handshake-timeout bounds it) and hears
 * the stop once a front end has it: it was accepted just before the stop -- under a steady stream
 * always some are, and with a binary upgrade the listener lives on in the successor -- and
 * closing it would reset a client that did nothing wrong. */
static void conn_stop_all(struct worker *w) {
  struct list *n, *next;
  for (n = w->conns.next; n != &w->conns; n = next) {
    next = n->next;
    struct conn *c = container_of(n, struct conn, link);
    if (c->closing) continue;
    if (c->fe) c->fe->on_stop(c);
  }
}

/* The drain deadline: every connection left is reset; its front end ends its tunnels from
 * on_close (every tunnel's client side belongs to a conn, so none is left behind). */
static void conn_abort_all(struct worker *w) {
  struct list *n, *next;
  for (n = w->conns.next; n != &w->conns; n = next) {
    next = n->next;
    conn_abort(container_of(n, struct conn, link));
  }
}

const struct worker_conn_ops conn_worker_ops = {
    .accept = conn_accept,
    .stop_all = conn_stop_all,
    .abort_all = conn_abort_all,
};
