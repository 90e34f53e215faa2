/* The request path (see request.h for the order of the steps and the phases). */
#include "proxy/request.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "proxy/dialer.h"
#include "proxy/pool.h"
#include "proxy/recheck.h"
#include "proxy/resolve.h"
#include "proxy/rules.h"
#include "src/access.h"
#include "src/buf.h"
#include "src/config.h"
#include "src/conn.h"
#include "src/limits.h"
#include "src/log.h"
#include "src/net.h"
#include "src/membudget.h"
#include "src/policy.h"
#include "src/status.h"
#include "src/udp_tmpl.h"
#include "src/worker.h"
#include "tunnel/tcp_ep.h"
#include "tunnel/tunnel.h"
#include "tunnel/udp_ep.h"

_Static_assert((int)PX_FRONT_H1 == (int)METRICS_FRONT_H1 && (int)PX_FRONT_H2 == (int)METRICS_FRONT_H2,
               "the histograms index fronts by px_front");
_Static_assert((int)PX_PROTO_CONNECT == (int)TUN_PROTO_CONNECT && (int)PX_PROTO_WEBSOCKET == (int)TUN_PROTO_WEBSOCKET &&
                   (int)PX_PROTO_CONNECT_UDP == (int)TUN_PROTO_CONNECT_UDP && (int)PX_PROTO_FORWARD == TUN_PROTO_COUNT,
               "the tunnel protocols keep the tunnel's values");

static const char *const front_names[] = {
#define XX(n, s) s,
    PX_FRONT_MAP(XX)
#undef XX
};

static const char *const proto_names[] = {
#define XX(n, s) s,
    PX_PROTO_MAP(XX)
#undef XX
};

const char *px_front_name(enum px_front f) { return front_names[f]; }

/* Copies the text |src| into |dst| (|cap| bytes), cut to fit: on the path of every request, so
 * no printf. */
static void set_text(char *dst, size_t cap, const char *src) {
  size_t n = strnlen(src, cap - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
}
const char *px_proto_name(enum px_proto p) { return proto_names[p]; }

struct px_request *px_request_new(struct worker *w, enum px_front front, enum px_proto proto,
                                  const struct px_front_ops *ops, void *fe) {
  struct px_request *rq = xcalloc(1, sizeof(*rq));
  rq->w = w;
  rq->cfg = config_ref(w->cfg); /* a reload during the request does not free what it reads */
  rq->front = front;
  rq->proto = proto;
  rq->ops = ops;
  rq->fe = fe;
  rq->client_addr.ss_family = AF_UNSPEC;
  rq->peer_addr.ss_family = AF_UNSPEC;
  rq->start_ms = uv_now(&w->loop);
  rq->phase = PX_NEW;
  return rq;
}

void px_request_set_client(struct px_request *rq, struct conn *c) {
  rq->client_addr = c->peer_addr; /* the PROXY protocol's client when a balancer sent one */
  set_text(rq->client, sizeof(rq->client), c->peer);
  rq->listener = c->listener;
  px_auth_set_cert(&rq->auth, rq->cfg, c->x.ssl);
}

static void request_free(struct px_request *rq) {
  lim_ticket_release(rq->ticket);
  if (rq->mb_held) membudget_release(rq->w->membudget);
  buf_put(&rq->w->pool, rq->early);
  if (rq->credentials) OPENSSL_cleanse(rq->credentials, strlen(rq->credentials));
  free(rq->credentials);
  config_unref(rq->cfg);
  free(rq);
}

/* ---- the error answer: described once, logged once, counted once ---------------------------- */

/* The access-log line of a request that never became a tunnel. */
static void log_rejected(const struct px_request *rq, const char *error) {
  char line[LOG_ACCESS_LINE_MAX + 1];
  struct strbuf sb;
  strbuf_init_fixed(&sb, line, sizeof(line));
  log_access_head(&sb, px_front_name(rq->front), px_proto_name(rq->proto), rq->client, rq->target);
  if (rq->out.user) {
    strbuf_puts(&sb, ",\"user\":");
    log_json_str(&sb, rq->out.user);
  }
  strbuf_printf(&sb, ",\"status\":%d,\"error\":", rq->out.status);
  log_json_str(&sb, error);
  strbuf_puts(&sb, ",\"detail\":");
  log_json_str(&sb, rq->out.detail);
  if (rq->out.rule) {
    strbuf_puts(&sb, ",\"rule\":");
    log_json_str(&sb, rq->out.rule->name);
  }
  strbuf_printf(&sb, ",\"config_version\":%llu,\"duration_ms\":%llu}", (unsigned long long)rq->cfg->version,
                (unsigned long long)(uv_now(&rq->w->loop) - rq->start_ms));
  log_access_write(&sb);
}

/* Logs |rq|'s outcome, hands it to the front end and frees |rq|. */
static void answer_error(struct px_request *rq) {
  const struct px_outcome *o = &rq->out;
  const char *error = o->relayed ? "backend_refused" : pxerr_token(o->err);
  /* A target not interpreted yet is logged as it was asked for. */
  if (!rq->target[0]) set_text(rq->target, sizeof(rq->target), rq->authority ? rq->authority : rq->path ? rq->path : "");
  log_rejected(rq, error);
  status_reject(rq->w, px_front_name(rq->front), px_proto_name(rq->proto), rq->client, rq->target, rq->out.user,
                o->status, error, o->detail);
  log_debug("%s %s: %s %s: %d %s (%s)", px_front_name(rq->front), rq->client, px_proto_name(rq->proto),
            rq->target, o->status, error, o->detail ? o->detail : "");
  rq->ops->answer_error(rq->fe, o);
  request_free(rq);
}

/* Refuses |rq| with |err| (see pxerr.h for its status and Proxy-Status type). */
static void fail(struct px_request *rq, enum pxerr err, const char *detail) {
  struct px_outcome *o = &rq->out;
  char proxy_status[PXERR_PROXY_STATUS_MAX], body[PXERR_BODY_MAX];
  if (err == PXERR_DEST_PROHIBITED && rq->addr_denied) { /* a rule refused the addresses */
    o->rule = rq->addr_denied;
    limits_count_denial(rq->w->limits, rq->cfg->access, (size_t)(o->rule - rq->cfg->access->rules));
  }
  o->err = err;
  o->detail = detail;
  o->status = pxerr_status(err);
  pxerr_proxy_status(proxy_status, sizeof(proxy_status), err, detail);
  pxerr_body(body, sizeof(body), o->status, detail);
  o->proxy_status = proxy_status;
  o->body = body;
  METRIC_ADD(&rq->w->metrics, errors[err], 1);
  answer_error(rq);
}

/* The WebSocket backend answered, but not 101: the client sees its status (XC-07), without
 * Proxy-Status (the refusal is the backend's, not ours). */
static void relay_refusal(struct px_request *rq, int status, const char *detail) {
  struct px_outcome *o = &rq->out;
  char body[PXERR_BODY_MAX];
  o->relayed = 1;
  o->detail = detail;
  o->status = status >= 200 && status <= 599 ? status : 502;
  snprintf(body, sizeof(body), "%d: %s\n", status, detail);
  o->proxy_status = "";
  o->body = body;
  answer_error(rq);
}

void px_request_fail(struct px_request *rq, enum pxerr err, const char *detail) { fail(rq, err, detail); }

void px_request_answered(struct px_request *rq, int status, const char *method, const char *detail) {
  char line[LOG_ACCESS_LINE_MAX + 1];
  struct strbuf sb;
  if (!rq->target[0]) set_text(rq->target, sizeof(rq->target), rq->authority ? rq->authority : "");
  strbuf_init_fixed(&sb, line, sizeof(line));
  log_access_head(&sb, px_front_name(rq->front), px_proto_name(rq->proto), rq->client, rq->target);
  strbuf_puts(&sb, ",\"method\":");
  log_json_str(&sb, method);
  strbuf_printf(&sb, ",\"status\":%d,\"answered\":\"proxy\",\"detail\":", status);
  log_json_str(&sb, detail);
  strbuf_printf(&sb, ",\"duration_ms\":%llu}", (unsigned long long)(uv_now(&rq->w->loop) - rq->start_ms));
  log_access_write(&sb);
  if (rq->proto == PX_PROTO_FORWARD) METRIC_ADD(&rq->w->metrics, fwd_requests[status / 100], 1);
  request_free(rq);
}

/* ---- success: the answer, then the tunnel ------------------------------------------------------ */

/* The upstream |b| stands (|first_down|, taken, holds bytes it sent already): the front end
 * answers, and the tunnel starts between its side and |b| with the client's early bytes. The
 * tunnel keeps a copy of the access-log fields; |rq| is freed before the first byte moves. */
static void succeed(struct px_request *rq, struct tun_ep *b, struct buf_chunk *first_down) {
  struct px_outcome *o = &rq->out;
  struct worker *w = rq->w;
  struct tun_info info = {.proto = (enum tun_proto)rq->proto,
                          .front = px_front_name(rq->front),
                          .front_id = (enum metrics_front)rq->front,
                          .start_ms = rq->start_ms,
                          .rule = o->rule ? o->rule->name : NULL};
  set_text(info.client, sizeof(info.client), rq->client);
  set_text(info.target, sizeof(info.target), rq->target);
  set_text(info.resolved, sizeof(info.resolved), o->peer);
  info.user = o->user; /* copied by tunnel_new */
  /* What a reload re-checks (proxy/recheck.h), under the snapshot that decided it. */
  info.cfg = rq->cfg;
  info.client_addr = rq->client_addr;
  info.peer_addr = rq->peer_addr;
  info.asked = rq->dest;
  if (rq->trusted && authority_parse(rq->authority, strlen(rq->authority), &info.asked, NULL) != 0)
    info.asked = rq->dest;
  info.trusted = rq->trusted;
  info.keep_on_reload = o->rule && o->rule->keep_on_reload;
  info.cert_user = o->user && rq->auth.cert_user[0] && strcmp(o->user, rq->auth.cert_user) == 0;
  const char *why;
  if (rq->cfg != w->cfg && px_recheck_decide(w->cfg, &info, &why) == PX_RECHECK_CLOSE) {
    /* A reload came while the request was decided (a password check, DNS, the dial) and its
     * re-check of the live tunnels could not see this one: judged now, before any 200. */
    buf_put(&w->pool, first_down);
    b->aborted = 1;
    b->ops->abort(b);
    b->ops->close(b);
    snprintf(o->detail_buf, sizeof(o->detail_buf), "refused since the reload: %s", why);
    o->rule = NULL; /* it pointed into the old snapshot, which may go now */
    struct config *old = rq->cfg;
    rq->cfg = config_ref(w->cfg);
    config_unref(old);
    fail(rq, PXERR_CLIENT_DENIED, o->detail_buf);
    return;
  }
  o->status = 200;
  int status = rq->ops->answer_ok(rq->fe, o);
  if (status == 0) {
    buf_put(&w->pool, first_down);
    b->aborted = 1;
    b->ops->abort(b);
    b->ops->close(b);
    request_free(rq);
    return;
  }
  metrics_observe(&w->metrics, HIST_SETUP, (enum metrics_front)rq->front, (enum tun_proto)rq->proto,
                  uv_now(&w->loop) - rq->start_ms);
  info.status = status;
  info.ticket = rq->ticket;
  rq->ticket = NULL; /* the tunnel's now */
  info.mb_held = rq->mb_held;
  rq->mb_held = 0;
  struct tunnel *t = tunnel_new(w, rq->ops->client_ep(rq->fe), b, &info);
  struct buf_chunk *early = rq->early;
  rq->early = NULL;
  request_free(rq);
  if (first_down) tunnel_on_read(b, first_down); /* backend bytes read with its 101 (XC-09) */
  tunnel_start(t, early);
}

/* ---- the upstream's results --------------------------------------------------------------------- */

/* What the rules look at. */
static void rules_query_of(const struct px_request *rq, struct rules_query *q) {
  static const unsigned bits[] = {[PX_PROTO_CONNECT] = ACCESS_PROTO_CONNECT,
                                  [PX_PROTO_WEBSOCKET] = ACCESS_PROTO_WEBSOCKET,
                                  [PX_PROTO_CONNECT_UDP] = ACCESS_PROTO_CONNECT_UDP,
                                  [PX_PROTO_FORWARD] = 0};
  q->user = rq->out.user;
  q->client = (const struct sockaddr *)&rq->client_addr;
  q->host = rq->dest.host;
  q->port = rq->dest.port;
  q->proto = bits[rq->proto];
}

/* "denied by rule NAME" (the name, never the rule's contents). */
static const char *rule_detail(struct px_request *rq, const struct access_rule *r) {
  char *p = rq->rule_detail;
  static const char head[] = "denied by rule ";
  memcpy(p, head, sizeof(head) - 1);
  set_text(p + sizeof(head) - 1, sizeof(rq->rule_detail) - (sizeof(head) - 1), r->name);
  return p;
}

/* The rules still open, then the policy, on each resolved address (resolve.h). */
static int check_addr(void *arg, const struct sockaddr *sa, const char **why) {
  struct px_request *rq = arg;
  if (rq->rules_by_addr) {
    struct rules_query q;
    struct rules_decision d;
    rules_query_of(rq, &q);
    rules_decide_addr(rq->cfg->access, &q, rq->rules_from, sa, &d);
    if (d.verdict == RULES_DENY) {
      rq->addr_denied = d.rule;
      *why = rule_detail(rq, d.rule);
      return -1;
    }
    if (d.verdict == RULES_ALLOW) {
      if (!d.opens_port && policy_check_port(rq->cfg->policy, rq->dest.port) != 0) {
        *why = "port not allowed";
        return -1;
      }
      if (!d.opens_addr && policy_check_addr(rq->cfg->policy, sa, why) != 0) return -1;
      rq->out.rule = d.rule;
      return 0;
    }
    if (policy_check_port(rq->cfg->policy, rq->dest.port) != 0) {
      *why = "port not allowed";
      return -1;
    }
  }
  return policy_check_addr(rq->cfg->policy, sa, why);
}

static void on_dialed(void *arg, uv_tcp_t *tcp, const struct sockaddr *peer, enum pxerr err, const char *detail) {
  struct px_request *rq = arg;
  rq->dialer = NULL;
  if (err != PXERR_NONE) {
    fail(rq, err, detail);
    return;
  }
  struct tcp_ep *ep = tcp_ep_new(rq->w, tcp, peer);
  set_text(rq->out.peer, sizeof(rq->out.peer), tcp_ep_peer(ep));
  memcpy(&rq->peer_addr, tcp_ep_peer_addr(ep), sizeof(rq->peer_addr));
  succeed(rq, tcp_ep_tun(ep), NULL);
}

static void on_udp_handle_closed(uv_handle_t *h) { free(h); }

/* connect-udp: the first allowed address gets a connected UDP socket (RFC 9298 §3.1: resolved
 * before the answer, UDP-04). */
static void on_resolved(void *arg, enum pxerr err, const char *detail, const struct dns_result *allowed) {
  struct px_request *rq = arg;
  rq->res = NULL;
  if (err != PXERR_NONE) {
    fail(rq, err, detail);
    return;
  }
  const struct sockaddr *sa = (const struct sockaddr *)&allowed->addrs[0];
  uv_udp_t *udp = xmalloc(sizeof(*udp));
  CHECK(uv_udp_init(&rq->w->loop, udp) == 0);
  int r = uv_udp_connect(udp, sa);
  if (r != 0) {
    uv_close((uv_handle_t *)udp, on_udp_handle_closed);
    fail(rq, r == UV_ENETUNREACH || r == UV_EHOSTUNREACH ? PXERR_UNREACHABLE : PXERR_CONN_ERROR, uv_strerror(r));
    return;
  }
  struct udp_ep *u = udp_ep_new(rq->w, udp, sa);
  set_text(rq->out.peer, sizeof(rq->out.peer), udp_ep_peer(u));
  memcpy(&rq->peer_addr, sa, net_addr_len(sa));
  rq->out.extra[rq->out.nextra++] = (struct px_header){"capsule-protocol", "?1"};
  succeed(rq, udp_ep_tun(u), NULL);
}

static void on_ws(void *arg, struct tcp_ep *ep, const struct ws_upgrade_result *res, struct buf_chunk *leftover,
                  enum pxerr err, const char *detail) {
  struct px_request *rq = arg;
  struct px_outcome *o = &rq->out;
  rq->ws_up = NULL;
  if (err != PXERR_NONE) {
    fail(rq, err, detail);
    return;
  }
  if (!ep) {
    relay_refusal(rq, res->status, detail);
    return;
  }
  /* |res| lives through this callback, and so through answer_ok. */
  if (res->protocol[0]) o->extra[o->nextra++] = (struct px_header){"sec-websocket-protocol", res->protocol};
  if (res->extensions[0]) o->extra[o->nextra++] = (struct px_header){"sec-websocket-extensions", res->extensions};
  set_text(o->peer, sizeof(o->peer), tcp_ep_peer(ep));
  memcpy(&rq->peer_addr, tcp_ep_peer_addr(ep), sizeof(rq->peer_addr));
  succeed(rq, tcp_ep_tun(ep), leftover);
}

/* ---- the decision ------------------------------------------------------------------------------ */

/* The target as requested becomes |rq->dest| (and |rq->target| for the log). Returns 0, or -1
 * when |rq| was refused (and freed). */
static int interpret(struct px_request *rq) {
  const struct config *cfg = rq->cfg;
  const char *why = NULL;
  switch (rq->proto) {
  case PX_PROTO_CONNECT:
    if (rq->parsed) {
      rq->dest = *rq->parsed;
    } else if (!rq->authority || authority_parse(rq->authority, strlen(rq->authority), &rq->dest, &why) != 0) {
      fail(rq, PXERR_BAD_REQUEST, why ? why : "bad :authority");
      return -1;
    }
    authority_format(&rq->dest, rq->target, sizeof(rq->target));
    return 0;
  case PX_PROTO_CONNECT_UDP: {
    /* RFC 9298 §3: the target is in the path, through the URI template. */
    char host[AUTHORITY_HOST_MAX + 1];
    uint16_t port;
    if (!rq->path || udp_tmpl_match(cfg->udp_template, rq->path, strlen(rq->path), host, sizeof(host), &port) != 0) {
      fail(rq, PXERR_BAD_REQUEST, "path does not match the connect-udp template");
      return -1;
    }
    if (authority_from_host(host, port, &rq->dest) != 0) {
      fail(rq, PXERR_BAD_REQUEST, "bad connect-udp target");
      return -1;
    }
    authority_format(&rq->dest, rq->target, sizeof(rq->target));
    return 0;
  }
  case PX_PROTO_WEBSOCKET: {
    /* RFC 8441: the backend is the :authority itself (the policy applies as for CONNECT), or the
     * one a --ws-route names for it (trusted). */
    if (!rq->authority || !rq->path) {
      fail(rq, PXERR_BAD_REQUEST, "websocket needs :authority and :path");
      return -1;
    }
    set_text(rq->target, sizeof(rq->target), rq->authority);
    const char *backend = rq->authority;
    for (int i = 0; i < cfg->nws_routes; i++) {
      if (strcasecmp(cfg->ws_routes[i].authority, rq->authority) == 0) {
        backend = cfg->ws_routes[i].backend;
        rq->tls = cfg->ws_routes[i].tls;
        rq->trusted = 1;
        break;
      }
    }
    if (!rq->trusted && cfg->ws_routes_only) {
      /* RFC 8441 "About Intermediaries" / checklist XC-12: route by configuration only. */
      fail(rq, PXERR_MISDIRECTED, "no WebSocket route for this authority");
      return -1;
    }
    if (authority_parse(backend, strlen(backend), &rq->dest, &why) != 0) {
      fail(rq, PXERR_BAD_REQUEST, why ? why : "bad :authority");
      return -1;
    }
    return 0;
  }
  case PX_PROTO_FORWARD: {
    /* The target's authority; without a port, the scheme's (RFC 9110 §4.2). */
    char buf[AUTHORITY_FORMAT_MAX + 8];
    size_t n = rq->authority ? strlen(rq->authority) : 0;
    const char *end = rq->authority ? rq->authority + n : NULL;
    int has_port = n > 0 && (rq->authority[0] == '[' ? (end[-1] != ']') : memchr(rq->authority, ':', n) != NULL);
    if (n == 0 || n + 5 > sizeof(buf)) {
      fail(rq, PXERR_BAD_REQUEST, "bad authority in the request target");
      return -1;
    }
    memcpy(buf, rq->authority, n);
    if (!has_port) n += (size_t)snprintf(buf + n, sizeof(buf) - n, ":%d", rq->tls ? 443 : 80);
    if (authority_parse(buf, n, &rq->dest, &why) != 0) {
      fail(rq, PXERR_BAD_REQUEST, why ? why : "bad authority in the request target");
      return -1;
    }
    authority_format(&rq->dest, rq->target, sizeof(rq->target));
    return 0;
  }
  }
  fail(rq, PXERR_INTERNAL, "unknown protocol");
  return -1;
}

/* The rules on the name, then the limits on tunnel counts and rates. Returns 0, or -1 when |rq|
 * was refused (and freed). */
static int rules_and_limits(struct px_request *rq) {
  const struct access *a = rq->cfg->access;
  if (a->nrules) {
    struct rules_query q;
    struct rules_decision d;
    struct authority asked;
    rules_query_of(rq, &q);
    /* A routed WebSocket is judged on the authority the client asked for, not the backend. */
    if (rq->trusted && authority_parse(rq->authority, strlen(rq->authority), &asked, NULL) == 0) {
      q.host = asked.host;
      q.port = asked.port;
    }
    rules_decide_name(a, &q, &d);
    switch (d.verdict) {
    case RULES_DENY:
      rq->out.rule = d.rule;
      limits_count_denial(rq->w->limits, a, d.index);
      fail(rq, PXERR_RULE_DENIED, rule_detail(rq, d.rule));
      return -1;
    case RULES_ALLOW:
      rq->out.rule = d.rule;
      rq->port_opened = d.opens_port;
      break;
    case RULES_BY_ADDRESS:
      /* A routed backend has no address check: its rules end here. */
      rq->rules_by_addr = !rq->trusted;
      rq->rules_from = d.index;
      break;
    case RULES_NONE:
      break;
    }
  }
  /* The memory budget: refused before anything is allocated for the tunnel. */
  if (membudget_admit(rq->w->membudget) != 0) {
    const struct membudget *mb = rq->w->membudget;
    worker_log(rq->w, WLOG_MEMORY, LOG_WARN,
               "%s %s: %s: 429, memory budget tight (%llu KiB buffered, %llu tunnels, limit %llu KiB)",
               px_front_name(rq->front), rq->client, rq->target[0] ? rq->target : "",
               (unsigned long long)(atomic_load(&mb->held) / 1024), (unsigned long long)atomic_load(&mb->tunnels),
               (unsigned long long)(mb->limit / 1024));
    rq->out.extra[rq->out.nextra++] = (struct px_header){"retry-after", "1"};
    fail(rq, PXERR_LIMITED, "memory budget exhausted");
    return -1;
  }
  rq->mb_held = 1;
  enum lim_kind kind;
  uint64_t retry_s;
  if (limits_admit(rq->w->limits, rq->out.user, (const struct sockaddr *)&rq->client_addr, uv_hrtime(), &rq->ticket,
                   &kind, &retry_s) != 0) {
    snprintf(rq->retry_after, sizeof(rq->retry_after), "%llu", (unsigned long long)retry_s);
    rq->out.extra[rq->out.nextra++] = (struct px_header){"retry-after", rq->retry_after};
    fail(rq, PXERR_LIMITED, lim_kind_detail(kind));
    return -1;
  }
  return 0;
}

static void admitted(struct px_request *rq);

/* Authentication's answer goes into the outcome: who, or the header of the refusal. */
static int auth_verdict(struct px_request *rq, enum px_auth_verdict v) {
  struct px_outcome *o = &rq->out;
  if (rq->auth.user) o->user = rq->auth.user; /* (a unit test may have named the user itself) */
  if (v != PX_AUTH_REFUSE) return 0;
  if (rq->auth.hdr_name) o->extra[o->nextra++] = (struct px_header){rq->auth.hdr_name, rq->auth.hdr_value};
  fail(rq, rq->auth.err, rq->auth.detail);
  return -1;
}

/* The password check ended (from the loop). */
static void on_auth(void *arg, enum px_auth_verdict v) {
  struct px_request *rq = arg;
  rq->phase = PX_NEW;
  if (auth_verdict(rq, v) != 0) return;
  if (rq->w->stopping && !rq->first_on_conn)
    fail(rq, PXERR_SHUTTING_DOWN, "proxy is shutting down");
  else
    admitted(rq);
}

/* FORWARD: a connection to the origin stands; the front end runs the exchange on it. */
static void on_fwd_up(void *arg, struct fwd_up *up, enum pxerr err, const char *detail) {
  struct px_request *rq = arg;
  rq->get = NULL;
  if (!up) {
    fail(rq, err, detail);
    return;
  }
  set_text(rq->out.peer, sizeof(rq->out.peer), up->peer);
  rq->out.status = 200;
  rq->ops->answer_forward(rq->fe, rq, up);
  request_free(rq);
}

void px_request_start(struct px_request *rq) {
  struct worker *w = rq->w;
  if (interpret(rq) != 0) return;
  /* Admission: while stopping, only a connection's first request (see |first_on_conn|). */
  if (w->stopping && !rq->first_on_conn) {
    fail(rq, PXERR_SHUTTING_DOWN, "proxy is shutting down");
    return;
  }
  if (rq->listener && rq->listener->admin) {
    fail(rq, PXERR_CLIENT_DENIED, "the admin listener serves /healthz and /metrics only");
    return;
  }
  struct px_auth *a = &rq->auth;
  a->w = w;
  a->cfg = rq->cfg;
  a->client_addr = &rq->client_addr;
  a->client = rq->client;
  a->credentials = rq->credentials;
  enum px_auth_verdict v = px_auth_check(a, on_auth, rq);
  if (v == PX_AUTH_PENDING) {
    rq->phase = PX_AUTHENTICATING;
    return;
  }
  if (auth_verdict(rq, v) == 0) admitted(rq);
}

/* Past admission: the rest of the decision, and the upstream. */
static void admitted(struct px_request *rq) {
  struct worker *w = rq->w;
  if (rules_and_limits(rq) != 0) return;
  if (rq->proto == PX_PROTO_WEBSOCKET) {
    /* The backend request is built (the client's fields checked) before any policy or dial: a
     * refusal costs nothing (issue 8 item 2). */
    enum pxerr err;
    const char *why;
    rq->ws.path = rq->path;
    rq->ws.host = rq->authority;
    rq->ws_up = ws_upgrade_new(w, &rq->ws, &err, &why);
    if (!rq->ws_up) {
      fail(rq, err, why);
      return;
    }
  }
  /* The policy on the name, unless a rule opened the port or the rules decide per address. */
  if (!rq->trusted && !rq->port_opened && !rq->rules_by_addr &&
      policy_check_port(rq->cfg->policy, rq->dest.port) != 0) {
    if (rq->ws_up) ws_upgrade_cancel(rq->ws_up);
    rq->ws_up = NULL;
    snprintf(rq->out.detail_buf, sizeof(rq->out.detail_buf), "port %u not allowed", (unsigned)rq->dest.port);
    fail(rq, PXERR_PORT_DENIED, rq->out.detail_buf);
    return;
  }
  switch (rq->proto) {
  case PX_PROTO_CONNECT:
    rq->phase = PX_DIALING;
    rq->dialer = dialer_start(w, &rq->dest, check_addr, rq, on_dialed, rq);
    break;
  case PX_PROTO_CONNECT_UDP:
    rq->phase = PX_RESOLVING;
    rq->res = resolve_start(w, &rq->dest, check_addr, rq, on_resolved, rq);
    break;
  case PX_PROTO_WEBSOCKET: {
    struct ws_backend_opts opts = {.tls = rq->tls, .check = rq->trusted ? NULL : check_addr, .check_arg = rq};
    rq->phase = PX_UPGRADING;
    ws_upgrade_start(rq->ws_up, &rq->dest, &opts, on_ws, rq);
    break;
  }
  case PX_PROTO_FORWARD:
    rq->phase = PX_FORWARDING;
    rq->get = fwd_pool_get(w, &rq->dest, rq->tls, check_addr, rq, on_fwd_up, rq);
    break;
  }
}

void px_request_cancel(struct px_request *rq) {
  px_auth_cancel(&rq->auth);
  if (rq->dialer) dialer_cancel(rq->dialer);
  if (rq->res) resolve_cancel(rq->res);
  if (rq->ws_up) ws_upgrade_cancel(rq->ws_up);
  if (rq->get) fwd_get_cancel(rq->get);
  request_free(rq);
}
