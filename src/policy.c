/* Target policy: allowed ports and reachable addresses (checklist H1C-12, H1C-13).
 *
 * Addresses are compared as network-order byte strings against prefix tables, one for IPv4 and
 * one for IPv6, so classification and the operator's CIDR lists share a single match routine.
 * An operator CIDR matches only addresses of its own family: "127.0.0.0/8" does not admit
 * "::ffff:127.0.0.1". A mapped or translated address is its own class (v4-mapped, 6to4, teredo)
 * and must be allowed by that class or by an IPv6 CIDR; and because such an address reaches the
 * IPv4 host it embeds, that IPv4 address must be allowed as well. So an allow-list written for
 * IPv4 never opens a second, IPv6-shaped path to the same hosts, and allowing "v4-mapped" for a
 * NAT64 network does not open the private IPv4 space behind the translator.
 *
 * The struct is filled before workers start and only read afterwards, so no locking. */
#include "src/policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "src/util.h"

/* Class bits live in a uint32_t. */
_Static_assert(ADDR_CLASS_COUNT <= 32, "class bitmask too small");

struct cidr {
  int family;        /* AF_INET or AF_INET6 */
  uint8_t addr[16];  /* network order; only the first 4 bytes for AF_INET */
  unsigned prefix;   /* 0..32 or 0..128 */
};

struct policy {
  uint8_t ports[65536 / 8]; /* bit n set: port n allowed; bit 0 is never set */
  uint32_t allow_classes;   /* bit c set: class c was allowed by name */
  uint32_t deny_classes;    /* bit c set: class c was denied by name */
  struct cidr allow[POLICY_NETS_MAX];
  struct cidr deny[POLICY_NETS_MAX];
  unsigned n_allow, n_deny;
};

struct class_range {
  uint8_t addr[16];
  unsigned prefix;
  enum addr_class cls;
};

/* The IANA IPv4 Special-Purpose Address Registry, every entry (checked against the registry as
 * of 2025), plus multicast. First match wins, so a block inside a larger one comes first. A
 * block the registry marks "Globally Reachable: True" is ADDR_GLOBAL_SPECIAL: anycast services
 * such as PCP or TURN answer from the nearest server, which is the proxy's own network, and none
 * is a destination a forward proxy's users need. */
static const struct class_range v4_ranges[] = {
    {{0, 0, 0, 0}, 32, ADDR_THIS_NET},         /* "This host on this network", RFC 1122 §3.2.1.3 */
    {{0, 0, 0, 0}, 8, ADDR_THIS_NET},          /* "This network", RFC 791 §3.2 */
    {{10, 0, 0, 0}, 8, ADDR_PRIVATE},          /* Private-Use, RFC 1918 */
    {{100, 64, 0, 0}, 10, ADDR_CGNAT},         /* Shared Address Space, RFC 6598 */
    {{127, 0, 0, 0}, 8, ADDR_LOOPBACK},        /* Loopback, RFC 1122 §3.2.1.3 */
    {{169, 254, 0, 0}, 16, ADDR_LINK_LOCAL},   /* Link Local, RFC 3927 (incl. 169.254.169.254) */
    {{172, 16, 0, 0}, 12, ADDR_PRIVATE},       /* Private-Use, RFC 1918 */
    {{192, 0, 0, 0}, 29, ADDR_RESERVED},       /* IPv4 Service Continuity Prefix, RFC 7335 */
    {{192, 0, 0, 8}, 32, ADDR_RESERVED},       /* IPv4 dummy address, RFC 7600 */
    {{192, 0, 0, 9}, 32, ADDR_GLOBAL_SPECIAL}, /* Port Control Protocol Anycast, RFC 7723 */
    {{192, 0, 0, 10}, 32, ADDR_GLOBAL_SPECIAL}, /* TURN Anycast, RFC 8155 */
    {{192, 0, 0, 170}, 32, ADDR_RESERVED},     /* NAT64/DNS64 Discovery, RFC 8880, RFC 7050 §2.2 */
    {{192, 0, 0, 171}, 32, ADDR_RESERVED},     /* NAT64/DNS64 Discovery, RFC 8880, RFC 7050 §2.2 */
    {{192, 0, 0, 0}, 24, ADDR_RESERVED},       /* IETF Protocol Assignments, RFC 6890 §2.1 */
    {{192, 0, 2, 0}, 24, ADDR_RESERVED},       /* Documentation (TEST-NET-1), RFC 5737 */
    {{192, 31, 196, 0}, 24, ADDR_GLOBAL_SPECIAL}, /* AS112-v4, RFC 7535 */
    {{192, 52, 193, 0}, 24, ADDR_GLOBAL_SPECIAL}, /* AMT, RFC 7450 */
    {{192, 88, 99, 2}, 32, ADDR_RESERVED},     /* 6a44-relay anycast address, RFC 6751 */
    {{192, 88, 99, 0}, 24, ADDR_RESERVED},     /* Deprecated (6to4 Relay Anycast), RFC 7526 */
    {{192, 168, 0, 0}, 16, ADDR_PRIVATE},      /* Private-Use, RFC 1918 */
    {{192, 175, 48, 0}, 24, ADDR_GLOBAL_SPECIAL}, /* Direct Delegation AS112 Service, RFC 7534 */
    {{198, 18, 0, 0}, 15, ADDR_RESERVED},      /* Benchmarking, RFC 2544 */
    {{198, 51, 100, 0}, 24, ADDR_RESERVED},    /* Documentation (TEST-NET-2), RFC 5737 */
    {{203, 0, 113, 0}, 24, ADDR_RESERVED},     /* Documentation (TEST-NET-3), RFC 5737 */
    {{224, 0, 0, 0}, 4, ADDR_MULTICAST},       /* Multicast, RFC 5771 (its own registry) */
    {{255, 255, 255, 255}, 32, ADDR_RESERVED}, /* Limited Broadcast, RFC 8190, RFC 919 §7 */
    {{240, 0, 0, 0}, 4, ADDR_RESERVED},        /* Reserved, RFC 1112 §4 */
};

/* The IANA IPv6 Special-Purpose Address Registry, every entry, plus the deprecated forms the
 * registry no longer lists (IPv4-compatible, SIIT, site-local) and multicast. First match wins. */
static const struct class_range v6_ranges[] = {
    {{0}, 128, ADDR_THIS_NET},                                          /* Unspecified, RFC 4291 */
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, ADDR_LOOPBACK}, /* Loopback, RFC 4291 */
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, ADDR_V4MAPPED},   /* IPv4-mapped, RFC 4291 */
    {{0}, 96, ADDR_V4MAPPED},               /* IPv4-compatible, deprecated by RFC 4291 §2.5.5.1 */
    {{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0}, 96, ADDR_V4MAPPED},   /* SIIT IPv4-translated, RFC 2765 */
    {{0, 0x64, 0xff, 0x9b}, 96, ADDR_V4MAPPED},                        /* IPv4-IPv6 Translat., RFC 6052 */
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48, ADDR_V4MAPPED},                  /* IPv4-IPv6 Translat., RFC 8215 */
    {{0x01, 0x00}, 64, ADDR_RESERVED},                                 /* Discard-Only, RFC 6666 */
    {{0x01, 0x00, 0, 0, 0, 0, 0, 1}, 64, ADDR_RESERVED},               /* Dummy IPv6 Prefix, RFC 9780 */
    {{0x20, 0x01, 0, 0}, 32, ADDR_TEREDO},                             /* TEREDO, RFC 4380, RFC 8190 */
    {{0x20, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, ADDR_GLOBAL_SPECIAL}, /* PCP Anycast, RFC 7723 */
    {{0x20, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, 128, ADDR_GLOBAL_SPECIAL}, /* TURN Anycast, RFC 8155 */
    {{0x20, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}, 128, ADDR_GLOBAL_SPECIAL}, /* DNS-SD SRP Anycast, RFC 9665 */
    {{0x20, 0x01, 0, 2, 0, 0}, 48, ADDR_RESERVED},                     /* Benchmarking, RFC 5180 */
    {{0x20, 0x01, 0, 3}, 32, ADDR_GLOBAL_SPECIAL},                     /* AMT, RFC 7450 */
    {{0x20, 0x01, 0, 4, 0x01, 0x12}, 48, ADDR_GLOBAL_SPECIAL},         /* AS112-v6, RFC 7535 */
    {{0x20, 0x01, 0, 0x10}, 28, ADDR_RESERVED},                        /* Deprecated ORCHID, RFC 4843 */
    {{0x20, 0x01, 0, 0x20}, 28, ADDR_GLOBAL_SPECIAL},                  /* ORCHIDv2, RFC 7343 */
    {{0x20, 0x01, 0, 0x30}, 28, ADDR_GLOBAL_SPECIAL},                  /* DETs Prefix, RFC 9374 */
    {{0x20, 0x01, 0}, 23, ADDR_RESERVED},                              /* IETF Protocol Assignments, RFC 2928 */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, ADDR_RESERVED},                     /* Documentation, RFC 3849 */
    {{0x20, 0x02}, 16, ADDR_SIX_TO_FOUR},                              /* 6to4, RFC 3056 */
    {{0x26, 0x20, 0, 0x4f, 0x80, 0}, 48, ADDR_GLOBAL_SPECIAL},         /* Direct Delegation AS112, RFC 7534 */
    {{0x3f, 0xff, 0x00}, 20, ADDR_RESERVED},                           /* Documentation, RFC 9637 */
    {{0x5f, 0x00}, 16, ADDR_RESERVED},                                 /* SRv6 SIDs, RFC 9602 */
    {{0xfc}, 7, ADDR_ULA},                                             /* Unique-Local, RFC 4193, RFC 8190 */
    {{0xfe, 0x80}, 10, ADDR_LINK_LOCAL},                               /* Link-Local Unicast, RFC 4291 */
    {{0xfe, 0xc0}, 10, ADDR_SITE_LOCAL},                               /* Site-local, deprecated by RFC 3879 */
    {{0xff}, 8, ADDR_MULTICAST},                                       /* Multicast, RFC 4291 */
};

/* Deny reasons: a class name, or DENY_RANGE for an explicit deny list; with "embedded " in front
 * when the denied address is an IPv4 address embedded in the IPv6 one asked for. */
#define DENY_RANGE ADDR_CLASS_COUNT
static const char *const class_names[ADDR_CLASS_COUNT + 1] = {
#define XX(name, str) str,
    ADDR_CLASS_MAP(XX)
#undef XX
    "denied range",
};
static const char *const embedded_names[ADDR_CLASS_COUNT + 1] = {
#define XX(name, str) "embedded " str,
    ADDR_CLASS_MAP(XX)
#undef XX
    "embedded denied range",
};

static int prefix_match(const uint8_t *addr, const uint8_t *net, unsigned prefix) {
  unsigned whole = prefix / 8, rest = prefix % 8;

  if (memcmp(addr, net, whole) != 0) return 0;
  if (rest == 0) return 1;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (addr[whole] & mask) == (net[whole] & mask);
}

static enum addr_class classify_v4(const uint8_t *a) {
  for (size_t i = 0; i < ARRAY_SIZE(v4_ranges); i++) {
    if (prefix_match(a, v4_ranges[i].addr, v4_ranges[i].prefix)) return v4_ranges[i].cls;
  }
  return ADDR_PUBLIC;
}

static enum addr_class classify_v6(const uint8_t *a) {
  for (size_t i = 0; i < ARRAY_SIZE(v6_ranges); i++) {
    if (prefix_match(a, v6_ranges[i].addr, v6_ranges[i].prefix)) return v6_ranges[i].cls;
  }
  /* Only 2000::/3 is allocated as global unicast. Everything else not listed above (::/8 beyond
   * the compat range, 100::/64 discard, fe00::/9, ...) is unassigned and never a real target. */
  if ((a[0] & 0xe0) != 0x20) return ADDR_RESERVED;
  return ADDR_PUBLIC;
}

enum addr_class addr_classify(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
    return classify_v4((const uint8_t *)&sin->sin_addr);
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    return classify_v6(sin6->sin6_addr.s6_addr);
  }
  return ADDR_RESERVED;
}

const char *addr_class_name(enum addr_class c) {
  if ((unsigned)c >= ADDR_CLASS_COUNT) return "unknown";
  return class_names[c];
}

static void port_set(uint8_t *bits, unsigned port) {
  bits[port / 8] |= (uint8_t)(1u << (port % 8));
}

struct policy *policy_new(void) {
  struct policy *p = xcalloc(1, sizeof(*p));
  port_set(p->ports, 80);
  port_set(p->ports, 443);
  return p;
}

void policy_free(struct policy *p) { free(p); }

/* Parses 1..5 digits at [*s, end) into 1..65535 and advances *s past them. */
static int parse_port(const char **s, const char *end, unsigned *port) {
  const char *q = *s;
  unsigned long v = 0;
  size_t n = 0;

  while (q < end && *q >= '0' && *q <= '9') {
    if (++n > 5) return -EINVAL;
    v = v * 10 + (unsigned long)(*q - '0');
    q++;
  }
  if (n == 0 || v == 0 || v > 65535) return -EINVAL;
  *port = (unsigned)v;
  *s = q;
  return 0;
}

int policy_set_ports(struct policy *p, const char *spec) {
  uint8_t bits[sizeof(p->ports)];
  const char *s = spec;

  if (strcmp(spec, "*") == 0) {
    memset(p->ports, 0xff, sizeof(p->ports));
    p->ports[0] &= (uint8_t)~1u; /* port 0 is never a destination */
    return 0;
  }
  /* Build into a scratch set so a bad spec leaves the current set untouched. */
  memset(bits, 0, sizeof(bits));
  for (;;) {
    const char *end = strchr(s, ',');
    unsigned lo, hi;
    if (end == NULL) end = s + strlen(s);
    if (parse_port(&s, end, &lo) != 0) return -EINVAL;
    hi = lo;
    if (s < end && *s == '-') {
      s++;
      if (parse_port(&s, end, &hi) != 0 || hi < lo) return -EINVAL;
    }
    if (s != end) return -EINVAL;
    for (unsigned port = lo; port <= hi; port++) port_set(bits, port);
    if (*end == '\0') break;
    s = end + 1;
  }
  memcpy(p->ports, bits, sizeof(bits));
  return 0;
}

int policy_check_port(const struct policy *p, uint16_t port) {
  return (p->ports[port / 8] & (1u << (port % 8))) ? 0 : -EACCES;
}

static int find_class(const char *spec) {
  for (int c = 0; c < ADDR_CLASS_COUNT; c++) {
    if (strcmp(spec, class_names[c]) == 0) return c;
  }
  return -1;
}

/* Parses "addr", "addr/len" with no host bits set beyond the prefix. */
static int parse_cidr(const char *spec, struct cidr *out) {
  char text[INET6_ADDRSTRLEN];
  const char *slash = strchr(spec, '/');
  size_t alen = slash != NULL ? (size_t)(slash - spec) : strlen(spec);
  unsigned max, prefix;
  struct cidr c;

  memset(&c, 0, sizeof(c));
  if (alen == 0 || alen >= sizeof(text)) return -EINVAL;
  memcpy(text, spec, alen);
  text[alen] = '\0';
  if (inet_pton(AF_INET, text, c.addr) == 1) {
    c.family = AF_INET;
    max = 32;
  } else if (inet_pton(AF_INET6, text, c.addr) == 1) {
    c.family = AF_INET6;
    max = 128;
  } else {
    return -EINVAL;
  }

  prefix = max;
  if (slash != NULL) {
    const char *d = slash + 1;
    size_t n = strlen(d);
    if (n == 0 || n > 3) return -EINVAL;
    prefix = 0;
    for (size_t i = 0; i < n; i++) {
      if (d[i] < '0' || d[i] > '9') return -EINVAL;
      prefix = prefix * 10 + (unsigned)(d[i] - '0');
    }
    if (prefix > max) return -EINVAL;
  }

  /* Host bits past the prefix are almost always a typo ("10.1.2.3/8"); refuse rather than guess
   * which of the two the operator meant. */
  for (unsigned bit = prefix; bit < max; bit++) {
    if (c.addr[bit / 8] & (0x80u >> (bit % 8))) return -EINVAL;
  }
  c.prefix = prefix;
  *out = c;
  return 0;
}

static int add_net(uint32_t *classes, struct cidr *list, unsigned *n, const char *spec) {
  int c = find_class(spec);

  if (c >= 0) {
    *classes |= 1u << c;
    return 0;
  }
  if (*n >= POLICY_NETS_MAX) {
    struct cidr probe;
    return parse_cidr(spec, &probe) == 0 ? -ENOSPC : -EINVAL;
  }
  if (parse_cidr(spec, &list[*n]) != 0) return -EINVAL;
  (*n)++;
  return 0;
}

int policy_allow_net(struct policy *p, const char *spec) {
  return add_net(&p->allow_classes, p->allow, &p->n_allow, spec);
}

int policy_deny_net(struct policy *p, const char *spec) {
  return add_net(&p->deny_classes, p->deny, &p->n_deny, spec);
}

static int in_list(const struct cidr *list, unsigned n, int family, const uint8_t *addr) {
  for (unsigned i = 0; i < n; i++) {
    if (list[i].family == family && prefix_match(addr, list[i].addr, list[i].prefix)) return 1;
  }
  return 0;
}

/* The IPv4 addresses an IPv6 address |a| of class |cls| carries, into |out|; returns how many.
 * Each is a way the packet may end up at that IPv4 host (a translator, a relay, a tunnel). */
#define EMBEDDED_MAX 6
static size_t embedded_v4(const uint8_t *a, enum addr_class cls, uint8_t out[EMBEDDED_MAX][4]) {
  static const uint8_t nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 1};
  size_t n = 0;
  if (cls == ADDR_V4MAPPED && prefix_match(a, nat64_local, 48)) {
    /* RFC 8215 lets the operator pick any RFC 6052 prefix length inside 64:ff9b:1::/48 (bits
     * 64..71 are skipped): check the IPv4 address at each position it could be, the common /96
     * first so that a denial names that one. */
    static const uint8_t at[4][4] = {{12, 13, 14, 15}, {9, 10, 11, 12}, {7, 9, 10, 11}, {6, 7, 9, 10}};
    for (size_t i = 0; i < 4; i++, n++) {
      for (size_t j = 0; j < 4; j++) out[n][j] = a[at[i][j]];
    }
  } else if (cls == ADDR_V4MAPPED) {
    memcpy(out[n++], a + 12, 4); /* mapped, compatible, SIIT, NAT64 /96 */
  } else if (cls == ADDR_SIX_TO_FOUR) {
    memcpy(out[n++], a + 2, 4); /* RFC 3056 §2: 2002:V4ADDR::/48 */
  } else if (cls == ADDR_TEREDO) {
    /* RFC 4380 §4: the server's address, then the client's (NAT) address with every bit
     * inverted; relays deliver to the client's. Both must be allowed. */
    memcpy(out[n++], a + 4, 4);
    for (size_t j = 0; j < 4; j++) out[n][j] = (uint8_t)~a[12 + j];
    n++;
  }
  /* RFC 5214 §6.1: an ISATAP interface identifier is [00|02]-00-5E-FE followed by IPv4; on a
   * site with an ISATAP router the packet is tunnelled to that IPv4 host. */
  if ((a[8] & 0xfd) == 0 && a[9] == 0 && a[10] == 0x5e && a[11] == 0xfe) memcpy(out[n++], a + 12, 4);
  return n;
}

/* The decision for one address: -1 when allowed, else a deny reason index (class or DENY_RANGE).
 * An IPv6 address embedding IPv4 addresses passes only if each of those does too; |*embedded| is
 * set when an embedded address is what was denied. */
static int decide(const struct policy *p, int family, const uint8_t *addr, int *embedded) {
  enum addr_class cls = family == AF_INET ? classify_v4(addr) : classify_v6(addr);
  /* The order documented in policy.h: explicit allow, then class, then explicit deny. */
  if (!in_list(p->allow, p->n_allow, family, addr) && !(p->allow_classes & (1u << cls))) {
    if (cls != ADDR_PUBLIC) return (int)cls;
    if ((p->deny_classes & (1u << cls)) || in_list(p->deny, p->n_deny, family, addr)) return DENY_RANGE;
  }
  if (family == AF_INET6) {
    uint8_t v4[EMBEDDED_MAX][4];
    size_t n = embedded_v4(addr, cls, v4);
    for (size_t i = 0; i < n; i++) {
      int inner = decide(p, AF_INET, v4[i], embedded);
      if (inner >= 0) {
        *embedded = 1;
        return inner;
      }
    }
  }
  return -1;
}

int policy_check_addr(const struct policy *p, const struct sockaddr *sa, const char **why) {
  const uint8_t *addr;
  const char *reason;
  int embedded = 0;

  if (sa->sa_family == AF_INET) {
    addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
  } else if (sa->sa_family == AF_INET6) {
    addr = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
  } else {
    reason = "unsupported address family";
    goto deny;
  }
  int d = decide(p, sa->sa_family, addr, &embedded);
  if (d < 0) return 0;
  reason = embedded ? embedded_names[d] : class_names[d];

deny:
  if (why != NULL) *why = reason;
  return -EACCES;
}
