/* Rules: the ordered `rules` section of the access model (src/access.h has the matching
 * semantics) decided for one request. Pure functions over the read-only access model.
 *
 * The decision spans two phases of the request path, because host patterns are compared with the
 * requested name and CIDRs with the resolved address:
 *   name     rules_decide_name: rules in order, each field but the CIDRs checked. A rule that
 *            matches outright decides (ALLOW / DENY). A rule whose other fields match and whose
 *            dest can only match by address stops the walk: BY_ADDRESS from that rule.
 *   address  rules_decide_addr for each resolved address, from that rule on, with the address.
 * NONE: no rule decided; the built-in target policy (ports, address classes) decides, as without
 * rules. An allow does not lift the built-in policy unless it opens explicitly: a rule with
 * `ports` opens those ports (the --allow-ports check is skipped), and a rule matched by a dest
 * CIDR opens that range (the address-class check is skipped for that address). */
#ifndef H2T_PROXY_RULES_H
#define H2T_PROXY_RULES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct access;
struct access_rule;

/* What the rules look at (strings borrowed). */
struct rules_query {
  const char *user;               /* authenticated user, NULL: anonymous */
  const struct sockaddr *client;  /* the client's address; NULL or AF_UNSPEC: unknown */
  const char *host;               /* the requested name (or address literal) */
  uint16_t port;
  unsigned proto;                 /* one ACCESS_PROTO_* bit; 0 (forward): matches only rules
                                     without `protocols` */
};

enum rules_verdict {
  RULES_NONE,       /* no rule decided: the built-in policy decides */
  RULES_ALLOW,
  RULES_DENY,
  RULES_BY_ADDRESS, /* name phase only: decide per address from rule |index| */
};

struct rules_decision {
  enum rules_verdict verdict;
  size_t index;                   /* the deciding rule (or, BY_ADDRESS, the first to re-check) */
  const struct access_rule *rule; /* the deciding rule; NULL for NONE and BY_ADDRESS */
  int opens_port;                 /* ALLOW by a rule with `ports`: --allow-ports is not checked */
  int opens_addr;                 /* ALLOW by a dest CIDR (address phase): the address class is
                                     not checked */
};

void rules_decide_name(const struct access *a, const struct rules_query *q, struct rules_decision *d);
void rules_decide_addr(const struct access *a, const struct rules_query *q, size_t from, const struct sockaddr *sa,
                       struct rules_decision *d);

#endif
