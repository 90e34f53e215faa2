/* Unit tests for src/config.c: listener parsing, config_parse of argv (values
 * land in the right fields, ranges and cross-checks are enforced, --help/--version return 1),
 * config_finish defaults, and the configuration file: values and positions, one of each mistake
 * as FILE:LINE:COL, flags over the file, --check-config output that reads back to the same
 * configuration, and config_load's refcounted snapshot. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "src/config.h"
#include "src/log.h"
#include "src/policy.h"
#include "src/units.h"
#include "src/util.h"

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
  assert_int_equal(l.admin, 0);

  /* The admin-only listener (/metrics when authentication is on). */
  assert_int_equal(config_parse_listener("tcp://127.0.0.1:9090?admin", &l), 0);
  assert_int_equal(l.admin, 1);
  assert_int_equal(ntohs(sin->sin_port), 9090);
  assert_string_equal(l.text, "tcp://127.0.0.1:9090?admin");
  assert_int_equal(config_parse_listener("tls://[::1]:9443?admin", &l), 0);
  assert_int_equal(l.admin, 1);
  assert_int_equal(l.tls, 1);
  assert_int_equal(ntohs(sin6->sin6_port), 9443);
  assert_int_equal(l.proxy_protocol, 0);

  /* Both flags, in either order. */
  assert_int_equal(config_parse_listener("tcp://127.0.0.1:8080?proxy-protocol", &l), 0);
  assert_int_equal(l.proxy_protocol, 1);
  assert_int_equal(l.admin, 0);
  assert_int_equal(config_parse_listener("tcp://127.0.0.1:9090?admin&proxy-protocol", &l), 0);
  assert_int_equal(l.admin, 1);
  assert_int_equal(l.proxy_protocol, 1);
  assert_int_equal(config_parse_listener("tls://[::1]:9443?proxy-protocol&admin", &l), 0);
  assert_int_equal(l.admin, 1);
  assert_int_equal(l.proxy_protocol, 1);
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
      "tcp://127.0.0.1:80?",     /* a query other than ?admin */
      "tcp://127.0.0.1:80?adm",
      "tcp://127.0.0.1:80?admin?admin",
      "tcp://127.0.0.1:80?admin&admin",
      "tcp://127.0.0.1:80?admin&",
      "tcp://127.0.0.1:80?proxy-protocol&bogus",
      "tcp://?admin",
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
  char *argv[80];
  int argc = 0;
  argv[argc++] = (char *)"h2tunnel";
  va_list ap;
  va_start(ap, cfg);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL) {
    CHECK(argc < 79);
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
  assert_int_equal(c->h2_max_discard, 0); /* twice --h2-conn-window, in h2_session.c */
  assert_int_equal(c->workers, 0);
  assert_true(c->max_connections == CONFIG_AUTO); /* derived in config_finish */
  assert_int_equal(c->max_handshakes, 1000);
  assert_int_equal(c->read_budget, 128 * 1024);
  assert_string_equal(c->cert_file, "");
  assert_non_null(c->policy);
  assert_int_equal(policy_check_port(c->policy, 443), 0);
  assert_int_equal(policy_check_port(c->policy, 80), 0);
  assert_int_not_equal(policy_check_port(c->policy, 22), 0);
  assert_int_equal(parse(c, "--h2-max-discard", "3m", NULL), 0);
  assert_int_equal(c->h2_max_discard, 3 * 1024 * 1024);
  assert_int_equal(parse(c, "--h2-max-discard", "0", NULL), 0); /* 0: twice --h2-conn-window */
  assert_int_equal(c->h2_max_discard, 0);
}

static void test_parse_values(void **state) {
  struct fx *f = *state;
  struct config *c = &f->cfg;
  int r = parse(c, "--listen", "tcp://127.0.0.1:9000", "--listen=tls://[::1]:9443", "--workers", "3",
                "--idle-timeout", "1.5s", "--max-duration", "2m", "--connect-timeout", "250ms",
                "--dns-timeout", "2", "--handshake-timeout", "1h", "--header-timeout", "3s",
                "--conn-idle-timeout", "4s", "--drain-timeout", "5s", "--high-water", "64k",
                "--low-water", "16k", "--max-header-bytes", "8k", "--max-headers", "50",
                "--max-connections", "1000", "--max-handshakes", "0", "--read-budget", "1m",
                "--h2-max-streams", "10", "--h2-stream-window", "128k",
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
  assert_int_equal(c->max_handshakes, 0);
  assert_int_equal(c->read_budget, 1024 * 1024);
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
    {"--read-budget", "100", NULL},               /* below 4k */
    {"--read-budget", "2g", NULL},
    {"--max-handshakes", "-1", NULL},
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

/* --max-connections defaults to (RLIMIT_NOFILE - 100) / 2 shared by the workers, at least 16;
 * a value given (0 = unlimited included) is kept. */
static void test_finish_max_connections(void **state) {
  (void)state;
  struct rlimit saved;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
  static const struct {
    rlim_t nofile;
    const char *workers;
    size_t want;
  } cases[] = {{300, "1", 100}, {300, "2", 50}, {1124, "4", 128}, {120, "1", 16}, {50, "1", 16}};
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < cases[i].nofile) continue;
    struct rlimit rl = {cases[i].nofile, saved.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    struct config c;
    config_init(&c);
    assert_int_equal(parse(&c, "--workers", cases[i].workers, NULL), 0);
    config_finish(&c);
    assert_int_equal(c.max_connections, cases[i].want);
    config_dispose(&c);
  }
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
  struct config c;
  config_init(&c);
  assert_int_equal(parse(&c, "--max-connections", "0", NULL), 0);
  config_finish(&c);
  assert_int_equal(c.max_connections, 0);
  assert_true(c.workers >= 1); /* 0 became one per core */
  config_dispose(&c);
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


/* ---- the configuration file ---- */

/* Writes |text| to a new temporary file; returns its path (static storage per call site). */
static void write_tmp(char *path, const char *text) {
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  close(fd);
}

static int apply(struct config *cfg, const char *text, struct cfgfile_err *err) {
  return config_apply_yaml(cfg, "c.yaml", text, strlen(text), err);
}

static const struct config_origin *origin_of(const struct config *cfg, const char *name);

static void test_yaml_values(void **state) {
  struct fx *f = *state;
  struct config *c = &f->cfg;
  struct cfgfile_err err;
  int r = apply(c,
                "listen: [tcp://127.0.0.1:9000, \"tls://[::1]:9443\"]\n"
                "workers: 3\n"
                "connect-timeout: 250ms\n"
                "idle-timeout: 1.5s\n"
                "high-water: 64k\n"
                "low-water: \"16k\"\n"
                "max-connections: 1000\n"
                "h2-max-streams: 10\n"
                "no-extended-connect: true\n"
                "ws-routes-only: true\n"
                "allow-ports: [22, \"8000-8001\"]\n"
                "allow-net: loopback\n"
                "deny-net: [\"203.0.113.0/24\", \"2001:db8::/32\"]\n"
                "dns-server: [\"127.0.0.1:53\", \"[::1]:53\"]\n"
                "ws-route: [\"Chat.Example=wss://127.0.0.1:9001\"]\n"
                "cert: certs/leaf.pem\n"
                "key: /abs/key.pem\n"
                "log-level: debug\n"
                "udp-template: \"/u/{target_host}/{target_port}\"\n",
                &err);
  if (r) fail_msg("%s", err.text);
  assert_int_equal(config_check(c, &err), 0);
  assert_int_equal(c->nlisteners, 2);
  assert_int_equal(c->listeners_given, 1);
  assert_int_equal(c->listeners[1].addr.ss_family, AF_INET6);
  assert_int_equal(c->workers, 3);
  assert_int_equal(c->connect_timeout_ms, 250);
  assert_int_equal(c->idle_timeout_ms, 1500);
  assert_int_equal(c->high_water, 65536);
  assert_int_equal(c->low_water, 16384);
  assert_int_equal(c->max_connections, 1000);
  assert_int_equal(c->h2_max_concurrent_streams, 10);
  assert_int_equal(c->h2_enable_connect_protocol, 0);
  assert_int_equal(c->ws_routes_only, 1);
  assert_string_equal(c->allow_ports, "22,8000-8001");
  assert_int_equal(policy_check_port(c->policy, 8001), 0);
  assert_int_not_equal(policy_check_port(c->policy, 443), 0);
  struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
  assert_int_equal(policy_check_addr(c->policy, (struct sockaddr *)&lo, NULL), 0);
  struct sockaddr_in doc = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0xcb007101)};
  assert_int_equal(policy_check_addr(c->policy, (struct sockaddr *)&doc, NULL), -EACCES);
  assert_int_equal(c->deny_nets.n, 2);
  assert_string_equal(c->dns_servers, "127.0.0.1:53,[::1]:53");
  assert_int_equal(c->nws_routes, 1);
  assert_string_equal(c->ws_routes[0].authority, "chat.example");
  assert_int_equal(c->ws_routes[0].tls, 1);
  assert_string_equal(c->cert_file, "certs/leaf.pem"); /* "c.yaml" has no directory */
  assert_string_equal(c->key_file, "/abs/key.pem");
  assert_int_equal(c->log_level, LOG_DEBUG);
  assert_string_equal(c->udp_template, "/u/{target_host}/{target_port}");
  const struct config_origin *og = origin_of(c, "workers");
  assert_int_equal(og->src, CONFIG_SRC_FILE);
  assert_int_equal(og->line, 2);
  assert_int_equal(og->col, 1);
  assert_int_equal(origin_of(c, "header-timeout")->src, CONFIG_SRC_DEFAULT);
}

/* Relative paths in a file are relative to the file's directory. */
static void test_yaml_relative_paths(void **state) {
  struct fx *f = *state;
  struct cfgfile_err err;
  const char *text = "cert: leaf.pem\nkey: ../k.pem\naccess-log: /var/log/a.log\n";
  assert_int_equal(config_apply_yaml(&f->cfg, "/etc/h2t/c.yaml", text, strlen(text), &err), 0);
  assert_string_equal(f->cfg.cert_file, "/etc/h2t/leaf.pem");
  assert_string_equal(f->cfg.key_file, "/etc/h2t/../k.pem");
  assert_string_equal(f->cfg.access_log, "/var/log/a.log");
}

struct yaml_bad {
  const char *text;
  const char *want; /* the message starts with this */
};

/* One of each kind of mistake in the top level; the access sections have their own table in
 * test_access.c and the YAML-level ones in test_cfgfile.c. */
static const struct yaml_bad yaml_bad[] = {
    {"connect-timeout: soon\n", "c.yaml:1:18: connect-timeout: 'soon': not a duration"},
    {"idle-timeout:\n", "c.yaml:1:14: idle-timeout: expected T, not nothing"},
    {"idle-timeout: [1s]\n", "c.yaml:1:15: idle-timeout: expected T, not a list"},
    {"workers: 257\n", "c.yaml:1:10: workers: '257': out of range 0..256"},
    {"high-water: 1000\n", "c.yaml:1:13: high-water: '1000': out of range 16k..1g"},
    {"h2-max-streams: lots\n", "c.yaml:1:17: h2-max-streams: 'lots': not a number"},
    {"listen: {a: b}\n", "c.yaml:1:9: listen: expected a list, not a mapping"},
    {"listen: [tcp://127.0.0.1:1, \"127.0.0.1:2\"]\n", "c.yaml:1:29: listen: '127.0.0.1:2': not tls://ADDR:PORT"},
    {"allow-net: [loopback, \"10.1.2.3/8\"]\n", "c.yaml:1:23: allow-net: '10.1.2.3/8': not a CIDR or an address class"},
    {"deny-net: [\"10.0.0.0/33\"]\n", "c.yaml:1:12: deny-net: '10.0.0.0/33': not a CIDR"},
    {"allow-ports: [443, 0]\n", "c.yaml:1:14: allow-ports: '443,0': not a port list"},
    {"allow-ports: [443, [80]]\n", "c.yaml:1:20: allow-ports: each item must be a single value, not a list"},
    {"ws-routes-only: yes\n", "c.yaml:1:17: ws-routes-only: 'yes': not true or false"},
    {"log-level: verbose\n", "c.yaml:1:12: log-level: 'verbose': not one of error, warn, info, debug"},
    {"udp-template: /no/vars\n", "c.yaml:1:15: udp-template: '/no/vars': not valid"},
    {"ws-route: [\"nourl\"]\n", "c.yaml:1:12: ws-route: 'nourl': not AUTHORITY=ws://HOST:PORT"},
    {"idle_timeout: 5s\n", "c.yaml:1:1: unknown key 'idle_timeout' (see h2tunnel --help for the names)"},
    {"config: other.yaml\n", "c.yaml:1:1: unknown key 'config' (only as a flag on the command line)"},
    {"help: true\n", "c.yaml:1:1: unknown key 'help' (only as a flag"},
    {"workers: 1\nworkers: 2\n", "c.yaml:2:1: duplicate key 'workers' (first given at line 1, column 1)"},
    {"workers: 1\n  bad indent: 2\n", "c.yaml:2:13: YAML syntax: mapping values are not allowed"},
    {"high-water: 64k\nlow-water: 64k\n", "c.yaml:2:1: --low-water must be below --high-water"},
    {"low-water: 1m\n", "c.yaml:1:1: --low-water must be below --high-water"},
    {"cert: /x.pem\n", "c.yaml:1:1: --cert and --key go together"},
    {"state-dir: \"" /* 600 bytes */
     "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
     "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
     "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
     "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
     "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
     "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
     "\"\n", "c.yaml:1:12: state-dir: 'ppp"},
};

static void test_yaml_errors(void **state) {
  (void)state;
  int failed = 0;
  for (size_t i = 0; i < ARRAY_SIZE(yaml_bad); i++) {
    struct config c;
    struct cfgfile_err err;
    config_init(&c);
    snprintf(c.config_file, sizeof(c.config_file), "c.yaml");
    int r = apply(&c, yaml_bad[i].text, &err);
    if (r == 0) r = config_check(&c, &err);
    config_dispose(&c);
    if (r == 0) {
      print_error("case %zu accepted\n", i);
      failed++;
    } else if (strncmp(err.text, yaml_bad[i].want, strlen(yaml_bad[i].want)) != 0) {
      print_error("case %zu: got '%s', want '%s...'\n", i, err.text, yaml_bad[i].want);
      failed++;
    }
  }
  assert_int_equal(failed, 0);
}

/* Runs config_parse with stderr captured into |errbuf|. */
static int parse_capture(struct config *cfg, char *errbuf, size_t cap, int argc, char **argv) {
  char path[] = "/tmp/h2t-cfg-err-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  int saved_out = dup(1), null = open("/dev/null", O_WRONLY);
  dup2(null, 1);
  close(null);
  int r = config_parse(cfg, argc, argv);
  fflush(stderr);
  fflush(stdout);
  dup2(saved, 2);
  dup2(saved_out, 1);
  close(saved);
  close(saved_out);
  ssize_t n = pread(fd, errbuf, cap - 1, 0);
  errbuf[n > 0 ? n : 0] = '\0';
  close(fd);
  unlink(path);
  return r;
}

static const struct config_origin *origin_of(const struct config *cfg, const char *name) {
  const struct config_origin *og = config_origin_of(cfg, name);
  CHECK(og != NULL);
  return og;
}

/* Flags win over the file; a repeatable flag replaces the file's whole list; --config may stand
 * anywhere on the command line. */
static void test_flags_override_file(void **state) {
  struct fx *f = *state;
  char path[] = "/tmp/h2t-cfg-XXXXXX";
  write_tmp(path, "connect-timeout: 7s\n"
                  "idle-timeout: 8s\n"
                  "listen: [tcp://127.0.0.1:9001, tcp://127.0.0.1:9002]\n"
                  "allow-net: [loopback, private]\n"
                  "allow-ports: [22]\n");
  char *argv[] = {"h2tunnel", "--idle-timeout", "9s", "--listen", "tcp://127.0.0.1:9100",
                  "--allow-net", "10.0.0.0/8", "--config", path, NULL};
  char errbuf[512];
  int r = parse_capture(&f->cfg, errbuf, sizeof(errbuf), 9, argv);
  unlink(path);
  if (r) fail_msg("%s", errbuf);
  struct config *c = &f->cfg;
  assert_int_equal(c->connect_timeout_ms, 7000);   /* file */
  assert_int_equal(c->idle_timeout_ms, 9000);      /* flag over file */
  assert_int_equal(c->nlisteners, 1);              /* the flag's list replaced the file's */
  assert_string_equal(c->listeners[0].text, "tcp://127.0.0.1:9100");
  assert_int_equal(c->allow_nets.n, 1);
  assert_string_equal(c->allow_nets.v[0], "10.0.0.0/8");
  assert_int_equal(policy_check_port(c->policy, 22), 0);
  assert_int_equal(origin_of(c, "connect-timeout")->src, CONFIG_SRC_FILE);
  assert_int_equal(origin_of(c, "idle-timeout")->src, CONFIG_SRC_FLAG);
  assert_int_equal(origin_of(c, "listen")->src, CONFIG_SRC_FLAG);
  assert_int_equal(origin_of(c, "header-timeout")->src, CONFIG_SRC_DEFAULT);
  assert_string_equal(c->config_file, path);
  assert_int_equal(c->check_only, 0);
}

/* The process's own errors: the file's are FILE:LINE:COL, a flag's name the flag. */
static void test_parse_messages(void **state) {
  (void)state;
  char path[] = "/tmp/h2t-cfg-XXXXXX";
  write_tmp(path, "# a comment\nworkers: 2\nconnect-timeout: never\n");
  char want[600], errbuf[1024];
  struct config c;

  config_init(&c);
  char *a1[] = {"h2tunnel", "--check-config", path, NULL};
  assert_int_equal(parse_capture(&c, errbuf, sizeof(errbuf), 3, a1), -EINVAL);
  snprintf(want, sizeof(want), "%s:3:18: connect-timeout: 'never': not a duration", path);
  if (strncmp(errbuf, want, strlen(want)) != 0) fail_msg("got '%s'", errbuf);
  config_dispose(&c);

  config_init(&c);
  char *a2[] = {"h2tunnel", "--config", "/nonexistent/h2t.yaml", NULL};
  assert_int_equal(parse_capture(&c, errbuf, sizeof(errbuf), 3, a2), -EINVAL);
  assert_string_equal(errbuf, "/nonexistent/h2t.yaml:1:1: cannot read: No such file or directory\n");
  config_dispose(&c);

  config_init(&c);
  char *a3[] = {"h2tunnel", "--idle-timeout", "soon", NULL};
  assert_int_equal(parse_capture(&c, errbuf, sizeof(errbuf), 3, a3), -EINVAL);
  assert_string_equal(errbuf, "h2tunnel: invalid value for --idle-timeout: 'soon': not a duration "
                              "(\"30\", \"1.5s\", \"250ms\", \"5m\", \"1h\") (see --help)\n");
  config_dispose(&c);

  config_init(&c);
  char *a4[] = {"h2tunnel", "--config", path, "--check-config", path, NULL};
  assert_int_equal(parse_capture(&c, errbuf, sizeof(errbuf), 5, a4), -EINVAL);
  assert_non_null(strstr(errbuf, "only one of --config and --check-config"));
  config_dispose(&c);

  /* A good file with --check-config: parsed, check_only set. */
  FILE *fp = fopen(path, "w");
  fputs("workers: 2\n", fp);
  fclose(fp);
  config_init(&c);
  char *a5[] = {"h2tunnel", "--check-config", path, "--workers", "4", NULL};
  assert_int_equal(parse_capture(&c, errbuf, sizeof(errbuf), 5, a5), 0);
  assert_int_equal(c.check_only, 1);
  assert_int_equal(c.workers, 4);
  config_dispose(&c);
  unlink(path);
}

/* An htpasswd named by the file is loaded at start-up, relative to the file, and a weak hash in
 * it stops the process with the htpasswd's own FILE:LINE. */
static void test_parse_loads_htpasswd(void **state) {
  (void)state;
  char dir[] = "/tmp/h2t-cfg-dir-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char cfgpath[600], pwpath[600], errbuf[1024], want[1400];
  snprintf(cfgpath, sizeof(cfgpath), "%s/h2t.yaml", dir);
  snprintf(pwpath, sizeof(pwpath), "%s/users", dir);
  FILE *fp = fopen(cfgpath, "w");
  fputs("auth:\n  htpasswd: users\ngroups:\n  ops: [alice, mallory]\n", fp);
  fclose(fp);
  fp = fopen(pwpath, "w");
  fputs("alice:$2y$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W\n", fp);
  fclose(fp);
  struct config c;
  char *argv[] = {"h2tunnel", "--config", cfgpath, NULL};

  config_init(&c);
  assert_int_equal(parse_capture(&c, errbuf, sizeof(errbuf), 3, argv), -EINVAL);
  snprintf(want, sizeof(want), "%s:4:16: groups: unknown user 'mallory' (not in the htpasswd file)\n", cfgpath);
  assert_string_equal(errbuf, want);
  config_dispose(&c);

  fp = fopen(pwpath, "a");
  fputs("mallory:$apr1$5jISNFc6$SJCE3yVjKK8jXj0DERRSQ/\n", fp);
  fclose(fp);
  config_init(&c);
  assert_int_equal(parse_capture(&c, errbuf, sizeof(errbuf), 3, argv), -EINVAL);
  snprintf(want, sizeof(want),
           "%s:2:13: auth.htpasswd: %s:2: user 'mallory': weak or unknown hash format (MD5 $apr1$)\n", cfgpath,
           pwpath);
  assert_string_equal(errbuf, want);
  config_dispose(&c);
  unlink(cfgpath);
  unlink(pwpath);
  rmdir(dir);
}

/* What --check-config prints is itself a configuration file that reads back to the same. */
static void test_print_roundtrip(void **state) {
  (void)state;
  static const char text[] =
      "listen: [\"tcp://127.0.0.1:9000\"]\nconnect-timeout: 1500ms\nhigh-water: 1m\nlow-water: 100000\n"
      "allow-net: [loopback, \"fd00::/8\"]\nws-route: [\"a=ws://127.0.0.1:1\"]\nno-extended-connect: true\n"
      "dns-server: \"127.0.0.1:53\"\naccess-log: \"with \\\"quotes\\\"\"\n"
      "auth: {realm: r, client-ca: /ca.pem, client-cert: optional, max-failures: unlimited}\n"
      "groups: {g: [u1, u2]}\n"
      "rules:\n  - {name: a, deny: {dest: [\"*.x.example\", \"10.0.0.0/8\"], ports: [1, \"5-9\"]}}\n"
      "  - allow: {groups: [g], users: \"*\", clients: [private], protocols: [websocket]}\n"
      "limits: {default: {rate: 3/h, tunnel-bandwidth-up: 2k/s}, users: {u1: {tunnels: 4}},"
      " instance: {bandwidth: unlimited}}\n";
  char *out1 = NULL, *out2 = NULL;
  size_t len1 = 0, len2 = 0;
  struct cfgfile_err err;
  struct config a, b;

  config_init(&a);
  assert_int_equal(apply(&a, text, &err), 0);
  assert_int_equal(config_check(&a, &err), 0);
  config_finish(&a);
  FILE *f = open_memstream(&out1, &len1);
  config_print(&a, f, 0);
  fclose(f);

  config_init(&b);
  if (apply(&b, out1, &err) || config_check(&b, &err)) fail_msg("%s\nin:\n%s", err.text, out1);
  config_finish(&b);
  f = open_memstream(&out2, &len2);
  config_print(&b, f, 0);
  fclose(f);
  assert_string_equal(out1, out2);
  assert_non_null(strstr(out1, "connect-timeout: 1500ms\n"));
  assert_non_null(strstr(out1, "low-water: 100000\n"));
  assert_non_null(strstr(out1, "no-extended-connect: true\n"));
  assert_non_null(strstr(out1, "  - allow: {users: \"*\", groups: [\"g\"], clients: [\"private\"], protocols: [websocket]}  # rule #2\n"));
  config_dispose(&a);
  config_dispose(&b);
  free(out1);
  free(out2);
}

static void test_print_origins(void **state) {
  struct fx *f = *state;
  char path[] = "/tmp/h2t-cfg-XXXXXX";
  write_tmp(path, "\n\nworkers: 2\nrules: []\n");
  char *argv[] = {"h2tunnel", "--check-config", path, "--connect-timeout", "5s", NULL};
  char errbuf[256];
  assert_int_equal(parse_capture(&f->cfg, errbuf, sizeof(errbuf), 5, argv), 0);
  config_finish(&f->cfg);
  char *buf = NULL, want[700];
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  config_print(&f->cfg, out, 1);
  fclose(out);
  snprintf(want, sizeof(want), "\nworkers: 2  # file %s:3\n", path);
  assert_non_null(strstr(buf, want));
  assert_non_null(strstr(buf, "\nconnect-timeout: 5s  # flag\n"));
  assert_non_null(strstr(buf, "\nidle-timeout: 5m  # default\n"));
  assert_non_null(strstr(buf, "\n# auth: not configured\n"));
  snprintf(want, sizeof(want), "\nrules: []  # file %s:4\n", path);
  assert_non_null(strstr(buf, want));
  free(buf);
  unlink(path);
}

static void test_snapshot(void **state) {
  (void)state;
  struct config *cfg = NULL;
  char *argv[] = {"h2tunnel", "--workers", "2", NULL};
  assert_int_equal(config_load(3, argv, &cfg), 0);
  assert_non_null(cfg);
  assert_int_equal(cfg->version, 1);
  assert_int_equal(atomic_load(&cfg->refs), 1);
  assert_int_equal(cfg->nlisteners, 2); /* finished: the embedded default listeners */
  assert_ptr_equal(config_ref(cfg), cfg);
  assert_int_equal(atomic_load(&cfg->refs), 2);
  config_unref(cfg);
  assert_int_equal(atomic_load(&cfg->refs), 1);
  config_unref(cfg); /* the last reference frees it (ASan would see a leak otherwise) */
  config_unref(NULL);

  struct config *bad = (struct config *)0x1;
  char *argv2[] = {"h2tunnel", "--workers", "x", NULL};
  char errbuf[256];
  fflush(stderr);
  int saved = dup(2), null = open("/dev/null", O_WRONLY);
  dup2(null, 2);
  close(null);
  int r = config_load(3, argv2, &bad);
  dup2(saved, 2);
  close(saved);
  (void)errbuf;
  assert_int_equal(r, -EINVAL);
  assert_ptr_equal(bad, (struct config *)0x1); /* untouched on error */
}

/* Every default in the table passes its own option's checks, and --help's "(default X)" agrees
 * with the value --check-config prints for the options whose help names one. */
static void test_help_defaults_agree(void **state) {
  struct fx *f = *state;
  char *printed = NULL;
  size_t plen = 0;
  fflush(stdout);
  int saved = dup(1);
  char path[] = "/tmp/h2t-help-XXXXXX";
  int fd = mkstemp(path);
  dup2(fd, 1);
  config_print_help("h2tunnel");
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  char text[16384];
  ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
  close(fd);
  unlink(path);
  assert_true(n > 0);
  text[n] = '\0';
  FILE *pf = open_memstream(&printed, &plen);
  config_print(&f->cfg, pf, 0);
  fclose(pf);

  int checked = 0;
  for (char *line = strstr(text, "\n  --"); line; line = strstr(line + 1, "\n  --")) {
    char name[64], def[64];
    if (sscanf(line, "\n  --%63s", name) != 1) continue;
    /* The default may be on a continuation line: look up to the next option. */
    char *next = strstr(line + 1, "\n  --");
    char *d = strstr(line, "(default ");
    if (!d || (next && d > next) || sscanf(d, "(default %63[^):]", def) != 1) continue;
    char key[80];
    snprintf(key, sizeof(key), "\n%s: ", name);
    char *p = strstr(printed, key);
    if (!p) continue; /* not printed (no such key) */
    char val[64];
    if (sscanf(p + strlen(key), "\"%63[^\"]", val) != 1) CHECK(sscanf(p + strlen(key), "%63s", val) == 1);
    uint64_t a, b;
    int same = strcmp(val, def) == 0 ||
               (units_parse_duration(val, &a) == 0 && units_parse_duration(def, &b) == 0 && a == b) ||
               (units_parse_size(val, &a) == 0 && units_parse_size(def, &b) == 0 && a == b);
    if (!(def[0] >= '0' && def[0] <= '9')) continue; /* prose: "stdout", "one per core" */
    if (!same)
      fail_msg("--%s: help says default %s, the table gives %s", name, def, val);
    checked++;
  }
  assert_true(checked >= 20);
  free(printed);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
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
      cmocka_unit_test(test_finish_max_connections),
      T(test_parse_twice),
      T(test_yaml_values),
      T(test_yaml_relative_paths),
      cmocka_unit_test(test_yaml_errors),
      T(test_flags_override_file),
      cmocka_unit_test(test_parse_messages),
      cmocka_unit_test(test_parse_loads_htpasswd),
      cmocka_unit_test(test_print_roundtrip),
      T(test_print_origins),
      cmocka_unit_test(test_snapshot),
      T(test_help_defaults_agree),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
