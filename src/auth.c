/* Authentication machinery: verified-credentials cache, off-loop verification, failure guard
 * (see auth.h). */
#define _GNU_SOURCE /* SCHED_IDLE */
#include "src/auth.h"

#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "src/access.h"
#include "src/metrics.h"
#include "src/users.h"
#include "src/util.h"

/* ---- cache ------------------------------------------------------------------------------------ */

struct auth_cache *auth_cache_new(size_t size, uint64_t ttl_ms) {
  struct auth_cache *c = xcalloc(1, sizeof(*c));
  CHECK(RAND_bytes(c->key, sizeof(c->key)) == 1);
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  CHECK(mac != NULL);
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac); /* the context keeps its own reference */
  CHECK(ctx != NULL);
  char sha256[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, sha256, 0), OSSL_PARAM_construct_end()};
  CHECK(EVP_MAC_init(ctx, c->key, sizeof(c->key), params) == 1);
  c->mac = ctx;
  c->nbuckets = size / AUTH_CACHE_WAYS ? size / AUTH_CACHE_WAYS : 1;
  c->v = xcalloc(c->nbuckets * AUTH_CACHE_WAYS, sizeof(*c->v));
  c->ttl_ms = ttl_ms;
  c->max_running = 1;
  return c;
}

static void drop_queued(struct auth_cache *c);

void auth_cache_free(struct auth_cache *c) {
  if (!c) return;
  drop_queued(c);
  OPENSSL_cleanse(c->key, sizeof(c->key));
  EVP_MAC_CTX_free(c->mac);
  free(c->v);
  free(c);
}

void auth_cache_digest(const struct auth_cache *c, const char *value, size_t len, uint8_t out[AUTH_DIGEST_LEN]) {
  size_t n = 0;
  /* A NULL key restarts with the key already set. */
  CHECK(EVP_MAC_init(c->mac, NULL, 0, NULL) == 1);
  CHECK(EVP_MAC_update(c->mac, (const unsigned char *)value, len) == 1);
  CHECK(EVP_MAC_final(c->mac, out, &n, AUTH_DIGEST_LEN) == 1 && n == AUTH_DIGEST_LEN);
}

static struct auth_cache_entry *bucket(struct auth_cache *c, const uint8_t digest[AUTH_DIGEST_LEN]) {
  uint64_t h;
  memcpy(&h, digest, sizeof(h)); /* keyed: an outsider cannot pick the bucket */
  return &c->v[(h % c->nbuckets) * AUTH_CACHE_WAYS];
}

/* A reload gives a new users snapshot: entries of the old one mean nothing. */
static void bind_users(struct auth_cache *c, const struct users *users) {
  if (c->users == users) return;
  memset(c->v, 0, c->nbuckets * AUTH_CACHE_WAYS * sizeof(*c->v));
  c->users = users;
}

void auth_cache_reset(struct auth_cache *c) {
  if (!c) return;
  memset(c->v, 0, c->nbuckets * AUTH_CACHE_WAYS * sizeof(*c->v));
  c->users = NULL;
}

const struct users_entry *auth_cache_get(struct auth_cache *c, const struct users *users,
                                         const uint8_t digest[AUTH_DIGEST_LEN], uint64_t now_ms) {
  bind_users(c, users);
  struct auth_cache_entry *b = bucket(c, digest);
  const struct users_entry *found = NULL;
  /* Every way is compared, in constant time each, whatever matches. */
  for (int i = 0; i < AUTH_CACHE_WAYS; i++) {
    int same = CRYPTO_memcmp(b[i].digest, digest, AUTH_DIGEST_LEN) == 0;
    if (same && b[i].user && b[i].expires_ms > now_ms) found = b[i].user;
  }
  return found;
}

void auth_cache_put(struct auth_cache *c, const struct users *users, const uint8_t digest[AUTH_DIGEST_LEN],
                    const struct users_entry *user, uint64_t now_ms) {
  bind_users(c, users);
  struct auth_cache_entry *b = bucket(c, digest), *slot = &b[0];
  for (int i = 0; i < AUTH_CACHE_WAYS; i++) {
    if (CRYPTO_memcmp(b[i].digest, digest, AUTH_DIGEST_LEN) == 0 || !b[i].user) {
      slot = &b[i];
      break;
    }
    if (b[i].expires_ms < slot->expires_ms) slot = &b[i]; /* the oldest goes */
  }
  memcpy(slot->digest, digest, AUTH_DIGEST_LEN);
  slot->user = user;
  slot->expires_ms = now_ms + c->ttl_ms;
}

/* ---- verification on the thread pool ---------------------------------------------------------- */

/* One hash of one credential (the header value |digest| names), shared by every caller that sent
 * the same value while it is queued or running (single flight). States: QUEUED (in the cache's
 * FIFO, waiting for a hashing slot) -> RUNNING (on the pool) -> done: the after-work callback
 * answers the waiters still there and frees it. A queued flight whose waiters all left is freed at
 * once; a running one runs to its end (the pool cannot take work back). */
enum flight_state { FLIGHT_QUEUED, FLIGHT_RUNNING };

struct auth_flight {
  uv_work_t work;                   /* work.data unused; container_of */
  enum flight_state state;
  struct auth_flight *next;         /* the cache's |flights| list (every state) */
  struct auth_flight *qnext;        /* the cache's FIFO, while QUEUED */
  struct auth_cache *cache;         /* borrowed: the worker's */
  uv_loop_t *loop;                  /* borrowed: the worker's */
  const struct users *users;        /* borrowed */
  uint8_t digest[AUTH_DIGEST_LEN];
  struct credentials cred;          /* owned copy, wiped before free */
  int result;                       /* written by the pool thread, read after it */
  int idle;                         /* hash under SCHED_IDLE (copied from the cache) */
  struct auth_verify *waiters;      /* owned list: the callers to answer */
};

/* One caller's wait for a flight: the handle auth_verify_start gives and auth_verify_cancel takes. */
struct auth_verify {
  struct auth_flight *flight;       /* borrowed: the flight it is listed in */
  struct auth_verify *next;
  auth_verify_cb cb;
  void *arg;
};

/* Hashing threads yield to the event loops: a burst of logins (bcrypt is CPU by design) must not
 * take the cores from tunnels already running. A pool thread hashes at nice AUTH_VERIFY_NICE, or
 * under SCHED_IDLE (CPU only when nothing else wants it) when the cache says |idle|, and goes back
 * to its old priority afterwards: the pool runs other work (getaddrinfo, fs) too. SCHED_IDLE is
 * not the default: on a machine kept busy by other processes it starves the logins. */
struct prio {
  int policy, nice;
};

static struct prio hash_priority_low(int idle) {
  struct sched_param none = {0};
  pid_t tid = (pid_t)syscall(SYS_gettid);
  struct prio was = {.policy = sched_getscheduler(tid)};
  errno = 0;
  was.nice = getpriority(PRIO_PROCESS, (id_t)tid);
  if (!idle || sched_setscheduler(tid, SCHED_IDLE, &none) != 0)
    (void)setpriority(PRIO_PROCESS, (id_t)tid, AUTH_VERIFY_NICE); /* not fatal: still hashes */
  return was;
}

static void hash_priority_restore(int idle, struct prio was) {
  struct sched_param none = {0};
  pid_t tid = (pid_t)syscall(SYS_gettid);
  if (idle && was.policy >= 0 && was.policy != SCHED_IDLE) (void)sched_setscheduler(tid, was.policy, &none);
  (void)setpriority(PRIO_PROCESS, (id_t)tid, was.nice);
}

static void flight_work(uv_work_t *req) {
  struct auth_flight *f = container_of(req, struct auth_flight, work);
  struct prio was = hash_priority_low(f->idle);
  f->result = users_verify(f->users, f->cred.user, f->cred.pass, f->cred.pass_len);
  hash_priority_restore(f->idle, was);
}

static void flight_unlink(struct auth_cache *c, struct auth_flight *f) {
  for (struct auth_flight **pp = &c->flights; *pp; pp = &(*pp)->next) {
    if (*pp == f) {
      *pp = f->next;
      break;
    }
  }
  c->pending--;
  if (c->metrics) METRIC_SUB(c->metrics, auth_checks_pending, 1);
}

static void flight_free(struct auth_flight *f) {
  credentials_wipe(&f->cred);
  free(f);
}

static void flight_done(uv_work_t *req, int status);

/* The cache goes with its loop: queued flights are ours to free (no running one is left once the
 * loop has ended). */
static void drop_queued(struct auth_cache *c) {
  while (c->queue) {
    struct auth_flight *f = c->queue;
    c->queue = f->qnext;
    while (f->waiters) {
      struct auth_verify *w = f->waiters;
      f->waiters = w->next;
      free(w);
    }
    flight_free(f);
  }
  c->queue_tail = NULL;
  c->flights = NULL;
}

/* Starts queued flights while hashing slots are free. */
static void pump(struct auth_cache *c) {
  while (c->queue && c->running < c->max_running) {
    struct auth_flight *f = c->queue;
    c->queue = f->qnext;
    if (!c->queue) c->queue_tail = NULL;
    f->qnext = NULL;
    f->state = FLIGHT_RUNNING;
    c->running++;
    CHECK(uv_queue_work(f->loop, &f->work, flight_work, flight_done) == 0);
    if (c->metrics) METRIC_ADD(c->metrics, auth_hashes, 1);
  }
}

static void flight_done(uv_work_t *req, int status) {
  struct auth_flight *f = container_of(req, struct auth_flight, work);
  struct auth_cache *c = f->cache;
  c->running--;
  flight_unlink(c, f);
  int r = status == 0 ? f->result : -ENOMEM;
  const struct users_entry *e = r == 0 ? users_find(f->users, f->cred.user) : NULL;
  /* A callback may cancel another waiter of this flight (streams of one connection): each is
   * taken off the list before its call, so the list always holds exactly the ones still owed. */
  struct auth_verify *w;
  while ((w = f->waiters)) {
    f->waiters = w->next;
    auth_verify_cb cb = w->cb;
    void *arg = w->arg;
    free(w);
    cb(arg, r, e);
  }
  flight_free(f);
  pump(c);
}

static struct auth_flight *flight_find(struct auth_cache *c, const struct users *users,
                                       const uint8_t digest[AUTH_DIGEST_LEN]) {
  for (struct auth_flight *f = c->flights; f; f = f->next)
    if (f->users == users && CRYPTO_memcmp(f->digest, digest, AUTH_DIGEST_LEN) == 0) return f;
  return NULL;
}

struct auth_verify *auth_verify_start(uv_loop_t *loop, struct auth_cache *cache, const struct users *users,
                                      const struct credentials *cred, const uint8_t digest[AUTH_DIGEST_LEN],
                                      auth_verify_cb cb, void *arg) {
  struct auth_verify *v = xcalloc(1, sizeof(*v));
  v->cb = cb;
  v->arg = arg;
  struct auth_flight *f = flight_find(cache, users, digest);
  if (f) {
    if (cache->metrics) METRIC_ADD(cache->metrics, auth_checks_shared, 1);
  } else {
    f = xcalloc(1, sizeof(*f));
    f->state = FLIGHT_QUEUED;
    f->cache = cache;
    f->loop = loop;
    f->users = users;
    f->idle = cache->hash_idle;
    memcpy(f->digest, digest, AUTH_DIGEST_LEN);
    f->cred = *cred;
    f->next = cache->flights;
    cache->flights = f;
    if (cache->queue_tail)
      cache->queue_tail->qnext = f;
    else
      cache->queue = f;
    cache->queue_tail = f;
    cache->pending++;
    if (cache->metrics) METRIC_ADD(cache->metrics, auth_checks_pending, 1);
  }
  v->flight = f;
  v->next = f->waiters;
  f->waiters = v;
  pump(cache);
  return v;
}

void auth_verify_cancel(struct auth_verify *v) {
  struct auth_flight *f = v->flight;
  for (struct auth_verify **pp = &f->waiters; *pp; pp = &(*pp)->next) {
    if (*pp == v) {
      *pp = v->next;
      break;
    }
  }
  free(v);
  if (f->waiters || f->state != FLIGHT_QUEUED) return; /* a running hash finishes and is dropped */
  struct auth_cache *c = f->cache;
  struct auth_flight *prev = NULL;
  for (struct auth_flight *q = c->queue; q; prev = q, q = q->qnext) {
    if (q != f) continue;
    if (prev)
      prev->qnext = f->qnext;
    else
      c->queue = f->qnext;
    if (c->queue_tail == f) c->queue_tail = prev;
    break;
  }
  flight_unlink(c, f);
  flight_free(f);
}

/* ---- failure guard ---------------------------------------------------------------------------- */

#define GUARD_WAYS 8

struct guard_slot {
  uint8_t addr[16];        /* IPv4 as v4-mapped */
  int used;
  uint64_t failures;       /* within the window that began at |window_start| */
  uint64_t window_start;
  uint64_t banned_until;   /* 0: not banned */
};

struct auth_guard {
  uv_mutex_t lock;         /* guards |v| */
  atomic_size_t used;      /* slots in use: 0 lets lookups skip the lock */
  uint64_t seed;           /* random: an outsider cannot fill one set on purpose */
  unsigned v4_prefix, v6_prefix; /* a client is its network of this size */
  size_t nsets;            /* |v| holds nsets * GUARD_WAYS slots */
  struct guard_slot *v;    /* owned */
};

struct auth_guard *auth_guard_new(size_t slots, unsigned v4_prefix, unsigned v6_prefix) {
  struct auth_guard *g = xcalloc(1, sizeof(*g));
  g->nsets = slots / GUARD_WAYS ? slots / GUARD_WAYS : 1;
  g->v = xcalloc(g->nsets * GUARD_WAYS, sizeof(*g->v));
  g->v4_prefix = v4_prefix;
  g->v6_prefix = v6_prefix;
  CHECK(uv_mutex_init(&g->lock) == 0);
  CHECK(RAND_bytes((unsigned char *)&g->seed, sizeof(g->seed)) == 1);
  return g;
}

void auth_guard_free(struct auth_guard *g) {
  if (!g) return;
  uv_mutex_destroy(&g->lock);
  free(g->v);
  free(g);
}

/* The client's network (access_client_key) as 16 bytes, IPv4 mapped; -1 for an address family we
 * do not count. */
static int addr_key(const struct auth_guard *g, const struct sockaddr *sa, uint8_t out[16]) {
  struct access_client k;
  if (access_client_key(sa, g->v4_prefix, g->v6_prefix, &k) != 0) return -1;
  if (k.family == AF_INET6) {
    memcpy(out, k.addr, 16);
  } else {
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, k.addr, 4);
  }
  return 0;
}

static struct guard_slot *guard_set(struct auth_guard *g, const uint8_t key[16]) {
  uint64_t h = g->seed ^ 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 16; i++) h = (h ^ key[i]) * 0x100000001b3ull; /* FNV-1a over a random basis */
  return &g->v[(h % g->nsets) * GUARD_WAYS];
}

static struct guard_slot *guard_find(struct guard_slot *set, const uint8_t key[16]) {
  for (int i = 0; i < GUARD_WAYS; i++)
    if (set[i].used && memcmp(set[i].addr, key, 16) == 0) return &set[i];
  return NULL;
}

uint64_t auth_guard_banned(struct auth_guard *g, const struct sockaddr *sa, uint64_t now_ms) {
  uint8_t key[16];
  if (!g || atomic_load_explicit(&g->used, memory_order_relaxed) == 0 || addr_key(g, sa, key) != 0) return 0;
  uint64_t left = 0;
  uv_mutex_lock(&g->lock);
  struct guard_slot *s = guard_find(guard_set(g, key), key);
  if (s && s->banned_until > now_ms) left = s->banned_until - now_ms;
  uv_mutex_unlock(&g->lock);
  return left;
}

int auth_guard_fail(struct auth_guard *g, const struct sockaddr *sa, uint64_t now_ms, uint64_t max,
                    uint64_t window_ms, uint64_t ban_ms) {
  uint8_t key[16];
  if (!g || max == 0 || addr_key(g, sa, key) != 0) return 0;
  int started = 0;
  uv_mutex_lock(&g->lock);
  struct guard_slot *set = guard_set(g, key), *s = guard_find(set, key);
  if (!s) {
    /* A free slot, else one whose state is over, else the unbanned one with the oldest window;
     * a set full of live bans keeps them (the newcomer is not counted). */
    struct guard_slot *victim = NULL;
    for (int i = 0; i < GUARD_WAYS && !victim; i++)
      if (!set[i].used || (set[i].banned_until <= now_ms && set[i].window_start + window_ms <= now_ms)) victim = &set[i];
    if (!victim)
      for (int i = 0; i < GUARD_WAYS; i++)
        if (set[i].banned_until <= now_ms && (!victim || set[i].window_start < victim->window_start)) victim = &set[i];
    if (victim) {
      if (!victim->used) atomic_fetch_add_explicit(&g->used, 1, memory_order_relaxed);
      memset(victim, 0, sizeof(*victim));
      memcpy(victim->addr, key, 16);
      victim->used = 1;
      victim->window_start = now_ms;
    }
    s = victim;
  }
  if (s && s->banned_until <= now_ms) {
    if (s->window_start + window_ms <= now_ms) {
      s->window_start = now_ms;
      s->failures = 0;
    }
    s->banned_until = 0;
    if (++s->failures >= max) {
      s->banned_until = now_ms + ban_ms;
      s->failures = 0;
      s->window_start = now_ms + ban_ms; /* counting starts again after the ban */
      started = 1;
    }
  }
  uv_mutex_unlock(&g->lock);
  return started;
}
