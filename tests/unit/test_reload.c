/* Reloading: config_reload's snapshots (versions, refcounts, flags over the file, a bad file
 * leaving the old one alone) and the re-check decision of proxy/recheck.h on live tunnels. */
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
#include <unistd.h>

#include "proxy/recheck.h"
#include "src/access.h"
#include "src/config.h"
#include "src/util.h"
#include "tunnel/tunnel.h"

struct fx {
  char dir[64];
  char conf[128];
  char users[128];
};

static void put(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int setup(void **state) {
  struct fx *f = xcalloc(1, sizeof(*f));
  snprintf(f->dir, sizeof(f->dir), "/tmp/h2t-reload-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->conf, sizeof(f->conf), "%s/h2tunnel.yaml", f->dir);
  snprintf(f->users, sizeof(f->users), "%s/users", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  unlink(f->conf);
  unlink(f->users);
  rmdir(f->dir);
  free(f);
  return 0;
}

/* config_reload with stderr silenced (a refused file prints its FILE:LINE:COL there). */
static int quiet_reload(const struct config *old, int argc, char **argv, struct config **out) {
  fflush(stderr);
  int saved = dup(2), null = open("/dev/null", O_WRONLY);
  dup2(null, 2);
  close(null);
  int r = config_reload(old, argc, argv, out);
  dup2(saved, 2);
  close(saved);
  return r;
}

static void test_reload_snapshots(void **state) {
  struct fx *f = *state;
  put(f->conf, "connect-timeout: 5s\nidle-timeout: 60s\n");
  char *argv[] = {"h2tunnel", "--config", f->conf, "--connect-timeout", "7s", NULL};
  struct config *v1 = NULL, *v2 = NULL, *v3 = NULL;
  assert_int_equal(config_load(5, argv, &v1), 0);
  assert_int_equal(v1->version, 1);
  assert_int_equal(v1->connect_timeout_ms, 7000);
  assert_int_equal(v1->idle_timeout_ms, 60000);

  /* The file changes both; the flag still wins for its option. */
  put(f->conf, "connect-timeout: 9s\nidle-timeout: 90s\n");
  assert_int_equal(config_reload(v1, 5, argv, &v2), 0);
  assert_int_equal(v2->version, 2);
  assert_int_equal(v2->connect_timeout_ms, 7000);
  assert_int_equal(v2->idle_timeout_ms, 90000);
  assert_int_equal(v1->idle_timeout_ms, 60000); /* the old snapshot is untouched */
  assert_int_equal(atomic_load(&v2->refs), 1);

  /* A bad file: refused, *out untouched, the running one unchanged. */
  put(f->conf, "connect-timeout: 9s\nidle-timeout: banana\n");
  v3 = (struct config *)0x1;
  assert_int_equal(quiet_reload(v2, 5, argv, &v3), -EINVAL);
  assert_ptr_equal(v3, (struct config *)0x1);
  assert_int_equal(v2->idle_timeout_ms, 90000);

  /* A request or tunnel holding the old snapshot keeps it alive past its replacement. */
  struct config *held = config_ref(v1);
  config_unref(v1);                      /* main's reference goes with the swap */
  assert_int_equal(atomic_load(&held->refs), 1);
  assert_int_equal(held->idle_timeout_ms, 60000); /* still readable (ASan: no use after free) */
  config_unref(held);                    /* the last one frees it */
  config_unref(v2);
}

static void test_uncounted_snapshot(void **state) {
  (void)state;
  /* A configuration a caller owns (unit tests' stack configs) is never freed by unref. */
  struct config cfg;
  config_init(&cfg);
  assert_ptr_equal(config_ref(&cfg), &cfg);
  config_unref(&cfg);
  config_unref(&cfg);
  assert_int_equal(atomic_load(&cfg.refs), 0);
  assert_int_equal(cfg.counted, 0);
  config_dispose(&cfg);
}

/* SHA-512 crypt of "alice-pw" and "bob-pw" (openssl passwd -6 -salt saltsalt). */
#define ALICE "alice:$6$saltsalt$6Ln9l6BtDgyKwSHwdUE47gnhcuIsgmQhFvEwo9YcWYBgzykQj0GKDn5SZB7NxuK0rgczjYbaFhtalyn4hhc8k1\n"
#define BOB "bob:$6$saltsalt$pkqyANKCAOeeWmhwck54C3T3yfOcxtv2K7HRyENLnWZ7yyDavjLd4EW0gHFSoFy3UA9KPX5OWMFUPq6bZ6U9..\n"

static struct config *load(struct fx *f, const char *yaml, const char *extra_flag) {
  put(f->conf, yaml);
  char *argv[] = {"h2tunnel", "--config", f->conf, (char *)extra_flag, NULL};
  struct config *cfg = NULL;
  assert_int_equal(config_load(extra_flag ? 4 : 3, argv, &cfg), 0);
  return cfg;
}

static void sa4(struct sockaddr_storage *ss, const char *ip, int port) {
  struct sockaddr_in *s = (struct sockaddr_in *)ss;
  memset(ss, 0, sizeof(*ss));
  s->sin_family = AF_INET;
  s->sin_port = htons((uint16_t)port);
  assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
}

/* A CONNECT tunnel of |user| from 203.0.113.7 to example.com:443 connected to 93.184.215.14. */
static struct tun_info tunnel_of(const char *user) {
  struct tun_info t;
  memset(&t, 0, sizeof(t));
  t.proto = TUN_PROTO_CONNECT;
  t.user = user;
  snprintf(t.client, sizeof(t.client), "203.0.113.7:40000");
  snprintf(t.target, sizeof(t.target), "example.com:443");
  sa4(&t.client_addr, "203.0.113.7", 40000);
  sa4(&t.peer_addr, "93.184.215.14", 443);
  snprintf(t.asked.host, sizeof(t.asked.host), "example.com");
  t.asked.port = 443;
  return t;
}

static void test_recheck_users(void **state) {
  struct fx *f = *state;
  put(f->users, ALICE BOB);
  char yaml[512];
  snprintf(yaml, sizeof(yaml), "auth:\n  htpasswd: %s\n  no-auth-nets: [198.51.100.0/24]\n", f->users);
  struct config *cfg = load(f, yaml, NULL);
  const char *why = NULL;
  struct tun_info t = tunnel_of("alice");
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_KEEP);
  config_unref(cfg);

  put(f->users, BOB); /* alice removed */
  cfg = load(f, yaml, NULL);
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_CLOSE);
  assert_string_equal(why, "user removed");
  struct tun_info b = tunnel_of("bob");
  assert_int_equal(px_recheck_decide(cfg, &b, &why), PX_RECHECK_KEEP);
  /* A certificate's user is not an htpasswd user: not looked up. */
  t.cert_user = 1;
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_KEEP);
  /* An anonymous tunnel once authentication is required; not from no-auth-nets. */
  struct tun_info anon = tunnel_of(NULL);
  assert_int_equal(px_recheck_decide(cfg, &anon, &why), PX_RECHECK_CLOSE);
  assert_string_equal(why, "authentication now required");
  sa4(&anon.client_addr, "198.51.100.9", 1234);
  assert_int_equal(px_recheck_decide(cfg, &anon, &why), PX_RECHECK_KEEP);
  config_unref(cfg);

  /* The global switch keeps what would be closed, and says so. */
  cfg = load(f, yaml, "--reload-keep-tunnels");
  t.cert_user = 0;
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_KEEP_ASKED);
  assert_string_equal(why, "user removed");
  config_unref(cfg);
}

static void test_recheck_rules_and_policy(void **state) {
  struct fx *f = *state;
  const char *why = NULL;
  struct tun_info t = tunnel_of(NULL);

  /* No rules: the built-in policy. 443 is allowed, a public address is. */
  struct config *cfg = load(f, "idle-timeout: 60s\n", NULL);
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_KEEP);
  /* The port is no longer allowed. */
  config_unref(cfg);
  cfg = load(f, "allow-ports: \"80\"\n", NULL);
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_CLOSE);
  assert_string_equal(why, "port not allowed");
  t.trusted = 1; /* a configured WebSocket backend: no target policy */
  t.proto = TUN_PROTO_WEBSOCKET;
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_KEEP);
  t.trusted = 0;
  t.proto = TUN_PROTO_CONNECT;
  config_unref(cfg);

  /* A private address, allowed by --allow-net at the time, is not any more. */
  sa4(&t.peer_addr, "10.1.2.3", 443);
  cfg = load(f, "idle-timeout: 60s\n", NULL);
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_CLOSE);
  config_unref(cfg);
  cfg = load(f, "allow-net: [private]\n", NULL);
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_KEEP);
  config_unref(cfg);
  sa4(&t.peer_addr, "93.184.215.14", 443);

  /* A rule on the name denies it; the rule's name is the reason. */
  cfg = load(f, "rules:\n  - name: no-example\n    deny: {dest: [example.com]}\n", NULL);
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_CLOSE);
  assert_string_equal(why, "no-example");
  /* The rule that allowed it at the time said keep-on-reload: kept. */
  t.keep_on_reload = 1;
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_KEEP_ASKED);
  t.keep_on_reload = 0;
  config_unref(cfg);

  /* A rule on the connected address (CIDR): decided by the address, not the name. */
  cfg = load(f, "rules:\n  - name: no-net\n    deny: {dest: [93.184.215.0/24]}\n", NULL);
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_CLOSE);
  assert_string_equal(why, "no-net");
  sa4(&t.peer_addr, "93.184.216.34", 443);
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_KEEP);
  config_unref(cfg);

  /* A rule for another protocol does not touch a CONNECT tunnel. */
  cfg = load(f, "rules:\n  - name: no-udp\n    deny: {protocols: [connect-udp]}\n", NULL);
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_KEEP);
  t.proto = TUN_PROTO_CONNECT_UDP;
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_CLOSE);
  config_unref(cfg);

  /* The client's network is no longer allowed. */
  t.proto = TUN_PROTO_CONNECT;
  cfg = load(f, "auth:\n  allowed-client-nets: [198.51.100.0/24]\n", NULL);
  assert_int_equal(px_recheck_decide(cfg, &t, &why), PX_RECHECK_CLOSE);
  assert_string_equal(why, "client address no longer allowed");
  config_unref(cfg);
}

static void test_keep_on_reload_parsed(void **state) {
  struct fx *f = *state;
  struct config *cfg = load(f, "rules:\n  - name: ssh\n    keep-on-reload: true\n    allow: {ports: [22]}\n"
                               "  - keep-on-reload: false\n    deny: {ports: [23]}\n", NULL);
  assert_int_equal(cfg->access->nrules, 2);
  assert_int_equal(cfg->access->rules[0].keep_on_reload, 1);
  assert_int_equal(cfg->access->rules[1].keep_on_reload, 0);
  /* --check-config prints it so that it reads back the same. */
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  access_print_section(cfg->access, "rules", NULL, out);
  fclose(out);
  assert_non_null(strstr(buf, "keep-on-reload: true"));
  config_unref(cfg);
  put(f->conf, buf);
  free(buf);
  char *argv[] = {"h2tunnel", "--config", f->conf, NULL};
  assert_int_equal(config_load(3, argv, &cfg), 0);
  assert_int_equal(cfg->access->rules[0].keep_on_reload, 1);
  config_unref(cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_reload_snapshots, setup, teardown),
      cmocka_unit_test(test_uncounted_snapshot),
      cmocka_unit_test_setup_teardown(test_recheck_users, setup, teardown),
      cmocka_unit_test_setup_teardown(test_recheck_rules_and_policy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keep_on_reload_parsed, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
