/* Asynchronous name resolution: c-ares driven by a libuv loop.
 *
 * c-ares owns the sockets and tells us through the sock-state callback which ones to watch; each
 * gets a uv_poll_t (struct dns_sock) that feeds ares_process_fd. One uv_timer_t follows
 * ares_timeout() so retries and timeouts happen without traffic.
 *
 * A query lives in two phases:
 *   in c-ares   c-ares holds it as the callback argument (q->in_ares);
 *   done        on_ares_done stored the result and put it on r->done; the idle handle delivers it.
 * Every completion goes through r->done, even when c-ares answers synchronously (/etc/hosts hit)
 * or dns_resolve parses an address literal itself, so a caller's callback never runs inside
 * dns_resolve and never inside a c-ares callback, where re-entering c-ares (dns_resolve,
 * dns_close) would be unsafe.
 *
 * c-ares has no per-query cancel, so a cancelled query still in c-ares is only marked and freed
 * silently when c-ares finishes with it. dns_close calls ares_cancel and ares_destroy, which make
 * c-ares finish every query at once. */
#include "src/dns.h"

#include <ares.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

/* ares.h pulls in <sys/param.h>, whose MIN/MAX util.h defines again. */
#undef MIN
#undef MAX
#include "src/util.h"

#define DNS_DEFAULT_TIMEOUT_MS 5000
#define DNS_DEFAULT_TRIES 2

/* One socket c-ares asked us to watch. Owned by the resolver (on r->socks while watched); freed
 * in on_sock_close. */
struct dns_sock {
  uv_poll_t poll;
  struct list link;       /* in r->socks until closed */
  struct dns_resolver *r; /* back-pointer */
  ares_socket_t fd;       /* owned by c-ares, which closes it */
};

/* One resolution. Owned by c-ares (as its callback argument) while in_ares, then by r->done
 * until delivered; freed after its callback runs, on dns_cancel, or on dns_close. */
struct dns_query {
  struct dns_resolver *r; /* back-pointer */
  struct list link;       /* in r->done (or the batch being delivered) once out of c-ares */
  dns_cb cb;
  void *arg; /* borrowed, passed back to cb */
  uint16_t port;
  int in_ares;   /* c-ares still holds a pointer to this query */
  int cancelled; /* dns_cancel ran while in_ares: free silently when c-ares calls back */
  int status;    /* 0 or negative errno, valid once done */
  struct dns_result res;
};

/* Owned by the worker; freed in the close callback of its last handle after dns_close. */
struct dns_resolver {
  uv_loop_t *loop;      /* borrowed */
  ares_channel channel; /* owned; NULL once dns_close destroyed it */
  uv_timer_t timer;     /* follows ares_timeout() */
  uv_idle_t idle;       /* delivers r->done; active only while r->done is not empty */
  struct list socks;    /* struct dns_sock being watched */
  struct list done;     /* struct dns_query finished, waiting for their callback */
  unsigned nhandles;    /* open handles (timer, idle, socks); the close that makes it 0 frees |r| */
  int closing;
};

int dns_global_init(void) {
  return ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS ? 0 : -EIO;
}

void dns_global_cleanup(void) { ares_library_cleanup(); }

static void on_timer(uv_timer_t *t);
static void on_idle(uv_idle_t *idle);

static int map_status(int status) {
  switch (status) {
  case ARES_SUCCESS:
    return 0;
  case ARES_ENOTFOUND:
  case ARES_ENODATA:
  case ARES_ENONAME:
    return -ENOENT;
  case ARES_ETIMEOUT:
    return -ETIMEDOUT;
  default:
    return -EIO;
  }
}

static void on_handle_close(uv_handle_t *h) {
  struct dns_resolver *r = h->data;
  if (--r->nhandles == 0) free(r);
}

static void on_sock_close(uv_handle_t *h) {
  struct dns_sock *s = container_of((uv_poll_t *)h, struct dns_sock, poll);
  struct dns_resolver *r = s->r;
  free(s);
  if (--r->nhandles == 0) free(r);
}

static void sock_close(struct dns_sock *s) {
  list_remove(&s->link);
  uv_close((uv_handle_t *)&s->poll, on_sock_close);
}

static struct dns_sock *sock_find(struct dns_resolver *r, ares_socket_t fd) {
  for (struct list *l = r->socks.next; l != &r->socks; l = l->next) {
    struct dns_sock *s = container_of(l, struct dns_sock, link);
    if (s->fd == fd) return s;
  }
  return NULL;
}

/* Re-arms the timer for c-ares' next deadline. Rounded up: a timer that fires a little early
 * would find nothing expired and re-arm at 0 ms, spinning the loop. */
static void timer_update(struct dns_resolver *r) {
  struct timeval tv;
  if (ares_timeout(r->channel, NULL, &tv) == NULL) {
    uv_timer_stop(&r->timer);
    return;
  }
  uint64_t ms = (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000;
  CHECK(uv_timer_start(&r->timer, on_timer, ms, 0) == 0);
}

static void on_timer(uv_timer_t *t) {
  struct dns_resolver *r = container_of(t, struct dns_resolver, timer);
  ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  timer_update(r);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  struct dns_sock *s = container_of(p, struct dns_sock, poll);
  struct dns_resolver *r = s->r;
  /* On a poll error let c-ares touch the socket both ways so it sees the error itself. */
  ares_socket_t rfd = (status < 0 || (events & UV_READABLE)) ? s->fd : ARES_SOCKET_BAD;
  ares_socket_t wfd = (status < 0 || (events & UV_WRITABLE)) ? s->fd : ARES_SOCKET_BAD;
  /* May close |s| (through on_sock_state); only its close callback frees it, but do not touch it
   * afterwards. No caller callback runs in here, so |r| stays open. */
  ares_process_fd(r->channel, rfd, wfd);
  timer_update(r);
}

/* c-ares' sock-state callback: (0, 0) means it is about to close |fd|. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable) {
  struct dns_resolver *r = data;
  struct dns_sock *s = sock_find(r, fd);

  if (!readable && !writable) {
    /* Closed now, before c-ares closes the fd, so epoll drops it while the number is still ours. */
    if (s != NULL) sock_close(s);
    return;
  }
  if (s == NULL) {
    s = xcalloc(1, sizeof(*s));
    s->r = r;
    s->fd = fd;
    /* Fails only for an fd already watched on this loop, which c-ares cannot hand us twice. */
    CHECK(uv_poll_init_socket(r->loop, &s->poll, fd) == 0);
    r->nhandles++;
    list_insert_tail(&r->socks, &s->link);
  }
  int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
  CHECK(uv_poll_start(&s->poll, events, on_poll) == 0);
}

static int addr_seen(const struct dns_result *res, const struct sockaddr_storage *ss) {
  for (size_t i = 0; i < res->n; i++)
    if (memcmp(&res->addrs[i], ss, sizeof(*ss)) == 0) return 1;
  return 0;
}

/* Appends the next usable node of |family| from *|cur| onwards to |res| and advances *|cur| past
 * it; returns 0 when none is left. The port is set here because we pass no service to c-ares. */
static int take_next(struct dns_result *res, const struct ares_addrinfo_node **cur, int family,
                     uint16_t port) {
  while (*cur != NULL) {
    const struct ares_addrinfo_node *n = *cur;
    size_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    struct sockaddr_storage ss;

    *cur = n->ai_next;
    if (n->ai_family != family || n->ai_addr == NULL || n->ai_addrlen < len) continue;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, n->ai_addr, len);
    if (family == AF_INET)
      ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    else
      ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    /* A duplicate would only waste a connection attempt. */
    if (addr_seen(res, &ss)) continue;
    res->addrs[res->n++] = ss;
    return 1;
  }
  return 0;
}

/* Fills |res| from c-ares' list (already in RFC 6724 order), alternating families and starting
 * with the family of the first address, so a caller racing connections (happy eyeballs) tries
 * the preferred family first and the other one second. */
static void fill_result(struct dns_result *res, const struct ares_addrinfo *ai, uint16_t port) {
  const struct ares_addrinfo_node *first = ai->nodes;

  res->n = 0;
  while (first != NULL && first->ai_family != AF_INET && first->ai_family != AF_INET6)
    first = first->ai_next;
  if (first == NULL) return;

  int fam[2] = {first->ai_family, first->ai_family == AF_INET ? AF_INET6 : AF_INET};
  const struct ares_addrinfo_node *cur[2] = {first, first};
  int more[2] = {1, 1};
  while (res->n < DNS_MAX_ADDRS && (more[0] || more[1])) {
    for (int i = 0; i < 2 && res->n < DNS_MAX_ADDRS; i++)
      if (more[i]) more[i] = take_next(res, &cur[i], fam[i], port);
  }
}

static void queue_done(struct dns_resolver *r, struct dns_query *q) {
  list_insert_tail(&r->done, &q->link);
  /* An idle handle makes the loop poll without blocking, so delivery is the next loop turn. */
  CHECK(uv_idle_start(&r->idle, on_idle) == 0);
}

/* ares_getaddrinfo's callback. It may run inside ares_getaddrinfo, ares_process_fd, ares_cancel
 * or ares_destroy, so it only records the result and queues the query for on_idle. */
static void on_ares_done(void *arg, int status, int timeouts, struct ares_addrinfo *ai) {
  struct dns_query *q = arg;
  struct dns_resolver *r = q->r;

  q->in_ares = 0;
  if (q->cancelled || r->closing) {
    if (ai != NULL) ares_freeaddrinfo(ai);
    free(q);
    return;
  }
  q->status = map_status(status);
  if (q->status == 0) {
    if (ai != NULL) fill_result(&q->res, ai, q->port);
    if (q->res.n == 0) q->status = -ENOENT;
  }
  if (ai != NULL) ares_freeaddrinfo(ai);
  queue_done(r, q);
}

/* Delivers the queries that were done when this turn started; ones finishing during the
 * callbacks (a callback resolving a literal) wait for the next turn, which bounds the work. */
static void on_idle(uv_idle_t *idle) {
  struct dns_resolver *r = container_of(idle, struct dns_resolver, idle);
  struct list batch;

  uv_idle_stop(idle);
  list_init(&batch);
  if (!list_empty(&r->done)) {
    batch.next = r->done.next;
    batch.prev = r->done.prev;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    list_init(&r->done);
  }
  while (!list_empty(&batch)) {
    struct dns_query *q = container_of(batch.next, struct dns_query, link);
    list_remove(&q->link);
    if (!r->closing) q->cb(q->arg, q->status, q->status == 0 ? &q->res : NULL);
    /* A callback may cancel a later query of the batch (dns_cancel unlinks and frees it) or close
     * the resolver (the rest is then freed here without callbacks); |r| itself lives until its
     * handles' close callbacks, which run after this. */
    free(q);
  }
}

/* Fills |ss| and returns 0 if |host| is an IPv4 or IPv6 address literal (with an optional
 * "%zone" for IPv6), else returns -EINVAL. */
static int parse_literal(const char *host, uint16_t port, struct sockaddr_storage *ss) {
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;

  memset(ss, 0, sizeof(*ss));
  if (uv_ip4_addr(host, port, &sin) == 0) {
    memcpy(ss, &sin, sizeof(sin));
    return 0;
  }
  /* uv_ip6_addr silently truncates the part before a "%zone" to 39 characters, which could turn
   * "<address>junk%zone" into a valid address. */
  if (strchr(host, ':') != NULL && strcspn(host, "%") < 40 &&
      uv_ip6_addr(host, port, &sin6) == 0) {
    memcpy(ss, &sin6, sizeof(sin6));
    return 0;
  }
  return -EINVAL;
}

int dns_new(uv_loop_t *loop, const struct dns_opts *opts, struct dns_resolver **out) {
  struct dns_resolver *r = xcalloc(1, sizeof(*r));
  struct ares_options ao;
  int optmask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  int rc;

  *out = NULL;
  r->loop = loop;
  list_init(&r->socks);
  list_init(&r->done);

  memset(&ao, 0, sizeof(ao));
  ao.sock_state_cb = on_sock_state;
  ao.sock_state_cb_data = r;
  ao.timeout = opts != NULL && opts->timeout_ms != 0 ? (int)MIN(opts->timeout_ms, 3600000u)
                                                     : DNS_DEFAULT_TIMEOUT_MS;
  ao.tries = opts != NULL && opts->tries > 0 ? opts->tries : DNS_DEFAULT_TRIES;
  rc = ares_init_options(&r->channel, &ao, optmask);
  if (rc != ARES_SUCCESS) {
    rc = rc == ARES_ENOMEM ? -ENOMEM : -EIO;
    goto out;
  }
  if (opts != NULL && opts->servers != NULL) {
    rc = ares_set_servers_ports_csv(r->channel, opts->servers);
    if (rc != ARES_SUCCESS) {
      rc = rc == ARES_ENOMEM ? -ENOMEM : -EINVAL;
      goto out;
    }
  }
  /* The handles come last: before this point nothing needs the loop to clean up. Neither init
   * can fail on Unix. */
  CHECK(uv_timer_init(loop, &r->timer) == 0);
  CHECK(uv_idle_init(loop, &r->idle) == 0);
  r->timer.data = r;
  r->idle.data = r;
  r->nhandles = 2;
  *out = r;
  r = NULL;
  rc = 0;
out:
  if (r != NULL) {
    /* No query was started, so no socket and no callback. */
    if (r->channel != NULL) ares_destroy(r->channel);
    free(r);
  }
  return rc;
}

void dns_close(struct dns_resolver *r) {
  if (r == NULL || r->closing) return;
  r->closing = 1;

  while (!list_empty(&r->done)) {
    struct dns_query *q = container_of(r->done.next, struct dns_query, link);
    list_remove(&q->link);
    free(q);
  }
  /* Each makes c-ares call on_ares_done for what it still holds; with |closing| set that only
   * frees the queries. ares_destroy also reports its sockets closed through on_sock_state. */
  ares_cancel(r->channel);
  ares_destroy(r->channel);
  r->channel = NULL;
  while (!list_empty(&r->socks)) sock_close(container_of(r->socks.next, struct dns_sock, link));

  uv_close((uv_handle_t *)&r->timer, on_handle_close);
  uv_close((uv_handle_t *)&r->idle, on_handle_close);
}

struct dns_query *dns_resolve(struct dns_resolver *r, const char *host, uint16_t port, dns_cb cb,
                              void *arg) {
  struct ares_addrinfo_hints hints;
  struct dns_query *q;

  if (r->closing) return NULL;
  q = xcalloc(1, sizeof(*q));
  q->r = r;
  list_init(&q->link);
  q->cb = cb;
  q->arg = arg;
  q->port = port;
  q->in_ares = 1;

  /* c-ares 1.18 sends an IPv4 literal to the DNS server as a name when the family is AF_UNSPEC,
   * so literals never reach it. */
  if (parse_literal(host, port, &q->res.addrs[0]) == 0) {
    q->in_ares = 0;
    q->res.n = 1;
    queue_done(r, q);
    return q;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  /* May call on_ares_done before returning (literal, /etc/hosts); that only queues |q|. */
  ares_getaddrinfo(r->channel, host, NULL, &hints, on_ares_done, q);
  timer_update(r);
  return q;
}

void dns_cancel(struct dns_query *q) {
  if (q == NULL) return;
  if (q->in_ares) {
    q->cancelled = 1; /* on_ares_done frees it */
    return;
  }
  list_remove(&q->link);
  free(q);
}
