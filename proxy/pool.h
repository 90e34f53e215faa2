/* Upstream HTTP/1.1 connections of forwarded requests, kept alive per worker in a pool keyed by
 * (host, port, TLS) (issue 11).
 *
 * fwd_pool_get hands out an idle connection of the key (a "hit"), or dials a new one through the
 * dialer, so the target policy, DNS and Happy Eyeballs apply as for tunnels (a "miss"), with TLS
 * verified against --upstream-ca or the system store for https. The caller runs one exchange on
 * it (proxy/fwd.c) and gives it back with fwd_up_release (reusable: idle again) or closes it.
 *
 * Bounds: at most --fwd-pool-per-origin idle connections per key (a release beyond it closes the
 * connection); at most --fwd-pool-max connections per worker, idle and busy (a new dial past it
 * first closes the oldest idle connection of any key; with none idle the request gets 503). An
 * idle connection is closed after --fwd-pool-idle, when the origin closes it or sends anything.
 *
 * Connection states (enum fwd_up_state):
 *   (dial or TLS done)  -> BUSY      owned by one exchange, whose ops get the upcalls
 *   BUSY  -> IDLE       fwd_up_release: in the pool's idle list; reads watch for EOF
 *   IDLE  -> BUSY       fwd_pool_get (a hit)
 *   BUSY  -> TUNNEL     fwd_up_tunnel: an upgraded exchange (FWD-14) hands the connection to a
 *                       tunnel as its upstream side; the tunnel's ops and upcalls from then on
 *   any   -> CLOSING    fwd_up_close / abort, idle timeout, EOF or bytes while idle, stop,
 *                       the tunnel's close or abort
 *   CLOSING -> (freed)  the transport's on_close
 *
 * Ownership: the pool (w->fwd_pool) owns every connection it made: it frees them when their
 * transport has closed. A BUSY connection is used by exactly one owner (|owner| with |ops|). */
#ifndef H2T_POOL_H
#define H2T_POOL_H

#include <uv.h>

#include "proxy/resolve.h"
#include "src/authority.h"
#include "src/pxerr.h"
#include "src/util.h"
#include "src/xport.h"
#include "tunnel/endpoint.h"

struct worker;
struct fwd_up;
struct fwd_get;

/* The owner's upcalls while BUSY (see xport_ops for when each comes). */
struct fwd_up_ops {
  void (*on_read)(void *owner, struct buf_chunk *chunk); /* taken */
  void (*on_eof)(void *owner);
  void (*on_error)(void *owner, int err);
  void (*on_drain)(void *owner);
  void (*on_timeout)(void *owner);
};

enum fwd_up_state { FWD_UP_CONNECTING, FWD_UP_BUSY, FWD_UP_IDLE, FWD_UP_TUNNEL, FWD_UP_CLOSING };

struct fwd_up {
  struct fwd_pool *pool;          /* back-pointer */
  struct list link;               /* in pool->idle while IDLE */
  uv_tcp_t *tcp;                  /* owned: from the dialer; freed after the transport closed */
  struct xport x;                 /* the byte stream to the origin (TLS for https) */
  enum fwd_up_state state;
  char key[AUTHORITY_FORMAT_MAX + 8]; /* "host:port" plus "/tls" for https */
  char peer[64];                  /* "addr:port" connected to */
  unsigned reused;                /* exchanges run before the current one */
  const struct fwd_up_ops *ops;   /* BUSY: the owner's */
  void *owner;
  struct fwd_get *pending;        /* CONNECTING (TLS): the get waiting for it */
  struct tun_ep ep;               /* TUNNEL: this connection as the tunnel's upstream side */
};

/* The result of fwd_pool_get: |up| BUSY (the caller's until it releases or closes it) with
 * |reused| set on a hit; or NULL with |err| and a static |detail|. */
typedef void (*fwd_get_cb)(void *arg, struct fwd_up *up, enum pxerr err, const char *detail);

/* Gets a connection to |dest| (TLS when |tls|). |check| judges each resolved address of a new
 * dial (NULL: none). The callback runs exactly once, always later from the loop, unless
 * fwd_get_cancel comes first. */
struct fwd_get *fwd_pool_get(struct worker *w, const struct authority *dest, int tls, resolve_check_cb check,
                             void *check_arg, fwd_get_cb cb, void *arg);
void fwd_get_cancel(struct fwd_get *g);

/* Makes |up| the connection of |owner| (upcalls through |ops|). */
void fwd_up_own(struct fwd_up *up, const struct fwd_up_ops *ops, void *owner);
/* The exchange on |up| ended cleanly and the connection may carry another: back to the pool
 * (or closed when the pool is full, stopping, or |up| has queued output). */
void fwd_up_release(struct fwd_up *up);
/* A BUSY connection becomes the upstream side of a tunnel (the owner lets go of it): the tunnel
 * drives it through the returned endpoint and closes it at its end. */
struct tun_ep *fwd_up_tunnel(struct fwd_up *up);
/* Ends |up|: graceful close (|abort| 0) or RST. No upcall follows. */
void fwd_up_close(struct fwd_up *up, int abort);

#endif
