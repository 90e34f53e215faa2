/* Target policy: which ports and which resolved addresses a tunnel may reach (checklist H1C-12,
 * H1C-13). Built once from the configuration before workers start; read-only afterwards and
 * shared by all workers without locks.
 *
 * Address classes come from the IANA IPv4 and IPv6 Special-Purpose Address Registries (the table
 * in policy.c names each entry's RFC), plus multicast, site-local, IPv4-compatible and the rest of
 * the IPv6 space outside 2000::/3. Every class but ADDR_PUBLIC is denied by default.
 *
 * Address rule order: an address inside an explicit allow range is allowed; otherwise an address
 * whose class is not allowed by name is denied if that class is not ADDR_PUBLIC, and an address
 * not allowed by its class is denied if it is inside an explicit deny range. Then, whatever
 * allowed it so far: an IPv6 address that embeds IPv4 addresses is allowed only if each embedded
 * IPv4 address is allowed too (reason "embedded <class>" or "embedded denied range"). Checked on
 * the resolved address, so DNS cannot smuggle a private target.
 *
 * The embedding forms: IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96 and SIIT
 * ::ffff:0:0:0/96 (class v4-mapped); NAT64 64:ff9b::/96 and 64:ff9b:1::/48 (v4-mapped; the
 * local-use /48 may hold the IPv4 address at any RFC 6052 position, so all are checked); 6to4
 * 2002::/16 (6to4); Teredo 2001::/32 (teredo; the server and the de-obfuscated client address);
 * and, in any class, an ISATAP interface identifier (RFC 5214: ::0:5efe:a.b.c.d or
 * ::200:5efe:a.b.c.d).
 *
 * An address matches a CIDR only in the CIDR's own family: "127.0.0.0/8" does not cover
 * "::ffff:127.0.0.1". Allowing a class by name allows all of its ranges. */
#ifndef H2T_POLICY_H
#define H2T_POLICY_H

#include <stdint.h>
#include <sys/socket.h>

#define ADDR_CLASS_MAP(XX)                                                                        \
  XX(PUBLIC, "public")                                                                            \
  XX(LOOPBACK, "loopback")         /* 127/8, ::1 */                                               \
  XX(PRIVATE, "private")           /* 10/8, 172.16/12, 192.168/16 (RFC 1918) */                  \
  XX(LINK_LOCAL, "link-local")     /* 169.254/16 (incl. 169.254.169.254), fe80::/10 */            \
  XX(CGNAT, "cgnat")               /* 100.64/10 */                                                \
  XX(THIS_NET, "this-network")     /* 0/8, :: */                                                  \
  XX(MULTICAST, "multicast")       /* 224/4, ff00::/8 */                                          \
  XX(RESERVED, "reserved")         /* registry blocks not globally reachable: 240/4, broadcast, */\
                                   /* 192.0.0/24, 192.88.99/24, 198.18/15, documentation, */     \
                                   /* 100::/64, 2001::/23 (rest), 5f00::/16, and all IPv6 */      \
                                   /* space outside 2000::/3 not listed here */                   \
  XX(ULA, "ula")                   /* fc00::/7 */                                                 \
  XX(V4MAPPED, "v4-mapped")        /* ::ffff:0:0/96, ::/96 compat, 64:ff9b::/96 NAT64 */          \
                                   /* (also SIIT ::ffff:0:0:0/96, local NAT64 64:ff9b:1::/48) */  \
  XX(SITE_LOCAL, "site-local")     /* fec0::/10 */                                                \
  XX(TEREDO, "teredo")             /* 2001::/32 */                                                \
  XX(SIX_TO_FOUR, "6to4")          /* 2002::/16 */                                                \
  XX(GLOBAL_SPECIAL, "global-special") /* registry blocks marked globally reachable: PCP, TURN */ \
                                   /* and DNS-SD anycast, AS112, AMT, ORCHIDv2, DETs */

enum addr_class {
#define XX(name, str) ADDR_##name,
  ADDR_CLASS_MAP(XX)
#undef XX
      ADDR_CLASS_COUNT
};

/* Each of the allow and deny lists holds at most this many CIDRs (class names do not count). */
#define POLICY_NETS_MAX 64

struct policy;

/* A policy with the defaults: ports 443 and 80; every non-public class denied. */
struct policy *policy_new(void);
void policy_free(struct policy *p);

/* Replaces the allowed-port set with |spec|: a comma list of ports and ranges ("443,80,8000-8100"),
 * or "*" for every port 1..65535. Ports are 1..65535 written in at most 5 digits; empty items,
 * whitespace and reversed ranges are refused. Returns 0 or -EINVAL, leaving the set unchanged on
 * error. */
int policy_set_ports(struct policy *p, const char *spec);

/* Adds an allow (or deny) range: a class name from ADDR_CLASS_MAP ("loopback", "private", ...) or a
 * CIDR ("10.1.0.0/16", "::1/128", a bare address means /32 or /128). A CIDR with bits set past its
 * prefix ("10.1.2.3/8") is refused as a likely typo. Returns 0, -EINVAL for a bad spec, or -ENOSPC
 * when POLICY_NETS_MAX CIDRs are already in that list. */
int policy_allow_net(struct policy *p, const char *spec);
int policy_deny_net(struct policy *p, const char *spec);

/* Returns 0 when |port| is allowed, -EACCES otherwise. */
int policy_check_port(const struct policy *p, uint16_t port);

/* Returns 0 when |sa| (AF_INET or AF_INET6) may be reached, -EACCES otherwise with *|why| (if
 * non-NULL) set to a short static reason: the class name (addr_class_name), "denied range",
 * "embedded " and either of those for an embedded IPv4 address, or "unsupported address family"
 * for any other family. */
int policy_check_addr(const struct policy *p, const struct sockaddr *sa, const char **why);

/* Classifies an address; IPv4-mapped/NAT64 IPv6 addresses are ADDR_V4MAPPED, 6to4 ones
 * ADDR_SIX_TO_FOUR and Teredo ones ADDR_TEREDO whatever they embed.
 * A family other than AF_INET/AF_INET6 is ADDR_RESERVED. addr_class_name returns the map's string,
 * or "unknown" for a value outside the enum. */
enum addr_class addr_classify(const struct sockaddr *sa);
const char *addr_class_name(enum addr_class c);

#endif
