/* Unit tests for src/metrics.c: metrics_render sums every worker's counters into one Prometheus
 * text exposition with the right names and labels, and keeps whole lines when truncated. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/metrics.h"
#include "src/pxerr.h"

/* The value of the sample line "name{labels} value" (labels may be ""), or -1 if absent. */
static long long sample(const char *text, const char *series) {
  char key[256];
  snprintf(key, sizeof(key), "\n%s ", series);
  const char *p = strstr(text, key);
  if (!p) return -1;
  return strtoll(p + strlen(key), NULL, 10);
}

static void test_render_sums_workers(void **state) {
  (void)state;
  static struct metrics m[3];
  memset(m, 0, sizeof(m));
  for (int i = 0; i < 3; i++) {
    METRIC_ADD(&m[i], conns_accepted, 10 * (i + 1));
    METRIC_ADD(&m[i], conns_active, i);
    METRIC_ADD(&m[i], conns_h1, 1);
    METRIC_ADD(&m[i], conns_h2, 2);
    METRIC_ADD(&m[i], tls_handshake_failures, 1);
    METRIC_ADD(&m[i], tunnels_opened[TUN_PROTO_CONNECT], 5);
    METRIC_ADD(&m[i], tunnels_opened[TUN_PROTO_WEBSOCKET], 1);
    METRIC_ADD(&m[i], tunnels_active[TUN_PROTO_CONNECT], 2);
    METRIC_ADD(&m[i], bytes_up, 1000);
    METRIC_ADD(&m[i], bytes_down, 1ULL << 40);
    METRIC_ADD(&m[i], requests_local, 3);
    METRIC_ADD(&m[i], h2_streams, 4);
    METRIC_ADD(&m[i], h2_goaway_sent, 1);
    METRIC_ADD(&m[i], errors[PXERR_CONN_REFUSED], 2);
    METRIC_ADD(&m[i], errors[PXERR_DNS_TIMEOUT], i);
  }
  METRIC_SUB(&m[2], tunnels_active[TUN_PROTO_CONNECT], 1);
  const struct metrics *all[3] = {&m[0], &m[1], &m[2]};

  static char out[65536];
  size_t n = metrics_render(all, 3, out, sizeof(out));
  assert_true(n > 0 && n < sizeof(out));
  assert_int_equal(strlen(out), n);
  assert_int_equal(out[n - 1], '\n');

  assert_int_equal(sample(out, "h2tunnel_connections_accepted_total"), 60);
  assert_int_equal(sample(out, "h2tunnel_connections_active"), 3);
  assert_int_equal(sample(out, "h2tunnel_connections_by_protocol_total{protocol=\"http/1.1\"}"), 3);
  assert_int_equal(sample(out, "h2tunnel_connections_by_protocol_total{protocol=\"h2\"}"), 6);
  assert_int_equal(sample(out, "h2tunnel_tls_handshake_failures_total"), 3);
  assert_int_equal(sample(out, "h2tunnel_tunnels_opened_total{protocol=\"connect\"}"), 15);
  assert_int_equal(sample(out, "h2tunnel_tunnels_opened_total{protocol=\"websocket\"}"), 3);
  assert_int_equal(sample(out, "h2tunnel_tunnels_opened_total{protocol=\"connect-udp\"}"), 0);
  assert_int_equal(sample(out, "h2tunnel_tunnels_active{protocol=\"connect\"}"), 5);
  assert_int_equal(sample(out, "h2tunnel_tunnel_bytes_total{direction=\"up\"}"), 3000);
  assert_int_equal(sample(out, "h2tunnel_tunnel_bytes_total{direction=\"down\"}"), 3LL << 40);
  assert_int_equal(sample(out, "h2tunnel_local_requests_total"), 9);
  assert_int_equal(sample(out, "h2tunnel_h2_streams_total"), 12);
  assert_int_equal(sample(out, "h2tunnel_h2_goaway_sent_total"), 3);
  assert_int_equal(
      sample(out, "h2tunnel_errors_total{type=\"connection_refused\",status=\"502\"}"), 6);
  assert_int_equal(sample(out, "h2tunnel_errors_total{type=\"dns_timeout\",status=\"504\"}"), 3);
  /* PXERR_NONE is not an error and is not exported. */
  assert_null(strstr(out, "type=\"none\""));

  /* Every family has HELP and TYPE; counters end in _total. */
  assert_non_null(strstr(out, "# TYPE h2tunnel_connections_active gauge\n"));
  assert_non_null(strstr(out, "# TYPE h2tunnel_tunnels_active gauge\n"));
  assert_non_null(strstr(out, "# TYPE h2tunnel_errors_total counter\n"));
  assert_non_null(strstr(out, "# HELP h2tunnel_tunnel_bytes_total "));
}

static void test_render_no_workers(void **state) {
  (void)state;
  static char out[65536];
  size_t n = metrics_render(NULL, 0, out, sizeof(out));
  assert_true(n > 0);
  assert_int_equal(sample(out, "h2tunnel_connections_accepted_total"), 0);
  assert_int_equal(sample(out, "h2tunnel_tunnels_active{protocol=\"connect\"}"), 0);
}

/* The contract: truncated output is still valid lines -- it ends with a newline (or is empty),
 * fits in cap with its NUL, and is a prefix of the full rendering. */
static void test_render_truncation_whole_lines(void **state) {
  (void)state;
  static struct metrics m;
  memset(&m, 0, sizeof(m));
  METRIC_ADD(&m, bytes_up, 123456789);
  const struct metrics *all[1] = {&m};
  static char full[65536];
  size_t fulln = metrics_render(all, 1, full, sizeof(full));
  assert_true(fulln > 0);
  static char out[65536];
  for (size_t cap = 1; cap <= fulln + 1; cap++) {
    memset(out, 'Z', cap + 1);
    size_t n = metrics_render(all, 1, out, cap);
    if (n >= cap) fail_msg("cap %zu: length %zu does not fit", cap, n);
    if (out[n] != '\0') fail_msg("cap %zu: not NUL-terminated at %zu", cap, n);
    if (out[cap] != 'Z') fail_msg("cap %zu: wrote past cap", cap);
    if (n > 0 && out[n - 1] != '\n') fail_msg("cap %zu: ends in a partial line", cap);
    if (memcmp(out, full, n) != 0) fail_msg("cap %zu: not a prefix of the full output", cap);
  }
  assert_int_equal(metrics_render(all, 1, out, fulln + 1), fulln);
}

/* Histograms (issue 13 item 4): each observation lands in the first bucket whose bound holds it;
 * buckets come out cumulative per front end and protocol with +Inf == _count, _sum in seconds,
 * summed over workers. */
static void test_histograms(void **state) {
  (void)state;
  static struct metrics m[2];
  memset(m, 0, sizeof(m));
  metrics_observe(&m[0], HIST_SETUP, METRICS_FRONT_H2, TUN_PROTO_CONNECT, 3);    /* le 0.005 */
  metrics_observe(&m[1], HIST_SETUP, METRICS_FRONT_H2, TUN_PROTO_CONNECT, 5);    /* le 0.005 (bound inclusive) */
  metrics_observe(&m[1], HIST_SETUP, METRICS_FRONT_H2, TUN_PROTO_CONNECT, 700);  /* le 1 */
  metrics_observe(&m[0], HIST_SETUP, METRICS_FRONT_H2, TUN_PROTO_CONNECT, 99999); /* +Inf only */
  metrics_observe(&m[0], HIST_DURATION, METRICS_FRONT_H1, TUN_PROTO_CONNECT_UDP, 1500);
  const struct metrics *all[2] = {&m[0], &m[1]};
  static char out[65536];
  size_t n = metrics_render(all, 2, out, sizeof(out));
  assert_true(n > 0 && n < sizeof(out) - 1);
  assert_non_null(strstr(out, "# TYPE h2tunnel_tunnel_setup_seconds histogram\n"));
  assert_non_null(strstr(out, "# TYPE h2tunnel_tunnel_duration_seconds histogram\n"));
#define S(le) "h2tunnel_tunnel_setup_seconds_bucket{front=\"h2\",protocol=\"connect\",le=\"" le "\"}"
  assert_int_equal(sample(out, S("0.001")), 0);
  assert_int_equal(sample(out, S("0.005")), 2);
  assert_int_equal(sample(out, S("0.5")), 2);
  assert_int_equal(sample(out, S("1")), 3);
  assert_int_equal(sample(out, S("10")), 3);
  assert_int_equal(sample(out, S("+Inf")), 4);
#undef S
  assert_int_equal(sample(out, "h2tunnel_tunnel_setup_seconds_count{front=\"h2\",protocol=\"connect\"}"), 4);
  assert_non_null(strstr(out, "\nh2tunnel_tunnel_setup_seconds_sum{front=\"h2\",protocol=\"connect\"} 100.707\n"));
  /* Every front end and protocol has its series, observed or not. */
  assert_int_equal(sample(out, "h2tunnel_tunnel_setup_seconds_count{front=\"h1\",protocol=\"websocket\"}"), 0);
  assert_non_null(strstr(out, "\nh2tunnel_tunnel_setup_seconds_sum{front=\"h1\",protocol=\"websocket\"} 0\n"));
  assert_int_equal(sample(out, "h2tunnel_tunnel_duration_seconds_bucket{front=\"h1\",protocol=\"connect-udp\",le=\"1\"}"), 0);
  assert_int_equal(sample(out, "h2tunnel_tunnel_duration_seconds_bucket{front=\"h1\",protocol=\"connect-udp\",le=\"10\"}"), 1);
  assert_non_null(strstr(out, "\nh2tunnel_tunnel_duration_seconds_sum{front=\"h1\",protocol=\"connect-udp\"} 1.5\n"));
  assert_int_equal(metrics_hist_bound(HIST_SETUP, METRICS_HIST_BUCKETS - 1), UINT64_MAX);
  assert_string_equal(metrics_front_name(METRICS_FRONT_H1), "h1");
  assert_string_equal(metrics_front_name(METRICS_FRONT_H2), "h2");
}

static void test_proto_names(void **state) {
  (void)state;
  assert_string_equal(tun_proto_name(TUN_PROTO_CONNECT), "connect");
  assert_string_equal(tun_proto_name(TUN_PROTO_WEBSOCKET), "websocket");
  assert_string_equal(tun_proto_name(TUN_PROTO_CONNECT_UDP), "connect-udp");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_render_sums_workers),
      cmocka_unit_test(test_render_no_workers),
      cmocka_unit_test(test_render_truncation_whole_lines),
      cmocka_unit_test(test_histograms),
      cmocka_unit_test(test_proto_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
