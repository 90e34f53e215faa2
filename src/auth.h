/* Authentication machinery the request path uses (proxy/auth.c decides with it):
 *
 * - struct auth_cache, one per worker: credentials verified recently, keyed by an HMAC-SHA256 of
 *   the Proxy-Authorization value under a key drawn at random when the cache is made, so the
 *   table holds no password and its slots cannot be aimed at from outside. Bounded (|size|
 *   entries, 4-way buckets, the oldest replaced) and each entry trusted for |ttl_ms|. Lookups
 *   compare digests in constant time. Entries name a users_entry of one users snapshot; a lookup
 *   under another snapshot finds nothing (a reload flushes).
 * - struct auth_verify: one password check with libxcrypt on libuv's thread pool, so the loop
 *   never waits for a hash (bcrypt cost 10: ~50-80 ms). A burst of logins must not starve the
 *   loops: each worker runs at most max_running hashes at once (the rest wait in a FIFO),
 *   identical credentials in flight share one hash (single flight), and the hashing threads run
 *   at nice AUTH_VERIFY_NICE (or under SCHED_IDLE with |hash_idle|). Cancelling only detaches the caller: a
 *   running hash runs to its end and frees itself in its after-work callback (a request that went
 *   away meanwhile is never touched).
 * - struct auth_guard, one per process, shared by the workers under a mutex: failed attempts per
 *   client (its network under client-ipv4-prefix / client-ipv6-prefix) within a window, and bans.
 *   Lock-free when no client has failed at all. Bounded (auth-ban-slots clients, 8-way sets; one
 *   that is not banned is forgotten first when a set is full).
 *
 * Thread rules: a cache and its verifications belong to one worker's loop; the guard is
 * thread-safe. Times are loop times in milliseconds (uv_now: one monotonic clock for every loop). */
#ifndef H2T_AUTH_H
#define H2T_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "src/credentials.h"

struct metrics;
struct users;
struct users_entry;

#define AUTH_DIGEST_LEN 32
#define AUTH_VERIFY_NICE 10 /* the nice value of threads while they hash passwords */

/* ---- verified-credentials cache (per worker) ---- */

struct auth_cache_entry {
  uint8_t digest[AUTH_DIGEST_LEN];
  const struct users_entry *user; /* borrowed from |users| of the cache; NULL: empty slot */
  uint64_t expires_ms;
};

struct auth_cache {
  uint8_t key[32];                /* the HMAC key, random per cache */
  void *mac;                      /* owned EVP_MAC_CTX: HMAC-SHA256 keyed once, re-initialised
                                     per digest (a one-shot HMAC() fetches the algorithms again
                                     each time: ~4 us instead of ~1) */
  const struct users *users;      /* borrowed: the snapshot the entries belong to */
  struct auth_cache_entry *v;     /* owned: nbuckets * AUTH_CACHE_WAYS */
  size_t nbuckets;
  uint64_t ttl_ms;
  size_t pending;                 /* flights (hashes) queued or running for this worker */
  size_t running;                 /* flights on the thread pool */
  size_t max_running;             /* at most this many at once (auth-hash-concurrency) */
  int hash_idle;                  /* hash under SCHED_IDLE, not nice (auth-hash-idle) */
  struct auth_flight *flights;    /* owned: every flight queued or running, for single flight */
  struct auth_flight *queue, *queue_tail; /* the flights waiting for a slot, oldest first */
  struct metrics *metrics;        /* borrowed, may be NULL: the worker's (auth_checks_pending) */
};
#define AUTH_CACHE_WAYS 4

struct auth_flight;

/* A cache of about |size| entries (at least one bucket), each trusted for |ttl_ms|; one password
 * hash at a time (set |max_running| for more). */
struct auth_cache *auth_cache_new(size_t size, uint64_t ttl_ms);
void auth_cache_free(struct auth_cache *c);
/* Forgets every entry and the users file it was bound to (a reload: the next users file may be
 * allocated where a freed one was, so pointer identity alone cannot tell them apart). */
void auth_cache_reset(struct auth_cache *c);
/* The keyed digest of a header value. */
void auth_cache_digest(const struct auth_cache *c, const char *value, size_t len, uint8_t out[AUTH_DIGEST_LEN]);
/* The user whose credentials hash to |digest| under |users|, still fresh at |now_ms|; or NULL. */
const struct users_entry *auth_cache_get(struct auth_cache *c, const struct users *users,
                                         const uint8_t digest[AUTH_DIGEST_LEN], uint64_t now_ms);
void auth_cache_put(struct auth_cache *c, const struct users *users, const uint8_t digest[AUTH_DIGEST_LEN],
                    const struct users_entry *user, uint64_t now_ms);

/* ---- password verification off the loop ---- */

/* |result|: 0 (the password is right), -EACCES (wrong, or no such user), -EINVAL, -ENOMEM. */
typedef void (*auth_verify_cb)(void *arg, int result, const struct users_entry *user);

struct auth_verify;

/* Checks |cred| (copied; the caller wipes its own), whose header value has |digest|, against
 * |users| (borrowed: it must outlive the check, which the loop running until the work ends
 * guarantees for the worker's snapshot) on the thread pool of |loop|; |cb| is called from the
 * loop, unless cancelled. Single flight: a check of the same digest already queued or running is
 * joined, not repeated (auth_checks_shared counts that). At most |cache|->max_running hashes run
 * at once; the others wait in a FIFO. |cache|->pending counts the hashes queued or running. */
struct auth_verify *auth_verify_start(uv_loop_t *loop, struct auth_cache *cache, const struct users *users,
                                      const struct credentials *cred, const uint8_t digest[AUTH_DIGEST_LEN],
                                      auth_verify_cb cb, void *arg);
/* The caller is gone: |cb| will not be called. A hash nobody else waits for is dropped while
 * queued, or finishes and frees itself when already running. */
void auth_verify_cancel(struct auth_verify *v);

/* ---- failed attempts per client address (per process) ---- */

struct auth_guard;

/* A table of about |slots| clients (8-way sets), each counted as its /|v4_prefix| or /|v6_prefix|
 * network (access_client_key). */
struct auth_guard *auth_guard_new(size_t slots, unsigned v4_prefix, unsigned v6_prefix);
void auth_guard_free(struct auth_guard *g);
/* How long |sa|'s ban still lasts at |now_ms| (ms, rounded up; 0: not banned). */
uint64_t auth_guard_banned(struct auth_guard *g, const struct sockaddr *sa, uint64_t now_ms);
/* Counts a failed attempt of |sa|. With |max| failures (0: never) within |window_ms| the address
 * is banned for |ban_ms|: returns 1 when this failure started the ban (log it once), else 0. */
int auth_guard_fail(struct auth_guard *g, const struct sockaddr *sa, uint64_t now_ms, uint64_t max,
                    uint64_t window_ms, uint64_t ban_ms);

#endif
