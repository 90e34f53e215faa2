/* The pipe. For each direction src -> dst:
 *   on_read(src)  -> dst.write; if dst.queued >= high water: src.read_stop (src paused)
 *   on_drain(dst) -> if src paused and dst.queued <= low water: src.read_start
 *   on_eof(src)   -> dst.shutdown (after its queue drains); the other direction keeps flowing
 *   on_error(any) -> abort the other side; the tunnel ends
 * A bandwidth limit (src/limits.h) is backpressure too: each read is charged to the tunnel's
 * ticket, and a side over budget is throttled -- not read until a timer says the budget is back
 * (on h2 the stream's DATA is then not consumed, so no WINDOW_UPDATE credit goes out). Nothing is
 * buffered for it. A side is read only while it is neither paused nor throttled.
 * The tunnel ends when both sides have sent EOF, on an error, or on a timeout. It then closes both
 * endpoints (each finishes flushing on its own unless aborted), logs one line, and frees itself
 * from its timer's close callback -- never from inside an upcall. */
#include "tunnel/tunnel.h"

#include "src/buf.h"
#include "src/config.h"
#include "src/limits.h"
#include "src/log.h"
#include "src/membudget.h"
#include "src/status.h"
#include "src/worker.h"

struct tunnel {
  struct worker *w;        /* back-pointer: the owning worker */
  struct list link;        /* in w->tunnels */
  struct tun_ep *a, *b;    /* borrowed until finish; a = client side, b = upstream side */
  struct tun_info info;    /* for the access line (and the protocol) */
  char *user;              /* owned: info.user's copy, or NULL */
  uv_timer_t timer;        /* idle and max-duration deadlines */
  uint64_t last_active_ms; /* uv_now of the last byte either way */
  enum tun_close_reason reason;
  size_t hw[2];            /* high water of each direction (0: a reads), see high_water() */
  unsigned a_paused : 1;   /* a's reading stopped because b is full */
  unsigned b_paused : 1;
  unsigned a_throttled : 1; /* a's reading stopped by a bandwidth limit until its timer */
  unsigned b_throttled : 1;
  struct tun_throttle *throttle; /* owned: the timers, made on the first throttle; or NULL */
  unsigned started : 1;
  unsigned finished : 1;
};

static const char *const reason_names[] = {
#define XX(n, s) s,
    TUN_CLOSE_REASON_MAP(XX)
#undef XX
};

const char *tun_close_reason_name(enum tun_close_reason r) { return reason_names[r]; }

void tun_ep_noop(struct tun_ep *self) { (void)self; }

const struct tun_info *tunnel_info(const struct tunnel *t) { return &t->info; }

struct tunnel *tunnel_from_link(struct list *link) { return container_of(link, struct tunnel, link); }

static struct tun_ep *other(struct tunnel *t, struct tun_ep *ep) { return ep == t->a ? t->b : t->a; }

static void set_paused(struct tunnel *t, struct tun_ep *reader, int on) {
  if (reader == t->a)
    t->a_paused = on ? 1 : 0;
  else
    t->b_paused = on ? 1 : 0;
}

static int is_paused(struct tunnel *t, struct tun_ep *reader) {
  return reader == t->a ? t->a_paused : t->b_paused;
}

/* The water marks of the direction |src| reads (src/membudget.h): its own high water, which
 * grows as its writer drains it, within what the memory budget allows now -- re-read on every
 * decision, so a filling budget holds back every tunnel. */
static size_t *hw_of(struct tunnel *t, const struct tun_ep *src) { return &t->hw[src == t->a ? 0 : 1]; }

static size_t high_water(struct tunnel *t, const struct tun_ep *src) {
  return membudget_size(t->w->membudget, *hw_of(t, src), 0);
}

/* In the same proportion to the high one as configured. */
static size_t low_water(struct tunnel *t, const struct tun_ep *src) {
  const struct config *cfg = t->w->cfg;
  size_t hw = high_water(t, src);
  return hw >= cfg->high_water ? cfg->low_water : (size_t)((uint64_t)cfg->low_water * hw / cfg->high_water);
}

static void on_timer_closed(uv_handle_t *h) {
  struct tunnel *t = h->data;
  free(t->user);
  config_unref(t->info.cfg); /* the last tunnel of an old snapshot frees it */
  free(t);
}

/* ---- bandwidth: throttling a side ------------------------------------------------------------- */

/* One timer per direction (index: the reading side, 0 = a); allocated only for tunnels that get
 * throttled. Freed when both timers have closed. */
struct tun_throttle {
  uv_timer_t timer[2];
  struct tunnel *t;        /* back-pointer; NULL once the tunnel finished */
  int open;                /* timers not closed yet */
};

static int is_throttled(struct tunnel *t, struct tun_ep *reader) {
  return reader == t->a ? t->a_throttled : t->b_throttled;
}

static void set_throttled(struct tunnel *t, struct tun_ep *reader, int on) {
  if (reader == t->a)
    t->a_throttled = on ? 1 : 0;
  else
    t->b_throttled = on ? 1 : 0;
}

/* A side is read when nothing holds it back. */
static void maybe_read(struct tunnel *t, struct tun_ep *src) {
  if (t->started && !t->finished && !src->rd_eof && !is_paused(t, src) && !is_throttled(t, src))
    src->ops->read_start(src);
}

static void on_throttle_timer(uv_timer_t *h) {
  struct tun_throttle *th = h->data;
  struct tunnel *t = th->t;
  if (!t) return;
  struct tun_ep *src = h == &th->timer[0] ? t->a : t->b;
  set_throttled(t, src, 0);
  maybe_read(t, src);
}

static void on_throttle_closed(uv_handle_t *h) {
  struct tun_throttle *th = h->data;
  if (--th->open == 0) free(th);
}

/* |src| read past its budget: it is not read for |wait_ns|. */
static void throttle(struct tunnel *t, struct tun_ep *src, uint64_t wait_ns) {
  if (!t->throttle) {
    struct tun_throttle *th = xcalloc(1, sizeof(*th));
    th->t = t;
    for (int i = 0; i < 2; i++) {
      uv_timer_init(&t->w->loop, &th->timer[i]);
      th->timer[i].data = th;
    }
    th->open = 2;
    t->throttle = th;
  }
  if (is_throttled(t, src)) return;
  set_throttled(t, src, 1);
  if (!is_paused(t, src)) src->ops->read_stop(src);
  uint64_t ms = (wait_ns + 999999) / 1000000; /* libuv's timers count milliseconds */
  uv_timer_start(&t->throttle->timer[src == t->a ? 0 : 1], on_throttle_timer, ms ? ms : 1, 0);
}

static void throttle_dispose(struct tunnel *t) {
  struct tun_throttle *th = t->throttle;
  if (!th) return;
  th->t = NULL;
  for (int i = 0; i < 2; i++) uv_close((uv_handle_t *)&th->timer[i], on_throttle_closed);
  t->throttle = NULL;
}

static void log_access(struct tunnel *t) {
  char line[LOG_ACCESS_LINE_MAX + 1];
  struct strbuf sb;
  strbuf_init_fixed(&sb, line, sizeof(line));
  log_access_head(&sb, t->info.front, tun_proto_name(t->info.proto), t->info.client, t->info.target);
  if (t->info.user) {
    strbuf_puts(&sb, ",\"user\":");
    log_json_str(&sb, t->info.user);
  }
  strbuf_puts(&sb, ",\"resolved\":");
  log_json_str(&sb, t->info.resolved);
  if (t->info.rule) {
    strbuf_puts(&sb, ",\"rule\":");
    log_json_str(&sb, t->info.rule);
  }
  if (t->info.ticket && t->info.ticket->limited) strbuf_puts(&sb, ",\"limited\":true");
  strbuf_printf(&sb, ",\"status\":%d,\"bytes_up\":%llu,\"bytes_down\":%llu,\"duration_ms\":%llu,\"close\":\"%s\"",
                t->info.status, (unsigned long long)t->a->bytes_read, (unsigned long long)t->b->bytes_read,
                (unsigned long long)(uv_now(&t->w->loop) - t->info.start_ms), tun_close_reason_name(t->reason));
  /* The snapshot that decided the tunnel (a reload may have come since). */
  if (t->info.cfg) strbuf_printf(&sb, ",\"config_version\":%llu", (unsigned long long)t->info.cfg->version);
  const struct tun_dgram_stats *d = t->b->dgram;
  if (d) {
    strbuf_printf(&sb,
                  ",\"dgrams_up\":%llu,\"dgrams_down\":%llu,\"dgram_bytes_up\":%llu,\"dgram_bytes_down\":%llu,"
                  "\"drops_up\":%llu,\"drops_down\":%llu",
                  (unsigned long long)d->dgrams_sent, (unsigned long long)d->dgrams_received,
                  (unsigned long long)d->bytes_sent, (unsigned long long)d->bytes_received,
                  (unsigned long long)d->drops_up, (unsigned long long)d->drops_down);
  }
  strbuf_puts(&sb, "}");
  log_access_write(&sb);
}

static void finish(struct tunnel *t) {
  if (t->finished) return;
  t->finished = 1;
  log_access(t);
  struct tun_ep *a = t->a, *b = t->b;
  a->tun = NULL;
  b->tun = NULL;
  a->ops->close(a);
  b->ops->close(b);
  list_remove(&t->link);
  METRIC_SUB(&t->w->metrics, tunnels_active[t->info.proto], 1);
  metrics_observe(&t->w->metrics, HIST_DURATION, t->info.front_id, t->info.proto,
                  uv_now(&t->w->loop) - t->info.start_ms);
  throttle_dispose(t);
  lim_ticket_release(t->info.ticket); /* the counts go back now */
  if (t->info.mb_held) membudget_release(t->w->membudget);
  t->info.mb_held = 0;
  t->info.ticket = NULL;
  t->timer.data = t;
  uv_close((uv_handle_t *)&t->timer, on_timer_closed);
  worker_maybe_finish(t->w);
}

static void on_timer(uv_timer_t *h) {
  struct tunnel *t = h->data;
  const struct config *cfg = t->w->cfg;
  uint64_t now = uv_now(&t->w->loop);
  uint64_t idle_ms = t->info.proto == TUN_PROTO_CONNECT_UDP ? cfg->udp_idle_timeout_ms : cfg->idle_timeout_ms;
  uint64_t idle_at = t->last_active_ms + idle_ms;
  uint64_t max_at = t->info.start_ms + cfg->max_duration_ms;
  if (cfg->max_duration_ms && now >= max_at) {
    tunnel_kill(t, TUN_CLOSE_MAX_DURATION);
    return;
  }
  if (idle_ms && now >= idle_at) {
    tunnel_kill(t, TUN_CLOSE_IDLE_TIMEOUT);
    return;
  }
  /* Re-arm for the nearer deadline; activity only moves the stamp, never the timer. */
  uint64_t next = UINT64_MAX;
  if (idle_ms) next = idle_at;
  if (cfg->max_duration_ms && max_at < next) next = max_at;
  if (next != UINT64_MAX) uv_timer_start(&t->timer, on_timer, next - now, 0);
}

struct tunnel *tunnel_new(struct worker *w, struct tun_ep *a, struct tun_ep *b,
                          const struct tun_info *info) {
  struct tunnel *t = xcalloc(1, sizeof(*t));
  t->w = w;
  t->a = a;
  t->b = b;
  t->info = *info;
  t->user = info->user ? xstrndup(info->user, strlen(info->user)) : NULL;
  t->info.user = t->user;
  if (t->info.cfg) config_ref(t->info.cfg);
  /* Under a budget a direction starts small and grows as it moves (src/membudget.h). */
  t->hw[0] = t->hw[1] = w->membudget ? MIN(w->cfg->high_water, MB_WATER_START) : w->cfg->high_water;
  a->tun = t;
  b->tun = t;
  uv_timer_init(&w->loop, &t->timer);
  t->timer.data = t;
  list_insert_tail(&w->tunnels, &t->link);
  METRIC_ADD(&w->metrics, tunnels_opened[t->info.proto], 1);
  METRIC_ADD(&w->metrics, tunnels_active[t->info.proto], 1);
  return t;
}

void tunnel_start(struct tunnel *t, struct buf_chunk *first) {
  t->started = 1;
  t->last_active_ms = uv_now(&t->w->loop);
  if (first) tunnel_on_read(t->a, first);
  if (t->finished) return;
  maybe_read(t, t->a);
  maybe_read(t, t->b);
  if (!t->finished) {
    t->timer.data = t;
    uv_timer_start(&t->timer, on_timer, 1, 0); /* computes the real deadline */
  }
}

enum tun_close_reason tunnel_reason(const struct tunnel *t) { return t->reason; }

size_t tunnel_status_list(struct worker *w, struct status_tun *out, size_t max) {
  size_t n = 0;
  uint64_t now = uv_now(&w->loop);
  for (struct list *l = w->tunnels.next; l != &w->tunnels && n < max; l = l->next, n++) {
    const struct tunnel *t = tunnel_from_link(l);
    struct status_tun *o = &out[n];
    snprintf(o->user, sizeof(o->user), "%s", t->user ? t->user : "");
    snprintf(o->target, sizeof(o->target), "%s", t->info.target);
    snprintf(o->client, sizeof(o->client), "%s", t->info.client);
    snprintf(o->front, sizeof(o->front), "%s", t->info.front ? t->info.front : "");
    snprintf(o->proto, sizeof(o->proto), "%s", tun_proto_name(t->info.proto));
    o->bytes_up = t->a->bytes_read;
    o->bytes_down = t->b->bytes_read;
    o->age_ms = now - t->info.start_ms;
  }
  return n;
}

void tunnel_kill(struct tunnel *t, enum tun_close_reason reason) {
  if (t->finished) return;
  t->reason = reason;
  /* Mark each side just before its abort: if a's abort reports an error re-entrantly,
   * tunnel_on_error must still see b as not yet aborted and abort it before finishing. */
  t->a->aborted = 1;
  t->a->ops->abort(t->a);
  if (!t->finished) {
    t->b->aborted = 1;
    t->b->ops->abort(t->b);
  }
  finish(t);
}

void tunnel_on_read(struct tun_ep *src, struct buf_chunk *c) {
  struct tunnel *t = src->tun;
  CHECK(t != NULL); /* endpoint contract: no upcall after close */
  if (t->finished) {
    buf_put(&t->w->pool, c);
    return;
  }
  struct tun_ep *dst = other(t, src);
  size_t len = c->len;
  src->bytes_read += len;
  t->last_active_ms = uv_now(&t->w->loop);
  if (src == t->a)
    METRIC_ADD(&t->w->metrics, bytes_up, len);
  else
    METRIC_ADD(&t->w->metrics, bytes_down, len);
  if (dst->aborted || dst->wr_shut) {
    buf_put(&t->w->pool, c);
    return;
  }
  dst->ops->write(dst, c);
  if (t->finished) return;
  /* queued > 0: a side paused with nothing queued would never hear a drain. */
  if (dst->queued > 0 && dst->queued >= high_water(t, src) && !is_paused(t, src)) {
    set_paused(t, src, 1);
    if (!is_throttled(t, src)) src->ops->read_stop(src);
  }
  if (t->info.ticket && t->info.ticket->metered) {
    uint64_t wait = lim_ticket_charge(t->info.ticket, src == t->a ? LIM_UP : LIM_DOWN, len, uv_hrtime());
    if (wait) throttle(t, src, wait);
  }
}

void tunnel_on_drain(struct tun_ep *dst) {
  struct tunnel *t = dst->tun;
  if (!t || t->finished) return;
  struct tun_ep *src = other(t, dst);
  if (is_paused(t, src) && dst->queued <= low_water(t, src)) {
    /* The writer took a whole high water's worth: it keeps up, give it more room. */
    *hw_of(t, src) = membudget_grow(t->w->membudget, *hw_of(t, src), t->w->cfg->high_water);
    set_paused(t, src, 0);
    maybe_read(t, src);
  }
}

void tunnel_on_eof(struct tun_ep *src) {
  struct tunnel *t = src->tun;
  if (!t || t->finished || src->rd_eof) return;
  src->rd_eof = 1;
  struct tun_ep *dst = other(t, src);
  if (t->reason == TUN_CLOSE_NONE) t->reason = src == t->a ? TUN_CLOSE_CLIENT_FIN : TUN_CLOSE_UPSTREAM_FIN;
  if (!dst->wr_shut && !dst->aborted) {
    dst->wr_shut = 1;
    dst->ops->shutdown(dst);
  }
  if (!t->finished && t->a->rd_eof && t->b->rd_eof) finish(t);
}

void tunnel_on_error(struct tun_ep *ep, enum tun_close_reason reason) {
  struct tunnel *t = ep->tun;
  if (!t || t->finished) return;
  ep->aborted = 1;
  /* An error outranks an orderly FIN recorded earlier. */
  if (t->reason == TUN_CLOSE_NONE || t->reason == TUN_CLOSE_CLIENT_FIN || t->reason == TUN_CLOSE_UPSTREAM_FIN)
    t->reason = reason;
  struct tun_ep *o = other(t, ep);
  if (!o->aborted) {
    o->aborted = 1;
    o->ops->abort(o);
  }
  finish(t);
}
