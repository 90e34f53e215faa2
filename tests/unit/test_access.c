/* Unit tests for src/access.c: the auth, groups, rules and limits sections become the structures
 * the request path will match against (CIDRs parsed, host patterns lowercased, ports merged,
 * groups resolved, limits inherited), and every mistake is reported at FILE:LINE:COL. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/access.h"
#include "src/policy.h"
#include "src/users.h"
#include "src/util.h"

#define HASH "$2y$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W"
static const char htpasswd[] = "alice:" HASH "\nbob:" HASH "\ncarol:" HASH "\n";

/* Parses every section of |text| into a new access, links it (with the users above when
 * |with_users|), and returns it; NULL with |err| on any failure. */
static struct access *load(const char *text, int with_users, struct cfgfile_err *err) {
  struct cfgfile_doc *doc = cfgfile_parse("a.yaml", text, strlen(text), err);
  if (!doc) return NULL;
  struct access *a = access_new();
  a->file = xstrndup("a.yaml", 6);
  int r = 0;
  for (size_t i = 0; i + 1 < doc->root->n && r == 0; i += 2) {
    const char *key = doc->root->kids[i]->str;
    CHECK(access_is_section(key));
    r = access_parse_section(a, key, doc->root->kids[i + 1], "/etc/h2t/", err);
  }
  cfgfile_free(doc);
  if (r == 0 && with_users) {
    a->auth.users = users_parse("users", htpasswd, strlen(htpasswd), err);
    CHECK(a->auth.users != NULL);
  }
  if (r == 0) r = access_link(a, err);
  if (r) {
    access_free(a);
    return NULL;
  }
  return a;
}

static struct access *must_load(const char *text, int with_users) {
  struct cfgfile_err err;
  struct access *a = load(text, with_users, &err);
  if (!a) fail_msg("refused: %s", err.text);
  return a;
}

static void test_auth(void **state) {
  (void)state;
  struct access *a = must_load("auth:\n"
                               "  htpasswd: users\n"
                               "  realm: corp proxy\n"
                               "  client-ca: /abs/ca.pem\n"
                               "  no-auth-nets: [\"10.0.0.0/8\", loopback]\n"
                               "  allowed-client-nets: \"::1\"\n"
                               "  max-failures: unlimited\n"
                               "  failure-window: 30s\n"
                               "  ban-time: 1h\n",
                               0);
  assert_string_equal(a->auth.htpasswd, "/etc/h2t/users"); /* relative to the file's directory */
  assert_int_equal(a->auth.htpasswd_pos.line, 2);
  assert_int_equal(a->auth.htpasswd_pos.col, 13);
  assert_string_equal(a->auth.realm, "corp proxy");
  assert_string_equal(a->auth.client_ca, "/abs/ca.pem");
  assert_int_equal(a->auth.client_cert, ACCESS_CERT_REQUIRED); /* the default with a CA */
  assert_int_equal(a->auth.no_auth_nets.n, 1);
  assert_int_equal(a->auth.no_auth_nets.v[0].family, AF_INET);
  assert_int_equal(a->auth.no_auth_nets.v[0].prefix, 8);
  assert_int_equal(a->auth.no_auth_nets.v[0].addr[0], 10);
  assert_int_equal(a->auth.no_auth_nets.classes, 1u << ADDR_LOOPBACK);
  assert_int_equal(a->auth.allowed_client_nets.n, 1);
  assert_int_equal(a->auth.allowed_client_nets.v[0].family, AF_INET6);
  assert_int_equal(a->auth.allowed_client_nets.v[0].prefix, 128);
  assert_int_equal(a->auth.max_failures, 0);
  assert_int_equal(a->auth.failure_window_ms, 30000);
  assert_int_equal(a->auth.ban_ms, 3600000);
  access_free(a);

  /* Defaults. */
  a = must_load("auth: {htpasswd: /u, client-ca: ca.pem, client-cert: optional}\n", 0);
  assert_string_equal(a->auth.realm, "h2tunnel");
  assert_int_equal(a->auth.max_failures, 10);
  assert_int_equal(a->auth.failure_window_ms, 60000);
  assert_int_equal(a->auth.ban_ms, 300000);
  assert_int_equal(a->auth.client_cert, ACCESS_CERT_OPTIONAL);
  assert_string_equal(a->auth.client_ca, "/etc/h2t/ca.pem");
  access_free(a);
}

static void test_groups_and_rules(void **state) {
  (void)state;
  struct access *a = must_load("groups:\n"
                               "  ops: [carol, alice]\n"
                               "  empty: []\n"
                               "rules:\n"
                               "  - name: no-social\n"
                               "    deny: { dest: [\"*.FaceBook.com\", Facebook.com] }\n"
                               "  - allow:\n"
                               "      groups: ops\n"
                               "      users: [bob]\n"
                               "      clients: [\"192.168.0.0/16\", private]\n"
                               "      dest: [\"10.20.0.0/16\", \"2001:db8::/32\", 1.2.3.4, \"*.corp.example\"]\n"
                               "      ports: [443, \"8000-8100\", 22, \"8050-8200\", 8201, 80]\n"
                               "      protocols: [connect-udp, connect]\n"
                               "  - deny:\n",
                               1);
  assert_int_equal(a->ngroups, 2);
  assert_string_equal(a->groups[0].name, "empty"); /* sorted */
  const struct access_group *ops = access_find_group(a, "ops");
  assert_non_null(ops);
  assert_int_equal(ops->n, 2);
  assert_string_equal(ops->members[0].s, "alice"); /* sorted */
  assert_null(access_find_group(a, "nope"));

  assert_int_equal(a->nrules, 3);
  const struct access_rule *r = &a->rules[0];
  assert_string_equal(r->name, "no-social");
  assert_int_equal(r->action, ACCESS_DENY);
  assert_int_equal(r->nhosts, 2);
  assert_string_equal(r->hosts[0].pattern, ".facebook.com");
  assert_int_equal(r->hosts[0].suffix, 1);
  assert_string_equal(r->hosts[1].pattern, "facebook.com");
  assert_int_equal(r->hosts[1].suffix, 0);
  assert_int_equal(r->nports, 0);
  assert_int_equal(r->protocols, 0);

  r = &a->rules[1];
  assert_string_equal(r->name, "#2"); /* unnamed: its 1-based position */
  assert_int_equal(r->action, ACCESS_ALLOW);
  assert_int_equal(r->ngroups, 1);
  assert_ptr_equal(&a->groups[r->group_idx[0]], ops);
  assert_int_equal(r->nusers, 1);
  assert_string_equal(r->users[0].s, "bob");
  assert_int_equal(r->clients.n, 1);
  assert_int_equal(r->clients.classes, 1u << ADDR_PRIVATE);
  assert_int_equal(r->dests.n, 3);
  assert_int_equal(r->dests.v[1].family, AF_INET6);
  assert_int_equal(r->dests.v[1].prefix, 32);
  assert_int_equal(r->dests.v[2].prefix, 32); /* a bare address */
  assert_int_equal(r->nhosts, 1);
  /* 22, 80, 443, 8000-8201 (8000-8100 + 8050-8200 + 8201 merged). */
  assert_int_equal(r->nports, 4);
  assert_int_equal(r->ports[0].lo, 22);
  assert_int_equal(r->ports[1].lo, 80);
  assert_int_equal(r->ports[2].lo, 443);
  assert_int_equal(r->ports[3].lo, 8000);
  assert_int_equal(r->ports[3].hi, 8201);
  assert_int_equal(r->protocols, ACCESS_PROTO_CONNECT | ACCESS_PROTO_CONNECT_UDP);

  r = &a->rules[2];
  assert_string_equal(r->name, "#3");
  assert_int_equal(r->action, ACCESS_DENY); /* "deny:" with nothing matches everything */
  assert_int_equal(r->any_user + (int)r->nusers + (int)r->ngroups + (int)r->nports + (int)r->nhosts, 0);
  access_free(a);

  a = must_load("rules:\n  - allow: {users: \"*\", dest: \"*\", ports: \"*\"}\n", 0);
  assert_int_equal(a->rules[0].any_user, 1);
  assert_int_equal(a->rules[0].any_dest, 1);
  assert_int_equal(a->rules[0].nports, 1);
  assert_int_equal(a->rules[0].ports[0].lo, 1);
  assert_int_equal(a->rules[0].ports[0].hi, 65535);
  access_free(a);
}

static void test_limits(void **state) {
  (void)state;
  struct access *a = must_load("limits:\n"
                               "  users:\n"
                               "    bob: {tunnels: 10, rate: 5/m}\n"
                               "    carol: {tunnels: unlimited, bandwidth-up: 1m/s}\n"
                               "  default: {tunnels: 100, rate: 20/s, burst: 40, bandwidth: 50MB/s}\n"
                               "  per-client: {tunnel-bandwidth: 512k/s}\n"
                               "  instance: {tunnels: 20000, rate: 1000/h}\n",
                               1);
  const struct access_limits *d = &a->limits.user_default;
  assert_int_equal(d->tunnels, 100);
  assert_int_equal(d->rate_count, 20);
  assert_int_equal(d->rate_period_ms, 1000);
  assert_int_equal(d->burst, 40);
  assert_int_equal(d->bw_up, 50u << 20);
  assert_int_equal(d->bw_down, 50u << 20);
  assert_int_equal(d->tunnel_bw_up, 0);

  const struct access_limits *bob = access_user_limits(a, "bob");
  assert_int_equal(bob->tunnels, 10);
  assert_int_equal(bob->rate_count, 5);
  assert_int_equal(bob->rate_period_ms, 60000);
  assert_int_equal(bob->burst, 5);              /* a user's own rate brings its own burst */
  assert_int_equal(bob->bw_up, 50u << 20);      /* inherited */
  const struct access_limits *carol = access_user_limits(a, "carol");
  assert_int_equal(carol->tunnels, 0);          /* unlimited */
  assert_int_equal(carol->bw_up, 1u << 20);
  assert_int_equal(carol->bw_down, 50u << 20);
  assert_int_equal(carol->burst, 40);
  assert_ptr_equal(access_user_limits(a, "alice"), d);

  assert_int_equal(a->limits.per_client.tunnel_bw_up, 512u << 10);
  assert_int_equal(a->limits.per_client.tunnel_bw_down, 512u << 10);
  assert_int_equal(a->limits.per_client.tunnels, 0);
  assert_int_equal(a->limits.instance.rate_count, 1000);
  assert_int_equal(a->limits.instance.rate_period_ms, 3600000);
  assert_int_equal(a->limits.instance.burst, 1000);
  access_free(a);
}

struct bad_case {
  const char *text;
  int with_users;
  const char *want;
};

static const struct bad_case bad_cases[] = {
    {"auth: [x]\n", 0, "a.yaml:1:7: auth: expected a mapping (key: value), not a list"},
    {"auth:\n  htpassword: x\n", 0, "a.yaml:2:3: auth: unknown key 'htpassword' (known: htpasswd, realm,"},
    {"auth: {htpasswd: [a, b]}\n", 0, "a.yaml:1:18: auth.htpasswd: expected a file name, not a list"},
    {"auth: {realm: 'a\"b'}\n", 0, "a.yaml:1:15: auth.realm: 'a\"b' is not a realm"},
    {"auth: {client-cert: required}\n", 0, "a.yaml:1:21: auth.client-cert: needs auth.client-ca"},
    {"auth: {client-ca: c, client-cert: maybe}\n", 0, "a.yaml:1:35: auth.client-cert: 'maybe' is not 'required' or 'optional'"},
    {"auth: {htpasswd: u, no-auth-nets: [\"10.0.0.1/8\"]}\n", 0,
     "a.yaml:1:36: auth.no-auth-nets: '10.0.0.1/8' is not a CIDR, an address or an address class"},
    {"auth: {no-auth-nets: [loopback]}\n", 0, "a.yaml:1:22: auth.no-auth-nets: means nothing without"},
    {"auth: {allowed-client-nets: [\"1.2.3.0/33\"]}\n", 0, "a.yaml:1:30: auth.allowed-client-nets: '1.2.3.0/33' is not"},
    {"auth: {max-failures: 0}\n", 0, "a.yaml:1:22: auth.max-failures: '0' is not a count from 1"},
    {"auth: {ban-time: 0s}\n", 0, "a.yaml:1:18: auth.ban-time: '0s' is not a duration above 0"},
    {"groups: {ops: [alice, \"*\"]}\n", 0, "a.yaml:1:23: groups.ops: '*' is not a user name"},
    {"groups: {\"bad name\": [alice]}\n", 0, "a.yaml:1:10: groups: 'bad name' is not a group name"},
    {"groups: {ops: [alice, mallory]}\n", 1, "a.yaml:1:23: groups: unknown user 'mallory' (not in the htpasswd file)"},
    {"groups:\n  ops: [alice, bob, alice]\n", 1, "a.yaml:2:21: groups: 'alice' is listed twice"},
    {"rules: {a: b}\n", 0, "a.yaml:1:8: rules: expected a list of rules, not a mapping"},
    {"rules:\n  - name: x\n", 0, "a.yaml:2:5: rules[0]: needs allow: or deny:"},
    {"rules:\n  - allow: {}\n    deny: {}\n", 0, "a.yaml:3:5: rules[0]: give allow: or deny:, not both"},
    {"rules:\n  - allow: {}\n    because: x\n", 0, "a.yaml:3:5: rules[0]: unknown key 'because' (known: name, keep-on-reload, allow, deny)"},
    {"rules:\n  - {name: a, allow: {}}\n  - {name: a, deny: {}}\n", 0,
     "a.yaml:3:12: rules[1].name: the name 'a' is already used by rule 1"},
    {"rules:\n  - {name: \"#1\", allow: {}}\n", 0, "a.yaml:2:12: rules[0].name: '#1' is not a rule name"},
    {"rules:\n  - allow: {port: [22]}\n", 0, "a.yaml:2:13: rules[0].allow: unknown key 'port' (known: users, groups,"},
    {"rules:\n  - allow: {ports: [0]}\n", 0, "a.yaml:2:21: rules[0].allow.ports: '0' is not a port"},
    {"rules:\n  - allow: {ports: [\"90-80\"]}\n", 0, "a.yaml:2:21: rules[0].allow.ports: '90-80' is not a port"},
    {"rules:\n  - allow: {ports: [65536]}\n", 0, "a.yaml:2:21: rules[0].allow.ports: '65536' is not a port"},
    {"rules:\n  - allow: {protocols: [http]}\n", 0, "a.yaml:2:25: rules[0].allow.protocols: 'http' is not a protocol"},
    {"rules:\n  - allow: {dest: [\"10.0.0.1/8\"]}\n", 0, "a.yaml:2:20: rules[0].allow.dest: '10.0.0.1/8' is not a CIDR"},
    {"rules:\n  - allow: {dest: [\"a..b\"]}\n", 0, "a.yaml:2:20: rules[0].allow.dest: 'a..b' is not a host name"},
    {"rules:\n  - allow: {dest: [\"foo.*.com\"]}\n", 0, "a.yaml:2:20: rules[0].allow.dest: 'foo.*.com' is not a host name"},
    {"rules:\n  - allow: {dest: [[a]]}\n", 0, "a.yaml:2:20: rules[0].allow.dest: each item must be a single value, not a list"},
    {"rules:\n  - allow: {users: [alice, \"*\"]}\n", 0, "a.yaml:2:28: rules[0].allow.users: '*' is not a user name"},
    {"rules:\n  - allow: {groups: [ops]}\n", 0, "a.yaml:2:22: rules: unknown group 'ops' (there is no groups: section)"},
    {"groups: {devs: []}\nrules:\n  - allow: {groups: [ops]}\n", 0, "a.yaml:3:22: rules: unknown group 'ops' (not under groups:)"},
    {"rules:\n  - deny: {users: [zed]}\n", 1, "a.yaml:2:20: rules: unknown user 'zed' (not in the htpasswd file)"},
    {"rules:\n  - deny\n", 0, "a.yaml:2:5: rules[0]: expected a mapping with allow: or deny:, not a scalar"},
    {"limits: {default: {tunnels: 0}}\n", 0, "a.yaml:1:29: limits.default.tunnels: '0' is not a count"},
    {"limits: {default: {rate: 20}}\n", 0, "a.yaml:1:26: limits.default.rate: '20' is not a rate"},
    {"limits: {default: {rate: 20/d}}\n", 0, "a.yaml:1:26: limits.default.rate: '20/d' is not a rate"},
    {"limits: {default: {bandwidth: 50MB}}\n", 0, "a.yaml:1:31: limits.default.bandwidth: '50MB' is not a bandwidth"},
    {"limits: {default: {bandwidth: 5/s}}\n", 0, "a.yaml:1:31: limits.default.bandwidth: '5/s' is not a bandwidth"},
    {"limits: {default: {bandwidth: 1m/s, bandwidth-up: 2m/s}}\n", 0,
     "a.yaml:1:51: limits.default.bandwidth-up: the same direction is already set in this block"},
    {"limits: {default: {burst: 5}}\n", 0, "a.yaml:1:27: limits.default.burst: needs a rate in the same block"},
    {"limits: {per_client: {tunnels: 5}}\n", 0, "a.yaml:1:10: limits: unknown key 'per_client' (known: default, users,"},
    {"limits: {default: {tunnel: 5}}\n", 0, "a.yaml:1:20: limits.default: unknown key 'tunnel' (known: tunnels,"},
    {"limits: {users: {zed: {tunnels: 1}}}\n", 1, "a.yaml:1:18: limits.users: unknown user 'zed' (not in the htpasswd file)"},
    {"limits: {users: [bob]}\n", 0, "a.yaml:1:17: limits.users: expected a mapping (key: value), not a list"},
};

static void test_errors(void **state) {
  (void)state;
  int failed = 0;
  for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
    struct cfgfile_err err;
    struct access *a = load(bad_cases[i].text, bad_cases[i].with_users, &err);
    if (a) {
      access_free(a);
      fail_msg("case %zu accepted: %s", i, bad_cases[i].text);
    }
    if (strncmp(err.text, bad_cases[i].want, strlen(bad_cases[i].want)) != 0) {
      print_error("case %zu: got '%s', want '%s...'\n", i, err.text, bad_cases[i].want);
      failed++;
    }
  }
  assert_int_equal(failed, 0);
}

/* Without an htpasswd file (client certificates name the users), names are taken as given. */
static void test_names_without_htpasswd(void **state) {
  (void)state;
  struct access *a = must_load("groups: {ops: [cn-of-a-cert]}\nrules:\n  - allow: {users: [another]}\n", 0);
  assert_int_equal(a->nrules, 1);
  access_free(a);
}

static void test_load_files(void **state) {
  (void)state;
  struct cfgfile_err err;
  struct access *a = load("auth:\n  htpasswd: /nonexistent/users\n", 0, &err);
  assert_non_null(a);
  assert_int_equal(access_load_files(a, &err), -EINVAL);
  assert_string_equal(err.text, "a.yaml:2:13: auth.htpasswd: /nonexistent/users:1:1: cannot read: No such file or directory");
  access_free(a);
  a = load("auth:\n  client-ca: /nonexistent/ca.pem\n", 0, &err);
  assert_non_null(a);
  assert_int_equal(access_load_files(a, &err), -EINVAL);
  assert_string_equal(err.text, "a.yaml:2:14: auth.client-ca: cannot read /nonexistent/ca.pem: No such file or directory");
  access_free(a);
}

/* The unit a client is counted in, and its text (the per-client key, the ban log line). */
static void test_client_key(void **state) {
  (void)state;
  struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
  struct sockaddr_in s4 = {.sin_family = AF_INET};
  struct access_client k;
  char text[ACCESS_CLIENT_TEXT_MAX];
  assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", &s6.sin6_addr), 1);
  assert_int_equal(access_client_key((const struct sockaddr *)&s6, 32, 64, &k), 0);
  access_client_text(&k, text, sizeof(text));
  assert_string_equal(text, "2001:db8:1:2::/64");
  assert_int_equal(access_client_key((const struct sockaddr *)&s6, 32, 56, &k), 0);
  access_client_text(&k, text, sizeof(text));
  assert_string_equal(text, "2001:db8:1::/56");
  assert_int_equal(access_client_key((const struct sockaddr *)&s6, 32, 128, &k), 0);
  access_client_text(&k, text, sizeof(text));
  assert_string_equal(text, "2001:db8:1:2:3:4:5:6");
  /* IPv4, and IPv4 behind a dual-stack listener, under the IPv4 prefix. */
  assert_int_equal(inet_pton(AF_INET, "192.0.2.77", &s4.sin_addr), 1);
  assert_int_equal(access_client_key((const struct sockaddr *)&s4, 32, 64, &k), 0);
  access_client_text(&k, text, sizeof(text));
  assert_string_equal(text, "192.0.2.77");
  assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.77", &s6.sin6_addr), 1);
  assert_int_equal(access_client_key((const struct sockaddr *)&s6, 20, 64, &k), 0);
  access_client_text(&k, text, sizeof(text));
  assert_string_equal(text, "192.0.0.0/20");
  assert_int_equal(k.family, AF_INET);
  /* Unknown: -1 and an empty key. */
  struct sockaddr un = {.sa_family = AF_UNIX};
  assert_int_equal(access_client_key(&un, 32, 64, &k), -1);
  assert_int_equal(access_client_key(NULL, 32, 64, &k), -1);
  access_client_text(&k, text, sizeof(text));
  assert_string_equal(text, "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_auth),
      cmocka_unit_test(test_groups_and_rules),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_names_without_htpasswd),
      cmocka_unit_test(test_load_files),
      cmocka_unit_test(test_client_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
