/* Unit tests for the request path, proxy/request.c, on a real worker loop (upstream_fx.h: fake
 * DNS, loopback origins, black holes) with a mock front end: every outcome -- allowed (CONNECT,
 * connect-udp, WebSocket), denied by port, by address and by name class, DNS error and timeout,
 * refused, connect timeout, stopping (every protocol, both front ends), malformed targets, the
 * WebSocket backend's own refusal -- each answered once, logged once and counted once; the
 * order of the steps (the name policy before any DNS query, the WebSocket request checks before
 * the port policy); a front end that cannot answer; and cancel in every phase. Rules and limits
 * on the path (users authenticated by the real admission): a rule's denial on the name (no DNS)
 * and on the resolved address, 403 naming the
 * rule and never its contents, the allowing rule in the outcome and the log, a CIDR rule opening
 * a class the built-in policy denies, the same decision for every protocol; tunnel counts per
 * user and per client giving 429 with Retry-After, and back to 0 when the tunnels end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "upstream_fx.h"
#include "access_fx.h"
#include "proxy/request.h"
#include "src/access.h"
#include <openssl/evp.h>

#include "src/auth.h"
#include "src/cfgfile.h"
#include "src/limits.h"
#include "src/users.h"
#include "src/log.h"
#include "tunnel/tunnel.h"

static const struct fake_dns_rr g_rrs[] = {
    {"ok.test", 0, "127.0.0.3"},
    {"two.test", 0, "127.0.0.2"}, /* refused first, then the origin */
    {"two.test", 0, "127.0.0.3"},
    {"refused.test", 0, "127.0.0.2"},
    {"onlyhole.test", 0, "127.0.0.5"},
    {"private.test", 0, "10.0.0.1"},
    {"ws.test", 0, "127.0.0.7"}, /* the WebSocket backend below */
    {"slow.test", 0, NULL},
};

static FILE *g_access;

static int setup(void **state) {
  CHECK(ftruncate(fileno(g_access), 0) == 0);
  CHECK(lseek(fileno(g_access), 0, SEEK_SET) == 0);
  return fx_setup(state, g_rrs, ARRAY_SIZE(g_rrs));
}

static int teardown(void **state) {
  struct fx *f = *state;
  f->w->stopping = 0;
  struct auth_cache *cache = f->w->auth_cache; /* the worker's, made by enable_auth */
  f->w->auth_cache = NULL;
  struct limits *l = f->w->limits; /* tunnels still open give their counts back in fx_teardown */
  int r = fx_teardown(state);
  auth_cache_free(cache); /* after the loop ran out: no check is left */
  limits_free(l);
  return r;
}

/* ---- the access log --------------------------------------------------------------------------- */

static const char *access_log(void) {
  static char buf[1 << 16];
  ssize_t n = pread(fileno(g_access), buf, sizeof(buf) - 1, 0);
  assert_true(n >= 0);
  buf[n] = '\0';
  return buf;
}

static int access_lines(void) {
  int n = 0;
  for (const char *p = access_log(); *p; p++) n += *p == '\n';
  return n;
}

static uint64_t errors_counted(struct fx *f) {
  uint64_t n = 0;
  for (int e = 0; e < PXERR_COUNT; e++) n += f->w->metrics.errors[e];
  return n;
}

/* ---- a mock front end ------------------------------------------------------------------------- */

struct mock_fe {
  struct fx *f;
  struct tun_ep ep;          /* the client side of the tunnel */
  struct px_request *rq;     /* until answered */
  int oks, errs, client_eps; /* op calls */
  int refuse;                /* answer_ok cannot answer */
  struct px_outcome out;     /* what was answered (extra values copied below) */
  char extra[PX_EXTRA_MAX][2][600];
  char proxy_status[PXERR_PROXY_STATUS_MAX], body[PXERR_BODY_MAX];
  char down[256];            /* bytes the tunnel wrote to the client side */
  size_t ndown;
  int closed;                /* the tunnel closed the client side */
};

static struct mock_fe *fe_of(struct tun_ep *ep) { return container_of(ep, struct mock_fe, ep); }

static void m_noop(struct tun_ep *self) {}

static void m_write(struct tun_ep *self, struct buf_chunk *c) {
  struct mock_fe *m = fe_of(self);
  size_t k = MIN((size_t)c->len, sizeof(m->down) - 1 - m->ndown);
  memcpy(m->down + m->ndown, buf_rd(c), k);
  m->ndown += k;
  buf_put(&m->f->w->pool, c);
}

static void m_close(struct tun_ep *self) { fe_of(self)->closed = 1; }

static const struct tun_ep_ops m_ep_ops = {
    .kind = "mock",
    .read_start = m_noop,
    .read_stop = m_noop,
    .write = m_write,
    .shutdown = m_noop,
    .abort = m_noop,
    .close = m_close,
};

/* Copies the outcome: its strings live only during the op. */
static void keep(struct mock_fe *m, const struct px_outcome *out) {
  m->out = *out;
  if (out->proxy_status) {
    snprintf(m->proxy_status, sizeof(m->proxy_status), "%s", out->proxy_status);
    m->out.proxy_status = m->proxy_status;
  }
  if (out->body) {
    snprintf(m->body, sizeof(m->body), "%s", out->body);
    m->out.body = m->body;
  }
  if (out->detail == out->detail_buf) m->out.detail = m->out.detail_buf; /* copied with |out| */
  for (size_t i = 0; i < out->nextra; i++) {
    snprintf(m->extra[i][0], sizeof(m->extra[i][0]), "%s", out->extra[i].name);
    snprintf(m->extra[i][1], sizeof(m->extra[i][1]), "%s", out->extra[i].value);
    m->out.extra[i].name = m->extra[i][0];
    m->out.extra[i].value = m->extra[i][1];
  }
  m->rq = NULL; /* the front end forgets the request in either answer */
}

static int m_answer_ok(void *fe, const struct px_outcome *out) {
  struct mock_fe *m = fe;
  assert_int_equal(m->oks + m->errs, 0); /* one answer per request */
  m->oks++;
  keep(m, out);
  return m->refuse ? 0 : 200;
}

static void m_answer_error(void *fe, const struct px_outcome *out) {
  struct mock_fe *m = fe;
  assert_int_equal(m->oks + m->errs, 0);
  m->errs++;
  keep(m, out);
}

static struct tun_ep *m_client_ep(void *fe) {
  struct mock_fe *m = fe;
  assert_int_equal(m->oks, 1); /* only after a successful answer */
  m->client_eps++;
  return &m->ep;
}

static const struct px_front_ops m_ops = {
    .answer_ok = m_answer_ok,
    .answer_error = m_answer_error,
    .client_ep = m_client_ep,
};

/* A request of |proto| from |front| for |authority| / |path|, not started yet. */
static struct px_request *request(struct fx *f, struct mock_fe *m, enum px_front front, enum px_proto proto,
                                  const char *authority, const char *path) {
  memset(m, 0, sizeof(*m));
  m->f = f;
  m->ep.ops = &m_ep_ops;
  m->rq = px_request_new(f->w, front, proto, &m_ops, m);
  snprintf(m->rq->client, sizeof(m->rq->client), "192.0.2.1:4321");
  m->rq->authority = authority;
  m->rq->path = path;
  return m->rq;
}

static int answered(const struct mock_fe *m) { return m->oks + m->errs; }

static void run_until_answered(struct fx *f, struct mock_fe *m) {
  uint64_t start = now_ms(f);
  while (!answered(m)) {
    assert_true(now_ms(f) - start < 10000);
    uv_run(&f->w->loop, UV_RUN_ONCE);
  }
}

/* Ends the tunnel |m| is the client side of, as a proxy shutdown would. */
static void kill_tunnel(struct mock_fe *m) {
  assert_non_null(m->ep.tun);
  tunnel_kill(m->ep.tun, TUN_CLOSE_SHUTDOWN);
  assert_true(m->closed);
}

/* Starts |rq| and checks that it succeeds with one extra header |name|: |value|. */
static void expect_ok_with(struct fx *f, struct mock_fe *m, const char *name, const char *value) {
  px_request_start(m->rq);
  run_until_answered(f, m);
  assert_int_equal(m->oks, 1);
  assert_int_equal(m->out.nextra, 1);
  assert_string_equal(m->out.extra[0].name, name);
  assert_string_equal(m->out.extra[0].value, value);
}

static char *authority_of(struct fx *f, const char *host, char *buf, size_t cap) {
  snprintf(buf, cap, "%s:%d", host, f->port);
  return buf;
}

/* ---- a WebSocket backend on 127.0.0.7:P ------------------------------------------------------- */

enum wsb_mode { WSB_UPGRADE, WSB_REFUSE };

struct wsb_conn {
  uv_tcp_t tcp; /* first: the handle is the allocation */
  struct wsb *b;
  char in[4096];
  size_t nin;
  int answered;
};

struct wsb {
  uv_tcp_t listener;
  enum wsb_mode mode;
  int accepted, answered;
  struct wsb_conn *conns[320]; /* closed at the end */
  int nconns;
  char request[4096];         /* the last request head received */
};

static void wsb_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct wsb_conn *c = (struct wsb_conn *)h;
  *buf = uv_buf_init(c->in + c->nin, (unsigned)(sizeof(c->in) - 1 - c->nin));
}

/* Answers a complete request head: 101 with the right Sec-WebSocket-Accept, a chosen
 * subprotocol and a first frame's bytes; or 403. */
static void wsb_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct wsb_conn *c = (struct wsb_conn *)s;
  if (n <= 0) {
    if (n < 0) uv_read_stop(s);
    return;
  }
  c->nin += (size_t)n;
  c->in[c->nin] = '\0';
  if (c->answered || !strstr(c->in, "\r\n\r\n")) return;
  c->answered = 1;
  c->b->answered++;
  snprintf(c->b->request, sizeof(c->b->request), "%s", c->in);
  char resp[512];
  if (c->b->mode == WSB_REFUSE) {
    snprintf(resp, sizeof(resp), "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
  } else {
    char key[64] = "", accept[32];
    const char *k = strstr(c->in, "Sec-WebSocket-Key: ");
    assert_non_null(k);
    sscanf(k + 19, "%63[^\r]", key);
    ws_accept_for_key(key, accept);
    snprintf(resp, sizeof(resp),
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: chat\r\n\r\nFRAME",
             accept);
  }
  uv_buf_t b = uv_buf_init(resp, (unsigned)strlen(resp));
  assert_int_equal(uv_try_write(s, &b, 1), (int)strlen(resp));
}

static void wsb_conn(uv_stream_t *s, int status) {
  struct wsb *b = s->data;
  struct wsb_conn *c = xcalloc(1, sizeof(*c));
  c->b = b;
  uv_tcp_init(s->loop, &c->tcp);
  assert_int_equal(status, 0);
  assert_int_equal(uv_accept(s, (uv_stream_t *)&c->tcp), 0);
  assert_true(b->nconns < (int)ARRAY_SIZE(b->conns));
  b->conns[b->nconns++] = c;
  b->accepted++;
  uv_read_start((uv_stream_t *)&c->tcp, wsb_alloc, wsb_read);
}

static void wsb_start(struct fx *f, struct wsb *b, enum wsb_mode mode) {
  struct sockaddr_in sin;
  memset(b, 0, sizeof(*b));
  b->mode = mode;
  uv_ip4_addr("127.0.0.7", f->port, &sin);
  assert_int_equal(uv_tcp_init(&f->w->loop, &b->listener), 0);
  b->listener.data = b;
  assert_int_equal(uv_tcp_bind(&b->listener, (const struct sockaddr *)&sin, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&b->listener, 16, wsb_conn), 0);
}

static void wsb_stop(struct wsb *b) {
  for (int i = 0; i < b->nconns; i++) uv_close((uv_handle_t *)&b->conns[i]->tcp, free_on_close);
  uv_close((uv_handle_t *)&b->listener, NULL);
}

/* ---- allowed --------------------------------------------------------------------------------- */

static void test_connect_allowed(void **state) {
  struct fx *f = *state;
  struct mock_fe m;
  char auth[64], want[64];
  f->hold = 1;
  struct px_request *rq = request(f, &m, PX_FRONT_H1, PX_PROTO_CONNECT, authority_of(f, "ok.test", auth, sizeof(auth)), NULL);
  rq->credentials = strdup("Basic dXNlcjpwdw=="); /* carried (not checked yet), and freed */
  rq->early = buf_get(&f->w->pool);
  memcpy(rq->early->data, "early bytes", 11);
  rq->early->len = 11;
  px_request_start(rq);
  assert_int_equal(answered(&m), 0); /* never from inside the call */
  run_until_answered(f, &m);
  assert_int_equal(m.oks, 1);
  assert_int_equal(m.client_eps, 1);
  assert_int_equal(m.out.status, 200);
  assert_int_equal(m.out.err, PXERR_NONE);
  assert_null(m.out.rule); /* no rules configured */
  assert_int_equal(m.out.nextra, 0);
  snprintf(want, sizeof(want), "127.0.0.3:%d", f->port);
  assert_string_equal(m.out.peer, want);
  assert_int_equal(f->w->metrics.tunnels_opened[TUN_PROTO_CONNECT], 1);
  assert_int_equal(errors_counted(f), 0);
  /* The early bytes are the tunnel's first upstream bytes. */
  for (int i = 0; f->nrx < 11; i++) {
    assert_true(i < 1000);
    uv_run(&f->w->loop, UV_RUN_ONCE);
  }
  assert_string_equal(f->rx, "early bytes");
  assert_int_equal(access_lines(), 0);
  kill_tunnel(&m);
  /* One line, the tunnel's, when it ends: the request's fields were copied into it. */
  assert_int_equal(access_lines(), 1);
  const char *log = access_log();
  assert_non_null(strstr(log, "\"client\":\"192.0.2.1:4321\",\"front\":\"h1\",\"proto\":\"connect\""));
  assert_non_null(strstr(log, "\"status\":200,"));
  assert_non_null(strstr(log, want));
}

static void test_udp_allowed(void **state) {
  struct fx *f = *state;
  struct mock_fe m;
  char path[128], want[64];
  struct sockaddr_in sin;
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  uv_ip4_addr("127.0.0.3", 0, &sin);
  assert_int_equal(bind(fd, (const struct sockaddr *)&sin, sizeof(sin)), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
  int uport = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  snprintf(path, sizeof(path), "/.well-known/masque/udp/ok.test/%d/", uport);
  request(f, &m, PX_FRONT_H2, PX_PROTO_CONNECT_UDP, "127.0.0.1", path);
  expect_ok_with(f, &m, "capsule-protocol", "?1");
  snprintf(want, sizeof(want), "127.0.0.3:%d", uport);
  assert_string_equal(m.out.peer, want);
  assert_int_equal(f->w->metrics.tunnels_opened[TUN_PROTO_CONNECT_UDP], 1);
  kill_tunnel(&m);
  assert_non_null(strstr(access_log(), "\"proto\":\"connect-udp\""));
  close(fd);
}

/* The backend answers 101 with a subprotocol and the first frame's bytes in the same read: the
 * client gets 200 with sec-websocket-protocol, then those bytes (XC-09). */
static void test_websocket_allowed(void **state) {
  struct fx *f = *state;
  struct mock_fe m;
  struct wsb b;
  char auth[64];
  wsb_start(f, &b, WSB_UPGRADE);
  struct px_request *rq = request(f, &m, PX_FRONT_H2, PX_PROTO_WEBSOCKET, authority_of(f, "ws.test", auth, sizeof(auth)),
                                  "/chat?room=1");
  rq->ws.protocol = "chat, superchat";
  expect_ok_with(f, &m, "sec-websocket-protocol", "chat");
  assert_int_equal(m.ndown, 5);
  assert_memory_equal(m.down, "FRAME", 5);
  assert_non_null(strstr(b.request, "GET /chat?room=1 HTTP/1.1\r\n"));
  assert_non_null(strstr(b.request, "\r\nHost: ws.test:"));
  assert_non_null(strstr(b.request, "\r\nSec-WebSocket-Protocol: chat, superchat\r\n"));
  assert_int_equal(f->w->metrics.tunnels_opened[TUN_PROTO_WEBSOCKET], 1);
  kill_tunnel(&m);
  wsb_stop(&b);
}

/* A --ws-route backend is the operator's: neither the port nor the address policy applies. */
static void test_websocket_route_trusted(void **state) {
  struct fx *f = *state;
  struct mock_fe m;
  struct wsb b;
  char route[128];
  wsb_start(f, &b, WSB_UPGRADE);
  snprintf(route, sizeof(route), "chat.example=ws://127.0.0.7:%d", f->port);
  assert_int_equal(config_parse_ws_route(route, &f->cfg), 0);
  policy_free(f->cfg.policy); /* the default policy: ports 443 and 80, loopback denied */
  f->cfg.policy = policy_new();
  px_request_start(request(f, &m, PX_FRONT_H2, PX_PROTO_WEBSOCKET, "chat.example", "/"));
  run_until_answered(f, &m);
  assert_int_equal(m.oks, 1);
  assert_non_null(strstr(b.request, "\r\nHost: chat.example\r\n"));
  kill_tunnel(&m);
  wsb_stop(&b);
}

/* ---- refused ---------------------------------------------------------------------------------- */

struct refusal {
  const char *name;
  enum px_proto proto;
  const char *host;        /* with ":P" appended (NULL: no authority) */
  const char *path;        /* "{P}" becomes P */
  const char *ports;       /* the allowed ports for this case, or NULL for all */
  uint64_t connect_timeout_ms;
  int black_hole;          /* open the 127.0.0.5 black hole */
  const char *ws_version;
  enum pxerr err;
  const char *detail;      /* a part of the detail */
  int dns_allowed;         /* the case may query DNS */
};

static const struct refusal g_refusals[] = {
    {"port", PX_PROTO_CONNECT, "ok.test", NULL, "443", 0, 0, NULL, PXERR_PORT_DENIED, "not allowed", 0},
    {"address", PX_PROTO_CONNECT, "private.test", NULL, NULL, 0, 0, NULL, PXERR_DEST_PROHIBITED, "private", 1},
    {"name class: IPv4 literal", PX_PROTO_CONNECT, "10.0.0.1", NULL, NULL, 0, 0, NULL, PXERR_DEST_PROHIBITED, "private", 0},
    {"name class: legacy IPv4", PX_PROTO_CONNECT, "0x0a000001", NULL, NULL, 0, 0, NULL, PXERR_DEST_PROHIBITED, "private", 0},
    {"name class: IPv6 mapped", PX_PROTO_CONNECT, "[::ffff:10.0.0.1]", NULL, NULL, 0, 0, NULL, PXERR_DEST_PROHIBITED, "", 0},
    {"dns error", PX_PROTO_CONNECT, "missing.test", NULL, NULL, 0, 0, NULL, PXERR_DNS_ERROR, "name not found", 1},
    {"dns timeout", PX_PROTO_CONNECT, "slow.test", NULL, NULL, 200, 0, NULL, PXERR_DNS_TIMEOUT, "dns timeout", 1},
    {"refused", PX_PROTO_CONNECT, "refused.test", NULL, NULL, 0, 0, NULL, PXERR_CONN_REFUSED, "refused", 1},
    {"connect timeout", PX_PROTO_CONNECT, "onlyhole.test", NULL, NULL, 300, 1, NULL, PXERR_CONN_TIMEOUT, "timed out", 1},
    {"bad authority", PX_PROTO_CONNECT, NULL, NULL, NULL, 0, 0, NULL, PXERR_BAD_REQUEST, ":authority", 0},
    {"udp: not the template", PX_PROTO_CONNECT_UDP, NULL, "/nope/{P}", NULL, 0, 0, NULL, PXERR_BAD_REQUEST, "template", 0},
    {"udp: port", PX_PROTO_CONNECT_UDP, NULL, "/.well-known/masque/udp/ok.test/{P}/", "443", 0, 0, NULL,
     PXERR_PORT_DENIED, "port", 0},
    {"udp: address", PX_PROTO_CONNECT_UDP, NULL, "/.well-known/masque/udp/private.test/{P}/", NULL, 0, 0, NULL,
     PXERR_DEST_PROHIBITED, "private", 1},
    {"udp: dns error", PX_PROTO_CONNECT_UDP, NULL, "/.well-known/masque/udp/missing.test/{P}/", NULL, 0, 0, NULL,
     PXERR_DNS_ERROR, "name not found", 1},
    {"ws: no :path", PX_PROTO_WEBSOCKET, "ws.test", NULL, NULL, 0, 0, NULL, PXERR_BAD_REQUEST, ":path", 0},
    /* The backend request is checked before the port policy (issue 8 item 2): 400, not 403. */
    {"ws: bad version", PX_PROTO_WEBSOCKET, "ws.test", "/chat", "443", 0, 0, "abc", PXERR_BAD_REQUEST, "Version", 0},
    {"ws: port", PX_PROTO_WEBSOCKET, "ws.test", "/chat", "443", 0, 0, NULL, PXERR_PORT_DENIED, "port", 0},
    {"ws: address", PX_PROTO_WEBSOCKET, "private.test", "/chat", NULL, 0, 0, NULL, PXERR_DEST_PROHIBITED, "private", 1},
    {"ws: refused", PX_PROTO_WEBSOCKET, "refused.test", "/chat", NULL, 0, 0, NULL, PXERR_CONN_REFUSED, "refused", 1},
    /* Forwarding (issue 11) goes through the same steps: port, DNS, address policy, dial. */
    {"forward: port", PX_PROTO_FORWARD, "ok.test", NULL, "443", 0, 0, NULL, PXERR_PORT_DENIED, "port", 0},
    {"forward: address", PX_PROTO_FORWARD, "private.test", NULL, NULL, 0, 0, NULL, PXERR_DEST_PROHIBITED, "private", 1},
    {"forward: dns error", PX_PROTO_FORWARD, "missing.test", NULL, NULL, 0, 0, NULL, PXERR_DNS_ERROR, "name not found", 1},
    {"forward: refused", PX_PROTO_FORWARD, "refused.test", NULL, NULL, 0, 0, NULL, PXERR_CONN_REFUSED, "refused", 1},
};

/* Every refusal: its status and Proxy-Status from the one table, one access-log line, one
 * count, no connection to anything; DNS only where the step order allows it. */
static void test_refusals(void **state) {
  struct fx *f = *state;
  black_hole(f, 0, "127.0.0.5");
  for (size_t i = 0; i < ARRAY_SIZE(g_refusals); i++) {
    const struct refusal *c = &g_refusals[i];
    struct mock_fe m;
    char auth[300] = "", path[300] = "", want[300];
    print_message("case: %s\n", c->name);
    if (c->host) authority_of(f, c->host, auth, sizeof(auth));
    const char *at = c->path ? strstr(c->path, "{P}") : NULL;
    if (at)
      snprintf(path, sizeof(path), "%.*s%d%s", (int)(at - c->path), c->path, f->port, at + 3);
    else if (c->path)
      snprintf(path, sizeof(path), "%s", c->path);
    assert_int_equal(policy_set_ports(f->cfg.policy, c->ports ? c->ports : "*"), 0);
    f->cfg.connect_timeout_ms = c->connect_timeout_ms ? c->connect_timeout_ms : 5000;
    int lines = access_lines(), accepted = f->accepted;
    unsigned queries = f->dns.nqueries;
    uint64_t counted = f->w->metrics.errors[c->err];
    struct px_request *rq = request(f, &m, i % 2 ? PX_FRONT_H2 : PX_FRONT_H1, c->proto, c->host ? auth : NULL,
                                    c->path ? path : NULL);
    rq->ws.version = c->ws_version;
    px_request_start(rq);
    run_until_answered(f, &m);
    assert_int_equal(m.errs, 1);
    assert_int_equal(m.out.err, c->err);
    assert_int_equal(m.out.status, pxerr_status(c->err));
    assert_false(m.out.relayed);
    assert_non_null(m.out.detail);
    if (!strstr(m.out.detail, c->detail)) fail_msg("%s: detail \"%s\"", c->name, m.out.detail);
    snprintf(want, sizeof(want), "h2tunnel; error=%s; details=", pxerr_token(c->err));
    assert_int_equal(strncmp(m.out.proxy_status, want, strlen(want)), 0);
    snprintf(want, sizeof(want), "%d %s: %s\n", m.out.status, http_reason(m.out.status), m.out.detail);
    assert_string_equal(m.out.body, want);
    assert_int_equal(f->w->metrics.errors[c->err], counted + 1);
    assert_int_equal(access_lines(), lines + 1);
    snprintf(want, sizeof(want), "\"proto\":\"%s\"", px_proto_name(c->proto));
    assert_non_null(strstr(access_log(), want));
    snprintf(want, sizeof(want), "\"status\":%d,\"error\":\"%s\"", m.out.status, pxerr_token(c->err));
    assert_non_null(strstr(access_log(), want));
    assert_int_equal(f->accepted, accepted);
    if (!c->dns_allowed) assert_int_equal(f->dns.nqueries, queries);
    assert_int_equal(f->w->metrics.tunnels_opened[c->proto == PX_PROTO_FORWARD ? 0 : c->proto], 0);
  }
}

/* Admission: while the worker stops, every protocol from either front end gets 503 at once --
 * before the target is resolved or any upstream opened (the drift issue 9 fixed: h2 connect-udp
 * used to dial anyway). */
static void test_stopping(void **state) {
  struct fx *f = *state;
  const enum px_proto protos[] = {PX_PROTO_CONNECT, PX_PROTO_CONNECT_UDP, PX_PROTO_WEBSOCKET};
  char auth[64], path[128];
  authority_of(f, "ok.test", auth, sizeof(auth));
  snprintf(path, sizeof(path), "/.well-known/masque/udp/ok.test/%d/", f->port);
  f->w->stopping = 1;
  for (int front = PX_FRONT_H1; front <= PX_FRONT_H2; front++) {
    for (size_t i = 0; i < ARRAY_SIZE(protos); i++) {
      struct mock_fe m;
      char want[128];
      int lines = access_lines();
      px_request_start(request(f, &m, (enum px_front)front, protos[i], auth, protos[i] == PX_PROTO_CONNECT ? NULL : path));
      assert_int_equal(m.errs, 1); /* decided within the call */
      assert_int_equal(m.out.status, 503);
      assert_int_equal(m.out.err, PXERR_SHUTTING_DOWN);
      assert_string_equal(m.out.proxy_status,
                          "h2tunnel; error=proxy_internal_response; details=\"proxy is shutting down\"");
      assert_int_equal(access_lines(), lines + 1);
      snprintf(want, sizeof(want), "\"front\":\"%s\",\"proto\":\"%s\"", px_front_name((enum px_front)front),
               px_proto_name(protos[i]));
      assert_non_null(strstr(access_log(), want));
    }
  }
  assert_int_equal(f->w->metrics.errors[PXERR_SHUTTING_DOWN], 6);
  assert_int_equal(f->dns.nqueries, 0);
  assert_int_equal(f->accepted, 0);
}

/* A connection's first request is admitted while the worker stops: the connection was accepted
 * before the listeners closed (or a binary upgrade's successor holds them), so a 503 would fail
 * a client that did nothing late. */
static void test_stopping_first_request(void **state) {
  struct fx *f = *state;
  struct mock_fe m;
  char auth[64];
  f->w->stopping = 1;
  struct px_request *rq = request(f, &m, PX_FRONT_H1, PX_PROTO_CONNECT, authority_of(f, "ok.test", auth, sizeof(auth)), NULL);
  rq->first_on_conn = 1;
  px_request_start(rq);
  run_until_answered(f, &m);
  assert_int_equal(m.oks, 1);
  assert_int_equal(m.out.status, 200);
  assert_int_equal(f->w->metrics.errors[PXERR_SHUTTING_DOWN], 0);
  f->w->stopping = 0; /* else the tunnel's end finishes the stop: the fixture closes the loop itself */
  kill_tunnel(&m);
}

/* The backend answers, but not 101: its status goes to the client without Proxy-Status (XC-07);
 * logged as backend_refused, not counted as a proxy error. */
static void test_websocket_backend_refuses(void **state) {
  struct fx *f = *state;
  struct mock_fe m;
  struct wsb b;
  char auth[64];
  wsb_start(f, &b, WSB_REFUSE);
  px_request_start(request(f, &m, PX_FRONT_H2, PX_PROTO_WEBSOCKET, authority_of(f, "ws.test", auth, sizeof(auth)), "/"));
  run_until_answered(f, &m);
  assert_int_equal(m.errs, 1);
  assert_int_equal(b.answered, 1);
  assert_true(m.out.relayed);
  assert_int_equal(m.out.status, 403);
  assert_int_equal(m.out.err, PXERR_NONE);
  assert_string_equal(m.out.proxy_status, "");
  assert_string_equal(m.out.body, "403: the WebSocket backend refused the upgrade\n");
  assert_int_equal(errors_counted(f), 0);
  assert_int_equal(access_lines(), 1);
  assert_non_null(strstr(access_log(), "\"status\":403,\"error\":\"backend_refused\""));
  wsb_stop(&b);
}

/* The front end cannot answer (h2: the response could not be submitted): the upstream is reset,
 * no tunnel starts, the early bytes never leave. */
static void test_answer_ok_fails(void **state) {
  struct fx *f = *state;
  struct mock_fe m;
  char auth[64];
  f->hold = 1;
  struct px_request *rq = request(f, &m, PX_FRONT_H2, PX_PROTO_CONNECT, authority_of(f, "ok.test", auth, sizeof(auth)), NULL);
  m.refuse = 1;
  rq->early = buf_get(&f->w->pool);
  rq->early->len = 5;
  px_request_start(rq);
  run_until_answered(f, &m);
  assert_int_equal(m.oks, 1);
  assert_int_equal(m.client_eps, 0);
  assert_true(list_empty(&f->w->tunnels));
  assert_int_equal(f->w->metrics.tunnels_opened[TUN_PROTO_CONNECT], 0);
  for (int i = 0; f->origin_eof == 0; i++) {
    assert_true(i < 1000);
    uv_run(&f->w->loop, UV_RUN_ONCE);
  }
  assert_int_equal(f->nrx, 0);
}

/* ---- authentication at admission (proxy/auth.c) ----------------------------------------------- */

/* htpasswd -nbB -C 4 alice pw-alice (bob has the same hash, so the same password). */
#define BCRYPT_PW "$2y$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W"

static void enable_auth(struct fx *f) {
  static const char text[] = "alice:" BCRYPT_PW "\nbob:" BCRYPT_PW "\ncarol:" BCRYPT_PW "\n";
  struct cfgfile_err err;
  struct access_auth *au = &f->cfg.access->auth;
  au->users = users_parse("users", text, strlen(text), &err);
  assert_non_null(au->users);
  free(au->realm);
  au->realm = strdup("test realm");
  f->w->auth_cache = auth_cache_new(16, 60000);
  f->w->auth_cache->metrics = &f->w->metrics;
}

/* No credentials, a malformed value, a wrong password: 407 with the challenge (the first two
 * within the call); the right password: checked off the loop (AUTHENTICATING), then the tunnel
 * with the user in the outcome and the log; the same value again: from the cache. Every protocol
 * and front end goes through the same admission. */
static void test_auth(void **state) {
  struct fx *f = *state;
  struct mock_fe m;
  char auth[64];
  authority_of(f, "ok.test", auth, sizeof(auth));
  enable_auth(f);

  px_request_start(request(f, &m, PX_FRONT_H1, PX_PROTO_CONNECT, auth, NULL));
  assert_int_equal(m.errs, 1);
  assert_int_equal(m.out.status, 407);
  assert_int_equal(m.out.nextra, 1);
  assert_string_equal(m.out.extra[0].name, "proxy-authenticate");
  assert_string_equal(m.out.extra[0].value, "Basic realm=\"test realm\", charset=\"UTF-8\"");
  assert_null(m.out.user);

  struct px_request *rq = request(f, &m, PX_FRONT_H2, PX_PROTO_CONNECT, auth, NULL);
  rq->credentials = strdup("Basic !!!!");
  px_request_start(rq);
  assert_int_equal(m.out.status, 407);
  assert_string_equal(m.out.detail, "not a base64 character");

  rq = request(f, &m, PX_FRONT_H2, PX_PROTO_CONNECT, auth, NULL);
  rq->credentials = strdup("Basic YWxpY2U6d3Jvbmc="); /* alice:wrong */
  px_request_start(rq);
  assert_int_equal(answered(&m), 0);
  assert_int_equal(rq->phase, PX_AUTHENTICATING);
  run_until_answered(f, &m);
  assert_int_equal(m.out.status, 407);
  assert_string_equal(m.out.detail, "invalid credentials");

  for (int round = 0; round < 2; round++) {
    rq = request(f, &m, PX_FRONT_H1, PX_PROTO_CONNECT, auth, NULL);
    rq->credentials = strdup("Basic YWxpY2U6cHctYWxpY2U="); /* alice:pw-alice */
    px_request_start(rq);
    if (round == 0) assert_int_equal(rq->phase, PX_AUTHENTICATING);
    run_until_answered(f, &m);
    assert_int_equal(m.oks, 1);
    assert_string_equal(m.out.user, "alice");
    kill_tunnel(&m);
  }
  assert_non_null(strstr(access_log(), "\"user\":\"alice\""));
  assert_int_equal(f->w->metrics.auth_ok[AUTH_OK_PASSWORD], 1);
  assert_int_equal(f->w->metrics.auth_ok[AUTH_OK_CACHED], 1);
  assert_int_equal(f->w->metrics.auth_fail[AUTH_FAIL_MISSING], 1);
  assert_int_equal(f->w->metrics.auth_fail[AUTH_FAIL_MALFORMED], 1);
  assert_int_equal(f->w->metrics.auth_fail[AUTH_FAIL_INVALID], 1);
  assert_null(strstr(access_log(), "pw-alice"));
  assert_null(strstr(access_log(), "YWxpY2U6"));
}

/* The client goes away while its password is checked: the check finishes on the pool and calls
 * no one (ASan: the request is freed); and a check that ends after the stop began answers 503. */
static void test_auth_cancel(void **state) {
  struct fx *f = *state;
  struct mock_fe m, m2;
  char auth[64];
  authority_of(f, "ok.test", auth, sizeof(auth));
  enable_auth(f);
  char path[128];
  snprintf(path, sizeof(path), "/.well-known/masque/udp/ok.test/%d/", f->port);
  struct px_request *rq = request(f, &m, PX_FRONT_H2, PX_PROTO_CONNECT_UDP, "127.0.0.1", path);
  rq->credentials = strdup("Basic Ym9iOnB3LWFsaWNl"); /* bob:pw-alice */
  px_request_start(rq);
  assert_int_equal(rq->phase, PX_AUTHENTICATING);
  assert_int_equal(f->w->auth_cache->pending, 1);
  px_request_cancel(rq);
  m.rq = NULL;
  uint64_t start = now_ms(f);
  while (f->w->auth_cache->pending > 0) {
    assert_true(now_ms(f) - start < 10000);
    uv_run(&f->w->loop, UV_RUN_ONCE);
  }
  assert_int_equal(answered(&m), 0);
  assert_int_equal(f->w->metrics.auth_checks_pending, 0);

  rq = request(f, &m2, PX_FRONT_H1, PX_PROTO_CONNECT, auth, NULL);
  rq->credentials = strdup("Basic Y2Fyb2w6cHctYWxpY2U="); /* carol:pw-alice */
  px_request_start(rq);
  assert_int_equal(rq->phase, PX_AUTHENTICATING);
  f->w->stopping = 1;
  run_until_answered(f, &m2);
  assert_int_equal(m2.out.status, 503);
  assert_int_equal(m2.out.err, PXERR_SHUTTING_DOWN);
}

/* ---- cancel ----------------------------------------------------------------------------------- */

/* The client goes away before anything was started: nothing leaks (early bytes, credentials). */
static void test_cancel_new(void **state) {
  struct fx *f = *state;
  struct mock_fe m;
  struct px_request *rq = request(f, &m, PX_FRONT_H1, PX_PROTO_CONNECT, "ok.test:443", NULL);
  rq->early = buf_get(&f->w->pool);
  rq->credentials = strdup("Basic x");
  px_request_cancel(rq);
  assert_int_equal(answered(&m), 0);
}

struct sweep {
  struct mock_fe recs[300];
  int k;                     /* the request being swept */
  int turns;
  unsigned phases;           /* bit per enum px_phase a cancel happened in */
  int after_accept;          /* a cancel came after the upstream accepted the connection */
  int accepted_before;
};

static struct sweep g_sweep;

static void cancel_at_turn(struct fx *f) {
  struct sweep *s = &g_sweep;
  struct mock_fe *m = &s->recs[s->k];
  if (!m->rq || ++s->turns != s->k + 1) return;
  s->phases |= 1u << m->rq->phase;
  struct wsb *b = f->turn_arg;
  if ((b ? b->accepted : f->accepted) > s->accepted_before) s->after_accept = 1;
  px_request_cancel(m->rq);
  m->rq = NULL;
}

/* Starts the same request again and again, cancelling it at turn 1, 2, 3... (in the check phase:
 * after the turn's I/O callbacks, before the deferred work and the close callbacks) until one is
 * answered before its cancel point. A cancelled request never calls its front end; the last one
 * succeeds and its tunnel is ended. Returns the phases cancelled in. */
static unsigned sweep(struct fx *f, enum px_proto proto, const char *authority, const char *path, struct wsb *b) {
  struct sweep *s = &g_sweep;
  memset(s, 0, sizeof(*s));
  uv_timer_stop(&f->guard); /* turns here are the request's own; a wait is one turn */
  f->on_turn = cancel_at_turn;
  f->turn_arg = b;
  for (s->k = 0; s->k < (int)ARRAY_SIZE(s->recs); s->k++) {
    struct mock_fe *m = &s->recs[s->k];
    s->turns = 0;
    s->accepted_before = b ? b->accepted : f->accepted;
    px_request_start(request(f, m, PX_FRONT_H2, proto, authority, path));
    for (int i = 0; m->rq && !answered(m); i++) {
      assert_true(i < 5000);
      uv_run(&f->w->loop, UV_RUN_ONCE);
    }
    if (answered(m)) break;
  }
  f->on_turn = NULL;
  print_message("%s: cancelled at turns 1..%d, answered in turn %d\n", px_proto_name(proto), s->k, s->k + 1);
  assert_true(s->k > 0 && s->k < (int)ARRAY_SIZE(s->recs));
  for (int i = 0; i < s->k; i++) assert_int_equal(answered(&s->recs[i]), 0);
  struct mock_fe *last = &s->recs[s->k];
  assert_int_equal(last->oks, 1);
  kill_tunnel(last);
  return s->phases;
}

/* Issue 8 item 1 at the request level: the first address refuses; cancelled at every turn,
 * including while that attempt's socket is closing. */
static void test_cancel_connect(void **state) {
  struct fx *f = *state;
  char auth[64];
  assert_int_equal(sweep(f, PX_PROTO_CONNECT, authority_of(f, "two.test", auth, sizeof(auth)), NULL, NULL),
                   1u << PX_DIALING);
}

static void test_cancel_udp(void **state) {
  struct fx *f = *state;
  char path[128];
  snprintf(path, sizeof(path), "/.well-known/masque/udp/ok.test/%d/", f->port);
  assert_int_equal(sweep(f, PX_PROTO_CONNECT_UDP, "127.0.0.1", path, NULL), 1u << PX_RESOLVING);
}

/* WebSocket: cancelled while resolving, connecting, and with the backend connection up (the
 * request written, the answer on its way). */
static void test_cancel_websocket(void **state) {
  struct fx *f = *state;
  struct wsb b;
  char auth[64];
  wsb_start(f, &b, WSB_UPGRADE);
  assert_int_equal(sweep(f, PX_PROTO_WEBSOCKET, authority_of(f, "ws.test", auth, sizeof(auth)), "/", &b),
                   1u << PX_UPGRADING);
  assert_true(g_sweep.after_accept);
  assert_true(b.answered >= 1);
  wsb_stop(&b);
}


/* ---- rules and limits ------------------------------------------------------------------------- */

/* Replaces the fixture's (empty) access model with |yaml|'s, and gives the worker its limits. */
static void use_access(struct fx *f, const char *yaml) {
  struct access *a = access_fx_load("t.yaml", yaml);
  access_free(f->cfg.access);
  f->cfg.access = a;
  limits_free(f->w->limits);
  f->w->limits = limits_new(a);
}

static void set_client(struct px_request *rq, const char *ip) {
  struct sockaddr_in *sin = (struct sockaddr_in *)&rq->client_addr;
  uv_ip4_addr(ip, 4321, sin);
}

static void render_limits(struct fx *f, char *buf, size_t cap) {
  struct strbuf sb;
  strbuf_init_fixed(&sb, buf, cap);
  limits_render(f->w->limits, &sb);
}

/* Authentication on (enable_auth's users, password "pw-alice"), and |rq| presents |user|'s
 * credentials: the user comes from the real admission, checked off the loop. */
static void as_user(struct px_request *rq, const char *user) {
  char plain[64];
  unsigned char b64[128];
  int n = snprintf(plain, sizeof(plain), "%s:pw-alice", user);
  EVP_EncodeBlock(b64, (const unsigned char *)plain, n);
  char value[160];
  snprintf(value, sizeof(value), "Basic %s", b64);
  rq->credentials = strdup(value);
}

static const char g_rules[] = "rules:\n"
                              "  - { name: blocked, deny: { dest: [\"*.blocked.test\", \"10.0.0.0/8\"] } }\n"
                              "  - { name: no-udp, deny: { protocols: [connect-udp], users: [carol] } }\n"
                              "  - { name: bob-lab, allow: { users: [bob], dest: [\"127.0.0.0/29\"] } }\n"
                              "  - { name: alice-ok, allow: { users: [alice], dest: [ok.test] } }\n";

/* A rule's denial: 403 naming the rule (never its contents), counted by rule; on the name before
 * any DNS query, on the address after it (a name resolving to a private address). */
static void test_rule_denials(void **state) {
  struct fx *f = *state;
  char auth[64], path[128], buf[4096];
  use_access(f, g_rules);
  struct mock_fe m;
  /* On the name: no DNS query. */
  unsigned queries = f->dns.nqueries;
  request(f, &m, PX_FRONT_H2, PX_PROTO_CONNECT, authority_of(f, "www.Blocked.test", auth, sizeof(auth)), NULL);
  px_request_start(m.rq);
  assert_int_equal(m.errs, 1); /* decided within the call */
  assert_int_equal(m.out.status, 403);
  assert_int_equal(m.out.err, PXERR_RULE_DENIED);
  assert_string_equal(m.out.proxy_status, "h2tunnel; error=http_request_denied; details=\"denied by rule blocked\"");
  assert_null(strstr(m.out.body, "blocked.test")); /* the rule's contents stay secret (PS-03) */
  assert_non_null(m.out.rule);
  assert_string_equal(m.out.rule->name, "blocked");
  assert_int_equal(f->dns.nqueries, queries);
  assert_non_null(strstr(access_log(), "\"status\":403,\"error\":\"http_request_denied\",\"detail\":\"denied by rule "
                                      "blocked\",\"rule\":\"blocked\""));
  /* On the address: private.test is 10.0.0.1, which only the resolver can tell. */
  request(f, &m, PX_FRONT_H1, PX_PROTO_CONNECT, authority_of(f, "private.test", auth, sizeof(auth)), NULL);
  px_request_start(m.rq);
  run_until_answered(f, &m);
  assert_int_equal(m.out.status, 403);
  assert_string_equal(m.out.proxy_status,
                      "h2tunnel; error=destination_ip_prohibited; details=\"denied by rule blocked\"");
  assert_string_equal(m.out.rule->name, "blocked");
  assert_true(f->dns.nqueries > queries);
  /* By protocol and user: carol's connect-udp, on either front end. */
  snprintf(path, sizeof(path), "/.well-known/masque/udp/ok.test/%d/", f->port);
  enable_auth(f);
  for (int front = PX_FRONT_H1; front <= PX_FRONT_H2; front++) {
    request(f, &m, (enum px_front)front, PX_PROTO_CONNECT_UDP, "127.0.0.1", path);
    as_user(m.rq, "carol");
    px_request_start(m.rq);
    /* "blocked" has a CIDR before it: every later rule is decided on the address too. */
    run_until_answered(f, &m);
    assert_int_equal(m.errs, 1);
    assert_int_equal(m.out.status, 403);
    assert_string_equal(m.out.rule->name, "no-udp");
    assert_string_equal(m.out.proxy_status,
                        "h2tunnel; error=destination_ip_prohibited; details=\"denied by rule no-udp\"");
  }
  assert_int_equal(f->w->metrics.errors[PXERR_RULE_DENIED], 1);
  assert_int_equal(f->w->metrics.errors[PXERR_DEST_PROHIBITED], 3);
  render_limits(f, buf, sizeof(buf));
  assert_non_null(strstr(buf, "h2tunnel_rule_denials_total{rule=\"blocked\"} 2\n"));
  assert_non_null(strstr(buf, "h2tunnel_rule_denials_total{rule=\"no-udp\"} 2\n"));
  assert_non_null(strstr(buf, "h2tunnel_rule_denials_total{rule=\"alice-ok\"} 0\n"));
  assert_int_equal(f->accepted, 0);
}

/* An allow: the rule is in the outcome and in the tunnel's log line; a rule with a CIDR opens
 * that range past the built-in class policy for its users only. */
static void test_rule_allows(void **state) {
  struct fx *f = *state;
  char auth[64];
  use_access(f, g_rules);
  /* The built-in policy without loopback: 127.0.0.3 is denied unless a rule opens it. */
  policy_free(f->cfg.policy);
  f->cfg.policy = policy_new();
  assert_int_equal(policy_set_ports(f->cfg.policy, "*"), 0);
  f->hold = 1;
  struct mock_fe m;
  /* Anonymous: no rule; the class policy decides. */
  request(f, &m, PX_FRONT_H2, PX_PROTO_CONNECT, authority_of(f, "ok.test", auth, sizeof(auth)), NULL);
  px_request_start(m.rq);
  run_until_answered(f, &m);
  assert_int_equal(m.out.status, 403);
  assert_null(m.out.rule);
  enable_auth(f);
  request(f, &m, PX_FRONT_H1, PX_PROTO_CONNECT, authority_of(f, "ok.test", auth, sizeof(auth)), NULL);
  as_user(m.rq, "bob");
  px_request_start(m.rq);
  run_until_answered(f, &m);
  assert_int_equal(m.oks, 1);
  assert_string_equal(m.out.rule->name, "bob-lab");
  kill_tunnel(&m);
  assert_non_null(strstr(access_log(), "\"rule\":\"bob-lab\",\"status\":200"));
  /* alice's rule matches the name, which opens no address: the class policy still says no. */
  request(f, &m, PX_FRONT_H2, PX_PROTO_CONNECT, authority_of(f, "ok.test", auth, sizeof(auth)), NULL);
  as_user(m.rq, "alice");
  px_request_start(m.rq);
  run_until_answered(f, &m);
  assert_int_equal(m.out.status, 403);
  assert_int_equal(m.out.err, PXERR_DEST_PROHIBITED);
  assert_string_equal(m.out.detail, "loopback");
  assert_int_equal(f->accepted, 1);
}

/* Tunnel counts: the third tunnel of a client limited to 2 gets 429 with Retry-After while
 * another client's succeed; a user's limit holds across clients; the counts go back to 0 when
 * the tunnels end (checklist H2C-17). */
static void test_limits_counts(void **state) {
  struct fx *f = *state;
  char auth[64], buf[4096];
  use_access(f, "limits:\n"
                "  default: { tunnels: 2 }\n"
                "  per-client: { tunnels: 2 }\n");
  f->hold = 1;
  authority_of(f, "ok.test", auth, sizeof(auth));
  struct mock_fe m[6];
  static const char *const clients[] = {"192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.2", "192.0.2.3"};
  static const int want[] = {200, 200, 429, 200, 200, 429};
  for (int i = 0; i < 6; i++) {
    if (i == 3) enable_auth(f); /* the first three are anonymous, the others carol */
    request(f, &m[i], i % 2 ? PX_FRONT_H2 : PX_FRONT_H1, PX_PROTO_CONNECT, auth, NULL);
    set_client(m[i].rq, clients[i]);
    if (i >= 3) as_user(m[i].rq, "carol");
    px_request_start(m[i].rq);
    run_until_answered(f, &m[i]);
    if (m[i].out.status != want[i]) fail_msg("tunnel %d: %d", i, m[i].out.status);
  }
  /* The client's limit: 429, Retry-After, Proxy-Status naming the kind of limit. */
  assert_int_equal(m[2].out.err, PXERR_LIMITED);
  assert_int_equal(m[2].out.nextra, 1);
  assert_string_equal(m[2].out.extra[0].name, "retry-after");
  assert_string_equal(m[2].out.extra[0].value, "1");
  assert_string_equal(m[2].out.proxy_status,
                      "h2tunnel; error=http_request_denied; details=\"too many tunnels from this client\"");
  /* carol's third from a third client: her user limit. */
  assert_string_equal(m[5].out.detail, "too many tunnels for this user");
  struct sockaddr_in c1;
  uv_ip4_addr("192.0.2.1", 0, &c1);
  assert_int_equal(limits_client_active(f->w->limits, (const struct sockaddr *)&c1), 2);
  assert_int_equal(limits_user_active(f->w->limits, "carol"), 2);
  render_limits(f, buf, sizeof(buf));
  assert_non_null(strstr(buf, "h2tunnel_limit_rejections_total{kind=\"client_tunnels\"} 1\n"));
  assert_non_null(strstr(buf, "h2tunnel_limit_rejections_total{kind=\"user_tunnels\"} 1\n"));
  assert_int_equal(f->w->metrics.errors[PXERR_LIMITED], 2);
  for (int i = 0; i < 6; i++)
    if (m[i].oks) kill_tunnel(&m[i]);
  assert_int_equal(limits_client_active(f->w->limits, (const struct sockaddr *)&c1), 0);
  assert_int_equal(limits_user_active(f->w->limits, "carol"), 0);
  /* A refused request that never became a tunnel gives its count back too. */
  struct mock_fe r;
  request(f, &r, PX_FRONT_H1, PX_PROTO_CONNECT, authority_of(f, "refused.test", auth, sizeof(auth)), NULL);
  set_client(r.rq, "192.0.2.1");
  as_user(r.rq, "carol");
  px_request_start(r.rq);
  run_until_answered(f, &r);
  assert_int_equal(r.out.status, 502);
  assert_int_equal(limits_client_active(f->w->limits, (const struct sockaddr *)&c1), 0);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_connect_allowed),
      T(test_udp_allowed),
      T(test_websocket_allowed),
      T(test_websocket_route_trusted),
      T(test_refusals),
      T(test_stopping),
      T(test_stopping_first_request),
      T(test_websocket_backend_refuses),
      T(test_answer_ok_fails),
      T(test_cancel_new),
      T(test_cancel_connect),
      T(test_cancel_udp),
      T(test_cancel_websocket),
      T(test_auth),
      T(test_auth_cancel),
      T(test_rule_denials),
      T(test_rule_allows),
      T(test_limits_counts),
  };
#undef T
  g_access = tmpfile();
  CHECK(g_access != NULL);
  log_set_access_stream(g_access);
  CHECK(dns_global_init() == 0);
  log_set_level(LOG_ERROR);
  int r = cmocka_run_group_tests(tests, NULL, NULL);
  dns_global_cleanup();
  fclose(g_access);
  return r;
}
