/* An accepted client connection: the TCP handle, TLS (or not), and the front end chosen once by
 * ALPN or, on cleartext, by sniffing the HTTP/2 preface. The first byte says whether the client
 * speaks TLS (0x16) whatever the listener: TLS is served on cleartext listeners too, and plaintext
 * HTTP on a TLS listener gets a plaintext 400 that says so.
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

/* How far a connection has got before a front end owns it; the transitions are in conn.c. */
enum conn_phase {
  CONN_PEEK,          /* nothing read yet: the first byte tells TLS from plaintext */
  CONN_TLS_HELLO,     /* TLS: collecting the first record (the ClientHello); no SSL object yet */
  CONN_TLS_HANDSHAKE, /* TLS: OpenSSL is handshaking */
  CONN_SNIFF,         /* cleartext: not yet enough bytes to tell the h2 preface from h1 */
  CONN_OPEN,          /* a front end owns the connection */
};

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
  struct list hs_link;            /* in w->handshakes while phase < CONN_OPEN and not closing */
  enum conn_phase phase;
  uint64_t accepted_ms;           /* loop time of the accept (the age of a handshake) */
  uint64_t turn;                  /* w->turn when turn_bytes was last reset */
  size_t turn_bytes;              /* bytes read in that turn, against cfg->read_budget */
  uv_tcp_t tcp;
  uv_timer_t timer;
  int handles;                    /* open libuv handles; the conn is freed when it reaches 0 */
  int refs;                       /* upcalls in progress; see conn_ref/conn_unref */
  SSL *ssl;                       /* owned; NULL until the first TLS record is complete, and on
                                     cleartext connections */
  struct tls_io tio;              /* ciphertext for |ssl| (before it exists: the first record);
                                     its output goes to |so| */
  struct sockout so;              /* bytes for the socket (ciphertext on TLS) */
  struct bufq pending;            /* plaintext read but not delivered: before the front end is
                                     chosen, or while it has reading stopped */
  uv_shutdown_t sreq;
  struct worker_defer flush;      /* end-of-turn flush / read pump */
  const struct conn_fe_ops *fe;   /* NULL until chosen */
  void *fe_data;                  /* owned through fe->on_close */
  const char *proto;              /* "h2", "http/1.1": static */
  const struct config_listener *listener; /* borrowed: the listener it was accepted on */
  char peer[64];                  /* "addr:port" of the client */
  unsigned tls_listener : 1;      /* accepted on a tls:// listener */
  unsigned reading : 1;           /* the front end wants on_read */
  unsigned uv_reading : 1;
  unsigned eof : 1;               /* EOF seen from the client */
  unsigned eof_delivered : 1;
  unsigned lingering : 1;         /* closing: FIN sent, discarding input until EOF or timer */
  unsigned aborted : 1;
  unsigned handles_closing : 1;   /* uv_close called on both handles */
  unsigned want_shutdown : 1;     /* FIN requested, sent when output drains */
  unsigned shutdown_sent : 1;
  unsigned shutdown_done : 1;     /* the FIN's uv_shutdown completed */
  unsigned closing : 1;           /* close requested: flush, then close handles */
  unsigned write_failed : 1;
  unsigned pump_pending : 1;      /* TLS plaintext may be pending inside OpenSSL */
};

/* Takes the connection |fd| (non-blocking, just accepted on |lst|; owned from here on). Over
 * --max-connections or --max-handshakes the oldest handshake is closed to make room; with none to
 * close, |fd| is refused (closed with a log line). Errors are logged; the listener keeps going. */
void conn_accept(struct listener *lst, uv_os_sock_t fd);

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
