/* Fuzz target for the HTTP/2 server session, h2/h2_session.c with h2/h2_stream.c (issue 8,
 * "Fuzzing of every input parser"): the input is what a client sends on one connection, fed into
 * a real nghttp2 server session wired to the project's own callbacks, so that stream open, reset,
 * DATA, WINDOW_UPDATE, SETTINGS, PING, GOAWAY and CONTINUATION sequences reach the real stream
 * code, the flow-control credit, the output cap and the tunnels.
 *
 * The transport is a mock (no socket): conn_write keeps the session's output and "flushes" it at
 * the end of each loop turn, then calls on_drain, as src/conn.c does. The request path is a mock
 * too (no DNS, no dial): px_request_start parks the request, and at the end of the turn a choice
 * taken from the input answers it -- an error (pxerr, answered as proxy/request.c does) or
 * success with a tunnel (tunnel/tunnel.c, real) to an echo upstream, so the client's DATA comes
 * back down as DATA frames through the stream's window and the session's output. The loop is a
 * real libuv loop (the session's deferred sends, the tunnel's timers and closes).
 *
 * Input: byte 0 picks the ending (EOF, graceful stop, a timer firing, an I/O error, or nothing:
 * the connection layer closes it) and seeds the split of the rest into pieces of 1..256 bytes; one
 * loop turn runs between pieces. A client preface is prepended unless bit 7 of byte 1 is set.
 *
 * Invariants checked on every input: no sanitizer report (memory, UB, leaks); the session ends
 * (conn_close or conn_abort) when the input ends; after on_close no tunnel is left and every
 * pooled chunk is back (w->pool.in_use == 0); the output never grows past the output cap plus a
 * turn's frames while on_drain is withheld. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2/h2_session.h"
#include "proxy/fwd.h"
#include "proxy/request.h"
#include "src/config.h"
#include "src/conn.h"
#include "src/frontend.h"
#include "src/log.h"
#include "src/worker.h"
#include "tunnel/tunnel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FCHECK(x)                                                                                  \
  do {                                                                                             \
    if (!(x)) {                                                                                    \
      fprintf(stderr, "fuzz_h2_session: CHECK(%s) failed at line %d\n", #x, __LINE__);             \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* One fuzz run's world: a worker (loop, pool, config) made once, and per input one conn. */
static struct config g_cfg;
static struct worker *g_w;
static uint32_t g_rng; /* the run's choices (request outcomes, stalls) */
/* Per input, for FUZZ_H2_TRACE=1 (to see which seeds reach which code). */
static struct {
  unsigned oks, errs, echoed;
} g_trace;

static uint32_t next_rand(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}

/* ---- the mock transport (src/conn.h) ---------------------------------------------------------- */

struct mock_conn {
  struct conn c;
  int read_on;       /* conn_read_start/stop */
  int ended;         /* conn_close or conn_abort */
  int closed;        /* fe->on_close ran */
  uint64_t timer_ms; /* the armed timer, 0: off */
  size_t out_bytes;  /* everything the session wrote */
};

static struct mock_conn *mock_of(struct conn *c) { return container_of(c, struct mock_conn, c); }

void conn_write(struct conn *c, struct buf_chunk *chunk) {
  struct mock_conn *m = mock_of(c);
  if (m->ended) {
    buf_put(&c->w->pool, chunk);
    return;
  }
  m->out_bytes += chunk->len;
  bufq_push(&c->x.so.q, &c->w->pool, chunk); /* conn_queued() sees it until the turn's flush */
}

void conn_write_copy(struct conn *c, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    struct buf_chunk *chunk = buf_get(&c->w->pool);
    size_t n = MIN(len, (size_t)chunk->cap);
    memcpy(chunk->data, p, n);
    chunk->len = (uint32_t)n;
    conn_write(c, chunk);
    p += n;
    len -= n;
  }
}

void conn_read_start(struct conn *c) { mock_of(c)->read_on = 1; }
void conn_read_stop(struct conn *c) { mock_of(c)->read_on = 0; }
void conn_shutdown(struct conn *c) { (void)c; }
void conn_set_timer(struct conn *c, uint64_t ms) { mock_of(c)->timer_ms = ms; }

void conn_close(struct conn *c) {
  c->closing = 1;
  mock_of(c)->ended = 1;
}

void conn_abort(struct conn *c) {
  c->closing = 1;
  mock_of(c)->ended = 1;
  bufq_clear(&c->x.so.q, &c->w->pool);
}

/* ---- the echo upstream ------------------------------------------------------------------------ */

struct echo_ep {
  struct tun_ep ep;
  struct list link;   /* in g_echoes */
  struct bufq q;      /* what the tunnel wrote, echoed at the end of the turn */
  int reading, shut, closed;
};

static struct list g_echoes;

static void e_read_start(struct tun_ep *self) { container_of(self, struct echo_ep, ep)->reading = 1; }
static void e_read_stop(struct tun_ep *self) { container_of(self, struct echo_ep, ep)->reading = 0; }
static void e_write(struct tun_ep *self, struct buf_chunk *c) {
  struct echo_ep *e = container_of(self, struct echo_ep, ep);
  bufq_push(&e->q, &g_w->pool, c);
  self->queued = e->q.bytes;
}
static void e_shutdown(struct tun_ep *self) { container_of(self, struct echo_ep, ep)->shut = 1; }
static void e_abort(struct tun_ep *self) {
  struct echo_ep *e = container_of(self, struct echo_ep, ep);
  bufq_clear(&e->q, &g_w->pool);
  self->queued = 0;
}
static void e_close(struct tun_ep *self) { container_of(self, struct echo_ep, ep)->closed = 1; }

static const struct tun_ep_ops echo_ops = {
    .kind = "echo",
    .read_start = e_read_start,
    .read_stop = e_read_stop,
    .write = e_write,
    .shutdown = e_shutdown,
    .abort = e_abort,
    .close = e_close,
};

/* The end of a turn for the upstreams: each echoes what it got (while the tunnel reads), its
 * EOF after the client's, and a closed one is freed. */
static void echo_turn(void) {
  struct list *n, *nx;
  for (n = g_echoes.next; n != &g_echoes; n = nx) {
    nx = n->next;
    struct echo_ep *e = container_of(n, struct echo_ep, link);
    while (!e->closed && e->reading && e->ep.tun && e->q.bytes) {
      struct buf_chunk *c = bufq_pop(&e->q);
      g_trace.echoed += c->len;
      e->ep.queued = e->q.bytes;
      tunnel_on_read(&e->ep, c);
      if (e->ep.tun && e->ep.queued <= g_cfg.low_water) tunnel_on_drain(&e->ep);
    }
    if (!e->closed && e->shut && e->q.bytes == 0 && e->ep.tun && !e->ep.rd_eof) tunnel_on_eof(&e->ep);
    if (e->closed) {
      bufq_clear(&e->q, &g_w->pool);
      list_remove(&e->link);
      free(e);
    }
  }
}

/* ---- the mock request path (proxy/request.h) -------------------------------------------------- */

static struct list g_parked; /* px_request_start'ed, answered at the end of the turn */

struct parked {
  struct px_request *rq;
  struct list link;
};

const char *px_front_name(enum px_front f) { return f == PX_FRONT_H2 ? "h2" : "h1"; }
const char *px_proto_name(enum px_proto p) {
  static const char *const names[] = {"connect", "websocket", "connect-udp", "forward"};
  return (unsigned)p < 4 ? names[p] : "?";
}

struct px_request *px_request_new(struct worker *w, enum px_front front, enum px_proto proto,
                                  const struct px_front_ops *ops, void *fe) {
  struct px_request *rq = xcalloc(1, sizeof(*rq) + sizeof(struct parked));
  rq->w = w;
  rq->cfg = w->cfg;
  rq->front = front;
  rq->proto = proto;
  rq->ops = ops;
  rq->fe = fe;
  return rq;
}

void px_request_set_client(struct px_request *rq, struct conn *c) { snprintf(rq->client, sizeof(rq->client), "%s", c->peer); }

static struct parked *parked_of(struct px_request *rq) { return (struct parked *)(rq + 1); }

static void request_free(struct px_request *rq) {
  buf_put(&rq->w->pool, rq->early);
  free(rq->credentials);
  free(rq);
}

/* As proxy/request.c's fail: the outcome described once, the front end serialises it. */
void px_request_fail(struct px_request *rq, enum pxerr err, const char *detail) {
  char proxy_status[PXERR_PROXY_STATUS_MAX], body[PXERR_BODY_MAX];
  struct px_outcome *o = &rq->out;
  o->err = err;
  o->detail = detail;
  o->status = pxerr_status(err);
  pxerr_proxy_status(proxy_status, sizeof(proxy_status), err, detail);
  pxerr_body(body, sizeof(body), o->status, detail);
  o->proxy_status = proxy_status;
  o->body = body;
  g_trace.errs++;
  rq->ops->answer_error(rq->fe, o);
  request_free(rq);
}

void px_request_start(struct px_request *rq) {
  struct parked *p = parked_of(rq);
  p->rq = rq;
  list_insert_tail(&g_parked, &p->link);
}

void px_request_cancel(struct px_request *rq) {
  list_remove(&parked_of(rq)->link);
  request_free(rq);
}

/* As proxy/request.c's: logged there; here the request, never parked, is freed. */
void px_request_answered(struct px_request *rq, int status, const char *method, const char *detail) {
  (void)status;
  (void)method;
  (void)detail;
  request_free(rq);
}

/* Forwarding (proxy/fwd.c) stands outside this harness: the mock request path never answers a
 * forwarded request with an upstream, so no exchange starts; the header checks h2_stream makes
 * on a forwarded request see "no Via loop" and "no Max-Forwards: 0". */
struct fwd *fwd_start(struct fwd_up *up, struct px_request *rq, const struct fwd_req *req,
                      const struct fwd_front_ops *ops, void *fe) {
  (void)up, (void)rq, (void)req, (void)ops, (void)fe;
  abort(); /* unreachable: answer_forward is never called here */
}
size_t fwd_send_body(struct fwd *f, const char *data, size_t len) {
  (void)f, (void)data, (void)len;
  abort();
}
void fwd_send_end(struct fwd *f, const struct fwd_field *trailers, size_t n) {
  (void)f, (void)trailers, (void)n;
  abort();
}
void fwd_resume(struct fwd *f) {
  (void)f;
  abort();
}
void fwd_cancel(struct fwd *f) {
  (void)f;
  abort();
}
int fwd_via_names(const char *v, size_t len, const char *via_name) {
  (void)v, (void)len, (void)via_name;
  return 0;
}
int fwd_max_forwards_zero(const char *method, const char *v, size_t len) {
  (void)method, (void)v, (void)len;
  return 0;
}

/* As proxy/request.c's succeed, with an echo upstream. */
static void succeed(struct px_request *rq) {
  struct echo_ep *e = xcalloc(1, sizeof(*e));
  e->ep.ops = &echo_ops;
  bufq_init(&e->q);
  list_insert_tail(&g_echoes, &e->link);
  struct px_outcome *o = &rq->out;
  o->status = 200;
  if (rq->proto == PX_PROTO_CONNECT_UDP) o->extra[o->nextra++] = (struct px_header){"capsule-protocol", "?1"};
  snprintf(o->peer, sizeof(o->peer), "192.0.2.1:443");
  int status = rq->ops->answer_ok(rq->fe, o);
  g_trace.oks += status != 0;
  if (status == 0) {
    e->ep.aborted = 1;
    e_abort(&e->ep);
    e_close(&e->ep);
    request_free(rq);
    return;
  }
  struct tun_info info = {.proto = (enum tun_proto)rq->proto, .front = "h2", .front_id = METRICS_FRONT_H2, .status = status};
  struct tunnel *t = tunnel_new(rq->w, rq->ops->client_ep(rq->fe), &e->ep, &info);
  struct buf_chunk *early = rq->early;
  rq->early = NULL;
  request_free(rq);
  tunnel_start(t, early);
}

static const enum pxerr g_errors[] = {PXERR_PORT_DENIED, PXERR_DNS_ERROR, PXERR_CONN_REFUSED,
                                      PXERR_CONN_TIMEOUT, PXERR_TLS_CERT, PXERR_SHUTTING_DOWN};

/* The end of a turn for the requests: each parked one is answered (mostly with a tunnel), or left
 * for a later turn. */
static void answer_parked(void) {
  struct list todo;
  if (list_empty(&g_parked)) return;
  list_init(&todo);
  todo.next = g_parked.next;
  todo.prev = g_parked.prev;
  todo.next->prev = &todo;
  todo.prev->next = &todo;
  list_init(&g_parked);
  while (!list_empty(&todo)) {
    struct parked *p = container_of(todo.next, struct parked, link);
    list_remove(&p->link);
    uint32_t r = next_rand() % 8;
    if (r == 0) {
      list_insert_tail(&g_parked, &p->link); /* not yet */
    } else if (r == 1 || p->rq->proto == PX_PROTO_FORWARD) {
      /* A forwarded request gets an error: forwarding (proxy/fwd.c) is outside this harness. */
      px_request_fail(p->rq, g_errors[next_rand() % ARRAY_SIZE(g_errors)], "fuzz");
    } else {
      succeed(p->rq);
    }
  }
}

/* ---- the driver ------------------------------------------------------------------------------- */

static void setup_once(void) {
  if (g_w) return;
  log_set_level(LOG_ERROR);
  log_set_access_stream(fopen("/dev/null", "w"));
  config_init(&g_cfg);
  g_cfg.h2_max_header_list = 16384;
  g_w = xcalloc(1, sizeof(*g_w));
  FCHECK(worker_init(g_w, 0, &g_cfg, NULL) == 0);
  list_init(&g_parked);
  list_init(&g_echoes);
}

/* One loop turn: the session's deferred sends run (check phase), then the mock upstreams and
 * requests, then the transport "writes" what was queued and, unless withheld, reports drain. */
static void turn(struct mock_conn *m, int withhold_drain) {
  uv_run(&g_w->loop, UV_RUN_NOWAIT);
  answer_parked();
  echo_turn();
  uv_run(&g_w->loop, UV_RUN_NOWAIT);
  if (withhold_drain) {
    /* The output cap must hold: a session over it stops pulling from nghttp2. */
    FCHECK(m->c.x.so.q.bytes <= 4u << 20);
    return;
  }
  if (m->c.x.so.q.bytes) {
    bufq_clear(&m->c.x.so.q, &g_w->pool);
    if (!m->ended && !m->closed) m->c.fe->on_drain(&m->c);
  }
}

static void feed(struct mock_conn *m, const uint8_t *p, size_t n) {
  while (n > 0 && !m->ended) {
    struct buf_chunk *chunk = buf_get(&g_w->pool);
    size_t k = MIN(n, (size_t)chunk->cap);
    memcpy(chunk->data, p, k);
    chunk->len = (uint32_t)k;
    m->c.fe->on_read(&m->c, chunk);
    p += k;
    n -= k;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  setup_once();
  uint8_t mode = data[0], flags = data[1];
  g_rng = 0x9e3779b9u ^ ((uint32_t)mode << 8) ^ flags;
  memset(&g_trace, 0, sizeof(g_trace));
  data += 2;
  size -= 2;

  struct mock_conn *m = xcalloc(1, sizeof(*m));
  m->c.w = g_w;
  m->c.phase = CONN_OPEN;
  snprintf(m->c.peer, sizeof(m->c.peer), "198.51.100.7:40000");
  sockout_init(&m->c.x.so, &g_w->pool);
  list_init(&m->c.link);
  list_init(&m->c.hs_link);
  h2_frontend.attach(&m->c);
  turn(m, 0);

  if (!(flags & 0x80)) feed(m, (const uint8_t *)PREFACE, sizeof(PREFACE) - 1);
  while (size > 0 && !m->ended) {
    size_t piece = 1 + next_rand() % 256;
    if (piece > size) piece = size;
    feed(m, data, piece);
    data += piece;
    size -= piece;
    turn(m, (flags & 0x40) && (next_rand() % 4 == 0)); /* sometimes the socket is slow */
  }
  for (int i = 0; i < 4 && !m->ended; i++) turn(m, 0); /* tunnels echo, answers go out */

  if (!m->ended) {
    switch (mode % 5) {
    case 0:
      m->c.fe->on_eof(&m->c);
      break;
    case 1:
      m->c.fe->on_stop(&m->c);
      for (int i = 0; i < 8 && !m->ended; i++) turn(m, 0);
      break;
    case 2:
      if (m->timer_ms) m->c.fe->on_timeout(&m->c);
      break;
    case 3:
      m->c.fe->on_error(&m->c, UV_ECONNRESET);
      break;
    default:
      break; /* the connection layer closes it under the session (a worker's hard close) */
    }
    if (!m->ended) {
      conn_abort(&m->c);
    }
  }
  /* The conn's last call, from the transport's close callback. */
  turn(m, 0);
  bufq_clear(&m->c.x.so.q, &g_w->pool);
  m->c.fe->on_close(&m->c);
  m->closed = 1;
  FCHECK(m->c.fe_data == NULL);
  for (int i = 0; i < 4; i++) {
    uv_run(&g_w->loop, UV_RUN_NOWAIT);
    answer_parked();
    echo_turn();
  }
  FCHECK(list_empty(&g_parked)); /* every request was answered or cancelled */
  FCHECK(list_empty(&g_echoes)); /* every tunnel ended and closed its upstream */
  FCHECK(list_empty(&g_w->tunnels));
  FCHECK(g_w->pool.in_use == 0);
  if (getenv("FUZZ_H2_TRACE"))
    fprintf(stderr, "fuzz_h2_session: %u tunnel(s), %u error answer(s), %u bytes echoed, %zu bytes out\n",
            g_trace.oks, g_trace.errs, g_trace.echoed, m->out_bytes);
  free(m);
  return 0;
}
