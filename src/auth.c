/* Authentication machinery: verified-credentials cache, off-loop verification, failure guard
 * (see auth.h). */
#include "src/auth.h"

#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

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
  return c;
}

void auth_cache_free(struct auth_cache *c) {
  if (!c) return;
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

/* States: RUNNING (queued or hashing) -> the after-work callback calls back (or not, once
 * cancelled) and frees. |cancelled| is written and read on the loop thread only. */
struct auth_verify {
  uv_work_t work;                   /* work.data unused; container_of */
  struct auth_cache *cache;         /* borrowed: the worker's */
  const struct users *users;        /* borrowed */
  struct credentials cred;          /* owned copy, wiped before free */
  int result;                       /* written by the pool thread, read after it */
  int cancelled;
  auth_verify_cb cb;
  void *arg;
};

/* Hashing threads yield to the event loops: a burst of logins (bcrypt is CPU by design) must not
 * take the cores from tunnels already running. Linux nice is per thread; a pool thread lowers
 * its own priority once, the first time it hashes (the pool runs nothing else of ours). */
static void lower_priority_once(void) {
  static _Thread_local int lowered; /* per pool thread */
  if (lowered) return;
  lowered = 1;
  if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), AUTH_VERIFY_NICE) != 0) {
    /* Not fatal: the check still runs, only at the loops' priority. */
  }
}

static void verify_work(uv_work_t *req) {
  struct auth_verify *v = container_of(req, struct auth_verify, work);
  lower_priority_once();
  v->result = users_verify(v->users, v->cred.user, v->cred.pass, v->cred.pass_len);
}

static void verify_done(uv_work_t *req, int status) {
  struct auth_verify *v = container_of(req, struct auth_verify, work);
  v->cache->pending--;
  if (v->cache->metrics) METRIC_SUB(v->cache->metrics, auth_checks_pending, 1);
  if (!v->cancelled) {
    int r = status == 0 ? v->result : -ENOMEM;
    const struct users_entry *e = r == 0 ? users_find(v->users, v->cred.user) : NULL;
    v->cb(v->arg, r, e);
  }
  credentials_wipe(&v->cred);
  free(v);
}

struct auth_verify *auth_verify_start(uv_loop_t *loop, struct auth_cache *cache, const struct users *users,
                                      const struct credentials *cred, auth_verify_cb cb, void *arg) {
  struct auth_verify *v = xcalloc(1, sizeof(*v));
  v->cache = cache;
  v->users = users;
  v->cred = *cred;
  v->cb = cb;
  v->arg = arg;
  CHECK(uv_queue_work(loop, &v->work, verify_work, verify_done) == 0);
  cache->pending++;
  if (cache->metrics) METRIC_ADD(cache->metrics, auth_checks_pending, 1);
  return v;
}

void auth_verify_cancel(struct auth_verify *v) {
  v->cancelled = 1;
  v->cb = NULL;
  v->arg = NULL;
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
  struct guard_slot v[AUTH_GUARD_SLOTS];
};

struct auth_guard *auth_guard_new(void) {
  struct auth_guard *g = xcalloc(1, sizeof(*g));
  CHECK(uv_mutex_init(&g->lock) == 0);
  CHECK(RAND_bytes((unsigned char *)&g->seed, sizeof(g->seed)) == 1);
  return g;
}

void auth_guard_free(struct auth_guard *g) {
  if (!g) return;
  uv_mutex_destroy(&g->lock);
  free(g);
}

/* The address as 16 bytes (IPv4 mapped); -1 for an address family we do not count. */
static int addr_key(const struct sockaddr *sa, uint8_t out[16]) {
  if (sa->sa_family == AF_INET) {
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    return 0;
  }
  return -1;
}

static struct guard_slot *guard_set(struct auth_guard *g, const uint8_t key[16]) {
  uint64_t h = g->seed ^ 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 16; i++) h = (h ^ key[i]) * 0x100000001b3ull; /* FNV-1a over a random basis */
  return &g->v[(h % (AUTH_GUARD_SLOTS / GUARD_WAYS)) * GUARD_WAYS];
}

static struct guard_slot *guard_find(struct guard_slot *set, const uint8_t key[16]) {
  for (int i = 0; i < GUARD_WAYS; i++)
    if (set[i].used && memcmp(set[i].addr, key, 16) == 0) return &set[i];
  return NULL;
}

uint64_t auth_guard_banned(struct auth_guard *g, const struct sockaddr *sa, uint64_t now_ms) {
  uint8_t key[16];
  if (!g || atomic_load_explicit(&g->used, memory_order_relaxed) == 0 || addr_key(sa, key) != 0) return 0;
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
  if (!g || max == 0 || addr_key(sa, key) != 0) return 0;
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
