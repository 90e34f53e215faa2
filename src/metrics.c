#include "src/metrics.h"

#include <stdio.h>

static const char *const proto_names[] = {
#define XX(n, s) s,
    TUN_PROTO_MAP(XX)
#undef XX
};

const char *tun_proto_name(enum tun_proto p) { return proto_names[p]; }

static const char *const front_names[] = {
#define XX(n, s) s,
    METRICS_FRONT_MAP(XX)
#undef XX
};

const char *metrics_front_name(enum metrics_front f) { return front_names[f]; }

/* Upper bounds in milliseconds. Setup: a loopback dial takes well under 5 ms, a far one or a slow
 * DNS answer seconds (--connect-timeout defaults to 10 s). Duration: from a failed probe to a
 * day-long SSH session. */
static const uint64_t hist_bounds[HIST_KIND_COUNT][METRICS_HIST_BUCKETS - 1] = {
    [HIST_SETUP] = {1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000},
    [HIST_DURATION] = {100, 1000, 10000, 30000, 60000, 300000, 900000, 1800000, 3600000, 14400000, 86400000},
};
static const char *const hist_names[HIST_KIND_COUNT] = {
    [HIST_SETUP] = "h2tunnel_tunnel_setup_seconds",
    [HIST_DURATION] = "h2tunnel_tunnel_duration_seconds",
};
static const char *const hist_help[HIST_KIND_COUNT] = {
    [HIST_SETUP] = "Time from a tunnel request's arrival to its success answer, by front end and protocol.",
    [HIST_DURATION] = "Time from a tunnel request's arrival to the tunnel's end, by front end and protocol.",
};

uint64_t metrics_hist_bound(enum metrics_hist_kind k, int i) {
  return i < METRICS_HIST_BUCKETS - 1 ? hist_bounds[k][i] : UINT64_MAX;
}

void metrics_observe(struct metrics *m, enum metrics_hist_kind k, enum metrics_front f, enum tun_proto p,
                     uint64_t ms) {
  struct metrics_hist *h = &m->hist[k][f][p];
  int i = 0;
  while (i < METRICS_HIST_BUCKETS - 1 && ms > hist_bounds[k][i]) i++;
  METRIC_ADD(h, bucket[i], 1);
  METRIC_ADD(h, sum_ms, ms);
  METRIC_ADD(h, count, 1);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

struct out {
  char *p;
  size_t cap, len;
  int full; /* a line did not fit: stop, so the output ends on a whole line */
};

/* Keeps the |n| bytes just formatted at len only if they fit whole; otherwise cuts them off. */
static void commit(struct out *o, int n) {
  if (n >= 0 && (size_t)n < o->cap - o->len) {
    o->len += (size_t)n;
    return;
  }
  o->p[o->len] = '\0';
  o->full = 1;
}

static void put(struct out *o, const char *name, const char *labels, uint64_t v) {
  if (o->full || o->len >= o->cap) return;
  commit(o, snprintf(o->p + o->len, o->cap - o->len, "%s%s %llu\n", name, labels ? labels : "",
                     (unsigned long long)v));
}

/* A bound or a sum in milliseconds as seconds, exactly ("0.005", "86400"). */
static void seconds(char *b, size_t cap, uint64_t ms) {
  if (ms % 1000 == 0)
    snprintf(b, cap, "%llu", (unsigned long long)(ms / 1000));
  else {
    int n = snprintf(b, cap, "%llu.%03llu", (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000));
    while (n > 0 && b[n - 1] == '0') b[--n] = '\0';
  }
}

static void head(struct out *o, const char *name, const char *type, const char *help) {
  if (o->full || o->len >= o->cap) return;
  commit(o, snprintf(o->p + o->len, o->cap - o->len, "# HELP %s %s\n# TYPE %s %s\n", name, help,
                     name, type));
}

size_t metrics_render(const struct metrics *const *all, size_t nw, char *buf, size_t cap) {
  struct out o = {buf, cap, 0, 0};
  struct metrics sum = {0};
#define ACC(f) atomic_store(&sum.f, LOAD(sum.f) + LOAD(all[i]->f))
  for (size_t i = 0; i < nw; i++) {
    ACC(conns_accepted);
    ACC(conns_active);
    ACC(conns_h1);
    ACC(conns_h2);
    ACC(tls_handshake_failures);
    ACC(handshakes_active);
    ACC(handshakes_evicted);
    ACC(conns_refused);
    ACC(accept_errors);
    ACC(bytes_up);
    ACC(bytes_down);
    ACC(requests_local);
    ACC(udp_dgrams_up);
    ACC(udp_dgrams_down);
    ACC(udp_drops);
    ACC(h2_streams);
    ACC(h2_goaway_sent);
    for (int p = 0; p < TUN_PROTO_COUNT; p++) {
      ACC(tunnels_opened[p]);
      ACC(tunnels_active[p]);
    }
    for (int e = 0; e < PXERR_COUNT; e++) ACC(errors[e]);
    for (int a = 0; a < AUTH_OK_COUNT; a++) ACC(auth_ok[a]);
    for (int a = 0; a < AUTH_FAIL_COUNT; a++) ACC(auth_fail[a]);
    ACC(auth_bans);
    ACC(auth_checks_pending);
    ACC(auth_hashes);
    ACC(auth_checks_shared);
    ACC(pp_headers);
    for (int r = 0; r < 3; r++) ACC(pp_refused[r]);
    for (int k = 0; k < HIST_KIND_COUNT; k++)
      for (int f = 0; f < METRICS_FRONT_COUNT; f++)
        for (int p = 0; p < TUN_PROTO_COUNT; p++) {
          for (int b = 0; b < METRICS_HIST_BUCKETS; b++) ACC(hist[k][f][p].bucket[b]);
          ACC(hist[k][f][p].sum_ms);
          ACC(hist[k][f][p].count);
        }
    for (int c = 0; c < 6; c++) ACC(fwd_requests[c]);
    ACC(fwd_bytes_up);
    ACC(fwd_bytes_down);
    ACC(fwd_pool_hits);
    ACC(fwd_pool_misses);
    ACC(fwd_retries);
    ACC(fwd_upstreams_open);
    ACC(tunnels_policy_closed);
    ACC(tunnels_policy_kept);
    ACC(config_version);
    ACC(reloads_ok);
    ACC(reloads_failed);
  }
#undef ACC
  head(&o, "h2tunnel_connections_accepted_total", "counter", "Client connections accepted.");
  put(&o, "h2tunnel_connections_accepted_total", NULL, LOAD(sum.conns_accepted));
  head(&o, "h2tunnel_connections_active", "gauge", "Client connections open now.");
  put(&o, "h2tunnel_connections_active", NULL, LOAD(sum.conns_active));
  head(&o, "h2tunnel_connections_by_protocol_total", "counter", "Client connections by front end.");
  put(&o, "h2tunnel_connections_by_protocol_total", "{protocol=\"http/1.1\"}", LOAD(sum.conns_h1));
  put(&o, "h2tunnel_connections_by_protocol_total", "{protocol=\"h2\"}", LOAD(sum.conns_h2));
  head(&o, "h2tunnel_tls_handshake_failures_total", "counter", "TLS handshakes that failed.");
  put(&o, "h2tunnel_tls_handshake_failures_total", NULL, LOAD(sum.tls_handshake_failures));
  head(&o, "h2tunnel_handshakes_active", "gauge",
       "Connections accepted and not yet given to a front end (TLS handshake or protocol sniff).");
  put(&o, "h2tunnel_handshakes_active", NULL, LOAD(sum.handshakes_active));
  head(&o, "h2tunnel_handshakes_evicted_total", "counter",
       "Handshakes closed, oldest first, to make room for a new connection.");
  put(&o, "h2tunnel_handshakes_evicted_total", NULL, LOAD(sum.handshakes_evicted));
  head(&o, "h2tunnel_connections_refused_total", "counter", "Connections refused at --max-connections.");
  put(&o, "h2tunnel_connections_refused_total", NULL, LOAD(sum.conns_refused));
  head(&o, "h2tunnel_accept_errors_total", "counter", "accept(2) failures (EMFILE, ENFILE, ENOBUFS...).");
  put(&o, "h2tunnel_accept_errors_total", NULL, LOAD(sum.accept_errors));
  head(&o, "h2tunnel_tunnels_opened_total", "counter", "Tunnels established.");
  char lab[64];
  for (int p = 0; p < TUN_PROTO_COUNT; p++) {
    snprintf(lab, sizeof(lab), "{protocol=\"%s\"}", proto_names[p]);
    put(&o, "h2tunnel_tunnels_opened_total", lab, LOAD(sum.tunnels_opened[p]));
  }
  head(&o, "h2tunnel_tunnels_active", "gauge", "Tunnels open now.");
  for (int p = 0; p < TUN_PROTO_COUNT; p++) {
    snprintf(lab, sizeof(lab), "{protocol=\"%s\"}", proto_names[p]);
    put(&o, "h2tunnel_tunnels_active", lab, LOAD(sum.tunnels_active[p]));
  }
  head(&o, "h2tunnel_tunnel_bytes_total", "counter", "Tunnel payload bytes.");
  put(&o, "h2tunnel_tunnel_bytes_total", "{direction=\"up\"}", LOAD(sum.bytes_up));
  put(&o, "h2tunnel_tunnel_bytes_total", "{direction=\"down\"}", LOAD(sum.bytes_down));
  head(&o, "h2tunnel_udp_datagrams_total", "counter", "connect-udp datagrams relayed.");
  put(&o, "h2tunnel_udp_datagrams_total", "{direction=\"up\"}", LOAD(sum.udp_dgrams_up));
  put(&o, "h2tunnel_udp_datagrams_total", "{direction=\"down\"}", LOAD(sum.udp_dgrams_down));
  head(&o, "h2tunnel_udp_datagrams_dropped_total", "counter", "connect-udp datagrams dropped.");
  put(&o, "h2tunnel_udp_datagrams_dropped_total", NULL, LOAD(sum.udp_drops));
  head(&o, "h2tunnel_local_requests_total", "counter", "Requests answered by the proxy itself.");
  put(&o, "h2tunnel_local_requests_total", NULL, LOAD(sum.requests_local));
  head(&o, "h2tunnel_h2_streams_total", "counter", "HTTP/2 streams opened by clients.");
  put(&o, "h2tunnel_h2_streams_total", NULL, LOAD(sum.h2_streams));
  head(&o, "h2tunnel_h2_goaway_sent_total", "counter", "GOAWAY frames sent.");
  put(&o, "h2tunnel_h2_goaway_sent_total", NULL, LOAD(sum.h2_goaway_sent));
  head(&o, "h2tunnel_config_version", "gauge", "The configuration version in use (1 at start, +1 per reload).");
  put(&o, "h2tunnel_config_version", NULL, LOAD(sum.config_version));
  head(&o, "h2tunnel_config_reloads_total", "counter", "SIGHUP reloads, applied or refused (the old one kept).");
  put(&o, "h2tunnel_config_reloads_total", "{result=\"ok\"}", LOAD(sum.reloads_ok));
  put(&o, "h2tunnel_config_reloads_total", "{result=\"failed\"}", LOAD(sum.reloads_failed));
  head(&o, "h2tunnel_reload_tunnels_total", "counter",
       "Live tunnels a reload's rules refused: closed (close reason policy_changed) or kept as configured.");
  put(&o, "h2tunnel_reload_tunnels_total", "{action=\"closed\"}", LOAD(sum.tunnels_policy_closed));
  put(&o, "h2tunnel_reload_tunnels_total", "{action=\"kept\"}", LOAD(sum.tunnels_policy_kept));
  head(&o, "h2tunnel_errors_total", "counter", "Proxy-generated error responses by type.");
  for (int e = 1; e < PXERR_COUNT; e++) {
    snprintf(lab, sizeof(lab), "{type=\"%s\",status=\"%d\"}", pxerr_token((enum pxerr)e),
             pxerr_status((enum pxerr)e));
    put(&o, "h2tunnel_errors_total", lab, LOAD(sum.errors[e]));
  }
  static const char *const ok_names[] = {
#define XX(n, s) s,
      AUTH_OK_MAP(XX)
#undef XX
  };
  static const char *const fail_names[] = {
#define XX(n, s) s,
      AUTH_FAIL_MAP(XX)
#undef XX
  };
  head(&o, "h2tunnel_auth_successes_total", "counter", "Requests admitted by authentication, by how.");
  for (int a = 0; a < AUTH_OK_COUNT; a++) {
    snprintf(lab, sizeof(lab), "{method=\"%s\"}", ok_names[a]);
    put(&o, "h2tunnel_auth_successes_total", lab, LOAD(sum.auth_ok[a]));
  }
  head(&o, "h2tunnel_auth_failures_total", "counter", "Requests refused by authentication, by reason.");
  for (int a = 0; a < AUTH_FAIL_COUNT; a++) {
    snprintf(lab, sizeof(lab), "{reason=\"%s\"}", fail_names[a]);
    put(&o, "h2tunnel_auth_failures_total", lab, LOAD(sum.auth_fail[a]));
  }
  head(&o, "h2tunnel_auth_bans_total", "counter", "Client addresses banned after too many failed logins.");
  put(&o, "h2tunnel_auth_bans_total", NULL, LOAD(sum.auth_bans));
  head(&o, "h2tunnel_auth_checks_pending", "gauge", "Password hashes queued or running on the thread pool.");
  put(&o, "h2tunnel_auth_checks_pending", NULL, LOAD(sum.auth_checks_pending));
  head(&o, "h2tunnel_auth_hashes_total", "counter", "Password hashes run on the thread pool.");
  put(&o, "h2tunnel_auth_hashes_total", NULL, LOAD(sum.auth_hashes));
  head(&o, "h2tunnel_auth_checks_shared_total", "counter",
       "Password checks that waited for an identical check already in flight instead of hashing.");
  put(&o, "h2tunnel_auth_checks_shared_total", NULL, LOAD(sum.auth_checks_shared));
  static const char *const pp_reasons[] = {
#define XX(n, s) s,
      METRICS_PP_MAP(XX)
#undef XX
  };
  head(&o, "h2tunnel_proxy_protocol_headers_total", "counter", "PROXY protocol headers taken from trusted sources.");
  put(&o, "h2tunnel_proxy_protocol_headers_total", NULL, LOAD(sum.pp_headers));
  head(&o, "h2tunnel_proxy_protocol_refused_total", "counter", "Connections closed over their PROXY protocol header.");
  for (int r = 0; r < 3; r++) {
    snprintf(lab, sizeof(lab), "{reason=\"%s\"}", pp_reasons[r]);
    put(&o, "h2tunnel_proxy_protocol_refused_total", lab, LOAD(sum.pp_refused[r]));
  }
  for (int k = 0; k < HIST_KIND_COUNT; k++) {
    char name[96], le[32], lab2[128];
    head(&o, hist_names[k], "histogram", hist_help[k]);
    for (int f = 0; f < METRICS_FRONT_COUNT; f++)
      for (int p = 0; p < TUN_PROTO_COUNT; p++) {
        const struct metrics_hist *h = &sum.hist[k][f][p];
        uint64_t cum = 0; /* counts are kept per bucket; the exposition's are cumulative */
        snprintf(name, sizeof(name), "%s_bucket", hist_names[k]);
        for (int b = 0; b < METRICS_HIST_BUCKETS; b++) {
          cum += LOAD(h->bucket[b]);
          if (b < METRICS_HIST_BUCKETS - 1)
            seconds(le, sizeof(le), hist_bounds[k][b]);
          else
            snprintf(le, sizeof(le), "+Inf");
          snprintf(lab2, sizeof(lab2), "{front=\"%s\",protocol=\"%s\",le=\"%s\"}", front_names[f], proto_names[p], le);
          put(&o, name, lab2, cum);
        }
        snprintf(lab, sizeof(lab), "{front=\"%s\",protocol=\"%s\"}", front_names[f], proto_names[p]);
        snprintf(name, sizeof(name), "%s_sum", hist_names[k]);
        seconds(le, sizeof(le), LOAD(h->sum_ms));
        if (!o.full && o.len < o.cap)
          commit(&o, snprintf(o.p + o.len, o.cap - o.len, "%s%s %s\n", name, lab, le));
        snprintf(name, sizeof(name), "%s_count", hist_names[k]);
        put(&o, name, lab, LOAD(h->count));
      }
  }
  head(&o, "h2tunnel_forward_requests_total", "counter",
       "Forwarded requests by the status class sent (none: cut before a response head).");
  static const char *const classes[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int c = 0; c < 6; c++) {
    snprintf(lab, sizeof(lab), "{class=\"%s\"}", classes[c]);
    put(&o, "h2tunnel_forward_requests_total", lab, LOAD(sum.fwd_requests[c]));
  }
  head(&o, "h2tunnel_forward_bytes_total", "counter", "Forwarded body bytes.");
  put(&o, "h2tunnel_forward_bytes_total", "{direction=\"up\"}", LOAD(sum.fwd_bytes_up));
  put(&o, "h2tunnel_forward_bytes_total", "{direction=\"down\"}", LOAD(sum.fwd_bytes_down));
  head(&o, "h2tunnel_forward_pool_total", "counter",
       "Upstream connections for forwarded requests: reused from the pool (hit) or dialed (miss).");
  put(&o, "h2tunnel_forward_pool_total", "{result=\"hit\"}", LOAD(sum.fwd_pool_hits));
  put(&o, "h2tunnel_forward_pool_total", "{result=\"miss\"}", LOAD(sum.fwd_pool_misses));
  head(&o, "h2tunnel_forward_retries_total", "counter",
       "Idempotent requests re-sent on a new connection after a reused one failed.");
  put(&o, "h2tunnel_forward_retries_total", NULL, LOAD(sum.fwd_retries));
  head(&o, "h2tunnel_forward_upstreams_open", "gauge", "Upstream connections of forwarded requests open now.");
  put(&o, "h2tunnel_forward_upstreams_open", NULL, LOAD(sum.fwd_upstreams_open));
  return o.len;
}
