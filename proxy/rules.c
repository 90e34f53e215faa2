/* Rules (see rules.h). */
#include "proxy/rules.h"

#include <string.h>
#include <strings.h>

#include "src/access.h"

static int names_have(const struct access_name *v, size_t n, const char *s) {
  size_t lo = 0, hi = n; /* sorted by access_link */
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(v[mid].s, s);
    if (c == 0) return 1;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return 0;
}

static int user_matches(const struct access *a, const struct access_rule *r, const char *user) {
  if (!r->any_user && !r->nusers && !r->ngroups) return 1; /* anyone, authenticated or not */
  if (!user) return 0;
  if (r->any_user || names_have(r->users, r->nusers, user)) return 1;
  for (size_t i = 0; i < r->ngroups; i++) {
    const struct access_group *g = &a->groups[r->group_idx[i]];
    if (names_have(g->members, g->n, user)) return 1;
  }
  return 0;
}

/* Every field but dest. */
static int others_match(const struct access *a, const struct access_rule *r, const struct rules_query *q) {
  if (r->protocols && !(r->protocols & q->proto)) return 0;
  if (r->nports) {
    int hit = 0;
    for (size_t i = 0; i < r->nports && !hit; i++) hit = q->port >= r->ports[i].lo && q->port <= r->ports[i].hi;
    if (!hit) return 0;
  }
  if (!access_nets_empty(&r->clients) && !access_nets_contain(&r->clients, q->client)) return 0;
  return user_matches(a, r, q->user);
}

/* "exact.host" or "*.suffix" (stored as ".suffix": a.x.y and a.b.x.y, not x.y); a trailing dot
 * on the requested name is ignored. */
static int host_matches(const struct access_rule *r, const char *host) {
  if (!host) return 0;
  size_t len = strlen(host);
  if (len && host[len - 1] == '.') len--;
  for (size_t i = 0; i < r->nhosts; i++) {
    const struct access_host *h = &r->hosts[i];
    if (h->suffix) {
      if (len > h->len && strncasecmp(host + len - h->len, h->pattern, h->len) == 0) return 1;
    } else if (len == h->len && strncasecmp(host, h->pattern, len) == 0) {
      return 1;
    }
  }
  return 0;
}

static int has_cidrs(const struct access_rule *r) { return r->dests.n != 0 || r->dests.classes != 0; }
static int dest_unrestricted(const struct access_rule *r) { return r->any_dest || (!r->nhosts && !has_cidrs(r)); }

static void decide(struct rules_decision *d, const struct access *a, size_t i, int by_cidr) {
  d->rule = &a->rules[i];
  d->index = i;
  d->verdict = d->rule->action == ACCESS_ALLOW ? RULES_ALLOW : RULES_DENY;
  d->opens_port = d->verdict == RULES_ALLOW && d->rule->nports != 0;
  d->opens_addr = d->verdict == RULES_ALLOW && by_cidr;
}

void rules_decide_name(const struct access *a, const struct rules_query *q, struct rules_decision *d) {
  memset(d, 0, sizeof(*d));
  d->verdict = RULES_NONE;
  for (size_t i = 0; i < a->nrules; i++) {
    const struct access_rule *r = &a->rules[i];
    if (!others_match(a, r, q)) continue;
    if (dest_unrestricted(r) || host_matches(r, q->host)) {
      decide(d, a, i, 0);
      return;
    }
    if (has_cidrs(r)) { /* only the address can tell: so can it for every later rule */
      d->verdict = RULES_BY_ADDRESS;
      d->index = i;
      return;
    }
  }
}

void rules_decide_addr(const struct access *a, const struct rules_query *q, size_t from, const struct sockaddr *sa,
                       struct rules_decision *d) {
  memset(d, 0, sizeof(*d));
  d->verdict = RULES_NONE;
  for (size_t i = from; i < a->nrules; i++) {
    const struct access_rule *r = &a->rules[i];
    if (!others_match(a, r, q)) continue;
    if (dest_unrestricted(r) || host_matches(r, q->host)) {
      decide(d, a, i, 0);
      return;
    }
    if (has_cidrs(r) && access_nets_contain(&r->dests, sa)) {
      decide(d, a, i, 1);
      return;
    }
  }
}
