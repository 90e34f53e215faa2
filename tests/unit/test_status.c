/* Unit tests for src/status.c: who may see /status (admin listener, else loopback only), the PAC
 * file generated from the configuration (proxies in order, deny rules for everyone, --deny-net,
 * ports), and the refusal ring and /status.json of a worker with no loop running. The PAC text is
 * also run by node in tests/integration/test_status.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/access.h"
#include "src/cfgfile.h"
#include "src/config.h"
#include "src/status.h"
#include "src/strbuf.h"
#include "src/worker.h"

static void listener(struct config *cfg, const char *addr, int port, int tls, int admin) {
  struct config_listener *l = &cfg->listeners[cfg->nlisteners++];
  memset(l, 0, sizeof(*l));
  l->tls = tls;
  l->admin = admin;
  if (strchr(addr, ':')) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&l->addr;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET6, addr, &a->sin6_addr), 1);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&l->addr;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, addr, &a->sin_addr), 1);
  }
}

static void test_allowed(void **state) {
  (void)state;
  static struct config cfg;
  config_init(&cfg);
  cfg.nlisteners = 0;
  listener(&cfg, "127.0.0.1", 8080, 0, 0);
  listener(&cfg, "0.0.0.0", 8443, 1, 0);
  listener(&cfg, "::1", 8081, 0, 0);
  /* No admin listener: loopback-bound listeners only. */
  assert_true(status_allowed(&cfg, &cfg.listeners[0]));
  assert_false(status_allowed(&cfg, &cfg.listeners[1]));
  assert_true(status_allowed(&cfg, &cfg.listeners[2]));
  assert_false(status_allowed(&cfg, NULL));
  /* With one: only there, even a loopback client listener is refused. */
  listener(&cfg, "127.0.0.1", 9090, 0, 1);
  assert_false(status_allowed(&cfg, &cfg.listeners[0]));
  assert_false(status_allowed(&cfg, &cfg.listeners[2]));
  assert_true(status_allowed(&cfg, &cfg.listeners[3]));
  config_dispose(&cfg);
}

static const char *pac(struct config *cfg, const char *host, struct strbuf *sb) {
  strbuf_init(sb, 1 << 20);
  assert_int_equal(status_render_pac(cfg, host, sb), 0);
  return strbuf_str(sb);
}

static void test_pac_proxies(void **state) {
  (void)state;
  static struct config cfg;
  config_init(&cfg);
  cfg.nlisteners = 0;
  listener(&cfg, "127.0.0.1", 9090, 0, 1); /* admin: never in the PAC */
  listener(&cfg, "0.0.0.0", 8080, 0, 0);
  listener(&cfg, "0.0.0.0", 8443, 1, 0);
  struct strbuf sb;
  /* The TLS listener first, then the cleartext one; the name from Host, port stripped. */
  const char *t = pac(&cfg, "proxy.example:8080", &sb);
  assert_non_null(strstr(t, "var PROXY = \"HTTPS proxy.example:8443; PROXY proxy.example:8080\";\n"));
  assert_non_null(strstr(t, "function FindProxyForURL(url, host) {\n"));
  assert_non_null(strstr(t, "var PORTS = [[443, 443], [80, 80]];\n")); /* --allow-ports default */
  assert_non_null(strstr(t, "var ALL_PORTS = false;\n"));
  strbuf_dispose(&sb);
  t = pac(&cfg, "[2001:db8::1]:8080", &sb);
  assert_non_null(strstr(t, "HTTPS [2001:db8::1]:8443; PROXY [2001:db8::1]:8080\""));
  strbuf_dispose(&sb);
  /* --pac-proxy-host wins over Host; with no Host and a wildcard bind, loopback. */
  snprintf(cfg.pac_proxy_host, sizeof(cfg.pac_proxy_host), "gw.corp.example");
  t = pac(&cfg, "ignored:1", &sb);
  assert_non_null(strstr(t, "\"HTTPS gw.corp.example:8443; PROXY gw.corp.example:8080\""));
  strbuf_dispose(&sb);
  cfg.pac_proxy_host[0] = '\0';
  t = pac(&cfg, NULL, &sb);
  assert_non_null(strstr(t, "\"HTTPS 127.0.0.1:8443; PROXY 127.0.0.1:8080\""));
  strbuf_dispose(&sb);
  /* A host that tries to break out of the string literal is filtered. */
  t = pac(&cfg, "a\";alert(1);//", &sb);
  assert_null(strstr(t, "alert(1)"));
  assert_null(strstr(t, "\";alert"));
  strbuf_dispose(&sb);
  config_dispose(&cfg);
}

static void test_pac_rules_and_nets(void **state) {
  (void)state;
  static struct config cfg;
  config_init(&cfg);
  const char *yaml =
      "allow-ports: \"443,8000-8100\"\n"
      "deny-net: [\"203.0.113.0/24\", \"2001:db8::/32\", \"198.51.100.7\"]\n"
      "rules:\n"
      "  - name: no-social\n"
      "    deny: { dest: [\"*.facebook.com\", \"facebook.com\"] }\n"
      "  - name: ssh-for-users\n"
      "    deny: { users: [bob], dest: [\"bob.example\"] }\n"
      "  - name: open-22\n"
      "    allow: { ports: [22], dest: [\"git.example\"] }\n"
      "  - name: after-an-allow\n"
      "    deny: { dest: [\"late.example\"] }\n";
  struct cfgfile_err err;
  memset(&err, 0, sizeof(err));
  int rc = config_apply_yaml(&cfg, "t.yaml", yaml, strlen(yaml), &err);
  if (rc != 0) fail_msg("%s", err.text);
  cfg.nlisteners = 0;
  listener(&cfg, "127.0.0.1", 8080, 0, 0);
  struct strbuf sb;
  const char *t = pac(&cfg, "p:8080", &sb);
  assert_non_null(strstr(t, "var PROXY = \"PROXY p:8080\";\n"));
  /* Only the deny rule for everyone, before any allow. */
  assert_non_null(strstr(t, "var DENY_HOSTS = [\".facebook.com\", \"facebook.com\"];\n"));
  assert_null(strstr(t, "bob.example"));
  assert_null(strstr(t, "late.example"));
  /* IPv4 ranges as network and mask; the IPv6 one cannot be said with isInNet. */
  assert_non_null(strstr(t, "var DENY_NETS = [[\"203.0.113.0\", \"255.255.255.0\"], [\"198.51.100.7\", \"255.255.255.255\"]];\n"));
  /* --allow-ports plus the ports an allow rule opens. */
  assert_non_null(strstr(t, "var PORTS = [[443, 443], [8000, 8100], [22, 22]];\n"));
  strbuf_dispose(&sb);
  config_dispose(&cfg);
}

/* A worker that never runs its loop: the ring and the JSON of one worker. */
static void test_rejections_and_json(void **state) {
  (void)state;
  static struct config cfg;
  config_init(&cfg);
  cfg.status_rejections = 3;
  cfg.version = 7;
  static struct worker w;
  memset(&w, 0, sizeof(w));
  w.cfg = &cfg;
  w.nworkers = 1;
  list_init(&w.tunnels);
  assert_int_equal(uv_loop_init(&w.loop), 0);
  struct status_worker *s = status_worker_new(&w, NULL);
  for (int i = 0; i < 5; i++) {
    char target[32];
    snprintf(target, sizeof(target), "t%d.example:443", i);
    status_reject(&w, "h2", "connect", "127.0.0.1:5000", target, i == 4 ? "alice" : NULL, 403, "destination_ip_prohibited",
                  "denied by rule \"x\"");
  }
  uv_run(&w.loop, UV_RUN_NOWAIT);
  /* Refreshed by the timer; force one now by running it. */
  uv_timer_stop(&w.status_timer);
  w.status_timer.timer_cb(&w.status_timer);
  struct strbuf sb;
  strbuf_init(&sb, 1 << 20);
  assert_int_equal(status_render_json(&w, &sb), 0);
  const char *j = strbuf_str(&sb);
  assert_non_null(strstr(j, "\"config_version\":7,"));
  assert_non_null(strstr(j, "\"workers\":[{\"id\":0,\"connections\":0,\"handshakes\":0,\"tunnels\":0,"));
  assert_non_null(strstr(j, "\"tunnels\":[],\"top_talkers\":[],\"limits\":[],\"by_user\":[],\"by_target\":[]"));
  /* The last three, newest first; JSON strings escaped. */
  assert_null(strstr(j, "t0.example"));
  assert_null(strstr(j, "t1.example"));
  const char *a = strstr(j, "t4.example"), *b = strstr(j, "t3.example"), *c = strstr(j, "t2.example");
  assert_true(a && b && c && a < b && b < c);
  assert_non_null(strstr(j, "\"user\":\"alice\",\"target\":\"t4.example:443\""));
  assert_non_null(strstr(j, "\"detail\":\"denied by rule \\\"x\\\"\""));
  assert_non_null(strstr(j, "\"status\":403,\"error\":\"destination_ip_prohibited\""));
  strbuf_dispose(&sb);
  uv_close((uv_handle_t *)&w.status_timer, NULL);
  uv_run(&w.loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&w.loop), 0);
  status_worker_free(s);
  config_dispose(&cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_allowed),
      cmocka_unit_test(test_pac_proxies),
      cmocka_unit_test(test_pac_rules_and_nets),
      cmocka_unit_test(test_rejections_and_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
