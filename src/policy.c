/* Target policy: allowed ports and reachable addresses (checklist H1C-12, H1C-13).
 *
 * Addresses are compared as network-order byte strings against prefix tables, one for IPv4 and
 * one for IPv6, so classification and the operator's CIDR lists share a single match routine.
 * An operator CIDR matches only addresses of its own family: "127.0.0.0/8" does not admit
 * "::ffff:127.0.0.1". That is deliberate; a mapped or translated address is its own class
 * (ADDR_V4MAPPED) and must be allowed by that class or by an IPv6 CIDR, because an allow-list
 * written for IPv4 should never open a second, IPv6-shaped path to the same hosts.
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

/* IANA special-purpose registries, IPv4 (RFC 6890 and successors). Ranges do not overlap except
 * 255.255.255.255 inside 240/4, which has the same class. */
static const struct class_range v4_ranges[] = {
    {{0, 0, 0, 0}, 8, ADDR_THIS_NET},
    {{10, 0, 0, 0}, 8, ADDR_PRIVATE},
    {{100, 64, 0, 0}, 10, ADDR_CGNAT},
    {{127, 0, 0, 0}, 8, ADDR_LOOPBACK},
    {{169, 254, 0, 0}, 16, ADDR_LINK_LOCAL}, /* includes the 169.254.169.254 metadata service */
    {{172, 16, 0, 0}, 12, ADDR_PRIVATE},
    {{192, 0, 0, 0}, 24, ADDR_RESERVED},     /* IETF protocol assignments */
    {{192, 0, 2, 0}, 24, ADDR_RESERVED},     /* TEST-NET-1 */
    {{192, 168, 0, 0}, 16, ADDR_PRIVATE},
    {{198, 18, 0, 0}, 15, ADDR_RESERVED},    /* benchmarking */
    {{198, 51, 100, 0}, 24, ADDR_RESERVED},  /* TEST-NET-2 */
    {{203, 0, 113, 0}, 24, ADDR_RESERVED},   /* TEST-NET-3 */
    {{224, 0, 0, 0}, 4, ADDR_MULTICAST},
    {{240, 0, 0, 0}, 4, ADDR_RESERVED},      /* future use and limited broadcast */
};

/* IPv6. Checked in order, first match wins: the exact :: and ::1 come before ::/96. */
static const struct class_range v6_ranges[] = {
    {{0}, 128, ADDR_THIS_NET},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, ADDR_LOOPBACK},
    {{0}, 96, ADDR_V4MAPPED},                                          /* IPv4-compatible */
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, ADDR_V4MAPPED},   /* IPv4-mapped */
    {{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0}, 96, ADDR_V4MAPPED},   /* SIIT IPv4-translated */
    {{0, 0x64, 0xff, 0x9b}, 96, ADDR_V4MAPPED},                        /* NAT64 well-known */
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48, ADDR_V4MAPPED},                  /* NAT64 local-use */
    {{0x20, 0x01, 0x00, 0x02, 0, 0}, 48, ADDR_RESERVED},               /* benchmarking */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, ADDR_RESERVED},                     /* documentation */
    {{0x3f, 0xff, 0x00}, 20, ADDR_RESERVED},                           /* documentation */
    {{0xfc}, 7, ADDR_ULA},
    {{0xfe, 0x80}, 10, ADDR_LINK_LOCAL},
    {{0xfe, 0xc0}, 10, ADDR_SITE_LOCAL},
    {{0xff}, 8, ADDR_MULTICAST},
};

static const char *const class_names[ADDR_CLASS_COUNT] = {
#define XX(name, str) str,
    ADDR_CLASS_MAP(XX)
#undef XX
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
  /* 6to4 (2002::/16) carries an IPv4 address in bytes 2..5 and a relay may deliver to it, so a
   * 6to4 address inherits the class of a non-public embedded IPv4 (2002:7f00:1:: is loopback). */
  if (a[0] == 0x20 && a[1] == 0x02) return classify_v4(a + 2);
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

int policy_check_addr(const struct policy *p, const struct sockaddr *sa, const char **why) {
  const uint8_t *addr;
  enum addr_class cls;
  const char *reason;

  if (sa->sa_family == AF_INET) {
    addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
  } else if (sa->sa_family == AF_INET6) {
    addr = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
  } else {
    reason = "unsupported address family";
    goto deny;
  }
  cls = addr_classify(sa);

  /* The order documented in policy.h: explicit allow, then class, then explicit deny. */
  if ((p->allow_classes & (1u << cls)) || in_list(p->allow, p->n_allow, sa->sa_family, addr)) {
    return 0;
  }
  if (cls != ADDR_PUBLIC) {
    reason = class_names[cls];
    goto deny;
  }
  if ((p->deny_classes & (1u << cls)) || in_list(p->deny, p->n_deny, sa->sa_family, addr)) {
    reason = "denied range";
    goto deny;
  }
  return 0;

deny:
  if (why != NULL) *why = reason;
  return -EACCES;
}
