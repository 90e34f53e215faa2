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
  char host[AUTHORITY_HOST_MAX + 1];
  enum pxerr err;
  const char *detail;
  struct dns_result res;     /* allowed addresses */
  resolve_check_cb check;    /* judges each address; NULL: all are allowed */
  void *check_arg;
};

static void deliver(struct resolve *r) {
  r->cb(r->arg, r->err, r->detail, r->err == PXERR_NONE ? &r->res : NULL);
  free(r);
}

static void on_deferred(struct worker_defer *d) { deliver(container_of(d, struct resolve, defer)); }

static void finish_later(struct resolve *r, enum pxerr err, const char *detail) {
  r->err = err;
  r->detail = detail;
  worker_defer(r->w, &r->defer);
}

/* Keeps only the addresses the check allows, in resolver order. */
static void filter(struct resolve *r, const struct dns_result *res) {
  const char *why = NULL;
  r->res.n = 0;
  if (!r->check) {
    r->res = *res;
    r->err = PXERR_NONE;
    return;
  }
  for (size_t i = 0; i < res->n; i++) {
    if (r->check(r->check_arg, (const struct sockaddr *)&res->addrs[i], &why) == 0)
      r->res.addrs[r->res.n++] = res->addrs[i];
  }
  if (r->res.n == 0) {
    log_info("resolve %s: denied: the address is %s", r->host, why ? why : "denied");
    r->err = PXERR_DEST_PROHIBITED;
    r->detail = why ? why : "destination denied";
  } else {
    r->err = PXERR_NONE;
  }
}

static void on_dns(void *arg, int status, const struct dns_result *res) {
  struct resolve *r = arg;
  r->q = NULL;
  if (status == -ETIMEDOUT) {
    r->err = PXERR_DNS_TIMEOUT;
    r->detail = "dns timeout";
  } else if (status < 0) {
    r->err = PXERR_DNS_ERROR;
    r->detail = status == -ENOENT ? "name not found" : "dns failure";
  } else {
    filter(r, res);
  }
  deliver(r);
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
  snprintf(r->host, sizeof(r->host), "%s", target->host);
  struct in_addr legacy;
  if (target->kind == AUTHORITY_NAME && legacy_ipv4(target->host, &legacy)) {
    struct dns_result res = {.n = 1};
    struct sockaddr_in *sin = (struct sockaddr_in *)&res.addrs[0];
    sin->sin_family = AF_INET;
    sin->sin_addr = legacy;
    sin->sin_port = htons(target->port);
    filter(r, &res);
    finish_later(r, r->err, r->detail);
    return r;
  }
  r->q = dns_resolve(w->dns, target->host, target->port, on_dns, r);
  if (!r->q) finish_later(r, PXERR_INTERNAL, "resolver unavailable");
  return r;
}

void resolve_cancel(struct resolve *r) {
  if (r->q) dns_cancel(r->q);
  worker_defer_cancel(&r->defer);
  free(r);
}
