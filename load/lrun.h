/* One load-generating thread: its own libuv loop, connections to the proxy, tunnels and stats.
 *
 * A connection (struct lconn, private) is TCP, then optionally TLS through memory BIOs, then
 * HTTP/1.1 (one CONNECT tunnel per connection) or HTTP/2 (-m CONNECT streams, each a tunnel, a
 * finished stream's slot reused for the next tunnel). Each tunnel (struct ltun, private) runs the
 * workload of --mode and ends with FIN / END_STREAM, never RST, unless it failed. */
#ifndef LOAD_LRUN_H
#define LOAD_LRUN_H

#include <stdint.h>

#include <openssl/ssl.h>

struct load_opts;
struct lstats;
struct lrun;

/* Called once before any run: fills the constant payload and checks libraries. */
void lrun_global_init(void);
/* A client SSL_CTX for |o| (ALPN, verification), or NULL after printing why. Shared by threads. */
SSL_CTX *lrun_ssl_ctx_new(const struct load_opts *o);

/* Creates the run for thread |index|, with |conns| connections and a budget of |budget| units
 * (tunnels, round trips or datagrams by mode; UINT64_MAX = unbounded). |ctx| is borrowed (may be
 * NULL without TLS). |on_done| is called on the run's thread when it has finished. */
struct lrun *lrun_new(const struct load_opts *o, SSL_CTX *ctx, int index, int conns,
                      uint64_t budget, void (*on_done)(void *arg), void *arg);
/* Starts the run's thread. Returns 0 or a negative errno. */
int lrun_start(struct lrun *r);
/* Thread-safe: ends the run as soon as possible (tunnels in progress are counted as cut). */
void lrun_stop(struct lrun *r);
void lrun_join(struct lrun *r);
/* The run's counters; the atomics may be read while it runs, the rest after lrun_join. */
struct lstats *lrun_stats(struct lrun *r);
/* hrtime (ns) at which the run started and ended (end is 0 while it runs). */
uint64_t lrun_t_start(const struct lrun *r);
uint64_t lrun_t_end(const struct lrun *r);
/* Why the run stopped early ("" when it ran to its bound). */
const char *lrun_stop_reason(const struct lrun *r);
void lrun_free(struct lrun *r);

#endif
