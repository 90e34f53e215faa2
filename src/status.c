#include "src/status.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <uv.h>

#include "src/access.h"
#include "src/config.h"
#include "src/limits.h"
#include "src/log.h"
#include "src/metrics.h"
#include "src/util.h"
#include "src/worker.h"

/* One refused request (the ring's entries). */
struct status_rej {
  uint64_t unix_ms;
  uint64_t seq;              /* the worker's count of refusals: orders those of one millisecond */
  char front[4], proto[16];
  char client[64], target[300], user[64];
  int status;
  char error[40], detail[96];
};

/* What one worker published: copied whole by readers. */
struct status_snap {
  uint64_t unix_ms;          /* when it was taken */
  uint64_t nconns, nhandshakes, ntunnels;
  size_t ntun;               /* listed (at most --status-max-tunnels) */
  struct status_tun *tun;    /* owned */
  size_t nrej;
  struct status_rej *rej;    /* owned: oldest first */
};

struct status_worker {
  struct worker *w;          /* back-pointer */
  status_list_fn list;
  uv_mutex_t mu;             /* guards |pub| only (see status.h) */
  struct status_snap *pub;   /* owned: the latest snapshot, or NULL */
  /* |w|'s thread only: */
  struct status_rej *ring;   /* owned: --status-rejections entries */
  size_t ring_cap, ring_next, ring_n;
  uint64_t nrejected;
};

static uint64_t unix_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void copy(char *dst, size_t cap, const char *src) { snprintf(dst, cap, "%s", src ? src : ""); }

static void snap_free(struct status_snap *s) {
  if (!s) return;
  free(s->tun);
  free(s->rej);
  free(s);
}

/* Runs on the worker's thread: lists, then swaps the pointer. */
static void refresh(struct status_worker *s) {
  struct worker *w = s->w;
  struct status_snap *n = xcalloc(1, sizeof(*n));
  n->unix_ms = unix_ms();
  n->nconns = w->nconns;
  n->nhandshakes = w->nhandshakes;
  for (struct list *l = w->tunnels.next; l != &w->tunnels; l = l->next) n->ntunnels++;
  size_t max = w->cfg->status_max_tunnels;
  if (max > n->ntunnels) max = n->ntunnels;
  if (max) {
    n->tun = xcalloc(max, sizeof(*n->tun));
    n->ntun = s->list(w, n->tun, max);
  }
  if (s->ring_n) {
    n->rej = xcalloc(s->ring_n, sizeof(*n->rej));
    for (size_t i = 0; i < s->ring_n; i++)
      n->rej[i] = s->ring[(s->ring_next + s->ring_cap - s->ring_n + i) % s->ring_cap];
    n->nrej = s->ring_n;
  }
  uv_mutex_lock(&s->mu);
  struct status_snap *old = s->pub;
  s->pub = n;
  uv_mutex_unlock(&s->mu);
  snap_free(old);
}

static void on_status_timer(uv_timer_t *t) {
  struct worker *w = t->data;
  if (w->status) refresh(w->status);
}

struct status_worker *status_worker_new(struct worker *w, status_list_fn list) {
  struct status_worker *s = xcalloc(1, sizeof(*s));
  s->w = w;
  s->list = list;
  CHECK(uv_mutex_init(&s->mu) == 0);
  s->ring_cap = w->cfg->status_rejections;
  if (s->ring_cap) s->ring = xcalloc(s->ring_cap, sizeof(*s->ring));
  w->status = s;
  refresh(s); /* something to show before the first tick */
  uv_timer_init(&w->loop, &w->status_timer);
  w->status_timer.data = w;
  uv_timer_start(&w->status_timer, on_status_timer, w->cfg->status_interval_ms, w->cfg->status_interval_ms);
  uv_unref((uv_handle_t *)&w->status_timer);
  return s;
}

void status_worker_free(struct status_worker *s) {
  if (!s) return;
  snap_free(s->pub);
  free(s->ring);
  uv_mutex_destroy(&s->mu);
  free(s);
}

void status_reject(struct worker *w, const char *front, const char *proto, const char *client,
                   const char *target, const char *user, int status, const char *error, const char *detail) {
  struct status_worker *s = w->status;
  if (!s || !s->ring_cap) return;
  struct status_rej *r = &s->ring[s->ring_next];
  r->unix_ms = unix_ms();
  r->seq = ++s->nrejected;
  copy(r->front, sizeof(r->front), front);
  copy(r->proto, sizeof(r->proto), proto);
  copy(r->client, sizeof(r->client), client);
  copy(r->target, sizeof(r->target), target);
  copy(r->user, sizeof(r->user), user);
  r->status = status;
  copy(r->error, sizeof(r->error), error);
  copy(r->detail, sizeof(r->detail), detail);
  s->ring_next = (s->ring_next + 1) % s->ring_cap;
  if (s->ring_n < s->ring_cap) s->ring_n++;
}

/* ---- who may see it ---- */

static int is_loopback(const struct sockaddr_storage *a) {
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;
    return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  }
  if (a->ss_family == AF_INET6) return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
  return 0;
}

int status_allowed(const struct config *cfg, const struct config_listener *listener) {
  if (!listener) return 0;
  if (listener->admin) return 1;
  for (int i = 0; i < cfg->nlisteners; i++)
    if (cfg->listeners[i].admin) return 0; /* there is an admin listener: only there */
  return is_loopback(&listener->addr);
}

/* ---- /status.json ---- */

/* A copy of every worker's snapshot, taken under each mutex in turn. */
struct gathered {
  struct status_snap *snap; /* one per worker (owned contents) */
  size_t n;
};

static void gather(struct worker *w, struct gathered *g) {
  g->n = w->nworkers;
  g->snap = xcalloc(g->n ? g->n : 1, sizeof(*g->snap));
  for (size_t i = 0; i < g->n; i++) {
    struct status_worker *s = w->all_status ? w->all_status[i] : (i == 0 ? w->status : NULL);
    if (!s) continue;
    uv_mutex_lock(&s->mu);
    const struct status_snap *p = s->pub;
    if (p) {
      g->snap[i] = *p;
      g->snap[i].tun = p->ntun ? xmalloc(p->ntun * sizeof(*p->tun)) : NULL;
      if (p->ntun) memcpy(g->snap[i].tun, p->tun, p->ntun * sizeof(*p->tun));
      g->snap[i].rej = p->nrej ? xmalloc(p->nrej * sizeof(*p->rej)) : NULL;
      if (p->nrej) memcpy(g->snap[i].rej, p->rej, p->nrej * sizeof(*p->rej));
    }
    uv_mutex_unlock(&s->mu);
  }
}

static void gathered_free(struct gathered *g) {
  for (size_t i = 0; i < g->n; i++) {
    free(g->snap[i].tun);
    free(g->snap[i].rej);
  }
  free(g->snap);
}

/* A tunnel with its worker, for sorting across workers. */
struct row {
  const struct status_tun *t;
  size_t worker;
};

static int by_user(const void *a, const void *b) {
  return strcmp(((const struct row *)a)->t->user, ((const struct row *)b)->t->user);
}
static int by_target(const void *a, const void *b) {
  return strcmp(((const struct row *)a)->t->target, ((const struct row *)b)->t->target);
}
static int by_bytes(const void *a, const void *b) {
  const struct status_tun *x = ((const struct row *)a)->t, *y = ((const struct row *)b)->t;
  uint64_t bx = x->bytes_up + x->bytes_down, by = y->bytes_up + y->bytes_down;
  return bx < by ? 1 : bx > by ? -1 : 0;
}
/* The client address of "addr:port" / "[v6]:port" into |a|; 0 or -1. */
static int client_addr(const char *client, struct sockaddr_storage *a) {
  char host[64];
  snprintf(host, sizeof(host), "%s", client);
  char *colon = strrchr(host, ':');
  if (!colon) return -1;
  *colon = '\0';
  char *h = host;
  if (h[0] == '[') {
    h++;
    char *end = strchr(h, ']');
    if (end) *end = '\0';
  }
  memset(a, 0, sizeof(*a));
  if (uv_ip4_addr(h, 0, (struct sockaddr_in *)a) == 0) return 0;
  if (uv_ip6_addr(h, 0, (struct sockaddr_in6 *)a) == 0) return 0;
  return -1;
}

static int by_client_addr(const void *a, const void *b) {
  const char *x = ((const struct row *)a)->t->client, *y = ((const struct row *)b)->t->client;
  size_t lx = (size_t)(strrchr(x, ':') ? strrchr(x, ':') - x : (ptrdiff_t)strlen(x));
  size_t ly = (size_t)(strrchr(y, ':') ? strrchr(y, ':') - y : (ptrdiff_t)strlen(y));
  int c = strncmp(x, y, lx < ly ? lx : ly);
  return c ? c : (lx > ly) - (lx < ly);
}

/* One scope with a tunnel-count ceiling: "near" from 80 % of it. */
static void put_limit(struct strbuf *sb, int *first, const char *scope, const char *name, uint64_t active,
                      uint64_t max) {
  if (!max || active == UINT64_MAX) return;
  strbuf_printf(sb, "%s{\"scope\":\"%s\",\"name\":", *first ? "" : ",", scope);
  log_json_str(sb, name);
  strbuf_printf(sb, ",\"limit\":\"tunnels\",\"active\":%llu,\"max\":%llu,\"near\":%s}", (unsigned long long)active,
                (unsigned long long)max, active * 10 >= max * 8 ? "true" : "false");
  *first = 0;
}

static const struct access_limits *user_limits(const struct access *a, const char *user) {
  for (size_t i = 0; i < a->limits.nusers; i++)
    if (strcmp(a->limits.users[i].user, user) == 0) return &a->limits.users[i].lim;
  return &a->limits.user_default;
}

/* The tunnel-count limits in use (the limits module counts tunnels; rates and bandwidth have no
 * "how close" to show): the instance, each user named in limits.users or with a tunnel listed, and
 * each client address with a tunnel listed. |rows| is sorted here. */
static void put_limits(struct strbuf *sb, struct worker *w, struct row *rows, size_t n) {
  const struct access *a = w->cfg->access;
  struct limits *l = w->limits;
  int first = 1;
  strbuf_puts(sb, "\"limits\":[");
  if (l) {
    put_limit(sb, &first, "instance", "", limits_instance_active(l), a->limits.instance.tunnels);
    for (size_t i = 0; i < a->limits.nusers; i++)
      put_limit(sb, &first, "user", a->limits.users[i].user, limits_user_active(l, a->limits.users[i].user),
                a->limits.users[i].lim.tunnels);
    qsort(rows, n, sizeof(*rows), by_user);
    for (size_t i = 0; i < n; i++) {
      const char *u = rows[i].t->user;
      if (!u[0] || (i && strcmp(u, rows[i - 1].t->user) == 0)) continue;
      if (user_limits(a, u) != &a->limits.user_default) continue; /* named: done above */
      put_limit(sb, &first, "user", u, limits_user_active(l, u), a->limits.user_default.tunnels);
    }
    if (a->limits.per_client.tunnels) {
      qsort(rows, n, sizeof(*rows), by_client_addr);
      for (size_t i = 0; i < n; i++) {
        if (i && by_client_addr(&rows[i], &rows[i - 1]) == 0) continue;
        struct sockaddr_storage ca;
        if (client_addr(rows[i].t->client, &ca) != 0) continue;
        char name[64];
        snprintf(name, sizeof(name), "%s", rows[i].t->client);
        char *colon = strrchr(name, ':');
        if (colon) *colon = '\0';
        put_limit(sb, &first, "client", name, limits_client_active(l, (const struct sockaddr *)&ca),
                  a->limits.per_client.tunnels);
      }
    }
  }
  strbuf_puts(sb, "],");
}

static int rej_by_time(const void *a, const void *b) {
  const struct status_rej *x = a, *y = b; /* newest first */
  if (x->unix_ms != y->unix_ms) return x->unix_ms < y->unix_ms ? 1 : -1;
  return x->seq < y->seq ? 1 : x->seq > y->seq ? -1 : 0;
}

static void put_tun(struct strbuf *sb, const struct row *r) {
  const struct status_tun *t = r->t;
  strbuf_printf(sb, "{\"worker\":%zu,\"user\":", r->worker);
  if (t->user[0])
    log_json_str(sb, t->user);
  else
    strbuf_puts(sb, "null");
  strbuf_puts(sb, ",\"target\":");
  log_json_str(sb, t->target);
  strbuf_puts(sb, ",\"client\":");
  log_json_str(sb, t->client);
  strbuf_printf(sb, ",\"front\":\"%s\",\"protocol\":\"%s\",\"bytes_up\":%llu,\"bytes_down\":%llu,\"age_ms\":%llu}",
                t->front, t->proto, (unsigned long long)t->bytes_up, (unsigned long long)t->bytes_down,
                (unsigned long long)t->age_ms);
}

/* Groups |rows| (sorted by |key|) into {"<name>":..,"tunnels":n,"bytes_up":..,"bytes_down":..}. */
static void put_groups(struct strbuf *sb, const char *name, struct row *rows, size_t n, int user) {
  strbuf_puts(sb, "[");
  for (size_t i = 0; i < n;) {
    const char *k = user ? rows[i].t->user : rows[i].t->target;
    uint64_t up = 0, down = 0, oldest = 0;
    size_t j = i;
    for (; j < n && strcmp(k, user ? rows[j].t->user : rows[j].t->target) == 0; j++) {
      up += rows[j].t->bytes_up;
      down += rows[j].t->bytes_down;
      if (rows[j].t->age_ms > oldest) oldest = rows[j].t->age_ms;
    }
    strbuf_printf(sb, "%s{\"%s\":", i ? "," : "", name);
    if (k[0])
      log_json_str(sb, k);
    else
      strbuf_puts(sb, "null");
    strbuf_printf(sb, ",\"tunnels\":%zu,\"bytes_up\":%llu,\"bytes_down\":%llu,\"oldest_ms\":%llu}", j - i,
                  (unsigned long long)up, (unsigned long long)down, (unsigned long long)oldest);
    i = j;
  }
  strbuf_puts(sb, "]");
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define TOP_TALKERS 10

int status_render_json(struct worker *w, struct strbuf *sb) {
  struct gathered g;
  gather(w, &g);
  uint64_t now = unix_ms();
  /* Live counters, the same /metrics sums. */
  uint64_t conns = 0, tun_active = 0, opened = 0, up = 0, down = 0;
  uint64_t reloads_ok = 0, reloads_failed = 0, reload_closed = 0;
  for (size_t i = 0; i < w->nworkers && w->all_metrics; i++) {
    const struct metrics *m = w->all_metrics[i];
    reloads_ok += LOAD(m->reloads_ok);
    reloads_failed += LOAD(m->reloads_failed);
    reload_closed += LOAD(m->tunnels_policy_closed);
    conns += LOAD(m->conns_active);
    up += LOAD(m->bytes_up);
    down += LOAD(m->bytes_down);
    for (int p = 0; p < TUN_PROTO_COUNT; p++) {
      tun_active += LOAD(m->tunnels_active[p]);
      opened += LOAD(m->tunnels_opened[p]);
    }
  }
  strbuf_printf(sb, "{\"config_version\":%llu,\"time_ms\":%llu,\"interval_ms\":%llu,",
                (unsigned long long)w->cfg->version, (unsigned long long)now,
                (unsigned long long)w->cfg->status_interval_ms);
  strbuf_printf(sb, "\"reloads\":{\"ok\":%llu,\"failed\":%llu,\"tunnels_closed\":%llu},",
                (unsigned long long)reloads_ok, (unsigned long long)reloads_failed,
                (unsigned long long)reload_closed);
  strbuf_printf(sb,
                "\"totals\":{\"connections_active\":%llu,\"tunnels_active\":%llu,\"tunnels_opened\":%llu,"
                "\"bytes_up\":%llu,\"bytes_down\":%llu},",
                (unsigned long long)conns, (unsigned long long)tun_active, (unsigned long long)opened,
                (unsigned long long)up, (unsigned long long)down);
  strbuf_puts(sb, "\"workers\":[");
  size_t nrows = 0, nrej = 0;
  int truncated = 0;
  for (size_t i = 0; i < g.n; i++) {
    const struct status_snap *s = &g.snap[i];
    strbuf_printf(sb, "%s{\"id\":%zu,\"connections\":%llu,\"handshakes\":%llu,\"tunnels\":%llu,\"snapshot_age_ms\":%llu}",
                  i ? "," : "", i, (unsigned long long)s->nconns, (unsigned long long)s->nhandshakes,
                  (unsigned long long)s->ntunnels, (unsigned long long)(s->unix_ms && now > s->unix_ms ? now - s->unix_ms : 0));
    nrows += s->ntun;
    nrej += s->nrej;
    if (s->ntun < s->ntunnels) truncated = 1;
  }
  strbuf_puts(sb, "],");
  struct row *rows = xcalloc(nrows ? nrows : 1, sizeof(*rows));
  struct status_rej *rej = xcalloc(nrej ? nrej : 1, sizeof(*rej));
  size_t k = 0, kr = 0;
  for (size_t i = 0; i < g.n; i++) {
    for (size_t j = 0; j < g.snap[i].ntun; j++) rows[k++] = (struct row){&g.snap[i].tun[j], i};
    for (size_t j = 0; j < g.snap[i].nrej; j++) rej[kr++] = g.snap[i].rej[j];
  }
  strbuf_printf(sb, "\"truncated\":%s,\"tunnels\":[", truncated ? "true" : "false");
  qsort(rows, nrows, sizeof(*rows), by_bytes);
  for (size_t i = 0; i < nrows; i++) {
    if (i) strbuf_puts(sb, ",");
    put_tun(sb, &rows[i]);
  }
  strbuf_puts(sb, "],\"top_talkers\":[");
  for (size_t i = 0; i < nrows && i < TOP_TALKERS; i++) {
    if (i) strbuf_puts(sb, ",");
    put_tun(sb, &rows[i]);
  }
  strbuf_puts(sb, "],");
  put_limits(sb, w, rows, nrows);
  strbuf_puts(sb, "\"by_user\":");
  qsort(rows, nrows, sizeof(*rows), by_user);
  put_groups(sb, "user", rows, nrows, 1);
  strbuf_puts(sb, ",\"by_target\":");
  qsort(rows, nrows, sizeof(*rows), by_target);
  put_groups(sb, "target", rows, nrows, 0);
  strbuf_puts(sb, ",\"rejections\":[");
  qsort(rej, nrej, sizeof(*rej), rej_by_time);
  for (size_t i = 0; i < nrej; i++) {
    const struct status_rej *r = &rej[i];
    strbuf_printf(sb, "%s{\"time_ms\":%llu,\"front\":\"%s\",\"protocol\":\"%s\",\"client\":", i ? "," : "",
                  (unsigned long long)r->unix_ms, r->front, r->proto);
    log_json_str(sb, r->client);
    strbuf_puts(sb, ",\"user\":");
    if (r->user[0])
      log_json_str(sb, r->user);
    else
      strbuf_puts(sb, "null");
    strbuf_puts(sb, ",\"target\":");
    log_json_str(sb, r->target);
    strbuf_printf(sb, ",\"status\":%d,\"error\":", r->status);
    log_json_str(sb, r->error);
    strbuf_puts(sb, ",\"detail\":");
    log_json_str(sb, r->detail);
    strbuf_puts(sb, "}");
  }
  strbuf_puts(sb, "]}\n");
  free(rows);
  free(rej);
  gathered_free(&g);
  return sb->overflow ? -ENOSPC : 0;
}

/* ---- /proxy.pac ---- */

/* The port of the first non-admin listener with |tls|, or 0. */
static int listener_port(const struct config *cfg, int tls, char *addr, size_t cap) {
  for (int i = 0; i < cfg->nlisteners; i++) {
    const struct config_listener *l = &cfg->listeners[i];
    if (l->admin || l->tls != tls) continue;
    const struct sockaddr_storage *a = &l->addr;
    if (addr && cap) {
      addr[0] = '\0';
      if (a->ss_family == AF_INET && ((const struct sockaddr_in *)a)->sin_addr.s_addr != htonl(INADDR_ANY))
        uv_ip4_name((const struct sockaddr_in *)a, addr, cap);
    }
    if (a->ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)a)->sin_port);
    if (a->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
  }
  return 0;
}

/* Only the characters a host name, an address or a host pattern hold: anything else (a quote, a
 * backslash, a semicolon from a forged Host) is dropped, so nothing can close a string literal. */
static int host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
         c == '_' || c == ':' || c == '*' || c == '[' || c == ']';
}

static void keep_host_chars(char *s) {
  char *o = s;
  for (; *s; s++)
    if (host_char(*s)) *o++ = *s;
  *o = '\0';
}

/* Appends |s| as a JavaScript string literal of host characters only. */
static void js_str(struct strbuf *sb, const char *s) {
  strbuf_puts(sb, "\"");
  for (; *s; s++)
    if (host_char(*s)) strbuf_append(sb, s, 1);
  strbuf_puts(sb, "\"");
}

/* A deny rule that refuses a name for everyone: no user, group, client, port or protocol condition,
 * and no allow rule before it (the first matching rule decides). */
static int denies_everyone(const struct access_rule *r) {
  return r->action == ACCESS_DENY && !r->nusers && !r->ngroups && !r->clients.n && !r->clients.classes &&
         !r->nports && !r->protocols && r->nhosts;
}

int status_render_pac(const struct config *cfg, const char *host, struct strbuf *sb) {
  char name[256] = "", bound_tls[64] = "", bound_clear[64] = "";
  int tls_port = listener_port(cfg, 1, bound_tls, sizeof(bound_tls));
  int clear_port = listener_port(cfg, 0, bound_clear, sizeof(bound_clear));
  if (cfg->pac_proxy_host[0]) {
    copy(name, sizeof(name), cfg->pac_proxy_host);
  } else if (host && host[0]) {
    copy(name, sizeof(name), host);
    char *end = name[0] == '[' ? strchr(name, ']') : NULL; /* [v6]:port */
    char *colon = end ? strchr(end, ':') : strchr(name, ':');
    if (colon && (end || !strchr(colon + 1, ':'))) *colon = '\0';
  } else {
    copy(name, sizeof(name), bound_tls[0] ? bound_tls : bound_clear[0] ? bound_clear : "127.0.0.1");
  }
  keep_host_chars(name);
  strbuf_printf(sb,
                "// h2tunnel proxy auto-config, generated from configuration version %llu.\n"
                "// DIRECT: plain host names, localhost, loopback/private/link-local/CGNAT/ULA\n"
                "// address literals, --deny-net ranges, names a rule denies for everyone, and\n"
                "// ports neither --allow-ports nor any rule opens. Everything else: the proxy.\n",
                (unsigned long long)cfg->version);
  strbuf_puts(sb, "var PROXY = \"");
  int any = 0;
  if (tls_port) {
    strbuf_printf(sb, "HTTPS %s:%d", name, tls_port);
    any = 1;
  }
  if (clear_port) strbuf_printf(sb, "%sPROXY %s:%d", any ? "; " : "", name, clear_port);
  strbuf_puts(sb, "\";\n");
  /* Denied names. */
  strbuf_puts(sb, "var DENY_HOSTS = [");
  int first = 1;
  for (size_t i = 0; i < cfg->access->nrules; i++) {
    const struct access_rule *r = &cfg->access->rules[i];
    if (r->action == ACCESS_ALLOW) break;
    if (!denies_everyone(r)) continue;
    for (size_t h = 0; h < r->nhosts; h++) {
      strbuf_puts(sb, first ? "" : ", ");
      first = 0;
      /* "*.x.y" is stored as ".x.y": a suffix. */
      js_str(sb, r->hosts[h].pattern);
    }
  }
  strbuf_puts(sb, "];\n");
  /* Denied ranges (IPv4 CIDRs as network/mask for isInNet; IPv6 ones are not expressible). */
  strbuf_puts(sb, "var DENY_NETS = [");
  first = 1;
  for (size_t i = 0; i < cfg->deny_nets.n; i++) {
    const char *t = cfg->deny_nets.v[i];
    char net[64];
    copy(net, sizeof(net), t);
    char *slash = strchr(net, '/');
    int bits = 32;
    if (slash) {
      bits = atoi(slash + 1);
      *slash = '\0';
    }
    struct sockaddr_in a;
    if (bits < 0 || bits > 32 || uv_ip4_addr(net, 0, &a) != 0) continue;
    uint32_t mask = bits ? 0xffffffffu << (32 - bits) : 0;
    strbuf_printf(sb, "%s[\"%s\", \"%u.%u.%u.%u\"]", first ? "" : ", ", net, mask >> 24, (mask >> 16) & 255,
                  (mask >> 8) & 255, mask & 255);
    first = 0;
  }
  strbuf_puts(sb, "];\n");
  /* Ports: --allow-ports, plus every port an allow rule opens. */
  strbuf_puts(sb, "var PORTS = [");
  int all_ports = strcmp(cfg->allow_ports, "*") == 0;
  first = 1;
  if (!all_ports) {
    char spec[1024];
    copy(spec, sizeof(spec), cfg->allow_ports);
    for (char *save = NULL, *item = strtok_r(spec, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
      unsigned lo = 0, hi = 0;
      int n = sscanf(item, "%u-%u", &lo, &hi);
      if (n < 1) continue;
      if (n == 1) hi = lo;
      strbuf_printf(sb, "%s[%u, %u]", first ? "" : ", ", lo, hi);
      first = 0;
    }
    for (size_t i = 0; i < cfg->access->nrules; i++) {
      const struct access_rule *r = &cfg->access->rules[i];
      if (r->action != ACCESS_ALLOW) continue;
      for (size_t p = 0; p < r->nports; p++) {
        strbuf_printf(sb, "%s[%u, %u]", first ? "" : ", ", r->ports[p].lo, r->ports[p].hi);
        first = 0;
      }
    }
  }
  strbuf_puts(sb, "];\n");
  strbuf_printf(sb, "var ALL_PORTS = %s;\n", all_ports ? "true" : "false");
  strbuf_puts(sb,
              "var LOCAL_V4 = [[\"127.0.0.0\", \"255.0.0.0\"], [\"10.0.0.0\", \"255.0.0.0\"],\n"
              "  [\"172.16.0.0\", \"255.240.0.0\"], [\"192.168.0.0\", \"255.255.0.0\"],\n"
              "  [\"169.254.0.0\", \"255.255.0.0\"], [\"100.64.0.0\", \"255.192.0.0\"], [\"0.0.0.0\", \"255.0.0.0\"]];\n"
              "function FindProxyForURL(url, host) {\n"
              "  host = host.toLowerCase();\n"
              "  if (PROXY === \"\") return \"DIRECT\";\n"
              "  var v6 = host.replace(/^\\[|\\]$/g, \"\");\n"
              "  if (v6.indexOf(\":\") >= 0) { /* an IPv6 literal (no dot: not a plain name) */\n"
              "    if (v6 === \"::1\" || /^(fe[89ab]|f[cd])/.test(v6)) return \"DIRECT\";\n"
              "  } else if (isPlainHostName(host) || host === \"localhost\" || dnsDomainIs(host, \".localhost\")) {\n"
              "    return \"DIRECT\";\n"
              "  } else if (/^\\d+\\.\\d+\\.\\d+\\.\\d+$/.test(host)) {\n"
              "    for (var i = 0; i < LOCAL_V4.length; i++)\n"
              "      if (isInNet(host, LOCAL_V4[i][0], LOCAL_V4[i][1])) return \"DIRECT\";\n"
              "    for (var j = 0; j < DENY_NETS.length; j++)\n"
              "      if (isInNet(host, DENY_NETS[j][0], DENY_NETS[j][1])) return \"DIRECT\";\n"
              "  }\n"
              "  for (var k = 0; k < DENY_HOSTS.length; k++) {\n"
              "    var p = DENY_HOSTS[k];\n"
              "    if (p.charAt(0) === \".\" ? dnsDomainIs(host, p) : host === p) return \"DIRECT\";\n"
              "  }\n"
              "  if (!ALL_PORTS) {\n"
              "    var m = /^([a-z][a-z0-9+.-]*):\\/\\/(?:[^\\/?#@]*@)?(?:\\[[^\\]]*\\]|[^\\/?#:]*)(?::(\\d+))?/i.exec(url);\n"
              "    var port = m && m[2] ? parseInt(m[2], 10) :\n"
              "        (m && (m[1].toLowerCase() === \"https\" || m[1].toLowerCase() === \"wss\") ? 443 : 80);\n"
              "    var ok = false;\n"
              "    for (var q = 0; q < PORTS.length; q++)\n"
              "      if (port >= PORTS[q][0] && port <= PORTS[q][1]) ok = true;\n"
              "    if (!ok) return \"DIRECT\";\n"
              "  }\n"
              "  return PROXY;\n"
              "}\n");
  return sb->overflow ? -ENOSPC : 0;
}

/* ---- /status ---- */

const char status_page_html[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\"><title>h2tunnel status</title>\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<link rel=\"icon\" href=\"data:,\">\n" /* no /favicon.ico request (a 404 in the console) */
    "<style>\n"
    "body{font:14px system-ui,sans-serif;margin:1em 2em;color:#222}\n"
    "h1{font-size:1.3em}h2{font-size:1.05em;margin-top:1.4em}\n"
    "table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}\n"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}#err{color:#b00}\n"
    "</style></head><body>\n"
    "<h1>h2tunnel status</h1>\n"
    "<p>Configuration version <b id=\"cfgver\">?</b> (reloads: <span id=\"reloads\">?</span>);"
    " updated <span id=\"updated\">never</span>\n"
    " <span id=\"err\"></span></p>\n"
    "<h2>Totals</h2><table id=\"totals\"></table>\n"
    "<h2>Workers</h2><table id=\"workers\"></table>\n"
    "<h2>Active tunnels by user</h2><table id=\"by_user\"></table>\n"
    "<h2>Active tunnels by target</h2><table id=\"by_target\"></table>\n"
    "<h2>Top talkers</h2><table id=\"top\"></table>\n"
    "<h2>Limits near their ceiling</h2><table id=\"limits\"></table>\n"
    "<h2>Recent rejections</h2><table id=\"rejections\"></table>\n"
    "<script>\n"
    "'use strict';\n"
    "function fmtBytes(n){var u=['B','KiB','MiB','GiB','TiB'];var i=0;"
    "while(n>=1024&&i<u.length-1){n/=1024;i++;}return (i?n.toFixed(1):String(n))+' '+u[i];}\n"
    "function fmtAge(ms){var s=Math.floor(ms/1000);if(s<60)return s+'s';"
    "if(s<3600)return Math.floor(s/60)+'m'+(s%60)+'s';return Math.floor(s/3600)+'h'+Math.floor(s%3600/60)+'m';}\n"
    "function fill(id,head,rows){var t=document.getElementById(id);t.textContent='';"
    "var tr=t.insertRow();head.forEach(function(h){var th=document.createElement('th');th.textContent=h;tr.appendChild(th);});"
    "rows.forEach(function(r){var tr=t.insertRow();r.forEach(function(c){var td=tr.insertCell();"
    "if(typeof c==='number'){td.className='n';td.textContent=String(c);}else{td.textContent=c===null?'(anonymous)':String(c);}});});"
    "if(!rows.length){var e=t.insertRow().insertCell();e.colSpan=head.length;e.textContent='none';}}\n"
    "function tunRow(t){return [t.user,t.target,t.client,t.front+' '+t.protocol,t.bytes_up,t.bytes_down,fmtAge(t.age_ms)];}\n"
    "function render(s){\n"
    " document.getElementById('cfgver').textContent=String(s.config_version);\n"
    " document.getElementById('reloads').textContent=s.reloads.ok+' applied, '+s.reloads.failed+' refused, '"
    "+s.reloads.tunnels_closed+' tunnel(s) closed';\n"
    " document.getElementById('updated').textContent=new Date(s.time_ms).toISOString();\n"
    " var T=s.totals;fill('totals',['connections','tunnels active','tunnels opened','bytes up','bytes down'],"
    "[[T.connections_active,T.tunnels_active,T.tunnels_opened,T.bytes_up,T.bytes_down]]);\n"
    " fill('workers',['worker','connections','handshakes','tunnels'],s.workers.map(function(w){"
    "return [w.id,w.connections,w.handshakes,w.tunnels];}));\n"
    " fill('by_user',['user','tunnels','bytes up','bytes down','oldest'],s.by_user.map(function(g){"
    "return [g.user,g.tunnels,g.bytes_up,g.bytes_down,fmtAge(g.oldest_ms)];}));\n"
    " fill('by_target',['target','tunnels','bytes up','bytes down','oldest'],s.by_target.map(function(g){"
    "return [g.target,g.tunnels,g.bytes_up,g.bytes_down,fmtAge(g.oldest_ms)];}));\n"
    " fill('top',['user','target','client','front end','bytes up','bytes down','age'],s.top_talkers.map(tunRow));\n"
    " fill('limits',['scope','name','limit','active','max'],s.limits.filter(function(l){return l.near;})"
    ".map(function(l){return [l.scope,l.name,l.limit,l.active,l.max];}));\n"
    " fill('rejections',['time','user','client','target','status','error','detail'],s.rejections.map(function(r){"
    "return [new Date(r.time_ms).toISOString(),r.user,r.client,r.target,r.status,r.error,r.detail];}));\n"
    " document.title='h2tunnel: '+T.tunnels_active+' tunnels';\n"
    "}\n"
    "function tick(){fetch('/status.json',{cache:'no-store'}).then(function(r){"
    "if(!r.ok)throw new Error('HTTP '+r.status);return r.json();}).then(function(s){"
    "document.getElementById('err').textContent='';render(s);"
    "setTimeout(tick,Math.max(1000,s.interval_ms*2));}).catch(function(e){"
    "document.getElementById('err').textContent='(refresh failed: '+e.message+')';setTimeout(tick,5000);});}\n"
    "tick();\n"
    "</script></body></html>\n";
