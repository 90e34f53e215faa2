/* Reloading on SIGHUP: the configuration file, the htpasswd file and the certificates read again
 * into a new snapshot, handed to every worker on its own loop.
 *
 *   main thread   SIGHUP -> config_reload (the same command line: flags still override the
 *                 file) -> a new server SSL_CTX (cert, key, client CA) -> each worker's slot
 *                 (under the slot's mutex, taken only here and by that worker's async) ->
 *                 uv_async_send. A bad file, an unreadable htpasswd file or certificate: the
 *                 reload is refused with its FILE:LINE:COL (or OpenSSL's) error logged, counted
 *                 (h2tunnel_config_reloads_total{result="failed"}), and nothing changes.
 *   each worker   its async takes the slot's snapshot: worker_set_config (listeners added and
 *                 removed, the SSL_CTX for new handshakes, w->cfg), then the re-check of its live
 *                 tunnels (|recheck|: proxy/recheck.h, handed in by the composition root).
 * No lock is on the data path: a worker reads w->cfg on its own loop, and a request, connection
 * or tunnel holds its own snapshot (or copy) until it ends, so the last of them frees an old one.
 *
 * Not re-read (a warning names any that changed; restart to apply): workers, dns-server,
 * dns-timeout, access-log (a new path is opened by the next SIGUSR1), state-dir, auth cache-size and
 * cache-ttl, and the `limits` section (the counts of open tunnels carry over; the values stay
 * those of the start).
 *
 * Ownership: main owns the struct reload; it borrows the workers, which must outlive it. */
#ifndef H2T_RELOAD_H
#define H2T_RELOAD_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <uv.h>

struct config;
struct worker;

/* How main builds the server SSL_CTX for |cfg| (NULL with an error logged when it cannot), and how
 * a worker re-checks its tunnels (returns how many it closed). */
struct reload_ops {
  SSL_CTX *(*make_tls)(void *arg, const struct config *cfg);
  size_t (*recheck)(struct worker *w);
  void *arg;
};

struct reload;

/* Sets up a slot (an async handle on each worker's loop: call before the worker threads start)
 * and SIGHUP on |main_loop|. |*current| is main's reference to the snapshot in use, replaced by
 * each successful reload; |argc|, |argv| are read again each time. */
struct reload *reload_new(uv_loop_t *main_loop, struct worker *workers, int nworkers, struct config **current,
                          int argc, char **argv, const struct reload_ops *ops);
/* Reloads now, as SIGHUP does (main thread). Returns 0, or -EINVAL when refused. */
int reload_now(struct reload *r);
/* The stop began (main thread): SIGHUP is still caught but ignored from now on. */
void reload_stop(struct reload *r);
/* Closes the SIGHUP handle (main thread, once the workers have ended; run the main loop after it
 * for the close callback). */
void reload_close(struct reload *r);
/* After reload_close and the workers' loops ended. NULL is fine. */
void reload_free(struct reload *r);

#endif
