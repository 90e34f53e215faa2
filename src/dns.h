/* Asynchronous name resolution with c-ares on a worker's libuv loop. One resolver per worker,
 * owned by the worker; queries are owned by the resolver until their callback runs or they are
 * cancelled. */
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

/* Returns 0 and sets *|out|, or a negative errno. */
int dns_new(uv_loop_t *loop, const struct dns_opts *opts, struct dns_resolver **out);
/* Cancels every pending query (their callbacks do not run) and closes the resolver's handles; the
 * memory is freed from the last close callback, so the loop must keep running until then. */
void dns_close(struct dns_resolver *r);

/* Starts resolving |host| (a name or an address literal) for |port|. Returns the query, or NULL
 * on allocation failure. The callback always runs from the loop, never from inside this call. */
struct dns_query *dns_resolve(struct dns_resolver *r, const char *host, uint16_t port, dns_cb cb,
                              void *arg);
/* The callback of |q| will not run; |q| is invalid afterwards. */
void dns_cancel(struct dns_query *q);

#endif
