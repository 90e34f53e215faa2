/* An accepted client connection: the TCP handle, TLS (or not), and the front end chosen once by
 * ALPN or, on cleartext listeners, by sniffing the HTTP/2 preface.
 *
 * Layers: the conn delivers plaintext chunks up to its front end (h1 or h2) through conn_fe_ops
 * and takes plaintext down through conn_write. Ownership: the worker owns every conn (w->conns);
 * a conn owns its TLS state, its output queue and its front end's state (fe_data), which it frees
 * through fe->on_close from its last handle's close callback. */
#ifndef H2T_CONN_H
#define H2T_CONN_H

#include <openssl/ssl.h>
#include <uv.h>

#include "src/buf.h"
#include "src/sockout.h"
#include "src/tls.h"
#include "src/worker.h"

struct conn;

/* The front end's side of the contract. Every op is non-NULL. Upcalls are made from loop
 * callbacks with the conn referenced, so a front end may call conn_close/conn_abort from inside. */
struct conn_fe_ops {
  /* Plaintext arrived; |chunk| is taken. Only while reading is enabled. */
  void (*on_read)(struct conn *c, struct buf_chunk *chunk);
  /* The client half-closed (TCP FIN or TLS close_notify). No more on_read. */
  void (*on_eof)(struct conn *c);
  /* I/O or TLS error, or reset by the peer; the conn is unusable (abort it). */
  void (*on_error)(struct conn *c, int err);
  /* Output queue fell to the low-water mark after a write completed. */
  void (*on_drain)(struct conn *c);
  /* The timer armed with conn_set_timer fired. */
  void (*on_timeout)(struct conn *c);
  /* The worker is stopping gracefully. */
  void (*on_stop)(struct conn *c);
  /* Last call: release fe_data. No conn function may be called from here. */
  void (*on_close)(struct conn *c);
};

struct conn {
  struct worker *w;               /* back-pointer: the owning worker */
  struct list link;               /* in w->conns */
  uv_tcp_t tcp;
  uv_timer_t timer;
  int handles;                    /* open libuv handles; the conn is freed when it reaches 0 */
  int refs;                       /* upcalls in progress; see conn_ref/conn_unref */
  SSL *ssl;                       /* owned; NULL on cleartext listeners */
  struct tls_io tio;              /* ciphertext for |ssl|; its output goes to |so| */
  struct sockout so;              /* bytes for the socket (ciphertext on TLS) */
  struct bufq pending;            /* plaintext read but not delivered: before the front end is
                                     chosen, or while it has reading stopped */
  uv_shutdown_t sreq;
  struct worker_defer flush;      /* end-of-turn flush / read pump */
  const struct conn_fe_ops *fe;   /* NULL until chosen */
  void *fe_data;                  /* owned through fe->on_close */
  const char *proto;              /* "h2", "http/1.1": static */
  char peer[64];                  /* "addr:port" of the client */
  unsigned tls : 1;
  unsigned handshake_done : 1;
  unsigned reading : 1;           /* the front end wants on_read */
  unsigned uv_reading : 1;
  unsigned eof : 1;               /* EOF seen from the client */
  unsigned eof_delivered : 1;
  unsigned lingering : 1;         /* closing: FIN sent, discarding input until EOF or timer */
  unsigned aborted : 1;
  unsigned want_shutdown : 1;     /* FIN requested, sent when output drains */
  unsigned shutdown_sent : 1;
  unsigned shutdown_done : 1;     /* the uv_shutdown completed (before or after closing began) */
  unsigned shutdown_failed : 1;
  unsigned closing : 1;           /* close requested: flush, then close handles */
  unsigned write_failed : 1;
  unsigned pump_pending : 1;      /* TLS plaintext may be pending inside OpenSSL */
};

/* Accepts a connection from |lst|. Errors are logged; the listener keeps going. */
void conn_accept(struct listener *lst);

/* Plaintext down: |chunk| is taken (encrypted on TLS conns). The bytes go out at the end of the
 * loop turn, coalesced with others. */
void conn_write(struct conn *c, struct buf_chunk *chunk);
/* Copies |len| bytes and queues them like conn_write. */
void conn_write_copy(struct conn *c, const void *data, size_t len);
/* Bytes queued and not yet written to the socket (ciphertext on TLS). */
size_t conn_queued(const struct conn *c);
/* Starts/stops delivering on_read. */
void conn_read_start(struct conn *c);
void conn_read_stop(struct conn *c);
/* Half-close: TLS close_notify and TCP FIN after queued bytes are written. */
void conn_shutdown(struct conn *c);
/* Graceful close: stop reading, write what is queued, then close. No upcalls after this call
 * except on_close. */
void conn_close(struct conn *c);
/* Hard close: TCP RST, queued bytes dropped. No upcalls after this call except on_close. */
void conn_abort(struct conn *c);
/* Arms (ms > 0) or stops (ms == 0) the conn's one timer; fires fe->on_timeout. */
void conn_set_timer(struct conn *c, uint64_t ms);
/* Worker stop: forwarded to the front end, or closes a conn still in its handshake. */
void conn_stop(struct conn *c);

void conn_ref(struct conn *c);
void conn_unref(struct conn *c);

#endif
