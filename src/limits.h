/* Limits at run time: the `limits` section of the access model (access.h) enforced, and the
 * counters that make rules and limits visible. One `struct limits` per process, shared by every
 * worker thread: per-scope state lives in entries (the instance, one per user, one per client
 * address) whose counters and buckets are atomics, so no lock is taken per byte; the tables that
 * find an entry by name take a mutex once per tunnel open and close.
 *
 * Rates are GCRA (the virtual-scheduling form of a token bucket): a bucket is one atomic
 * "theoretical arrival time" in nanoseconds of the monotonic clock (uv_hrtime). A new tunnel
 * costs one period/count; it is refused when the bucket would run more than |burst| ahead of now.
 * Bandwidth is charged after the bytes were read (a debt): the charge returns how long the
 * reader must pause so that the bytes read so far stay within rate * time + a small burst. The
 * caller pauses by not reading (backpressure); nothing is buffered here.
 *
 * Scopes: a user's own block (or limits.default) applies to each authenticated user on their own;
 * anonymous requests have no user scope. per-client applies to each client address, instance to
 * the whole process. A tunnel's own bandwidth (tunnel-bandwidth) is the smallest the scopes give.
 *
 * Ownership: limits_new borrows |a| (the config snapshot outlives it) and owns its entries. A
 * ticket (one admitted tunnel's hold on its scopes) is owned by the request, then by the tunnel,
 * and gives everything back in lim_ticket_release. */
#ifndef H2T_LIMITS_H
#define H2T_LIMITS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "src/strbuf.h"

struct access;
struct access_limits;
struct limits;
struct lim_entry;

/* Why a new tunnel was refused: the /metrics label and the Proxy-Status details. */
#define LIM_KIND_MAP(XX)                                                                         \
  XX(USER_TUNNELS, "user_tunnels", "too many tunnels for this user")                             \
  XX(USER_RATE, "user_rate", "too many new tunnels per second for this user")                    \
  XX(CLIENT_TUNNELS, "client_tunnels", "too many tunnels from this client")                      \
  XX(CLIENT_RATE, "client_rate", "too many new tunnels per second from this client")             \
  XX(INSTANCE_TUNNELS, "instance_tunnels", "too many tunnels on this proxy")                     \
  XX(INSTANCE_RATE, "instance_rate", "too many new tunnels per second on this proxy")

enum lim_kind {
#define XX(n, s, d) LIM_##n,
  LIM_KIND_MAP(XX)
#undef XX
      LIM_KIND_COUNT
};
const char *lim_kind_name(enum lim_kind k);
const char *lim_kind_detail(enum lim_kind k);

enum lim_scope { LIM_SCOPE_INSTANCE, LIM_SCOPE_USER, LIM_SCOPE_CLIENT, LIM_SCOPE_COUNT };
enum lim_dir { LIM_UP, LIM_DOWN }; /* up: client to target; down: target to client */

/* One admitted tunnel's hold on its scopes. */
struct lim_ticket {
  struct limits *l;                       /* borrowed */
  struct lim_entry *e[LIM_SCOPE_COUNT];   /* referenced, counted as active; NULL: scope n/a */
  uint64_t tunnel_bw[2];                  /* bytes/s each way for this tunnel alone; 0: none */
  uint64_t tat[2];                        /* this tunnel's own buckets (one thread: plain) */
  int bw;                                 /* some bandwidth limit applies */
  int metered;                            /* reads must be charged: |bw|, or a user whose bytes
                                             /metrics shows */
  int limited;                            /* a bandwidth limit has held the tunnel back */
};

/* The runtime state for access model |a|. Never NULL. */
struct limits *limits_new(const struct access *a);
void limits_free(struct limits *l);

/* Admits a new tunnel of |user| (NULL: anonymous) from |client| (NULL or AF_UNSPEC: unknown) at
 * |now_ns|. Returns 0 with *|out| set (NULL when nothing needs tracking), or -1 with *|kind| and
 * *|retry_after_s| (at least 1) set: nothing is held then. */
int limits_admit(struct limits *l, const char *user, const struct sockaddr *client, uint64_t now_ns,
                 struct lim_ticket **out, enum lim_kind *kind, uint64_t *retry_after_s);
/* Gives back what |t| holds (the active counts) and frees it. NULL is fine. */
void lim_ticket_release(struct lim_ticket *t);
/* Charges |n| bytes read in direction |d| at |now_ns| to every bucket of |t|. Returns how many
 * nanoseconds the reader must pause before reading more in |d| (0: go on). */
uint64_t lim_ticket_charge(struct lim_ticket *t, enum lim_dir d, size_t n, uint64_t now_ns);

/* Counters: a rule's denials (|rule| is its index in |a|; when |a| is a reloaded snapshot's
 * model, the rule of the same name in the one limits_new was given is counted, a rule new since
 * then is not), a refusal by limit. */
void limits_count_denial(struct limits *l, const struct access *a, size_t rule);
void limits_count_refusal(struct limits *l, enum lim_kind k);
/* Appends the Prometheus text for denials by rule, refusals by kind, and active tunnels and bytes
 * of each user the configuration names. */
void limits_render(const struct limits *l, struct strbuf *sb);

/* The active tunnels of |user| (0 when unknown) and of |client|: for tests and metrics. */
uint64_t limits_user_active(struct limits *l, const char *user);
uint64_t limits_client_active(struct limits *l, const struct sockaddr *client);
uint64_t limits_instance_active(const struct limits *l);

/* GCRA, exposed for unit tests. A bucket of |count| per |period_ns| with |burst| (>= 1): 0 and
 * the bucket advanced when one more fits at |now_ns|, or -1 with *|wait_ns| until it would. */
int lim_gcra_take(_Atomic uint64_t *tat, uint64_t count, uint64_t period_ns, uint64_t burst, uint64_t now_ns,
                  uint64_t *wait_ns);
/* Charges |n| bytes to a bucket of |rate| bytes/s that tolerates |burst_ns| of advance; returns
 * the pause owed (0: none). */
uint64_t lim_gcra_charge(_Atomic uint64_t *tat, uint64_t rate, uint64_t burst_ns, size_t n, uint64_t now_ns);

#endif
