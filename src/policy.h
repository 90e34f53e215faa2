/* Target policy: which ports and which resolved addresses a tunnel may reach (checklist H1C-12,
 * H1C-13). Built once from the configuration before workers start; read-only afterwards and
 * shared by all workers without locks.
 *
 * Address rule order: an address inside an explicit allow range is allowed; otherwise an address
 * whose class is not ADDR_PUBLIC is denied; otherwise an address inside an explicit deny range is
 * denied; otherwise it is allowed. Checked on the resolved address, so DNS cannot smuggle a
 * private target. */
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
  XX(RESERVED, "reserved")         /* 240/4 incl. broadcast, 192.0.0/24, 198.18/15, docs */       \
  XX(ULA, "ula")                   /* fc00::/7 */                                                 \
  XX(V4MAPPED, "v4-mapped")        /* ::ffff:0:0/96, ::/96 compat, 64:ff9b::/96 NAT64 */          \
  XX(SITE_LOCAL, "site-local")     /* fec0::/10 */

enum addr_class {
#define XX(name, str) ADDR_##name,
  ADDR_CLASS_MAP(XX)
#undef XX
      ADDR_CLASS_COUNT
};

struct policy;

/* A policy with the defaults: ports 443 and 80; every non-public class denied. */
struct policy *policy_new(void);
void policy_free(struct policy *p);

/* Replaces the allowed-port set with |spec|: a comma list of ports and ranges ("443,80,8000-8100"),
 * or "*" for every port. Returns 0 or -EINVAL. */
int policy_set_ports(struct policy *p, const char *spec);

/* Adds an allow (or deny) range: a class name from ADDR_CLASS_MAP ("loopback", "private", ...) or a
 * CIDR ("10.1.0.0/16", "::1/128", a bare address means /32 or /128). Returns 0 or -EINVAL. */
int policy_allow_net(struct policy *p, const char *spec);
int policy_deny_net(struct policy *p, const char *spec);

/* Returns 0 when |port| is allowed, -EACCES otherwise. */
int policy_check_port(const struct policy *p, uint16_t port);

/* Returns 0 when |sa| (AF_INET or AF_INET6) may be reached, -EACCES otherwise with *|why| (if
 * non-NULL) set to a short static reason naming the class or "denied range". */
int policy_check_addr(const struct policy *p, const struct sockaddr *sa, const char **why);

/* Classifies an address; IPv4-mapped/NAT64 IPv6 addresses are ADDR_V4MAPPED whatever they embed. */
enum addr_class addr_classify(const struct sockaddr *sa);
const char *addr_class_name(enum addr_class c);

#endif
