/* accept4(2) */
#define _GNU_SOURCE
#include "src/worker.h"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "src/access.h"
#include "src/auth.h"
#include "src/dns.h"
#include "src/log.h"
#include "src/net.h"

static void on_defer_check(uv_check_t *h) {
  struct worker *w = h->data;
  w->turn++; /* between poll phases: the reads of one poll phase share a turn (conn.c) */
  /* Callbacks may defer more work; run until the list is empty (bounded by what they add). */
  for (int rounds = 0; rounds < 8 && !list_empty(&w->deferred); rounds++) {
    struct list todo;
    list_init(&todo);
    /* Move the whole list so items re-deferred by their own callback run next round. */
    todo.next = w->deferred.next;
    todo.prev = w->deferred.prev;
    todo.next->prev = &todo;
    todo.prev->next = &todo;
    list_init(&w->deferred);
    while (!list_empty(&todo)) {
      struct worker_defer *d = container_of(todo.next, struct worker_defer, link);
      list_remove(&d->link);
      d->queued = 0;
      d->cb(d);
    }
  }
  if (list_empty(&w->deferred)) uv_idle_stop(&w->defer_idle);
}

static void on_defer_idle(uv_idle_t *h) { on_defer_check((uv_check_t *)&((struct worker *)h->data)->defer_check); }

void worker_defer(struct worker *w, struct worker_defer *d) {
  if (d->queued) return;
  d->queued = 1;
  list_insert_tail(&w->deferred, &d->link);
  /* An active idle handle makes the poll phase non-blocking, so the check phase comes soon even
   * when the work was deferred from a timer callback. */
  if (!uv_is_active((uv_handle_t *)&w->defer_idle)) uv_idle_start(&w->defer_idle, on_defer_idle);
}

void worker_defer_cancel(struct worker_defer *d) {
  if (!d->queued) return;
  list_remove(&d->link);
  d->queued = 0;
}

void worker_log(struct worker *w, enum worker_log kind, enum log_level level, const char *fmt, ...) {
  /* Warnings about limits: one line per 10 s; lines about single clients: ten. */
  uint32_t burst = kind == WLOG_EVICTED || kind == WLOG_REFUSED ? 1 : 10;
  uint64_t held_back;
  if (level > log_get_level() || !log_limit_pass(&w->loglimit[kind], uv_now(&w->loop), 10000, burst, &held_back))
    return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (held_back)
    log_msg(level, "%s (and %llu similar lines held back)", line, (unsigned long long)held_back);
  else
    log_msg(level, "%s", line);
}

/* Connections accepted per wake-up: a burst of connections must not hold the loop either
 * (libuv reads a stream at most 32 times per callback for the same reason). */
#define ACCEPT_BATCH 32
/* How long accepting pauses after EMFILE and the like. The connections wait in the backlog
 * meanwhile and are served once descriptors are free again (nginx pauses 500 ms). */
#define ACCEPT_PAUSE_MS 250

static void on_listener_readable(uv_poll_t *h, int status, int events);

static void on_pause_timer(uv_timer_t *t) {
  struct listener *lst = t->data;
  if (!lst->w->stopping) uv_poll_start(&lst->poll, UV_READABLE, on_listener_readable);
}

static void accept_failed(struct listener *lst, int err) {
  struct worker *w = lst->w;
  METRIC_ADD(&w->metrics, accept_errors, 1);
  lst->failures++;
  uint64_t held_back;
  if (log_limit_pass(&lst->errlog, uv_now(&w->loop), 10000, 1, &held_back))
    log_warn("accept on %s: %s; pausing accepts for %d ms (%llu failed accepts since the last "
             "connection; this line repeats at most every 10 s)",
             lst->cfg->text, uv_strerror(err), ACCEPT_PAUSE_MS, (unsigned long long)lst->failures);
  uv_poll_stop(&lst->poll);
  uv_timer_start(&lst->pause_timer, on_pause_timer, ACCEPT_PAUSE_MS, 0);
}

static void on_listener_readable(uv_poll_t *h, int status, int events) {
  struct listener *lst = h->data;
  if (status < 0) {
    accept_failed(lst, status);
    return;
  }
  for (int i = 0; i < ACCEPT_BATCH && !lst->w->stopping; i++) {
    int fd = accept4(lst->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) return;
      /* Errors of that one connection (accept(2): Linux passes pending network errors on). */
      if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == EPERM || e == ENETDOWN ||
          e == ENETUNREACH || e == EHOSTDOWN || e == EHOSTUNREACH || e == ENONET || e == ENOPROTOOPT ||
          e == EOPNOTSUPP || e == ETIMEDOUT)
        continue;
      accept_failed(lst, -e); /* EMFILE, ENFILE, ENOBUFS, ENOMEM: out of something */
      return;
    }
    if (lst->failures) {
      log_info("accept on %s: accepting again after %llu failed accepts", lst->cfg->text,
               (unsigned long long)lst->failures);
      lst->failures = 0;
    }
    lst->w->conn_ops->accept(lst, fd);
  }
}

static void close_if_open(uv_handle_t *h) {
  if (h->loop && !uv_is_closing(h)) uv_close(h, NULL);
}

static void on_listener_handle_closed(uv_handle_t *h) {
  struct listener *lst = h->data;
  lst->closing--;
}

static void listener_close_handle(struct listener *lst, uv_handle_t *h) {
  if (!h->loop || uv_is_closing(h)) return;
  h->data = lst;
  lst->closing++;
  uv_close(h, on_listener_handle_closed);
}

static void listener_close(struct listener *lst) {
  listener_close_handle(lst, (uv_handle_t *)&lst->poll);
  listener_close_handle(lst, (uv_handle_t *)&lst->pause_timer);
  /* uv_close stopped the poll, so the descriptor may go now. */
  if (lst->fd >= 0) close(lst->fd);
  lst->fd = -1;
}

/* |adopted| >= 0: a listening socket handed over by the process this one replaces (already bound
 * and listening, non-blocking), taken as it is; -1: bind a new one. */
static int listener_open(struct worker *w, struct listener *lst, const struct config_listener *lc, int adopted) {
  memset(lst, 0, sizeof(*lst)); /* a slot a reload closed is used again: its handles are closed */
  lst->w = w;
  lst->cfg = lc;
  int r = 0;
  if (adopted >= 0) {
    lst->fd = adopted;
  } else {
    lst->fd = socket(lc->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lst->fd < 0) {
      r = -errno;
      log_error("listen %s: %s", lc->text, uv_strerror(r));
      return r;
    }
    int one = 1;
    /* libuv 1.44 has no UV_TCP_REUSEPORT: every worker binds its own socket to the same port and
     * the kernel spreads connections across them. */
    setsockopt(lst->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(lst->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (lc->addr.ss_family == AF_INET6) setsockopt(lst->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    socklen_t len = lc->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(lst->fd, (const struct sockaddr *)&lc->addr, len) != 0 || listen(lst->fd, 1024) != 0) r = -errno;
  }
  if (r == 0) r = uv_poll_init_socket(&w->loop, &lst->poll, lst->fd);
  if (r == 0) {
    lst->poll.data = lst;
    uv_timer_init(&w->loop, &lst->pause_timer);
    lst->pause_timer.data = lst;
    r = uv_poll_start(&lst->poll, UV_READABLE, on_listener_readable);
  }
  if (r) log_error("listen %s: %s", lc->text, uv_strerror(r));
  return r;
}

/* Bursts of TLS handshakes (about 55 KiB each while in flight) leave freed holes in the heap that
 * glibc keeps resident; returning them every few seconds keeps RSS close to what is in use.
 * malloc_trim covers every arena, so one worker does it for the process. */
#define TRIM_INTERVAL_MS 5000
static void on_trim_timer(uv_timer_t *t) { malloc_trim(64 * 1024); }

static void on_stop_async(uv_async_t *h);
static void on_drain_timer(uv_timer_t *t);

/* The worker's cache of verified credentials and its hashing queue (src/auth.h). */
static void make_auth_cache(struct worker *w, const struct config *cfg) {
  const struct access_auth *au = &cfg->access->auth;
  w->auth_cache = auth_cache_new((size_t)au->cache_size, au->cache_ttl_ms);
  w->auth_cache->metrics = &w->metrics;
  w->auth_cache->max_running = cfg->access->tune.hash_concurrency;
  w->auth_cache->hash_idle = cfg->access->tune.hash_idle;
}

static void close_adopted(const struct config *cfg, const struct worker_adopt *adopt, int from, int k) {
  for (int i = from; adopt && i < cfg->nlisteners; i++)
    for (int j = i == from ? k : 0; j < adopt[i].n; j++) close(adopt[i].fds[j]);
}

int worker_init(struct worker *w, int id, struct config *cfg, SSL_CTX *ctx) {
  return worker_init_adopt(w, id, cfg, ctx, NULL);
}

int worker_init_adopt(struct worker *w, int id, struct config *cfg, SSL_CTX *ctx,
                      const struct worker_adopt *adopt) {
  memset(w, 0, sizeof(*w));
  w->id = id;
  w->cfg = config_ref(cfg);
  if (ctx) SSL_CTX_up_ref(ctx);
  w->ssl_ctx = ctx;
  int r = uv_loop_init(&w->loop);
  if (r) {
    close_adopted(cfg, adopt, 0, 0);
    return r;
  }
  w->loop.data = w;
  buf_pool_init(&w->pool, 32); /* 2 MiB of chunks kept for bursts; more go back to malloc */
  list_init(&w->conns);
  list_init(&w->handshakes);
  for (int i = 0; i < WORKER_MAX_LISTENERS; i++) w->listeners[i].fd = -1;
  int slots = 0;
  for (int i = 0; i < cfg->nlisteners; i++) slots += adopt && adopt[i].n ? adopt[i].n : 1;
  if (slots > WORKER_MAX_LISTENERS) {
    close_adopted(cfg, adopt, 0, 0);
    return -ENOSPC;
  }
  list_init(&w->tunnels);
  list_init(&w->deferred);
  list_init(&w->stop_hooks);
  uv_idle_init(&w->loop, &w->defer_idle);
  w->defer_idle.data = w;
  uv_check_init(&w->loop, &w->defer_check);
  w->defer_check.data = w;
  uv_check_start(&w->defer_check, on_defer_check);
  uv_unref((uv_handle_t *)&w->defer_check);
  uv_async_init(&w->loop, &w->stop_async, on_stop_async);
  w->stop_async.data = w;
  uv_timer_init(&w->loop, &w->drain_timer);
  w->drain_timer.data = w;
  uv_timer_init(&w->loop, &w->trim_timer);
  if (id == 0) {
    uv_timer_start(&w->trim_timer, on_trim_timer, TRIM_INTERVAL_MS, TRIM_INTERVAL_MS);
    uv_unref((uv_handle_t *)&w->trim_timer);
  }
  struct dns_opts dopts = {.timeout_ms = (unsigned)cfg->dns_timeout_ms,
                           .tries = 2,
                           .servers = cfg->dns_servers[0] ? cfg->dns_servers : NULL};
  r = dns_new(&w->loop, &dopts, &w->dns);
  if (r) {
    log_error("worker %d: resolver: %s", id, strerror(-r));
    close_adopted(cfg, adopt, 0, 0);
    return r;
  }
  const struct access_auth *au = &cfg->access->auth;
  if (au->users) {
    make_auth_cache(w, cfg);
  }
  for (int i = 0; i < cfg->nlisteners; i++) {
    int n = adopt && adopt[i].n ? adopt[i].n : 1;
    for (int k = 0; k < n; k++) {
      r = listener_open(w, &w->listeners[w->nlisteners], &cfg->listeners[i], adopt && adopt[i].n ? adopt[i].fds[k] : -1);
      w->nlisteners++;
      if (r) {
        close_adopted(cfg, adopt, i, k + 1);
        return r;
      }
    }
  }
  return 0;
}

void worker_run(struct worker *w) { uv_run(&w->loop, UV_RUN_DEFAULT); }

static int same_listener(const struct config_listener *a, const struct config_listener *b) {
  return strcmp(a->text, b->text) == 0;
}

int worker_set_config(struct worker *w, struct config *cfg, SSL_CTX *ctx) {
  int failed = 0;
  if (!w->stopping) {
    /* Removed listeners close; kept ones move to the new snapshot's entry (same socket). */
    for (int i = 0; i < w->nlisteners; i++) {
      struct listener *lst = &w->listeners[i];
      if (lst->fd < 0) continue;
      int kept = 0;
      for (int j = 0; j < cfg->nlisteners && !kept; j++) {
        if (same_listener(lst->cfg, &cfg->listeners[j])) {
          lst->cfg = &cfg->listeners[j];
          kept = 1;
        }
      }
      if (!kept) {
        log_info("worker %d: reload: closing listener %s", w->id, lst->cfg->text);
        listener_close(lst);
        lst->cfg = NULL;
      }
    }
    for (int j = 0; j < cfg->nlisteners; j++) {
      int have = 0;
      for (int i = 0; i < w->nlisteners && !have; i++)
        have = w->listeners[i].fd >= 0 && w->listeners[i].cfg == &cfg->listeners[j];
      if (have) continue;
      int slot = -1; /* a free slot: never used, or closed with its handles gone */
      for (int i = 0; i < WORKER_MAX_LISTENERS && slot < 0; i++)
        if (i >= w->nlisteners || (w->listeners[i].fd < 0 && w->listeners[i].closing == 0)) slot = i;
      if (slot < 0) {
        log_error("worker %d: reload: no free listener slot for %s (old ones still closing); not listening on it",
                  w->id, cfg->listeners[j].text);
        failed++;
        continue;
      }
      if (slot >= w->nlisteners) w->nlisteners = slot + 1;
      if (listener_open(w, &w->listeners[slot], &cfg->listeners[j], -1) != 0) {
        listener_close(&w->listeners[slot]); /* listener_open logged why */
        w->listeners[slot].cfg = NULL;
        failed++;
      } else {
        log_info("worker %d: reload: listening on %s", w->id, cfg->listeners[j].text);
      }
    }
  }
  if (ctx && ctx != w->ssl_ctx) {
    SSL_CTX_up_ref(ctx);
    SSL_CTX_free(w->ssl_ctx); /* connections in progress hold their own reference (SSL_new) */
    w->ssl_ctx = ctx;
  }
  const struct access_auth *au = &cfg->access->auth;
  auth_cache_reset(w->auth_cache); /* verified under the old users file: checked again */
  if (au->users && !w->auth_cache) { /* authentication turned on: a cache as worker_init makes */
    make_auth_cache(w, cfg);
  }
  struct config *old = w->cfg;
  w->cfg = config_ref(cfg);
  config_unref(old); /* freed here unless a connection, request or tunnel still holds it */
  return failed;
}

void worker_request_stop(struct worker *w) { uv_async_send(&w->stop_async); }

void worker_request_drain(struct worker *w) { atomic_store_explicit(&w->health_draining, 1, memory_order_relaxed); }
void worker_add_stop_hook(struct worker *w, struct worker_hook *h) { list_insert_tail(&w->stop_hooks, &h->link); }

/* The last step of a stop: once no connection is left, close the worker's own handles so
 * uv_run returns. */
static void run_stop_hooks(struct worker *w) {
  while (!list_empty(&w->stop_hooks)) {
    struct worker_hook *hk = container_of(w->stop_hooks.next, struct worker_hook, link);
    list_remove(&hk->link);
    list_init(&hk->link);
    hk->on_stop(hk);
  }
}

void worker_maybe_finish(struct worker *w) {
  if (w->stopping) run_stop_hooks(w); /* also when a stop did not come through on_stop_async */
  if (w->stopping == WORKER_DEADLINE && list_empty(&w->conns) && !list_empty(&w->tunnels))
    log_error("worker %d: a tunnel is left with no client connection after the drain deadline (a bug: the "
              "worker cannot finish)", w->id);
  if (!w->stopping || !list_empty(&w->conns) || !list_empty(&w->tunnels)) return;
  if (w->dns) {
    dns_close(w->dns);
    w->dns = NULL;
  }
  close_if_open((uv_handle_t *)&w->defer_idle);
  close_if_open((uv_handle_t *)&w->defer_check);
  close_if_open((uv_handle_t *)&w->stop_async);
  close_if_open((uv_handle_t *)&w->drain_timer);
  close_if_open((uv_handle_t *)&w->trim_timer);
  close_if_open((uv_handle_t *)&w->status_timer);
}

static void on_stop_async(uv_async_t *h) {
  struct worker *w = h->data;
  if (w->stopping) return;
  w->stopping = WORKER_STOPPING;
  for (int i = 0; i < w->nlisteners; i++) listener_close(&w->listeners[i]);
  if (w->conn_ops) w->conn_ops->stop_all(w);
  run_stop_hooks(w);
  struct list *n;
  size_t nc = 0, nt = 0;
  for (n = w->conns.next; n != &w->conns; n = n->next) nc++;
  for (n = w->tunnels.next; n != &w->tunnels; n = n->next) nt++;
  log_debug("worker %d: stopping with %zu connection(s) and %zu tunnel(s) open", w->id, nc, nt);
  if (w->cfg->drain_timeout_ms) uv_timer_start(&w->drain_timer, on_drain_timer, w->cfg->drain_timeout_ms, 0);
  uv_unref((uv_handle_t *)&w->drain_timer);
  worker_maybe_finish(w);
}

static void on_drain_timer(uv_timer_t *t) {
  struct worker *w = t->data;
  log_info("worker %d: drain deadline reached, closing what is left", w->id);
  w->stopping = WORKER_DEADLINE;
  if (w->conn_ops) w->conn_ops->abort_all(w);
  worker_maybe_finish(w);
}

void worker_dispose(struct worker *w) {
  /* Listeners not closed by a stop (init failure) are closed here. */
  for (int i = 0; i < w->nlisteners; i++) listener_close(&w->listeners[i]);
  if (!w->stopping) w->stopping = WORKER_STOPPING;
  worker_maybe_finish(w);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&w->loop) != 0) log_warn("worker %d: loop closed with handles open", w->id);
  buf_pool_dispose(&w->pool);
  auth_cache_free(w->auth_cache); /* after the loop: no verification is left running */
  w->auth_cache = NULL;
  SSL_CTX_free(w->ssl_ctx);
  w->ssl_ctx = NULL;
  config_unref(w->cfg);
  w->cfg = NULL;
}
