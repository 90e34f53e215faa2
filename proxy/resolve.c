#include "proxy/resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "src/log.h"
#include "src/worker.h"

struct resolve {
  struct worker *w;          /* borrowed */
  struct dns_query *q;       /* owned by the resolver while pending */
  struct worker_defer defer; /* delivers results decided without DNS */
  resolve_cb cb;
  void *arg;
  resolve_check_cb check;    /* judges each address; NULL: all are allowed */
  void *check_arg;
  struct sockaddr_in legacy; /* the address a legacy IPv4 spelling names; AF_UNSPEC: none */
  char host[AUTHORITY_HOST_MAX + 1];
};
/* (The addresses themselves are never kept: they are judged and handed on within one call, so
 * a resolve in flight stays small.) */

static void deliver(struct resolve *r, enum pxerr err, const char *detail, const struct dns_result *allowed) {
  r->cb(r->arg, err, detail, allowed);
  free(r);
}

/* Keeps only the addresses the check allows, in resolver order, and delivers them. */
static void judge(struct resolve *r, const struct dns_result *res) {
  struct dns_result allowed; /* only the first |n| are written and read */
  const char *why = NULL;
  allowed.n = 0;
  if (!r->check) {
    deliver(r, PXERR_NONE, NULL, res);
    return;
  }
  for (size_t i = 0; i < res->n; i++) {
    if (r->check(r->check_arg, (const struct sockaddr *)&res->addrs[i], &why) == 0)
      allowed.addrs[allowed.n++] = res->addrs[i];
  }
  if (allowed.n == 0) {
    log_info("resolve %s: denied: the address is %s", r->host, why ? why : "denied");
    deliver(r, PXERR_DEST_PROHIBITED, why ? why : "destination denied", NULL);
    return;
  }
  deliver(r, PXERR_NONE, NULL, &allowed);
}

static void on_deferred(struct worker_defer *d) {
  struct resolve *r = container_of(d, struct resolve, defer);
  if (r->legacy.sin_family != AF_INET) {
    deliver(r, PXERR_INTERNAL, "resolver unavailable", NULL);
    return;
  }
  struct dns_result res = {.n = 1};
  memcpy(&res.addrs[0], &r->legacy, sizeof(r->legacy));
  judge(r, &res);
}

static void on_dns(void *arg, int status, const struct dns_result *res) {
  struct resolve *r = arg;
  r->q = NULL;
  if (status == -ETIMEDOUT)
    deliver(r, PXERR_DNS_TIMEOUT, "dns timeout", NULL);
  else if (status < 0)
    deliver(r, PXERR_DNS_ERROR, status == -ENOENT ? "name not found" : "dns failure", NULL);
  else
    judge(r, res);
}

/* Legacy IPv4 spellings ("127.1", "0x7f000001", "2130706433") are addresses to every resolver
 * library, so classify them as such instead of letting them pass as names. */
static int legacy_ipv4(const char *host, struct in_addr *out) {
  if (strspn(host, "0123456789abcdefxABCDEFX.") != strlen(host)) return 0;
  return inet_aton(host, out) != 0;
}

struct resolve *resolve_start(struct worker *w, const struct authority *target, resolve_check_cb check,
                              void *check_arg, resolve_cb cb, void *arg) {
  struct resolve *r = xcalloc(1, sizeof(*r));
  r->check = check;
  r->check_arg = check_arg;
  r->w = w;
  r->cb = cb;
  r->arg = arg;
  list_init(&r->defer.link);
  r->defer.cb = on_deferred;
  r->legacy.sin_family = AF_UNSPEC;
  snprintf(r->host, sizeof(r->host), "%s", target->host);
  if (target->kind == AUTHORITY_NAME && legacy_ipv4(target->host, &r->legacy.sin_addr)) {
    r->legacy.sin_family = AF_INET;
    r->legacy.sin_port = htons(target->port);
    worker_defer(w, &r->defer);
    return r;
  }
  r->q = dns_resolve(w->dns, target->host, target->port, on_dns, r);
  if (!r->q) worker_defer(w, &r->defer); /* "resolver unavailable" */
  return r;
}

void resolve_cancel(struct resolve *r) {
  if (r->q) dns_cancel(r->q);
  worker_defer_cancel(&r->defer);
  free(r);
}
