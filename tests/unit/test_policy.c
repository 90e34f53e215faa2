/* Unit tests for src/policy.c: address classes, port sets, CIDR specs and allow/deny decisions
 * (checklist H1C-12 port policy, H1C-13 destination IP policy). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "src/policy.h"
#include "src/util.h"

/* Builds a sockaddr from literal text; the tables below only hold valid literals. */
static const struct sockaddr *sa_of(const char *text, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (strchr(text, ':') != NULL) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1) fail_msg("bad test literal %s", text);
  } else {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    if (inet_pton(AF_INET, text, &sin->sin_addr) != 1) fail_msg("bad test literal %s", text);
  }
  return (const struct sockaddr *)ss;
}

struct class_case {
  const char *addr;
  enum addr_class cls;
  /* For an address that embeds IPv4 addresses: the class of the one that is not public (at most
   * one per row), or ADDR_PUBLIC (0, the default) when all are public or there are none. */
  enum addr_class emb;
};

/* H1C-13, issue 8 item 7: every entry of the IANA IPv4 and IPv6 Special-Purpose Address
 * Registries (and the other ranges we deny) with addresses inside, at both ends where they
 * differ, and just outside; then the forms that embed an IPv4 address. */
/* Rows give |emb| only where it is not ADDR_PUBLIC (0). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct class_case class_cases[] = {
    /* 0.0.0.0/32 "This host on this network" and 0.0.0.0/8 "This network" */
    {"0.0.0.0", ADDR_THIS_NET},
    {"0.0.0.1", ADDR_THIS_NET},
    {"0.255.255.255", ADDR_THIS_NET},
    {"1.0.0.0", ADDR_PUBLIC},
    {"1.1.1.1", ADDR_PUBLIC},
    {"8.8.8.8", ADDR_PUBLIC},
    /* 10.0.0.0/8 Private-Use */
    {"9.255.255.255", ADDR_PUBLIC},
    {"10.0.0.0", ADDR_PRIVATE},
    {"10.255.255.255", ADDR_PRIVATE},
    {"11.0.0.0", ADDR_PUBLIC},
    /* 100.64.0.0/10 Shared Address Space */
    {"100.63.255.255", ADDR_PUBLIC},
    {"100.64.0.0", ADDR_CGNAT},
    {"100.127.255.255", ADDR_CGNAT},
    {"100.128.0.0", ADDR_PUBLIC},
    /* 127.0.0.0/8 Loopback */
    {"126.255.255.255", ADDR_PUBLIC},
    {"127.0.0.0", ADDR_LOOPBACK},
    {"127.0.0.1", ADDR_LOOPBACK},
    {"127.255.255.255", ADDR_LOOPBACK},
    {"128.0.0.0", ADDR_PUBLIC},
    /* 169.254.0.0/16 Link Local */
    {"169.253.255.255", ADDR_PUBLIC},
    {"169.254.0.0", ADDR_LINK_LOCAL},
    {"169.254.169.254", ADDR_LINK_LOCAL}, /* cloud metadata service */
    {"169.254.255.255", ADDR_LINK_LOCAL},
    {"169.255.0.0", ADDR_PUBLIC},
    /* 172.16.0.0/12 Private-Use */
    {"172.15.255.255", ADDR_PUBLIC},
    {"172.16.0.0", ADDR_PRIVATE},
    {"172.31.255.255", ADDR_PRIVATE},
    {"172.32.0.0", ADDR_PUBLIC},
    /* 192.0.0.0/24 IETF Protocol Assignments and the entries inside it */
    {"191.255.255.255", ADDR_PUBLIC},
    {"192.0.0.0", ADDR_RESERVED},         /* /29 Service Continuity */
    {"192.0.0.7", ADDR_RESERVED},
    {"192.0.0.8", ADDR_RESERVED},         /* dummy address; just outside the /29 */
    {"192.0.0.9", ADDR_GLOBAL_SPECIAL},   /* PCP anycast */
    {"192.0.0.10", ADDR_GLOBAL_SPECIAL},  /* TURN anycast */
    {"192.0.0.11", ADDR_RESERVED},        /* just outside: the /24 again */
    {"192.0.0.169", ADDR_RESERVED},
    {"192.0.0.170", ADDR_RESERVED},       /* NAT64/DNS64 discovery */
    {"192.0.0.171", ADDR_RESERVED},
    {"192.0.0.172", ADDR_RESERVED},
    {"192.0.0.255", ADDR_RESERVED},
    {"192.0.1.0", ADDR_PUBLIC},
    {"192.0.1.255", ADDR_PUBLIC},
    /* 192.0.2.0/24 TEST-NET-1 */
    {"192.0.2.0", ADDR_RESERVED},
    {"192.0.2.255", ADDR_RESERVED},
    {"192.0.3.0", ADDR_PUBLIC},
    /* 192.31.196.0/24 AS112-v4 */
    {"192.31.195.255", ADDR_PUBLIC},
    {"192.31.196.0", ADDR_GLOBAL_SPECIAL},
    {"192.31.196.255", ADDR_GLOBAL_SPECIAL},
    {"192.31.197.0", ADDR_PUBLIC},
    /* 192.52.193.0/24 AMT */
    {"192.52.192.255", ADDR_PUBLIC},
    {"192.52.193.0", ADDR_GLOBAL_SPECIAL},
    {"192.52.193.255", ADDR_GLOBAL_SPECIAL},
    {"192.52.194.0", ADDR_PUBLIC},
    /* 192.88.99.0/24 deprecated 6to4 relay anycast, 192.88.99.2/32 6a44 relay */
    {"192.88.98.255", ADDR_PUBLIC},
    {"192.88.99.0", ADDR_RESERVED},
    {"192.88.99.2", ADDR_RESERVED},
    {"192.88.99.255", ADDR_RESERVED},
    {"192.88.100.0", ADDR_PUBLIC},
    /* 192.168.0.0/16 Private-Use */
    {"192.167.255.255", ADDR_PUBLIC},
    {"192.168.0.0", ADDR_PRIVATE},
    {"192.168.255.255", ADDR_PRIVATE},
    {"192.169.0.0", ADDR_PUBLIC},
    /* 192.175.48.0/24 Direct Delegation AS112 */
    {"192.175.47.255", ADDR_PUBLIC},
    {"192.175.48.0", ADDR_GLOBAL_SPECIAL},
    {"192.175.48.255", ADDR_GLOBAL_SPECIAL},
    {"192.175.49.0", ADDR_PUBLIC},
    /* 198.18.0.0/15 Benchmarking */
    {"198.17.255.255", ADDR_PUBLIC},
    {"198.18.0.0", ADDR_RESERVED},
    {"198.19.255.255", ADDR_RESERVED},
    {"198.20.0.0", ADDR_PUBLIC},
    /* 198.51.100.0/24 TEST-NET-2, 203.0.113.0/24 TEST-NET-3 */
    {"198.51.99.255", ADDR_PUBLIC},
    {"198.51.100.0", ADDR_RESERVED},
    {"198.51.100.255", ADDR_RESERVED},
    {"198.51.101.0", ADDR_PUBLIC},
    {"203.0.112.255", ADDR_PUBLIC},
    {"203.0.113.0", ADDR_RESERVED},
    {"203.0.113.255", ADDR_RESERVED},
    {"203.0.114.0", ADDR_PUBLIC},
    /* 224.0.0.0/4 multicast, 240.0.0.0/4 reserved, 255.255.255.255/32 limited broadcast */
    {"223.255.255.255", ADDR_PUBLIC},
    {"224.0.0.0", ADDR_MULTICAST},
    {"239.255.255.255", ADDR_MULTICAST},
    {"240.0.0.0", ADDR_RESERVED},
    {"255.255.255.254", ADDR_RESERVED},
    {"255.255.255.255", ADDR_RESERVED},

    /* IPv6: ::/128, ::1/128 and the deprecated IPv4-compatible ::/96 around them */
    {"::", ADDR_THIS_NET},
    {"::1", ADDR_LOOPBACK},
    {"::2", ADDR_V4MAPPED, ADDR_THIS_NET},          /* compatible 0.0.0.2 */
    {"::127.0.0.1", ADDR_V4MAPPED, ADDR_LOOPBACK},
    {"::8.8.8.8", ADDR_V4MAPPED},
    {"::ffff:ffff", ADDR_V4MAPPED, ADDR_RESERVED},  /* compatible 255.255.255.255 */
    {"::1:0:0", ADDR_RESERVED},                     /* just past ::/96, inside unassigned ::/8 */
    /* ::ffff:0:0/96 IPv4-mapped */
    {"::fffe:ffff:ffff", ADDR_RESERVED},
    {"::ffff:0:0", ADDR_V4MAPPED, ADDR_THIS_NET},
    {"::ffff:127.0.0.1", ADDR_V4MAPPED, ADDR_LOOPBACK},
    {"::ffff:8.8.8.8", ADDR_V4MAPPED},
    {"::ffff:169.254.169.254", ADDR_V4MAPPED, ADDR_LINK_LOCAL},
    {"::ffff:255.255.255.255", ADDR_V4MAPPED, ADDR_RESERVED},
    {"::1:0:0:0", ADDR_RESERVED},
    {"::ffff:0:127.0.0.1", ADDR_V4MAPPED, ADDR_LOOPBACK}, /* SIIT IPv4-translated */
    /* 64:ff9b::/96 well-known NAT64 */
    {"64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED},
    {"64:ff9b::", ADDR_V4MAPPED, ADDR_THIS_NET},
    {"64:ff9b::7f00:1", ADDR_V4MAPPED, ADDR_LOOPBACK},
    {"64:ff9b::808:808", ADDR_V4MAPPED},
    {"64:ff9b::a00:1", ADDR_V4MAPPED, ADDR_PRIVATE},
    {"64:ff9b::1:0:0", ADDR_RESERVED},
    {"64:ff9b:0:ffff::", ADDR_RESERVED},
    /* 64:ff9b:1::/48 local-use NAT64: every RFC 6052 position holds 8.8.8.8 (or 10.0.0.1 at /96) */
    {"64:ff9b:1:808:8:808:808:808", ADDR_V4MAPPED},
    {"64:ff9b:1:808:8:808:a00:1", ADDR_V4MAPPED, ADDR_PRIVATE},
    {"64:ff9b:2::", ADDR_RESERVED},
    /* 100::/64 Discard-Only, 100:0:0:1::/64 Dummy Prefix (and unassigned space around them) */
    {"100::", ADDR_RESERVED},
    {"100::ffff:ffff:ffff:ffff", ADDR_RESERVED},
    {"100:0:0:1::1", ADDR_RESERVED},
    {"100:0:0:2::", ADDR_RESERVED},
    {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED},
    {"2000::", ADDR_PUBLIC},
    /* 2001::/23 IETF Protocol Assignments and the entries inside it */
    {"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_PUBLIC},
    {"2001:0:4136:e378:8000:63bf:f7f7:f7f7", ADDR_TEREDO},                   /* client 8.8.8.8 */
    {"2001:0:4136:e378:8000:63bf:3fff:fdd2", ADDR_TEREDO, ADDR_RESERVED},    /* RFC 4380 §4: 192.0.2.45 */
    {"2001:0:4136:e378:8000:63bf:f5ff:fffe", ADDR_TEREDO, ADDR_PRIVATE},     /* client 10.0.0.1 */
    {"2001:0:a00:1:8000:63bf:f7f7:f7f7", ADDR_TEREDO, ADDR_PRIVATE},         /* server 10.0.0.1 */
    {"2001:0:ffff:ffff:ffff:ffff:f7f7:f7f7", ADDR_TEREDO, ADDR_RESERVED},    /* server 255.255.255.255 */
    {"2001:1::", ADDR_RESERVED},
    {"2001:1::1", ADDR_GLOBAL_SPECIAL},  /* PCP anycast */
    {"2001:1::2", ADDR_GLOBAL_SPECIAL},  /* TURN anycast */
    {"2001:1::3", ADDR_GLOBAL_SPECIAL},  /* DNS-SD SRP anycast */
    {"2001:1::4", ADDR_RESERVED},
    {"2001:2::", ADDR_RESERVED},         /* benchmarking /48 */
    {"2001:2:0:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED},
    {"2001:2:1::", ADDR_RESERVED},
    {"2001:3::", ADDR_GLOBAL_SPECIAL},   /* AMT /32 */
    {"2001:3:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_GLOBAL_SPECIAL},
    {"2001:4::", ADDR_RESERVED},
    {"2001:4:111:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED},
    {"2001:4:112::", ADDR_GLOBAL_SPECIAL}, /* AS112-v6 /48 */
    {"2001:4:112:ffff:ffff:ffff:ffff:ffff", ADDR_GLOBAL_SPECIAL},
    {"2001:4:113::", ADDR_RESERVED},
    {"2001:f:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED},
    {"2001:10::", ADDR_RESERVED},        /* deprecated ORCHID /28 */
    {"2001:1f:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED},
    {"2001:20::", ADDR_GLOBAL_SPECIAL},  /* ORCHIDv2 /28 */
    {"2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_GLOBAL_SPECIAL},
    {"2001:30::", ADDR_GLOBAL_SPECIAL},  /* DETs /28 */
    {"2001:3f:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_GLOBAL_SPECIAL},
    {"2001:40::", ADDR_RESERVED},
    {"2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED},
    {"2001:200::", ADDR_PUBLIC},
    /* 2001:db8::/32 Documentation */
    {"2001:4860:4860::8888", ADDR_PUBLIC},
    {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_PUBLIC},
    {"2001:db8::", ADDR_RESERVED},
    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED},
    {"2001:db9::", ADDR_PUBLIC},
    /* 2002::/16 6to4: the embedded IPv4 address is bytes 2..5 */
    {"2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_PUBLIC},
    {"2002::", ADDR_SIX_TO_FOUR, ADDR_THIS_NET},
    {"2002:7f00:1::", ADDR_SIX_TO_FOUR, ADDR_LOOPBACK},
    {"2002:a00:1::1", ADDR_SIX_TO_FOUR, ADDR_PRIVATE},
    {"2002:c0a8:101::", ADDR_SIX_TO_FOUR, ADDR_PRIVATE},
    {"2002:a9fe:a9fe::", ADDR_SIX_TO_FOUR, ADDR_LINK_LOCAL},
    {"2002:6440:1::", ADDR_SIX_TO_FOUR, ADDR_CGNAT},
    {"2002:e000:1::", ADDR_SIX_TO_FOUR, ADDR_MULTICAST},
    {"2002:ffff:ffff::", ADDR_SIX_TO_FOUR, ADDR_RESERVED},
    {"2002:808:808::1", ADDR_SIX_TO_FOUR},
    {"2003::", ADDR_PUBLIC},
    /* 2620:4f:8000::/48 Direct Delegation AS112 */
    {"2606:4700:4700::1111", ADDR_PUBLIC},
    {"2620:4f:7fff:ffff:ffff:ffff:ffff:ffff", ADDR_PUBLIC},
    {"2620:4f:8000::", ADDR_GLOBAL_SPECIAL},
    {"2620:4f:8000:ffff:ffff:ffff:ffff:ffff", ADDR_GLOBAL_SPECIAL},
    {"2620:4f:8001::", ADDR_PUBLIC},
    /* 3fff::/20 Documentation */
    {"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_PUBLIC},
    {"3fff::", ADDR_RESERVED},
    {"3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED},
    {"3fff:1000::", ADDR_PUBLIC},
    {"4000::", ADDR_RESERVED},           /* outside 2000::/3 */
    /* 5f00::/16 SRv6 SIDs (outside 2000::/3 too) */
    {"5f00::", ADDR_RESERVED},
    {"5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED},
    /* fc00::/7 Unique-Local */
    {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED},
    {"fc00::", ADDR_ULA},
    {"fd00::1", ADDR_ULA},
    {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_ULA},
    {"fe00::", ADDR_RESERVED},
    /* fe80::/10 Link-Local, fec0::/10 site-local, ff00::/8 multicast */
    {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED},
    {"fe80::", ADDR_LINK_LOCAL},
    {"fe80::1", ADDR_LINK_LOCAL},
    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_LINK_LOCAL},
    {"fec0::", ADDR_SITE_LOCAL},
    {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_SITE_LOCAL},
    {"ff00::", ADDR_MULTICAST},
    {"ff02::1", ADDR_MULTICAST},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_MULTICAST},
    /* ISATAP interface identifiers (RFC 5214 §6.1) embed an IPv4 address in any prefix. */
    {"2001:4860::5efe:808:808", ADDR_PUBLIC},
    {"2001:4860::5efe:a00:1", ADDR_PUBLIC, ADDR_PRIVATE},
    {"2001:4860::200:5efe:7f00:1", ADDR_PUBLIC, ADDR_LOOPBACK},
    {"2001:4860::100:5efe:7f00:1", ADDR_PUBLIC},  /* byte 8 is 0x01: not the ISATAP form */
    {"2001:4860::5eff:7f00:1", ADDR_PUBLIC},
    {"fe80::5efe:a00:1", ADDR_LINK_LOCAL, ADDR_PRIVATE},
};
#pragma GCC diagnostic pop

/* Each row's class, and the default policy's answer: allowed only for a public address whose
 * embedded IPv4 addresses are public too; the reason names the class, or the embedded class. */
static void test_classify_table(void **state) {
  struct policy *p = policy_new();
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(class_cases); i++) {
    const struct class_case *c = &class_cases[i];
    struct sockaddr_storage ss;
    char want_why[64];
    const char *why = NULL;
    enum addr_class got = addr_classify(sa_of(c->addr, &ss));
    if (got != c->cls) {
      fail_msg("%s: class %s, want %s", c->addr, addr_class_name(got), addr_class_name(c->cls));
    }
    int rv = policy_check_addr(p, sa_of(c->addr, &ss), &why);
    if (c->cls == ADDR_PUBLIC && c->emb == ADDR_PUBLIC) {
      if (rv != 0) fail_msg("%s: denied by default (%s)", c->addr, why);
      continue;
    }
    if (c->cls != ADDR_PUBLIC)
      snprintf(want_why, sizeof(want_why), "%s", addr_class_name(c->cls));
    else
      snprintf(want_why, sizeof(want_why), "embedded %s", addr_class_name(c->emb));
    if (rv != -EACCES || strcmp(why, want_why) != 0) {
      fail_msg("%s: rv %d why \"%s\", want \"%s\"", c->addr, rv, why ? why : "", want_why);
    }
  }
  policy_free(p);
}

static void test_classify_other_family(void **state) {
  struct sockaddr_un sun;
  struct policy *p = policy_new();
  const char *why = NULL;
  (void)state;

  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  assert_int_equal(addr_classify((const struct sockaddr *)&sun), ADDR_RESERVED);
  assert_int_equal(policy_check_addr(p, (const struct sockaddr *)&sun, &why), -EACCES);
  assert_string_equal(why, "unsupported address family");
  /* Even allowing everything does not admit a family we cannot connect to. */
  assert_int_equal(policy_allow_net(p, "public"), 0);
  assert_int_equal(policy_check_addr(p, (const struct sockaddr *)&sun, NULL), -EACCES);
  policy_free(p);
}

static void test_class_names(void **state) {
  static const char *const want[ADDR_CLASS_COUNT] = {
      "public", "loopback", "private", "link-local", "cgnat", "this-network", "multicast",
      "reserved", "ula", "v4-mapped", "site-local", "teredo", "6to4", "global-special",
  };
  (void)state;
  for (int c = 0; c < ADDR_CLASS_COUNT; c++) {
    assert_string_equal(addr_class_name((enum addr_class)c), want[c]);
  }
  assert_string_equal(addr_class_name(ADDR_CLASS_COUNT), "unknown");
}

/* Ports: a spec, then ports that must and must not be allowed afterwards. 0 ends each list. */
struct port_case {
  const char *spec;
  int rv;
  uint16_t allowed[8];
  uint16_t denied[8];
};

/* H1C-12: the default set is {80, 443}; a failing spec leaves the previous set in place, so every
 * rejected row also checks that the default still holds. */
static const struct port_case port_cases[] = {
    {NULL, 0, {80, 443}, {1, 22, 25, 8080, 65535, 444, 79}},
    {"443", 0, {443}, {80, 1, 65535}},
    {"443,80,8000-8100", 0, {80, 443, 8000, 8050, 8100}, {7999, 8101, 22, 81}},
    {"*", 0, {1, 22, 25, 443, 8080, 65535}, {0}}, /* port 0 checked below */
    {"1-65535", 0, {1, 2, 32768, 65534, 65535}, {0}},
    {"65535", 0, {65535}, {65534, 443}},
    {"1", 0, {1}, {2, 443}},
    {"8000-8000", 0, {8000}, {7999, 8001}},
    {"00443", 0, {443}, {80}},
    {"22,22,22", 0, {22}, {443}},
    {"9000-9002,443", 0, {9000, 9001, 9002, 443}, {8999, 9003, 80}},
    {"", -EINVAL, {80, 443}, {22}},
    {",", -EINVAL, {80, 443}, {22}},
    {"443,", -EINVAL, {80, 443}, {22}},
    {",443", -EINVAL, {80, 443}, {22}},
    {"443,,80", -EINVAL, {80, 443}, {22}},
    {"0", -EINVAL, {80, 443}, {22}},
    {"0-10", -EINVAL, {80, 443}, {5}},
    {"65536", -EINVAL, {80, 443}, {22}},
    {"1-65536", -EINVAL, {80, 443}, {22}},
    {"100-50", -EINVAL, {80, 443}, {75}},
    {"abc", -EINVAL, {80, 443}, {22}},
    {"44a", -EINVAL, {80, 443}, {44}},
    {"-443", -EINVAL, {80, 443}, {22}},
    {"443-", -EINVAL, {80, 443}, {22}},
    {"+443", -EINVAL, {80, 443}, {22}},
    {" 443", -EINVAL, {80, 443}, {22}},
    {"443 ", -EINVAL, {80, 443}, {22}},
    {"443, 80", -EINVAL, {80, 443}, {22}},
    {"*,443", -EINVAL, {80, 443}, {22}},
    {"**", -EINVAL, {80, 443}, {22}},
    {"1--2", -EINVAL, {80, 443}, {1}},
    {"1-2-3", -EINVAL, {80, 443}, {1}},
    {"000443", -EINVAL, {80, 443}, {22}},
    {"443;80", -EINVAL, {80, 443}, {22}},
    {"99999999999999999999", -EINVAL, {80, 443}, {22}},
    {"22,0", -EINVAL, {80, 443}, {22}},
};

static void test_port_table(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(port_cases); i++) {
    const struct port_case *c = &port_cases[i];
    struct policy *p = policy_new();
    if (c->spec != NULL) {
      int rv = policy_set_ports(p, c->spec);
      if (rv != c->rv) fail_msg("port spec \"%s\": rv %d, want %d", c->spec, rv, c->rv);
    }
    for (size_t j = 0; j < ARRAY_SIZE(c->allowed) && c->allowed[j] != 0; j++) {
      if (policy_check_port(p, c->allowed[j]) != 0) {
        fail_msg("port spec \"%s\": %u should be allowed", c->spec ? c->spec : "(default)",
                 (unsigned)c->allowed[j]);
      }
    }
    for (size_t j = 0; j < ARRAY_SIZE(c->denied) && c->denied[j] != 0; j++) {
      if (policy_check_port(p, c->denied[j]) != -EACCES) {
        fail_msg("port spec \"%s\": %u should be denied", c->spec ? c->spec : "(default)",
                 (unsigned)c->denied[j]);
      }
    }
    /* Port 0 is never a destination, whatever the spec. */
    assert_int_equal(policy_check_port(p, 0), -EACCES);
    policy_free(p);
  }
}

/* A later spec replaces the set rather than adding to it. */
static void test_port_replace(void **state) {
  struct policy *p = policy_new();
  (void)state;
  assert_int_equal(policy_set_ports(p, "*"), 0);
  assert_int_equal(policy_set_ports(p, "25"), 0);
  assert_int_equal(policy_check_port(p, 25), 0);
  assert_int_equal(policy_check_port(p, 443), -EACCES);
  assert_int_equal(policy_set_ports(p, "bogus"), -EINVAL);
  assert_int_equal(policy_check_port(p, 25), 0);
  policy_free(p);
}

struct net_spec_case {
  const char *spec;
  int rv;
};

static const struct net_spec_case net_spec_cases[] = {
    {"10.1.0.0/16", 0},
    {"192.168.1.0/24", 0},
    {"1.2.3.4/32", 0},
    {"127.0.0.1", 0},
    {"0.0.0.0/0", 0},
    {"10.0.0.0/008", 0},
    {"::1/128", 0},
    {"::1", 0},
    {"::/0", 0},
    {"fe80::/10", 0},
    {"2001:db8::/32", 0},
    {"::ffff:127.0.0.0/104", 0},
    {"loopback", 0},
    {"public", 0},
    {"v4-mapped", 0},
    {"site-local", 0},
    {"teredo", 0},
    {"6to4", 0},
    {"global-special", 0},
    {"", -EINVAL},
    {"/8", -EINVAL},
    {"10.0.0.0/", -EINVAL},
    {"10.0.0.0/33", -EINVAL},
    {"::/129", -EINVAL},
    {"10.0.0.0/1000", -EINVAL},
    {"10.0.0.0/0008", -EINVAL},
    {"10.0.0.0/-1", -EINVAL},
    {"10.0.0.0/+8", -EINVAL},
    {"10.0.0.0/8/8", -EINVAL},
    {"10.0.0.0/8x", -EINVAL},
    {"10.0.0.0 /8", -EINVAL},
    {" 10.0.0.0/8", -EINVAL},
    {"10.0.0.0/8 ", -EINVAL},
    {"10.1.2.3/8", -EINVAL},     /* host bits set */
    {"fe80::1/10", -EINVAL},     /* host bits set */
    {"fe80::1%eth0", -EINVAL},   /* zone id */
    {"10.0.0/8", -EINVAL},
    {"127.1", -EINVAL},
    {"0x7f000001", -EINVAL},
    {"256.0.0.0/8", -EINVAL},
    {"[::1]/128", -EINVAL},
    {"example.com", -EINVAL},
    {"Loopback", -EINVAL},
    {"loopback/8", -EINVAL},
    {"link_local", -EINVAL},
    {"0000:0000:0000:0000:0000:0000:0000:0000:0000/8", -EINVAL},
};

static void test_net_spec_table(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(net_spec_cases); i++) {
    struct policy *p = policy_new();
    int a = policy_allow_net(p, net_spec_cases[i].spec);
    int d = policy_deny_net(p, net_spec_cases[i].spec);
    if (a != net_spec_cases[i].rv || d != net_spec_cases[i].rv) {
      fail_msg("net spec \"%s\": allow %d deny %d, want %d", net_spec_cases[i].spec, a, d,
               net_spec_cases[i].rv);
    }
    policy_free(p);
  }
}

static void test_net_list_full(void **state) {
  struct policy *p = policy_new();
  (void)state;
  for (int i = 0; i < POLICY_NETS_MAX; i++) {
    char spec[32];
    snprintf(spec, sizeof(spec), "10.%d.0.0/16", i);
    assert_int_equal(policy_allow_net(p, spec), 0);
  }
  assert_int_equal(policy_allow_net(p, "10.200.0.0/16"), -ENOSPC);
  assert_int_equal(policy_allow_net(p, "bogus"), -EINVAL);
  /* Class names take no list slot, and the deny list is separate. */
  assert_int_equal(policy_allow_net(p, "loopback"), 0);
  assert_int_equal(policy_deny_net(p, "8.8.8.8"), 0);
  policy_free(p);
}

/* A policy set-up step: allow or deny one spec. */
struct step {
  char op; /* 'a' allow, 'd' deny, 0 end */
  const char *spec;
};

struct decision_case {
  const char *name;
  struct step steps[4];
  const char *addr;
  int rv;
  const char *why; /* for -EACCES */
};

/* H1C-13: the documented order is explicit allow, then class, then explicit deny. */
static const struct decision_case decision_cases[] = {
    /* Defaults: every non-public class is denied and names itself. */
    {"default", {{0, NULL}}, "8.8.8.8", 0, NULL},
    {"default", {{0, NULL}}, "2001:4860:4860::8888", 0, NULL},
    {"default", {{0, NULL}}, "127.0.0.1", -EACCES, "loopback"},
    {"default", {{0, NULL}}, "::1", -EACCES, "loopback"},
    {"default", {{0, NULL}}, "0.0.0.0", -EACCES, "this-network"},
    {"default", {{0, NULL}}, "::", -EACCES, "this-network"},
    {"default", {{0, NULL}}, "10.0.0.1", -EACCES, "private"},
    {"default", {{0, NULL}}, "172.16.0.1", -EACCES, "private"},
    {"default", {{0, NULL}}, "192.168.1.1", -EACCES, "private"},
    {"default", {{0, NULL}}, "169.254.169.254", -EACCES, "link-local"},
    {"default", {{0, NULL}}, "fe80::1", -EACCES, "link-local"},
    {"default", {{0, NULL}}, "100.64.0.1", -EACCES, "cgnat"},
    {"default", {{0, NULL}}, "224.0.0.1", -EACCES, "multicast"},
    {"default", {{0, NULL}}, "ff02::1", -EACCES, "multicast"},
    {"default", {{0, NULL}}, "255.255.255.255", -EACCES, "reserved"},
    {"default", {{0, NULL}}, "fd12:3456::1", -EACCES, "ula"},
    {"default", {{0, NULL}}, "fec0::1", -EACCES, "site-local"},
    {"default", {{0, NULL}}, "::ffff:127.0.0.1", -EACCES, "v4-mapped"},
    {"default", {{0, NULL}}, "::ffff:8.8.8.8", -EACCES, "v4-mapped"},
    {"default", {{0, NULL}}, "64:ff9b::7f00:1", -EACCES, "v4-mapped"},
    {"default", {{0, NULL}}, "2002:7f00:1::", -EACCES, "6to4"},
    {"default", {{0, NULL}}, "2002:808:808::1", -EACCES, "6to4"},
    {"default", {{0, NULL}}, "2001:0:4136:e378:8000:63bf:f7f7:f7f7", -EACCES, "teredo"},
    {"default", {{0, NULL}}, "192.0.0.9", -EACCES, "global-special"},
    {"default", {{0, NULL}}, "2001:1::1", -EACCES, "global-special"},
    {"default", {{0, NULL}}, "2001:4860::5efe:a00:1", -EACCES, "embedded private"},
    {"default", {{0, NULL}}, "2001:4860::5efe:808:808", 0, NULL},
    /* Allowing a class allows all of its ranges, and nothing else. */
    {"allow loopback", {{'a', "loopback"}}, "127.0.0.1", 0, NULL},
    {"allow loopback", {{'a', "loopback"}}, "127.255.255.254", 0, NULL},
    {"allow loopback", {{'a', "loopback"}}, "::1", 0, NULL},
    {"allow loopback", {{'a', "loopback"}}, "::ffff:127.0.0.1", -EACCES, "v4-mapped"},
    {"allow loopback", {{'a', "loopback"}}, "10.0.0.1", -EACCES, "private"},
    {"allow link-local", {{'a', "link-local"}}, "169.254.169.254", 0, NULL},
    {"allow link-local", {{'a', "link-local"}}, "fe80::1", 0, NULL},
    /* An embedded IPv4 address must be allowed too (issue 8 item 7). */
    {"allow v4-mapped", {{'a', "v4-mapped"}}, "::ffff:8.8.8.8", 0, NULL},
    {"allow v4-mapped", {{'a', "v4-mapped"}}, "64:ff9b::808:808", 0, NULL},
    {"allow v4-mapped", {{'a', "v4-mapped"}}, "::ffff:127.0.0.1", -EACCES, "embedded loopback"},
    {"allow v4-mapped", {{'a', "v4-mapped"}}, "::127.0.0.1", -EACCES, "embedded loopback"},
    {"allow v4-mapped", {{'a', "v4-mapped"}}, "64:ff9b::a00:1", -EACCES, "embedded private"},
    {"allow v4-mapped", {{'a', "v4-mapped"}}, "64:ff9b::a9fe:a9fe", -EACCES, "embedded link-local"},
    {"allow v4-mapped", {{'a', "v4-mapped"}}, "64:ff9b:1:808:8:808:808:808", 0, NULL},
    {"allow v4-mapped", {{'a', "v4-mapped"}}, "64:ff9b:1:808:8:808:a00:1", -EACCES, "embedded private"},
    /* 64:ff9b:1::/48: 10.8.8.8 at only one RFC 6052 position (/48, /56, /64), 8.8.8.8 elsewhere. */
    {"allow v4-mapped", {{'a', "v4-mapped"}}, "64:ff9b:1:a08:8:808:808:808", -EACCES, "embedded private"},
    {"allow v4-mapped", {{'a', "v4-mapped"}}, "64:ff9b:1:80a:8:808:808:808", -EACCES, "embedded private"},
    {"allow v4-mapped", {{'a', "v4-mapped"}}, "64:ff9b:1:808:a:808:808:808", -EACCES, "embedded private"},
    {"allow v4-mapped", {{'a', "v4-mapped"}}, "64:ff9b:1::7f00:1", -EACCES, "embedded loopback"},
    {"allow v4-mapped", {{'a', "v4-mapped"}}, "64:ff9b:1:7f00:1::", -EACCES, "embedded this-network"},
    {"allow v4-mapped", {{'a', "v4-mapped"}}, "127.0.0.1", -EACCES, "loopback"},
    {"allow v4-mapped+loopback", {{'a', "v4-mapped"}, {'a', "loopback"}}, "::ffff:127.0.0.1", 0, NULL},
    {"allow v4-mapped+loopback", {{'a', "v4-mapped"}, {'a', "loopback"}}, "::ffff:10.0.0.1", -EACCES,
     "embedded private"},
    {"allow v4-mapped+10.1/16", {{'a', "v4-mapped"}, {'a', "10.1.0.0/16"}}, "::ffff:10.1.2.3", 0, NULL},
    {"allow v4-mapped+10.1/16", {{'a', "v4-mapped"}, {'a', "10.1.0.0/16"}}, "::ffff:10.2.0.1", -EACCES,
     "embedded private"},
    {"allow v4-mapped, deny 8.8.8/24", {{'a', "v4-mapped"}, {'d', "8.8.8.0/24"}}, "::ffff:8.8.8.8", -EACCES,
     "embedded denied range"},
    {"allow v4-mapped, deny 8.8.8/24", {{'a', "v4-mapped"}, {'d', "8.8.8.0/24"}}, "::ffff:8.8.9.8", 0, NULL},
    {"allow v4-mapped, deny public", {{'a', "v4-mapped"}, {'d', "public"}}, "::ffff:8.8.8.8", -EACCES,
     "embedded denied range"},
    {"allow 6to4", {{'a', "6to4"}}, "2002:808:808::1", 0, NULL},
    {"allow 6to4", {{'a', "6to4"}}, "2002:7f00:1::", -EACCES, "embedded loopback"},
    {"allow 6to4", {{'a', "6to4"}}, "2002:a9fe:a9fe::", -EACCES, "embedded link-local"},
    {"allow teredo", {{'a', "teredo"}}, "2001:0:4136:e378:8000:63bf:f7f7:f7f7", 0, NULL},
    {"allow teredo", {{'a', "teredo"}}, "2001:0:4136:e378:8000:63bf:f5ff:fffe", -EACCES, "embedded private"},
    {"allow teredo", {{'a', "teredo"}}, "2001:0:a00:1:8000:63bf:f7f7:f7f7", -EACCES, "embedded private"},
    {"allow teredo", {{'a', "teredo"}}, "2001:0:4136:e378:8000:63bf:3fff:fdd2", -EACCES, "embedded reserved"},
    {"allow teredo", {{'a', "teredo"}}, "2001:0:4136:e378:8000:63bf:80ff:fffe", -EACCES, "embedded loopback"},
    {"allow global-special", {{'a', "global-special"}}, "192.0.0.10", 0, NULL},
    {"allow global-special", {{'a', "global-special"}}, "2001:20::1", 0, NULL},
    {"allow global-special", {{'a', "global-special"}}, "192.0.0.8", -EACCES, "reserved"},
    {"allow private", {{'a', "private"}}, "2001:4860::5efe:a00:1", 0, NULL},
    {"allow link-local", {{'a', "link-local"}}, "fe80::5efe:a00:1", -EACCES, "embedded private"},
    /* CIDRs match only their own family. */
    {"allow 127/8", {{'a', "127.0.0.0/8"}}, "127.0.0.1", 0, NULL},
    {"allow 127/8", {{'a', "127.0.0.0/8"}}, "127.1.2.3", 0, NULL},
    {"allow 127/8", {{'a', "127.0.0.0/8"}}, "::ffff:127.0.0.1", -EACCES, "v4-mapped"},
    {"allow 127/8", {{'a', "127.0.0.0/8"}}, "::1", -EACCES, "loopback"},
    {"allow 127/8", {{'a', "127.0.0.0/8"}}, "128.0.0.1", 0, NULL},
    {"allow 127/8", {{'a', "127.0.0.0/8"}}, "10.0.0.1", -EACCES, "private"},
    /* An explicit IPv6 range does not lift the embedded check either. */
    {"allow mapped 127/104", {{'a', "::ffff:127.0.0.0/104"}}, "::ffff:127.0.0.1", -EACCES, "embedded loopback"},
    {"allow mapped 127/104+lo", {{'a', "::ffff:127.0.0.0/104"}, {'a', "loopback"}}, "::ffff:127.0.0.1", 0, NULL},
    {"allow mapped 127/104", {{'a', "::ffff:127.0.0.0/104"}}, "::ffff:10.0.0.1", -EACCES,
     "v4-mapped"},
    {"allow mapped 127/104", {{'a', "::ffff:127.0.0.0/104"}}, "127.0.0.1", -EACCES, "loopback"},
    {"allow host", {{'a', "127.0.0.1"}}, "127.0.0.1", 0, NULL},
    {"allow host", {{'a', "127.0.0.1"}}, "127.0.0.2", -EACCES, "loopback"},
    {"allow ::1", {{'a', "::1"}}, "::1", 0, NULL},
    {"allow ::1", {{'a', "::1"}}, "127.0.0.1", -EACCES, "loopback"},
    {"allow 10.1/16", {{'a', "10.1.0.0/16"}}, "10.1.255.255", 0, NULL},
    {"allow 10.1/16", {{'a', "10.1.0.0/16"}}, "10.2.0.0", -EACCES, "private"},
    {"allow 10.1/16", {{'a', "10.1.0.0/16"}}, "10.0.255.255", -EACCES, "private"},
    {"allow 172.16/13", {{'a', "172.16.0.0/13"}}, "172.23.255.255", 0, NULL},
    {"allow 172.16/13", {{'a', "172.16.0.0/13"}}, "172.24.0.0", -EACCES, "private"},
    {"allow fd00::/8", {{'a', "fd00::/8"}}, "fd12::1", 0, NULL},
    {"allow fd00::/8", {{'a', "fd00::/8"}}, "fc00::1", -EACCES, "ula"},
    {"allow all v4", {{'a', "0.0.0.0/0"}}, "127.0.0.1", 0, NULL},
    {"allow all v4", {{'a', "0.0.0.0/0"}}, "224.0.0.1", 0, NULL},
    {"allow all v4", {{'a', "0.0.0.0/0"}}, "::1", -EACCES, "loopback"},
    {"allow all v6", {{'a', "::/0"}}, "::ffff:127.0.0.1", -EACCES, "embedded loopback"},
    {"allow all v6", {{'a', "::/0"}}, "::ffff:8.8.8.8", 0, NULL},
    {"allow all v6", {{'a', "::/0"}}, "fe80::1", 0, NULL},
    {"allow all v6", {{'a', "::/0"}}, "10.0.0.1", -EACCES, "private"},
    /* Deny ranges apply to public addresses. */
    {"deny 8.8.8/24", {{'d', "8.8.8.0/24"}}, "8.8.8.8", -EACCES, "denied range"},
    {"deny 8.8.8/24", {{'d', "8.8.8.0/24"}}, "8.8.9.8", 0, NULL},
    {"deny 8.8.8/24", {{'d', "8.8.8.0/24"}}, "::ffff:8.8.8.8", -EACCES, "v4-mapped"},
    {"deny v6 /32", {{'d', "2001:4860::/32"}}, "2001:4860:4860::8888", -EACCES, "denied range"},
    {"deny v6 /32", {{'d', "2001:4860::/32"}}, "2001:4861::1", 0, NULL},
    {"deny host", {{'d', "1.1.1.1"}}, "1.1.1.1", -EACCES, "denied range"},
    {"deny host", {{'d', "1.1.1.1"}}, "1.1.1.2", 0, NULL},
    {"deny public", {{'d', "public"}}, "1.1.1.1", -EACCES, "denied range"},
    {"deny public", {{'d', "public"}}, "2606:4700:4700::1111", -EACCES, "denied range"},
    {"deny loopback", {{'d', "loopback"}}, "127.0.0.1", -EACCES, "loopback"},
    /* Explicit allow wins over explicit deny. */
    {"allow in deny", {{'a', "8.8.8.8"}, {'d', "8.8.8.0/24"}}, "8.8.8.8", 0, NULL},
    {"allow in deny", {{'a', "8.8.8.8"}, {'d', "8.8.8.0/24"}}, "8.8.8.9", -EACCES, "denied range"},
    {"allowlist only", {{'a', "1.1.1.1"}, {'d', "public"}}, "1.1.1.1", 0, NULL},
    {"allowlist only", {{'a', "1.1.1.1"}, {'d', "public"}}, "1.0.0.1", -EACCES, "denied range"},
    {"allow beats deny", {{'a', "loopback"}, {'d', "127.0.0.0/8"}}, "127.0.0.1", 0, NULL},
    {"allow beats deny", {{'d', "10.0.0.0/8"}, {'a', "10.0.0.0/8"}}, "10.9.9.9", 0, NULL},
    /* The test configuration of H1C-13: loopback range allowed, the smuggling forms still not. */
    {"test config", {{'a', "127.0.0.0/8"}, {'a', "::1"}}, "127.0.0.1", 0, NULL},
    {"test config", {{'a', "127.0.0.0/8"}, {'a', "::1"}}, "::ffff:127.0.0.1", -EACCES,
     "v4-mapped"},
    {"test config", {{'a', "127.0.0.0/8"}, {'a', "::1"}}, "::127.0.0.1", -EACCES, "v4-mapped"},
    {"test config", {{'a', "127.0.0.0/8"}, {'a', "::1"}}, "64:ff9b::7f00:1", -EACCES,
     "v4-mapped"},
    {"test config", {{'a', "127.0.0.0/8"}, {'a', "::1"}}, "0.0.0.0", -EACCES, "this-network"},
    {"test config", {{'a', "127.0.0.0/8"}, {'a', "::1"}}, "::", -EACCES, "this-network"},
};

static void test_decision_table(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(decision_cases); i++) {
    const struct decision_case *c = &decision_cases[i];
    struct policy *p = policy_new();
    struct sockaddr_storage ss;
    const char *why = NULL;
    int rv;

    for (size_t j = 0; j < ARRAY_SIZE(c->steps) && c->steps[j].op != 0; j++) {
      rv = c->steps[j].op == 'a' ? policy_allow_net(p, c->steps[j].spec)
                                 : policy_deny_net(p, c->steps[j].spec);
      assert_int_equal(rv, 0);
    }
    rv = policy_check_addr(p, sa_of(c->addr, &ss), &why);
    if (rv != c->rv) fail_msg("%s / %s: rv %d, want %d", c->name, c->addr, rv, c->rv);
    if (c->rv != 0 && (why == NULL || strcmp(why, c->why) != 0)) {
      fail_msg("%s / %s: why \"%s\", want \"%s\"", c->name, c->addr, why ? why : "(null)", c->why);
    }
    /* |why| is optional. */
    assert_int_equal(policy_check_addr(p, sa_of(c->addr, &ss), NULL), c->rv);
    policy_free(p);
  }
}

/* Every class can be allowed by name, and allowing one class admits only that class (an address
 * embedding a non-public IPv4 address also needs that address's class). */
static void test_allow_each_class(void **state) {
  (void)state;
  for (int allowed = 0; allowed < ADDR_CLASS_COUNT; allowed++) {
    struct policy *p = policy_new();
    assert_int_equal(policy_allow_net(p, addr_class_name((enum addr_class)allowed)), 0);
    for (size_t i = 0; i < ARRAY_SIZE(class_cases); i++) {
      struct sockaddr_storage ss;
      enum addr_class cls = class_cases[i].cls, emb = class_cases[i].emb;
      int want = ((cls == ADDR_PUBLIC || (int)cls == allowed) && (emb == ADDR_PUBLIC || (int)emb == allowed))
                     ? 0
                     : -EACCES;
      int rv = policy_check_addr(p, sa_of(class_cases[i].addr, &ss), NULL);
      if (rv != want) {
        fail_msg("allow %s: %s rv %d, want %d", addr_class_name((enum addr_class)allowed),
                 class_cases[i].addr, rv, want);
      }
    }
    policy_free(p);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_classify_table),   cmocka_unit_test(test_classify_other_family),
      cmocka_unit_test(test_class_names),      cmocka_unit_test(test_port_table),
      cmocka_unit_test(test_port_replace),     cmocka_unit_test(test_net_spec_table),
      cmocka_unit_test(test_net_list_full),    cmocka_unit_test(test_decision_table),
      cmocka_unit_test(test_allow_each_class),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
