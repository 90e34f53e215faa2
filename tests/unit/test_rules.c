/* Unit tests for proxy/rules.c: each field of a rule matched and not matched (users, "*",
 * groups, clients as CIDRs and classes, exact hosts, "*.suffix", CIDRs on the resolved address,
 * ports, protocols), the order (first match wins), the two phases (a host pattern decides on
 * the name; a CIDR only on the address, so a name that resolves to a private address is judged
 * there), and what an allow opens past the built-in policy (checklist H1C-12, H1C-13). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "proxy/rules.h"
#include "src/access.h"
#include "src/cfgfile.h"
#include "src/util.h"
#include "access_fx.h"

/* The access model of |text| (rules and groups; no htpasswd, so any user name is accepted). */
static struct access *load(const char *text) { return access_fx_load("r.yaml", text); }

static struct sockaddr_storage g_ss[4];

static const struct sockaddr *addr(int slot, const char *text) {
  struct sockaddr_storage *ss = &g_ss[slot];
  memset(ss, 0, sizeof(*ss));
  if (strchr(text, ':')) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    CHECK(inet_pton(AF_INET6, text, &s6->sin6_addr) == 1);
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    CHECK(inet_pton(AF_INET, text, &s4->sin_addr) == 1);
  }
  return (const struct sockaddr *)ss;
}

/* A CONNECT to |host|:|port| by |user| from 198.51.100.7 unless changed. */
static struct rules_query query(const char *user, const char *host, uint16_t port) {
  return (struct rules_query){.user = user, .client = addr(0, "198.51.100.7"), .host = host, .port = port,
                              .proto = ACCESS_PROTO_CONNECT};
}

/* The name phase's verdict, and the rule's name when one decided. */
static enum rules_verdict by_name(const struct access *a, const struct rules_query *q, const char **name) {
  struct rules_decision d;
  rules_decide_name(a, q, &d);
  *name = d.rule ? d.rule->name : NULL;
  if (d.verdict == RULES_BY_ADDRESS) *name = a->rules[d.index].name;
  return d.verdict;
}

static void test_each_field(void **state) {
  (void)state;
  struct access *a = load("groups: { ops: [alice, bob] }\n"
                          "rules:\n"
                          "  - { name: u, allow: { users: [carol], ports: [1001] } }\n"
                          "  - { name: any, allow: { users: \"*\", ports: [1002] } }\n"
                          "  - { name: g, allow: { groups: [ops], ports: [1003] } }\n"
                          "  - { name: net, allow: { clients: [\"198.51.100.0/24\"], ports: [1004] } }\n"
                          "  - { name: cls, allow: { clients: [loopback], ports: [1005] } }\n"
                          "  - { name: exact, deny: { dest: [exact.test] } }\n"
                          "  - { name: suffix, deny: { dest: [\"*.suffix.test\"] } }\n"
                          "  - { name: udp, allow: { protocols: [connect-udp], ports: [1006] } }\n"
                          "  - { name: range, allow: { ports: [\"2000-2010\"] } }\n");
  const char *name;
  struct rules_query q;

  /* users: a listed user matches, another and anonymous do not. */
  q = query("carol", "h.test", 1001);
  assert_int_equal(by_name(a, &q, &name), RULES_ALLOW);
  assert_string_equal(name, "u");
  q = query("dave", "h.test", 1001);
  assert_int_equal(by_name(a, &q, &name), RULES_NONE);
  /* "*": any authenticated user, not an anonymous client. */
  q = query("dave", "h.test", 1002);
  assert_int_equal(by_name(a, &q, &name), RULES_ALLOW);
  assert_string_equal(name, "any");
  q = query(NULL, "h.test", 1002);
  assert_int_equal(by_name(a, &q, &name), RULES_NONE);
  /* groups. */
  q = query("bob", "h.test", 1003);
  assert_int_equal(by_name(a, &q, &name), RULES_ALLOW);
  assert_string_equal(name, "g");
  q = query("carol", "h.test", 1003);
  assert_int_equal(by_name(a, &q, &name), RULES_NONE);
  /* clients: a CIDR, a class, an IPv4-mapped client, an unknown client. */
  q = query(NULL, "h.test", 1004);
  assert_int_equal(by_name(a, &q, &name), RULES_ALLOW);
  assert_string_equal(name, "net");
  q.client = addr(0, "::ffff:198.51.100.9");
  assert_int_equal(by_name(a, &q, &name), RULES_ALLOW);
  q.client = addr(0, "203.0.113.1");
  assert_int_equal(by_name(a, &q, &name), RULES_NONE);
  q.client = NULL;
  assert_int_equal(by_name(a, &q, &name), RULES_NONE);
  q = query(NULL, "h.test", 1005);
  q.client = addr(0, "127.0.0.9");
  assert_int_equal(by_name(a, &q, &name), RULES_ALLOW);
  assert_string_equal(name, "cls");
  q.client = addr(0, "10.0.0.1");
  assert_int_equal(by_name(a, &q, &name), RULES_NONE);
  /* dest: an exact host (any case, a trailing dot) and nothing else. */
  q = query(NULL, "Exact.Test.", 443);
  assert_int_equal(by_name(a, &q, &name), RULES_DENY);
  assert_string_equal(name, "exact");
  q = query(NULL, "a.exact.test", 443);
  assert_int_equal(by_name(a, &q, &name), RULES_NONE);
  /* "*.suffix": any depth below it, never the suffix itself or a look-alike. */
  q = query(NULL, "a.b.suffix.test", 443);
  assert_int_equal(by_name(a, &q, &name), RULES_DENY);
  assert_string_equal(name, "suffix");
  q = query(NULL, "suffix.test", 443);
  assert_int_equal(by_name(a, &q, &name), RULES_NONE);
  q = query(NULL, "evilsuffix.test", 443);
  assert_int_equal(by_name(a, &q, &name), RULES_NONE);
  /* protocols. */
  q = query(NULL, "h.test", 1006);
  assert_int_equal(by_name(a, &q, &name), RULES_NONE);
  q.proto = ACCESS_PROTO_CONNECT_UDP;
  assert_int_equal(by_name(a, &q, &name), RULES_ALLOW);
  assert_string_equal(name, "udp");
  q.proto = 0; /* forward: only rules without protocols */
  assert_int_equal(by_name(a, &q, &name), RULES_NONE);
  /* ports: a range, inclusive. */
  q = query(NULL, "h.test", 2010);
  assert_int_equal(by_name(a, &q, &name), RULES_ALLOW);
  assert_string_equal(name, "range");
  q = query(NULL, "h.test", 2011);
  assert_int_equal(by_name(a, &q, &name), RULES_NONE);
  access_free(a);
}

static void test_order(void **state) {
  (void)state;
  struct access *a = load("rules:\n"
                          "  - { name: first, deny: { dest: [\"*.corp.test\"], ports: [22] } }\n"
                          "  - { name: second, allow: { dest: [\"*.corp.test\"] } }\n"
                          "  - { deny: {} }\n");
  const char *name;
  struct rules_query q = query("alice", "ssh.corp.test", 22);
  assert_int_equal(by_name(a, &q, &name), RULES_DENY);
  assert_string_equal(name, "first");
  q.port = 443;
  assert_int_equal(by_name(a, &q, &name), RULES_ALLOW);
  assert_string_equal(name, "second");
  q.host = "other.test";
  assert_int_equal(by_name(a, &q, &name), RULES_DENY);
  assert_string_equal(name, "#3"); /* unnamed: its position */
  access_free(a);
}

/* A host pattern is judged on the requested name; a CIDR on each resolved address. */
static void test_name_then_address(void **state) {
  (void)state;
  struct access *a = load("rules:\n"
                          "  - { name: public-name, allow: { dest: [\"*.example.test\"] } }\n"
                          "  - { name: lab, allow: { dest: [\"10.20.0.0/16\"], ports: [22] } }\n"
                          "  - { name: no-private, deny: { dest: [\"10.0.0.0/8\", \"fd00::/8\"] } }\n"
                          "  - { name: tail, allow: { users: \"*\" } }\n");
  struct rules_decision d;
  /* Decided by the name: the address does not matter to the rules (the built-in class policy
   * still judges it: opens_addr stays 0). */
  struct rules_query q = query("alice", "www.example.test", 443);
  rules_decide_name(a, &q, &d);
  assert_int_equal(d.verdict, RULES_ALLOW);
  assert_string_equal(d.rule->name, "public-name");
  assert_int_equal(d.opens_port, 0);
  assert_int_equal(d.opens_addr, 0);

  /* Not decided by the name: "lab" needs the address. */
  q = query("alice", "intranet.test", 22);
  rules_decide_name(a, &q, &d);
  assert_int_equal(d.verdict, RULES_BY_ADDRESS);
  assert_int_equal(d.index, 1);
  size_t from = d.index;
  /* In 10.20/16: "lab" allows and opens that range and its port past the built-in policy. */
  rules_decide_addr(a, &q, from, addr(1, "10.20.3.4"), &d);
  assert_int_equal(d.verdict, RULES_ALLOW);
  assert_string_equal(d.rule->name, "lab");
  assert_int_equal(d.opens_addr, 1);
  assert_int_equal(d.opens_port, 1);
  /* Another private address: "no-private" denies it -- a public-looking name that resolves to a
   * private address is caught on the address. */
  rules_decide_addr(a, &q, from, addr(1, "10.9.9.9"), &d);
  assert_int_equal(d.verdict, RULES_DENY);
  assert_string_equal(d.rule->name, "no-private");
  rules_decide_addr(a, &q, from, addr(1, "fd00::5"), &d);
  assert_int_equal(d.verdict, RULES_DENY);
  /* A public address falls through to "tail" (matched by user, not by CIDR: opens nothing). */
  rules_decide_addr(a, &q, from, addr(1, "192.0.2.10"), &d);
  assert_int_equal(d.verdict, RULES_ALLOW);
  assert_string_equal(d.rule->name, "tail");
  assert_int_equal(d.opens_addr, 0);
  /* Anonymous: nothing matches a public address. */
  q.user = NULL;
  rules_decide_addr(a, &q, from, addr(1, "192.0.2.10"), &d);
  assert_int_equal(d.verdict, RULES_NONE);
  /* The port is a field like any other: on 443 "lab" does not match, "no-private" still does. */
  q = query("alice", "intranet.test", 443);
  rules_decide_name(a, &q, &d);
  assert_int_equal(d.verdict, RULES_BY_ADDRESS);
  assert_int_equal(d.index, 2);
  rules_decide_addr(a, &q, d.index, addr(1, "10.20.3.4"), &d);
  assert_int_equal(d.verdict, RULES_DENY);
  assert_string_equal(d.rule->name, "no-private");
  access_free(a);
}

static void test_no_rules(void **state) {
  (void)state;
  struct access *a = load("groups: { ops: [alice] }\n");
  struct rules_decision d;
  struct rules_query q = query("alice", "h.test", 443);
  rules_decide_name(a, &q, &d);
  assert_int_equal(d.verdict, RULES_NONE);
  assert_null(d.rule);
  access_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_each_field),
      cmocka_unit_test(test_order),
      cmocka_unit_test(test_name_then_address),
      cmocka_unit_test(test_no_rules),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
