/* The dialer (see dialer.h): resolve under the caller's check, then race the addresses (RFC 8305).
 *
 * Each connection attempt is its own heap object with its own uv_tcp_t. A failed or losing
 * attempt is closed exactly once, by the dialer, and frees itself in its close callback; the
 * winner's handle is handed to the owner by pointer. There is no "re-initialise the handle and
 * try the next address" step, which is what used to let a cancel close a handle that was already
 * closing (issue 8 item 1).
 *
 * States (one enum; |handles| counts the timer plus every attempt not yet closed):
 *
 *   from        event                                      to          what happens
 *   (start)     dialer_start                               RESOLVING   resolve, arm the deadline
 *   RESOLVING   addresses allowed                          CONNECTING  order them, start the first
 *   RESOLVING   every address refused, DNS error           DELIVERING  keep resolve's error
 *   RESOLVING   deadline                                   DELIVERING  cancel resolve; dns_timeout
 *   CONNECTING  an attempt failed, addresses left          CONNECTING  close it, start the next now
 *   CONNECTING  an attempt failed, others still in flight  CONNECTING  close it
 *   CONNECTING  the last attempt failed, none left         DELIVERING  the most informative error
 *   CONNECTING  attempt delay passed, addresses left       CONNECTING  start the next
 *   CONNECTING  an attempt connected                       DELIVERING  it wins; close the others
 *   CONNECTING  deadline                                   DELIVERING  close all; connection_timeout
 *   DELIVERING  the deferred delivery runs                 DONE        callback (winner handed over)
 *   any but DONE  dialer_cancel                            DONE        cancel resolve or delivery,
 *                                                                      close every socket
 *   DONE        dialer_cancel                              DONE        nothing
 *   DONE        the last handle closed                     (freed)
 *
 * In DELIVERING and DONE the timer is stopped; in DONE it is closed. The outcome is delivered
 * from the worker's deferred queue, never from inside a callback of the dialer's own sockets or
 * timer. An outcome decided by a socket event is delivered at the end of that loop turn's I/O, so
 * a cancel caused by anything read in the same turn (an RST_STREAM, the client closing) comes
 * first. */
#include "proxy/dialer.h"

#include <netinet/in.h>
#include <string.h>

#include "src/log.h"
#include "src/net.h"
#include "src/worker.h"

enum dialer_state {
  DIALER_RESOLVING,  /* |res| runs; the timer holds the deadline */
  DIALER_CONNECTING, /* attempts in flight and/or addresses left; timer: next attempt or deadline */
  DIALER_DELIVERING, /* outcome decided (|winner| or |err|); the callback waits in |defer| */
  DIALER_DONE,       /* called back or cancelled: only closing handles remain */
};

/* One connection attempt: a socket connecting to one address. Owned by its dialer until it is
 * closed (it frees itself in the close callback) or, as the winner, handed to the owner. */
struct dial_attempt {
  uv_tcp_t tcp;         /* first member: the handle handed over is the attempt's allocation */
  uv_connect_t creq;
  struct dialer *d;     /* back-pointer */
  struct list link;     /* in d->attempts while connecting */
  size_t idx;           /* which of d->addrs */
};

struct dialer {
  enum dialer_state state;
  struct worker *w;            /* borrowed: the owning worker */
  struct resolve *res;         /* owned while RESOLVING */
  uv_timer_t timer;            /* the deadline, or the next attempt's start when sooner */
  int handles;                 /* open handles: the timer and every attempt not yet closed */
  uint64_t deadline;           /* loop time by which a socket must be connected */
  uint64_t next_at;            /* loop time at which the next attempt starts (CONNECTING) */
  union dialer_addr {          /* allowed addresses, in RFC 8305 order (compact: a dial in flight */
    struct sockaddr sa;        /* should cost little) */
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
  } addrs[DNS_MAX_ADDRS];
  size_t naddrs;
  size_t next;                 /* index of the next address to try */
  struct list attempts;        /* struct dial_attempt.link: connecting */
  struct dial_attempt *winner; /* owned until handed over (DELIVERING) */
  enum pxerr err;              /* the outcome when there is no winner */
  const char *detail;
  int err_rank;                /* how informative |err| is (see rank()) */
  struct worker_defer defer;   /* delivers the outcome */
  dialer_cb cb;
  void *arg;
  char host[AUTHORITY_HOST_MAX + 1]; /* for logs */
};

static void start_attempts(struct dialer *d);
static void on_timer(uv_timer_t *h);

static const struct sockaddr *addr_of(const struct dialer *d, const struct dial_attempt *a) {
  return &d->addrs[a->idx].sa;
}

/* ---- closing and freeing ------------------------------------------------------------------- */

static void release(struct dialer *d) {
  if (--d->handles > 0) return;
  worker_defer_cancel(&d->defer);
  free(d);
}

static void on_timer_closed(uv_handle_t *h) { release(h->data); }

static void on_attempt_closed(uv_handle_t *h) {
  struct dial_attempt *a = container_of((uv_tcp_t *)h, struct dial_attempt, tcp);
  struct dialer *d = a->d;
  free(a);
  release(d);
}

/* Closes |a| (once: it leaves the attempt list here). A pending connect ends with UV_ECANCELED. */
static void attempt_close(struct dial_attempt *a) {
  list_remove(&a->link);
  uv_close((uv_handle_t *)&a->tcp, on_attempt_closed);
}

static void close_attempts(struct dialer *d) {
  while (!list_empty(&d->attempts))
    attempt_close(container_of(d->attempts.next, struct dial_attempt, link));
}

/* Enters DONE: nothing is left but closing handles. */
static void finish(struct dialer *d) {
  d->state = DIALER_DONE;
  close_attempts(d);
  if (d->winner) {
    uv_close((uv_handle_t *)&d->winner->tcp, on_attempt_closed);
    d->winner = NULL;
  }
  uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

/* ---- the outcome ---------------------------------------------------------------------------- */

static void on_deliver(struct worker_defer *df) {
  struct dialer *d = container_of(df, struct dialer, defer);
  struct dial_attempt *a = d->winner;
  dialer_cb cb = d->cb;
  void *arg = d->arg;
  if (a) {
    d->winner = NULL;
    d->handles--; /* the socket is the owner's now; |d| lives on until its timer has closed */
    const struct sockaddr *peer = addr_of(d, a);
    finish(d);
    cb(arg, &a->tcp, peer, PXERR_NONE, NULL);
  } else {
    enum pxerr err = d->err;
    const char *detail = d->detail;
    finish(d);
    cb(arg, NULL, NULL, err, detail);
  }
}

static void deliver_later(struct dialer *d) {
  d->state = DIALER_DELIVERING;
  uv_timer_stop(&d->timer);
  d->defer.cb = on_deliver;
  worker_defer(d->w, &d->defer);
}

static void give_up(struct dialer *d, enum pxerr err, const char *detail) {
  close_attempts(d);
  d->err = err;
  d->detail = detail;
  deliver_later(d);
}

/* How much a failed attempt tells the client: a host that answered (refused) says most, a route
 * that is missing says where, an unexplained error least; a timeout is only ever the deadline's. */
static int rank(enum pxerr e) {
  switch (e) {
  case PXERR_CONN_REFUSED: return 3;
  case PXERR_UNREACHABLE: return 2;
  case PXERR_CONN_ERROR: return 1;
  default: return 0;
  }
}

static enum pxerr map_connect_error(int err, const char **detail) {
  switch (err) {
  case UV_ECONNREFUSED: *detail = "connection refused"; return PXERR_CONN_REFUSED;
  case UV_ETIMEDOUT: *detail = "connect timed out"; return PXERR_CONN_TIMEOUT;
  case UV_ENETUNREACH:
  case UV_EHOSTUNREACH:
  case UV_EADDRNOTAVAIL:
  case UV_EAFNOSUPPORT: *detail = "destination unreachable"; return PXERR_UNREACHABLE;
  default: *detail = "connect failed"; return PXERR_CONN_ERROR;
  }
}

/* Records |a|'s failure (|status|), closes it, and moves on: the next address at once, or the
 * outcome when nothing is left. */
static void attempt_failed(struct dialer *d, struct dial_attempt *a, int status) {
  char where[64];
  const char *detail;
  enum pxerr e = map_connect_error(status, &detail);
  log_debug("dial %s: %s: %s", d->host,
            net_format_addr(addr_of(d, a), where, sizeof(where)),
            uv_strerror(status));
  if (d->err == PXERR_NONE || rank(e) > d->err_rank) {
    d->err = e;
    d->detail = detail;
    d->err_rank = rank(e);
  }
  attempt_close(a);
  d->next_at = uv_now(&d->w->loop); /* a failure starts the next attempt without waiting */
}

static void on_connect(uv_connect_t *req, int status) {
  struct dial_attempt *a = req->data;
  struct dialer *d = a->d;
  if (status == UV_ECANCELED) return; /* closed by the dialer; its close callback follows */
  CHECK(d->state == DIALER_CONNECTING);
  if (status == 0) {
    list_remove(&a->link);
    d->winner = a;
    close_attempts(d);
    deliver_later(d);
    return;
  }
  attempt_failed(d, a, status);
  start_attempts(d);
}

/* Starts one attempt on the next address. Returns 0, or a libuv error when connect failed at
 * once (the attempt is then already closed). */
static int attempt_start(struct dialer *d) {
  struct dial_attempt *a = xcalloc(1, sizeof(*a));
  char where[64];
  a->d = d;
  a->idx = d->next++;
  if (a->idx > 0)
    log_debug("dial %s: also trying %s", d->host,
              net_format_addr(addr_of(d, a), where, sizeof(where)));
  a->creq.data = a;
  CHECK(uv_tcp_init(&d->w->loop, &a->tcp) == 0);
  d->handles++;
  list_insert_tail(&d->attempts, &a->link);
  int r = uv_tcp_connect(&a->creq, &a->tcp, addr_of(d, a), on_connect);
  if (r < 0) attempt_failed(d, a, r); /* no route, say: the callback will not run */
  return r;
}

/* Starts every attempt that is due, then arms the timer for the next one or the deadline, or
 * delivers the failure when no attempt is left to wait for. */
static void start_attempts(struct dialer *d) {
  uint64_t now = uv_now(&d->w->loop);
  while (d->next < d->naddrs && d->next_at <= now) {
    if (attempt_start(d) == 0) d->next_at = now + d->w->cfg->happy_eyeballs_delay_ms;
  }
  if (list_empty(&d->attempts) && d->next >= d->naddrs) {
    give_up(d, d->err, d->detail); /* every address failed */
    return;
  }
  uint64_t at = d->deadline;
  if (d->next < d->naddrs && d->next_at < at) at = d->next_at;
  uv_timer_start(&d->timer, on_timer, at > now ? at - now : 0, 0);
}

static void on_timer(uv_timer_t *h) {
  struct dialer *d = h->data;
  if (uv_now(&d->w->loop) < d->deadline) {
    start_attempts(d); /* the attempt delay passed */
  } else if (d->state == DIALER_RESOLVING) {
    resolve_cancel(d->res);
    d->res = NULL;
    give_up(d, PXERR_DNS_TIMEOUT, "dns timeout");
  } else {
    give_up(d, PXERR_CONN_TIMEOUT, "connect timed out");
  }
}

static void on_resolved(void *arg, enum pxerr err, const char *detail, const struct dns_result *allowed) {
  struct dialer *d = arg;
  d->res = NULL;
  if (err != PXERR_NONE) {
    give_up(d, err, detail);
    return;
  }
  size_t order[DNS_MAX_ADDRS];
  dialer_order(allowed, order);
  for (size_t i = 0; i < allowed->n; i++) {
    const struct sockaddr *sa = (const struct sockaddr *)&allowed->addrs[order[i]];
    memcpy(&d->addrs[i], sa, net_addr_len(sa));
  }
  d->naddrs = allowed->n;
  d->state = DIALER_CONNECTING;
  d->next_at = uv_now(&d->w->loop);
  start_attempts(d);
}

/* ---- API ------------------------------------------------------------------------------------ */

struct dialer *dialer_start(struct worker *w, const struct authority *target, resolve_check_cb check,
                            void *check_arg, dialer_cb cb, void *arg) {
  struct dialer *d = xcalloc(1, sizeof(*d));
  d->state = DIALER_RESOLVING;
  d->w = w;
  d->cb = cb;
  d->arg = arg;
  list_init(&d->attempts);
  list_init(&d->defer.link);
  snprintf(d->host, sizeof(d->host), "%s", target->host);
  CHECK(uv_timer_init(&w->loop, &d->timer) == 0);
  d->timer.data = d;
  d->handles = 1;
  d->deadline = uv_now(&w->loop) + w->cfg->connect_timeout_ms;
  uv_timer_start(&d->timer, on_timer, w->cfg->connect_timeout_ms, 0);
  d->res = resolve_start(w, target, check, check_arg, on_resolved, d);
  return d;
}

void dialer_cancel(struct dialer *d) {
  switch (d->state) {
  case DIALER_RESOLVING:
    resolve_cancel(d->res);
    d->res = NULL;
    break;
  case DIALER_CONNECTING:
    break;
  case DIALER_DELIVERING:
    worker_defer_cancel(&d->defer);
    break;
  case DIALER_DONE:
    return;
  }
  finish(d);
}

void dialer_order(const struct dns_result *res, size_t order[DNS_MAX_ADDRS]) {
  size_t v6[DNS_MAX_ADDRS], v4[DNS_MAX_ADDRS];
  size_t n6 = 0, n4 = 0, n = 0;
  for (size_t i = 0; i < res->n; i++) {
    if (res->addrs[i].ss_family == AF_INET6)
      v6[n6++] = i;
    else
      v4[n4++] = i;
  }
  for (size_t i = 0; i < n6 || i < n4; i++) {
    if (i < n6) order[n++] = v6[i];
    if (i < n4) order[n++] = v4[i];
  }
}
