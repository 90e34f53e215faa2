/* Asynchronous name resolution with c-ares on a worker's libuv loop. One resolver per worker,
 * owned by the worker; queries are owned by the resolver until their callback runs or they are
 * cancelled. A resolver and its queries are used only from the thread running its loop. */
#ifndef H2T_DNS_H
#define H2T_DNS_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define DNS_MAX_ADDRS 8

struct dns_resolver;
struct dns_query;

struct dns_opts {
  unsigned timeout_ms; /* per try; 0 means 5000 */
  int tries;           /* 0 means 2 */
  const char *servers; /* NULL for /etc/resolv.conf, or "127.0.0.1:5353,[::1]:53" */
};

struct dns_result {
  size_t n;                                  /* number of addresses, >= 1 on success */
  struct sockaddr_storage addrs[DNS_MAX_ADDRS]; /* port already set; IPv4 and IPv6 interleaved, the
                                                 first family as the resolver returned it */
};

/* |status| is 0, or -ENOENT (name does not exist / no address), -ETIMEDOUT, or -EIO (other
 * failure). |res| is valid only during the callback. Never called after dns_cancel. */
typedef void (*dns_cb)(void *arg, int status, const struct dns_result *res);

/* c-ares' process-wide init and cleanup: call dns_global_init once in main before any worker
 * starts (it is not thread-safe), and dns_global_cleanup after every resolver is freed.
 * dns_global_init returns 0 or -EIO. */
int dns_global_init(void);
void dns_global_cleanup(void);

/* |opts| may be NULL for all defaults. Returns 0 and sets *|out|, or a negative errno: -EINVAL
 * for a malformed |servers| list, -ENOMEM, or -EIO (e.g. unreadable resolver configuration).
 * An idle resolver keeps no handle active, so it does not keep the loop alive. */
int dns_new(uv_loop_t *loop, const struct dns_opts *opts, struct dns_resolver **out);
/* Cancels every pending query (their callbacks do not run, and every dns_query of |r| is invalid
 * afterwards) and closes the resolver's handles; the memory is freed from the last close callback,
 * so the loop must keep running until then. May be called from a dns_cb. */
void dns_close(struct dns_resolver *r);

/* Starts resolving |host| (a name or an address literal) for |port|. Returns the query, or NULL
 * on allocation failure or after dns_close. The callback always runs from the loop, never from
 * inside this call, and runs exactly once unless the query is cancelled or |r| closed. It may call
 * dns_resolve, dns_cancel on other queries, and dns_close. */
struct dns_query *dns_resolve(struct dns_resolver *r, const char *host, uint16_t port, dns_cb cb,
                              void *arg);
/* The callback of |q| will not run; |q| is invalid afterwards. Only for a query whose callback has
 * not run yet: not from inside its own callback, when |q| is already gone. NULL is ignored. */
void dns_cancel(struct dns_query *q);

#endif
