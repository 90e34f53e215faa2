/* The byte-stream transport: one TCP socket with optional TLS, as a stream of plaintext chunks.
 * It runs under an accepted client connection (src/conn.c, TLS as the server) and under the
 * upstream TCP endpoint (tunnel/tcp_ep.c, TLS as the client). It knows no HTTP and nothing of its
 * owner but the upcalls below.
 *
 * A client-side user (an upstream endpoint, a connection pool) dials first and wraps the
 * connected socket after: proxy/dialer.c hands over a connected uv_tcp_t; xport_init on it; for
 * TLS, xport_tls_connect (the worker's client context verifies the name) with a deadline on the
 * owner's timer (xport_set_timer), and on_handshake says how it ended; then xport_read_start and
 * xport_write. See tunnel/tcp_ep.c for the whole of it in about 250 lines.
 *
 *   read path   socket -> [TLS decrypt] -> ops->on_read, at most |read_budget| bytes per loop turn
 *   write path  xport_write -> [TLS encrypt] -> sockout queue -> once per loop turn a write(2)
 *               of what the socket takes at once, a uv_write for the rest
 *
 * Ownership: embedded by value in its owner, who provides the uv_tcp_t (initialised, open or
 * about to be opened) and keeps its storage until on_close. The xport owns the SSL object, the
 * queues and its timer; it closes the socket and the timer and counts them, and on_close, called
 * from the last close callback, tells the owner it may free both. */
#ifndef H2T_XPORT_H
#define H2T_XPORT_H

#include <openssl/ssl.h>
#include <uv.h>

#include "src/buf.h"
#include "src/sockout.h"
#include "src/tls.h"
#include "src/worker.h"

struct xport;

/* The owner's side. Every op is non-NULL. Upcalls come only from loop callbacks, never from
 * inside an xport_* call, so an owner may call any xport function (close and abort included)
 * from an upcall. After xport_close or xport_abort the only upcall left is on_close. */
struct xport_ops {
  /* Plaintext arrived; |chunk| is taken. Only while reading is started. */
  void (*on_read)(struct xport *x, struct buf_chunk *chunk);
  /* The peer half-closed (TCP FIN, or TLS close_notify), after the last on_read. */
  void (*on_eof)(struct xport *x);
  /* The stream failed (read or write error, reset by the peer, TLS error: UV_EPROTO, see
   * xport_tls_error). If the owner neither closes nor aborts here, the xport aborts itself. */
  void (*on_error)(struct xport *x, int err);
  /* Queued bytes fell to |low_water| after a write completed. */
  void (*on_drain)(struct xport *x);
  /* The TLS handshake ended: 0 (established), UV_EPROTO (refused or failed: xport_tls_error,
   * and on a client SSL_get_verify_result(x->ssl)), UV_EOF (the peer closed), or a socket error.
   * After a failure the owner closes (xport_close sends the alert OpenSSL queued) or aborts. */
  void (*on_handshake)(struct xport *x, int status);
  /* The timer armed with xport_set_timer fired. */
  void (*on_timeout)(struct xport *x);
  /* Last: the socket and the timer are closed; the owner may free the xport and the uv_tcp_t. */
  void (*on_close)(struct xport *x);
};

struct xport_opts {
  size_t read_budget;        /* bytes read per loop turn at most, then the other streams get a
                                turn (0: no bound beyond libuv's) */
  size_t low_water;          /* on_drain when queued bytes fall to this */
  uint64_t close_timeout_ms; /* xport_close: flushing may take this long, then the socket closes */
  uint64_t linger_ms;        /* after our FIN: input is read and discarded this long waiting for
                                the peer's FIN, so that unread input does not turn our last bytes
                                into an RST (RFC 9112 §9.6); 0: close at once */
};

/* Lifecycle; transitions in xport.c. */
enum xport_state {
  XPORT_OPEN,    /* the owner's: reads, writes, its timer */
  XPORT_CLOSING, /* xport_close: writing what is queued, then close_notify and FIN */
  XPORT_LINGER,  /* FIN done: discarding input until the peer's FIN or |linger_ms| */
  XPORT_CLOSED,  /* handles closing; on_close from the last close callback */
};

enum xport_tls {
  XPORT_TLS_NONE,      /* cleartext */
  XPORT_TLS_HANDSHAKE, /* reading regardless of the owner until on_handshake */
  XPORT_TLS_ON,        /* established */
  XPORT_TLS_FAILED,    /* the handshake failed; only the alert is left to send */
};

/* The read side, which ends independently of the write side. */
enum xport_rd {
  XPORT_RD_OPEN,
  XPORT_RD_EOF,           /* the socket hit EOF (or failed); plaintext may still wait */
  XPORT_RD_EOF_DELIVERED, /* on_eof was called */
};

/* The write side, in the order it moves; a failure can come at any point. */
enum xport_wr {
  XPORT_WR_OPEN,        /* writing */
  XPORT_WR_SHUT_WANTED, /* shutdown asked for: bytes written until the next flush still go first */
  XPORT_WR_NOTIFY_SENT, /* the queue was empty: close_notify queued (TLS); the FIN follows it */
  XPORT_WR_FIN_SENT,    /* uv_shutdown issued */
  XPORT_WR_FIN_DONE,    /* its callback ran */
  XPORT_WR_FAILED,      /* a write failed; the queue was dropped, nothing more is written */
};

struct xport {
  struct worker *w;              /* back-pointer: loop, buffer pool, deferred work, loop turns */
  const struct xport_ops *ops;   /* the owner's (static) */
  struct xport_opts opts;
  uv_tcp_t *tcp;                 /* borrowed storage (the owner's); opened by the owner, read,
                                    written and closed here; tcp->data points back here */
  uv_timer_t timer;              /* the owner's while OPEN; then the close and linger bounds */
  int handles;                   /* open libuv handles (|tcp|, |timer|); on_close at 0 */
  enum xport_state state;
  enum xport_tls tls;
  enum xport_rd rd;
  enum xport_wr wr;
  SSL *ssl;                      /* owned; NULL on cleartext */
  struct tls_io tio;             /* ciphertext in (chunks owned); out goes to |so| */
  struct sockout so;             /* bytes for the socket (ciphertext on TLS) */
  struct bufq pending;           /* plaintext not yet delivered: given back with xport_unread, or
                                    read while delivery was stopped; chunks owned */
  uv_shutdown_t sreq;
  struct worker_defer defer;     /* end-of-turn flush, deferred reads and handshake steps */
  uint64_t turn;                 /* w->turn when turn_bytes was last reset */
  size_t turn_bytes;             /* bytes read in that turn, against opts.read_budget */
  unsigned long tls_err;         /* the OpenSSL error behind the last UV_EPROTO, or 0 */
  int err_pending;               /* a failure to report from the loop (a TLS write error) */
  unsigned reading : 1;          /* the owner wants on_read */
  unsigned uv_reading : 1;       /* libuv is reading the socket (see update_reads) */
  unsigned small_reads : 1;      /* read into small blocks (cheap handshakes) */
  unsigned step_pending : 1;     /* |defer| runs a delivery or handshake step before flushing */
  unsigned drain_pending : 1;    /* written at once (no on_write): |defer| reports on_drain */
  unsigned in_defer : 1;         /* inside |defer|'s callback, which reports drain_pending itself */
};

/* Sets up |x| over |tcp| (uv_tcp_init done; its data pointer is taken over). Nothing is read
 * until xport_read_start (or a TLS handshake). |ops| is borrowed and must be static. */
void xport_init(struct xport *x, struct worker *w, uv_tcp_t *tcp, const struct xport_ops *ops,
                const struct xport_opts *opts);

/* TLS as the server: |received| holds ciphertext read so far (moved in, may be empty). The
 * handshake runs from the loop; on_handshake says how it ended. */
void xport_tls_accept(struct xport *x, SSL_CTX *ctx, struct bufq *received);
/* TLS as the client, verifying the server against |ctx|'s trust and |name| (a host name, also
 * sent as SNI, or an IP literal). Returns 0, or UV_EINVAL when |name| cannot be verified. */
int xport_tls_connect(struct xport *x, SSL_CTX *ctx, const char *name);
/* Describes the OpenSSL error behind the last UV_EPROTO for a log line. */
const char *xport_tls_error(const struct xport *x, char *buf, size_t cap);

/* Starts/stops on_read. Plaintext that waits already is delivered from the loop. */
void xport_read_start(struct xport *x);
void xport_read_stop(struct xport *x);
/* Gives back plaintext (all of |q|, moved) to be delivered again before anything read later; an
 * EOF already delivered is delivered again after it. */
void xport_unread(struct xport *x, struct bufq *q);
/* Reads go into small blocks while |on| (a connection that has sent nothing costs 2 KiB). */
void xport_set_small_reads(struct xport *x, int on);

/* Plaintext down: |chunk| is taken (encrypted at once on TLS) and written at the end of the loop
 * turn, coalesced with others. Dropped after shutdown has gone out, after a failure, or closed. */
void xport_write(struct xport *x, struct buf_chunk *chunk);
/* Copies |len| bytes and writes them like xport_write. */
void xport_write_copy(struct xport *x, const void *data, size_t len);
/* Bytes accepted by xport_write and not yet written to the socket (ciphertext on TLS). */
static inline size_t xport_queued(const struct xport *x) { return sockout_queued(&x->so); }
/* Half-close: after what is queued, close_notify (TLS) and FIN. Reading goes on. */
void xport_shutdown(struct xport *x);
/* Graceful close: stop reading, write what is queued, close_notify and FIN, linger, close. */
void xport_close(struct xport *x);
/* Hard close: queued bytes dropped, RST unless our FIN went out already. */
void xport_abort(struct xport *x);
/* Arms (ms > 0) or stops (ms == 0) the owner's timer (on_timeout). Only while OPEN. */
void xport_set_timer(struct xport *x, uint64_t ms);

#endif
