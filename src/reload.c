#include "src/reload.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/access.h"
#include "src/config.h"
#include "src/log.h"
#include "src/util.h"
#include "src/worker.h"

/* One worker's mailbox: the newest snapshot not yet taken (an older one still waiting is
 * replaced). |mu| is taken by the main thread to post and by the worker's async to take. */
struct reload_slot {
  struct reload *r;          /* back-pointer */
  struct worker *w;          /* borrowed */
  uv_async_t async;          /* on w's loop; closed when w's stop begins */
  struct worker_hook hook;   /* closes |async| */
  uv_mutex_t mu;
  struct config *cfg;        /* owned reference, or NULL: nothing waiting */
  SSL_CTX *ctx;              /* owned reference, or NULL: keep the worker's */
};

struct reload {
  struct reload_slot *slots; /* owned: one per worker */
  int n;
  struct config **current;   /* main's reference (borrowed slot) */
  int argc;
  char **argv;
  struct reload_ops ops;
  uv_signal_t sighup;
  int stopped;
};

static void on_async_closed(uv_handle_t *h) { (void)h; }

static void on_worker_stop(struct worker_hook *h) {
  struct reload_slot *s = container_of(h, struct reload_slot, hook);
  uv_close((uv_handle_t *)&s->async, on_async_closed);
}

/* On the worker's loop. */
static void on_async(uv_async_t *h) {
  struct reload_slot *s = h->data;
  uv_mutex_lock(&s->mu);
  struct config *cfg = s->cfg;
  SSL_CTX *ctx = s->ctx;
  s->cfg = NULL;
  s->ctx = NULL;
  uv_mutex_unlock(&s->mu);
  if (!cfg) return;
  struct worker *w = s->w;
  if (!w->stopping) {
    worker_set_config(w, cfg, ctx);
    size_t closed = s->r->ops.recheck ? s->r->ops.recheck(w) : 0;
    log_info("worker %d: configuration version %llu in use (%zu tunnel(s) closed by the re-check)", w->id,
              (unsigned long long)cfg->version, closed);
  }
  config_unref(cfg);
  SSL_CTX_free(ctx);
}

static void on_sighup(uv_signal_t *h, int signum) {
  (void)signum;
  reload_now(h->data);
}

/* Options a running process cannot take over; a changed one is named so nobody is surprised. */
static void warn_not_reread(const struct config *a, const struct config *b) {
  const char *changed[8];
  size_t n = 0;
  if (a->workers != b->workers) changed[n++] = "workers";
  if (strcmp(a->dns_servers, b->dns_servers) != 0) changed[n++] = "dns-server";
  if (a->dns_timeout_ms != b->dns_timeout_ms) changed[n++] = "dns-timeout";
  if (strcmp(a->access_log, b->access_log) != 0)
    log_warn("reload: 'access-log' changed: lines go to the old file until SIGUSR1 opens the new path");
  if (strcmp(a->state_dir, b->state_dir) != 0) changed[n++] = "state-dir";
  if (a->access->auth.cache_size != b->access->auth.cache_size || a->access->auth.cache_ttl_ms != b->access->auth.cache_ttl_ms)
    changed[n++] = "auth cache-size/cache-ttl";
  char *ta = NULL, *tb = NULL;
  size_t la = 0, lb = 0;
  FILE *fa = open_memstream(&ta, &la), *fb = open_memstream(&tb, &lb);
  if (fa && fb) {
    access_print_section(a->access, "limits", NULL, fa);
    access_print_section(b->access, "limits", NULL, fb);
  }
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  if (ta && tb && (la != lb || memcmp(ta, tb, la) != 0)) changed[n++] = "limits";
  free(ta);
  free(tb);
  for (size_t i = 0; i < n; i++)
    log_warn("reload: '%s' changed but is not re-read by a reload: the running value stays until a restart",
             changed[i]);
}

static void count(struct reload *r, int ok, uint64_t version) {
  struct metrics *m = &r->slots[0].w->metrics; /* main thread: the only writer of these */
  if (ok) {
    METRIC_ADD(m, reloads_ok, 1);
    atomic_store_explicit(&m->config_version, version, memory_order_relaxed);
  } else {
    METRIC_ADD(m, reloads_failed, 1);
  }
}

int reload_now(struct reload *r) {
  struct config *cur = *r->current;
  if (r->stopped) {
    log_info("reload: ignored, the proxy is stopping");
    return -EINVAL;
  }
  log_info("reload: reading the configuration again (version %llu in use)", (unsigned long long)cur->version);
  struct config *next = NULL;
  if (config_reload(cur, r->argc, r->argv, &next) != 0) { /* config_parse printed FILE:LINE:COL */
    log_error("reload refused: the configuration above is not valid; version %llu keeps running",
              (unsigned long long)cur->version);
    count(r, 0, 0);
    return -EINVAL;
  }
  int need_tls = 0;
  for (int i = 0; i < next->nlisteners; i++) need_tls |= next->listeners[i].tls;
  SSL_CTX *ctx = NULL;
  if (need_tls && !(ctx = r->ops.make_tls(r->ops.arg, next))) {
    log_error("reload refused: the certificate, key or client CA cannot be used; version %llu keeps running",
              (unsigned long long)cur->version);
    config_unref(next);
    count(r, 0, 0);
    return -EINVAL;
  }
  warn_not_reread(cur, next);
  log_set_level((enum log_level)next->log_level);
  for (int i = 0; i < r->n; i++) {
    struct reload_slot *s = &r->slots[i];
    uv_mutex_lock(&s->mu);
    config_unref(s->cfg); /* an older one the worker has not taken yet */
    SSL_CTX_free(s->ctx);
    s->cfg = config_ref(next);
    if (ctx) SSL_CTX_up_ref(ctx);
    s->ctx = ctx;
    uv_mutex_unlock(&s->mu);
    uv_async_send(&s->async);
  }
  SSL_CTX_free(ctx); /* the slots hold theirs */
  *r->current = next;
  log_info("reload: configuration version %llu applied (was %llu)", (unsigned long long)next->version,
           (unsigned long long)cur->version);
  count(r, 1, next->version);
  config_unref(cur);
  return 0;
}

struct reload *reload_new(uv_loop_t *main_loop, struct worker *workers, int nworkers, struct config **current,
                          int argc, char **argv, const struct reload_ops *ops) {
  struct reload *r = xcalloc(1, sizeof(*r));
  r->n = nworkers;
  r->slots = xcalloc((size_t)nworkers, sizeof(*r->slots));
  r->current = current;
  r->argc = argc;
  r->argv = argv;
  r->ops = *ops;
  for (int i = 0; i < nworkers; i++) {
    struct reload_slot *s = &r->slots[i];
    s->r = r;
    s->w = &workers[i];
    CHECK(uv_mutex_init(&s->mu) == 0);
    CHECK(uv_async_init(&s->w->loop, &s->async, on_async) == 0);
    s->async.data = s;
    uv_unref((uv_handle_t *)&s->async); /* keeps no loop running */
    s->hook.on_stop = on_worker_stop;
    worker_add_stop_hook(s->w, &s->hook);
  }
  atomic_store_explicit(&workers[0].metrics.config_version, (*current)->version, memory_order_relaxed);
  uv_signal_init(main_loop, &r->sighup);
  r->sighup.data = r;
  uv_signal_start(&r->sighup, on_sighup, SIGHUP);
  uv_unref((uv_handle_t *)&r->sighup);
  return r;
}

void reload_stop(struct reload *r) {
  if (r) r->stopped = 1; /* SIGHUP stays caught (ignored): its default action would kill a drain */
}

void reload_close(struct reload *r) {
  if (r && !uv_is_closing((uv_handle_t *)&r->sighup)) uv_close((uv_handle_t *)&r->sighup, NULL);
}

void reload_free(struct reload *r) {
  if (!r) return;
  for (int i = 0; i < r->n; i++) {
    struct reload_slot *s = &r->slots[i];
    config_unref(s->cfg);
    SSL_CTX_free(s->ctx);
    uv_mutex_destroy(&s->mu);
  }
  free(r->slots);
  free(r);
}
