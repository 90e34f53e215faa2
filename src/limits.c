/* Limits at run time (see limits.h). */
#include "src/limits.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "src/access.h"
#include "src/util.h"

#define NS_PER_S 1000000000ull
#define TABLE_SLOTS 1024u

static const struct {
  const char *name, *detail;
} kinds[] = {
#define XX(n, s, d) {s, d},
    LIM_KIND_MAP(XX)
#undef XX
};

const char *lim_kind_name(enum lim_kind k) { return kinds[k].name; }
const char *lim_kind_detail(enum lim_kind k) { return kinds[k].detail; }

/* One scope's shared state. The counters and buckets are atomics read and written by any worker;
 * |next| and |refs| are guarded by the owning table's mutex. */
struct lim_entry {
  struct lim_entry *next;            /* chain in the table */
  uint64_t refs;                     /* tickets holding it (table mutex) */
  int pinned;                        /* a user the configuration names: kept, shown in /metrics */
  const struct access_limits *lim;   /* borrowed from the access model */
  _Atomic uint64_t active;           /* tunnels admitted and not released */
  _Atomic uint64_t rate_tat;         /* new tunnels */
  _Atomic uint64_t bw_tat[2];        /* the scope's bandwidth each way */
  _Atomic uint64_t bytes[2];         /* bytes moved each way (for /metrics) */
  char key[];                        /* user name, or client address text */
};

/* Entries by key, under one mutex (taken per tunnel open and close, never per byte). */
struct lim_table {
  pthread_mutex_t mu;
  struct lim_entry *slot[TABLE_SLOTS];
  size_t n;
};

struct limits {
  const struct access *a;            /* borrowed */
  struct lim_entry *instance;        /* owned */
  struct lim_table users, clients;
  struct lim_entry **pinned;         /* owned array (entries owned by |users|), sorted by key */
  size_t npinned;
  _Atomic uint64_t *denials;         /* owned: per rule */
  _Atomic uint64_t refusals[LIM_KIND_COUNT];
};

/* ---- GCRA --------------------------------------------------------------------------------------- */

int lim_gcra_take(_Atomic uint64_t *tat, uint64_t count, uint64_t period_ns, uint64_t burst, uint64_t now_ns,
                  uint64_t *wait_ns) {
  uint64_t interval = period_ns / (count ? count : 1);
  if (interval == 0) interval = 1;
  uint64_t tolerance = interval * (burst ? burst : 1);
  uint64_t old = atomic_load_explicit(tat, memory_order_relaxed);
  for (;;) {
    uint64_t base = old > now_ns ? old : now_ns;
    uint64_t next = base + interval;
    if (next - now_ns > tolerance) {
      *wait_ns = next - now_ns - tolerance;
      return -1;
    }
    if (atomic_compare_exchange_weak_explicit(tat, &old, next, memory_order_relaxed, memory_order_relaxed)) return 0;
  }
}

uint64_t lim_gcra_charge(_Atomic uint64_t *tat, uint64_t rate, uint64_t burst_ns, size_t n, uint64_t now_ns) {
  /* n is at most a few chunks: n * 1e9 stays far inside 64 bits. */
  uint64_t cost = (uint64_t)n * NS_PER_S / rate;
  uint64_t old = atomic_load_explicit(tat, memory_order_relaxed), next;
  do {
    uint64_t base = old > now_ns ? old : now_ns;
    next = base + cost;
  } while (!atomic_compare_exchange_weak_explicit(tat, &old, next, memory_order_relaxed, memory_order_relaxed));
  return next - now_ns > burst_ns ? next - now_ns - burst_ns : 0;
}

/* A bandwidth bucket may run this far ahead before the reader pauses: bandwidth-burst of the rate,
 * and at least bandwidth-burst-min bytes (two reads by default), so that a fast limit does not
 * wake the loop per chunk. */
static uint64_t bw_burst_ns(const struct access_tuning *t, uint64_t rate) {
  uint64_t ns = t->bw_burst_min * NS_PER_S / rate, floor = t->bw_burst_ms * 1000000ull;
  return ns > floor ? ns : floor;
}

/* ---- tables ------------------------------------------------------------------------------------- */

static uint32_t hash_key(const char *s) {
  uint32_t h = 2166136261u; /* FNV-1a: keys are names and addresses, not attacker-chosen at scale */
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

static struct lim_entry *entry_new(const char *key, const struct access_limits *lim) {
  size_t len = strlen(key);
  struct lim_entry *e = xcalloc(1, sizeof(*e) + len + 1);
  memcpy(e->key, key, len + 1);
  e->lim = lim;
  return e;
}

/* An entry nobody holds whose buckets are back to full may go: forgetting it changes nothing. */
static int entry_idle(const struct lim_entry *e, uint64_t now_ns) {
  return e->refs == 0 && !e->pinned && atomic_load(&e->rate_tat) <= now_ns && atomic_load(&e->bw_tat[0]) <= now_ns &&
         atomic_load(&e->bw_tat[1]) <= now_ns;
}

/* Finds (or, with |lim|, creates) |key| and takes a reference; idle entries met on the way are
 * freed. */
static struct lim_entry *table_get(struct lim_table *t, const char *key, const struct access_limits *lim,
                                   uint64_t now_ns) {
  struct lim_entry *found = NULL;
  pthread_mutex_lock(&t->mu);
  struct lim_entry **pp = &t->slot[hash_key(key) % TABLE_SLOTS];
  while (*pp) {
    struct lim_entry *e = *pp;
    if (strcmp(e->key, key) == 0) {
      found = e;
      pp = &e->next;
    } else if (entry_idle(e, now_ns)) {
      *pp = e->next;
      t->n--;
      free(e);
    } else {
      pp = &e->next;
    }
  }
  if (!found && lim) {
    found = entry_new(key, lim);
    *pp = found;
    t->n++;
  }
  if (found) found->refs++;
  pthread_mutex_unlock(&t->mu);
  return found;
}

static void table_put(struct lim_table *t, struct lim_entry *e) {
  pthread_mutex_lock(&t->mu);
  CHECK(e->refs > 0);
  e->refs--;
  pthread_mutex_unlock(&t->mu);
}

static void table_dispose(struct lim_table *t) {
  for (size_t i = 0; i < TABLE_SLOTS; i++) {
    while (t->slot[i]) {
      struct lim_entry *e = t->slot[i];
      t->slot[i] = e->next;
      free(e);
    }
  }
  pthread_mutex_destroy(&t->mu);
}

/* ---- the state ---------------------------------------------------------------------------------- */

static int cmp_entries(const void *x, const void *y) {
  return strcmp((*(struct lim_entry *const *)x)->key, (*(struct lim_entry *const *)y)->key);
}

/* Pins |user| (a name the configuration gives) so that /metrics shows it. */
static void pin(struct limits *l, const char *user) {
  struct lim_entry *e = table_get(&l->users, user, access_user_limits(l->a, user), 0);
  e->refs--; /* the table keeps it: pinned entries are never idle */
  if (e->pinned) return;
  e->pinned = 1;
  l->pinned = xrealloc(l->pinned, (l->npinned + 1) * sizeof(*l->pinned));
  l->pinned[l->npinned++] = e;
}

struct limits *limits_new(const struct access *a) {
  struct limits *l = xcalloc(1, sizeof(*l));
  l->a = a;
  l->instance = entry_new("", &a->limits.instance);
  l->instance->pinned = 1;
  CHECK(pthread_mutex_init(&l->users.mu, NULL) == 0);
  CHECK(pthread_mutex_init(&l->clients.mu, NULL) == 0);
  l->denials = xcalloc(a->nrules ? a->nrules : 1, sizeof(*l->denials));
  for (size_t i = 0; i < a->limits.nusers; i++) pin(l, a->limits.users[i].user);
  for (size_t i = 0; i < a->ngroups; i++)
    for (size_t j = 0; j < a->groups[i].n; j++) pin(l, a->groups[i].members[j].s);
  for (size_t i = 0; i < a->nrules; i++)
    for (size_t j = 0; j < a->rules[i].nusers; j++) pin(l, a->rules[i].users[j].s);
  if (l->npinned) qsort(l->pinned, l->npinned, sizeof(*l->pinned), cmp_entries);
  return l;
}

void limits_free(struct limits *l) {
  if (!l) return;
  table_dispose(&l->users);
  table_dispose(&l->clients);
  free(l->instance);
  free(l->pinned);
  free(l->denials);
  free(l);
}

/* The per-client key of |sa| as text: its address, or its network under client-ipv4-prefix /
 * client-ipv6-prefix ("2001:db8:1:2::/64"); "" when unknown. */
static void client_key(const struct limits *l, const struct sockaddr *sa, char *out, size_t cap) {
  struct access_client k;
  access_client_key(sa, l->a->tune.client_v4_prefix, l->a->tune.client_v6_prefix, &k);
  access_client_text(&k, out, cap);
}

static int has_limits(const struct access_limits *lim) {
  return lim->tunnels || lim->rate_count || lim->bw_up || lim->bw_down || lim->tunnel_bw_up || lim->tunnel_bw_down;
}

static struct lim_entry *find_pinned(const struct limits *l, const char *user);

static uint64_t min_nonzero(uint64_t a, uint64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

static const enum lim_kind tunnel_kind[LIM_SCOPE_COUNT] = {LIM_INSTANCE_TUNNELS, LIM_USER_TUNNELS,
                                                          LIM_CLIENT_TUNNELS};
static const enum lim_kind rate_kind[LIM_SCOPE_COUNT] = {LIM_INSTANCE_RATE, LIM_USER_RATE, LIM_CLIENT_RATE};

static void release_scope(struct limits *l, enum lim_scope s, struct lim_entry *e) {
  atomic_fetch_sub_explicit(&e->active, 1, memory_order_relaxed);
  if (s == LIM_SCOPE_USER) table_put(&l->users, e);
  if (s == LIM_SCOPE_CLIENT) table_put(&l->clients, e);
}

int limits_admit(struct limits *l, const char *user, const struct sockaddr *client, uint64_t now_ns,
                 struct lim_ticket **out, enum lim_kind *kind, uint64_t *retry_after_s) {
  *out = NULL;
  if (!l) return 0;
  const struct access *a = l->a;
  const struct access_limits *ulim = user ? access_user_limits(a, user) : NULL;
  int want_user = ulim && (has_limits(ulim) || find_pinned(l, user));
  char ckey[ACCESS_CLIENT_TEXT_MAX] = "";
  if (has_limits(&a->limits.per_client)) client_key(l, client, ckey, sizeof(ckey)); /* only when needed */
  int want_client = ckey[0] != '\0';
  int want_instance = has_limits(&a->limits.instance);
  if (!want_user && !want_client && !want_instance) return 0;

  struct lim_ticket t = {.l = l};
  if (want_instance) t.e[LIM_SCOPE_INSTANCE] = l->instance;
  if (want_user) t.e[LIM_SCOPE_USER] = table_get(&l->users, user, ulim, now_ns);
  if (want_client) t.e[LIM_SCOPE_CLIENT] = table_get(&l->clients, ckey, &a->limits.per_client, now_ns);

  /* Counts first (given back on any refusal), then the rates (a token spent on a refusal by a
   * later scope is lost: the error is on the strict side). */
  int held[LIM_SCOPE_COUNT] = {0};
  int refused = -1;
  uint64_t wait_ns = 0;
  for (int s = 0; s < LIM_SCOPE_COUNT && refused < 0; s++) {
    struct lim_entry *e = t.e[s];
    if (!e) continue;
    uint64_t was = atomic_fetch_add_explicit(&e->active, 1, memory_order_relaxed);
    held[s] = 1;
    if (e->lim->tunnels && was >= e->lim->tunnels) {
      refused = (int)tunnel_kind[s];
      wait_ns = NS_PER_S;
    }
  }
  for (int s = 0; s < LIM_SCOPE_COUNT && refused < 0; s++) {
    struct lim_entry *e = t.e[s];
    if (!e || !e->lim->rate_count) continue;
    uint64_t burst = e->lim->burst ? e->lim->burst : e->lim->rate_count;
    if (lim_gcra_take(&e->rate_tat, e->lim->rate_count, e->lim->rate_period_ms * 1000000ull, burst, now_ns,
                      &wait_ns) != 0)
      refused = (int)rate_kind[s];
  }
  if (refused >= 0) {
    for (int s = 0; s < LIM_SCOPE_COUNT; s++) {
      if (!t.e[s]) continue;
      if (held[s])
        release_scope(l, (enum lim_scope)s, t.e[s]);
      else if (s == LIM_SCOPE_USER)
        table_put(&l->users, t.e[s]);
      else if (s == LIM_SCOPE_CLIENT)
        table_put(&l->clients, t.e[s]);
    }
    *kind = (enum lim_kind)refused;
    *retry_after_s = (wait_ns + NS_PER_S - 1) / NS_PER_S;
    if (*retry_after_s < 1) *retry_after_s = 1;
    limits_count_refusal(l, *kind);
    return -1;
  }
  for (int d = 0; d < 2; d++) {
    for (int s = 0; s < LIM_SCOPE_COUNT; s++) {
      const struct lim_entry *e = t.e[s];
      if (!e) continue;
      t.tunnel_bw[d] = min_nonzero(t.tunnel_bw[d], d == LIM_UP ? e->lim->tunnel_bw_up : e->lim->tunnel_bw_down);
      if (d == LIM_UP ? e->lim->bw_up : e->lim->bw_down) t.bw = 1;
    }
    if (t.tunnel_bw[d]) t.bw = 1;
  }
  t.metered = t.bw || (t.e[LIM_SCOPE_USER] && t.e[LIM_SCOPE_USER]->pinned);
  *out = xmalloc(sizeof(**out));
  **out = t;
  return 0;
}

void lim_ticket_release(struct lim_ticket *t) {
  if (!t) return;
  for (int s = 0; s < LIM_SCOPE_COUNT; s++)
    if (t->e[s]) release_scope(t->l, (enum lim_scope)s, t->e[s]);
  free(t);
}

uint64_t lim_ticket_charge(struct lim_ticket *t, enum lim_dir d, size_t n, uint64_t now_ns) {
  uint64_t wait = 0;
  for (int s = 0; s < LIM_SCOPE_COUNT; s++) {
    struct lim_entry *e = t->e[s];
    if (!e) continue;
    if (e->pinned && s == LIM_SCOPE_USER) atomic_fetch_add_explicit(&e->bytes[d], n, memory_order_relaxed);
    uint64_t rate = d == LIM_UP ? e->lim->bw_up : e->lim->bw_down;
    if (!rate) continue;
    uint64_t w = lim_gcra_charge(&e->bw_tat[d], rate, bw_burst_ns(&t->l->a->tune, rate), n, now_ns);
    if (w > wait) wait = w;
  }
  uint64_t rate = t->tunnel_bw[d];
  if (rate) {
    /* The tunnel's own bucket is touched by its worker only; the atomic form costs nothing here. */
    _Atomic uint64_t tat = t->tat[d];
    uint64_t w = lim_gcra_charge(&tat, rate, bw_burst_ns(&t->l->a->tune, rate), n, now_ns);
    t->tat[d] = atomic_load_explicit(&tat, memory_order_relaxed);
    if (w > wait) wait = w;
  }
  if (wait) t->limited = 1;
  return wait;
}

/* ---- counters ----------------------------------------------------------------------------------- */

void limits_count_denial(struct limits *l, const struct access *a, size_t rule) {
  if (!l || rule >= a->nrules) return;
  if (a != l->a) { /* a reloaded snapshot: the counter of the rule of that name, if any */
    size_t i = 0;
    while (i < l->a->nrules && strcmp(l->a->rules[i].name, a->rules[rule].name) != 0) i++;
    rule = i;
  }
  if (rule < l->a->nrules) atomic_fetch_add_explicit(&l->denials[rule], 1, memory_order_relaxed);
}

void limits_count_refusal(struct limits *l, enum lim_kind k) {
  if (l) atomic_fetch_add_explicit(&l->refusals[k], 1, memory_order_relaxed);
}

static struct lim_entry *find_pinned(const struct limits *l, const char *user) {
  size_t lo = 0, hi = l->npinned;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(l->pinned[mid]->key, user);
    if (c == 0) return l->pinned[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* UINT64_MAX when |user| has no entry at all. */
uint64_t limits_user_active(struct limits *l, const char *user) {
  const struct lim_entry *e = find_pinned(l, user);
  if (e) return atomic_load_explicit(&e->active, memory_order_relaxed);
  /* Not named in the configuration: look in the table without creating. */
  struct lim_entry *f = table_get(&l->users, user, NULL, 0);
  if (!f) return UINT64_MAX;
  uint64_t n = atomic_load_explicit(&f->active, memory_order_relaxed);
  table_put(&l->users, f);
  return n;
}

uint64_t limits_client_active(struct limits *l, const struct sockaddr *client) {
  char key[ACCESS_CLIENT_TEXT_MAX];
  client_key(l, client, key, sizeof(key));
  struct lim_entry *f = key[0] ? table_get(&l->clients, key, NULL, 0) : NULL;
  if (!f) return 0;
  uint64_t n = atomic_load_explicit(&f->active, memory_order_relaxed);
  table_put(&l->clients, f);
  return n;
}

uint64_t limits_instance_active(const struct limits *l) {
  return atomic_load_explicit(&l->instance->active, memory_order_relaxed);
}

/* A label value: names are config text; quote and backslash are escaped (Prometheus format). */
static void label(struct strbuf *sb, const char *s) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      strbuf_printf(sb, "\\%c", *s);
    else if ((unsigned char)*s >= 0x20)
      strbuf_append(sb, s, 1);
  }
}

void limits_render(const struct limits *l, struct strbuf *sb) {
  const struct access *a = l->a;
  strbuf_puts(sb, "# HELP h2tunnel_rule_denials_total Requests denied by a rule, by the rule's name.\n"
                  "# TYPE h2tunnel_rule_denials_total counter\n");
  for (size_t i = 0; i < a->nrules; i++) {
    strbuf_puts(sb, "h2tunnel_rule_denials_total{rule=\"");
    label(sb, a->rules[i].name);
    strbuf_printf(sb, "\"} %llu\n", (unsigned long long)atomic_load(&l->denials[i]));
  }
  strbuf_puts(sb, "# HELP h2tunnel_limit_rejections_total New tunnels refused (429) by a limit, by kind.\n"
                  "# TYPE h2tunnel_limit_rejections_total counter\n");
  for (int k = 0; k < LIM_KIND_COUNT; k++)
    strbuf_printf(sb, "h2tunnel_limit_rejections_total{kind=\"%s\"} %llu\n", kinds[k].name,
                  (unsigned long long)atomic_load(&l->refusals[k]));
  strbuf_puts(sb, "# HELP h2tunnel_user_tunnels_active Tunnels open per user named in the configuration.\n"
                  "# TYPE h2tunnel_user_tunnels_active gauge\n");
  for (size_t i = 0; i < l->npinned; i++) {
    strbuf_puts(sb, "h2tunnel_user_tunnels_active{user=\"");
    label(sb, l->pinned[i]->key);
    strbuf_printf(sb, "\"} %llu\n", (unsigned long long)atomic_load(&l->pinned[i]->active));
  }
  strbuf_puts(sb, "# HELP h2tunnel_user_bytes_total Tunnel bytes per user named in the configuration.\n"
                  "# TYPE h2tunnel_user_bytes_total counter\n");
  for (size_t i = 0; i < l->npinned; i++) {
    for (int d = 0; d < 2; d++) {
      strbuf_puts(sb, "h2tunnel_user_bytes_total{user=\"");
      label(sb, l->pinned[i]->key);
      strbuf_printf(sb, "\",direction=\"%s\"} %llu\n", d == LIM_UP ? "up" : "down",
                    (unsigned long long)atomic_load(&l->pinned[i]->bytes[d]));
    }
  }
}
