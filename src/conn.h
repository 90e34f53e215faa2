/* An accepted client connection: the socket and its byte-stream transport (src/xport.h, TLS or
 * not), and the front end chosen once, through the front-end table (src/frontend.h), by ALPN or,
 * on cleartext, by sniffing the HTTP/2 preface. The first byte says whether the client speaks TLS
 * (0x16) whatever the listener: TLS is served on cleartext listeners too, and plaintext HTTP on a
 * TLS listener gets a plaintext 400 that says so.
 *
 * Layers: the conn delivers plaintext chunks up to its front end (h1 or h2) through conn_fe_ops
 * and takes plaintext down through conn_write. Ownership: the worker owns every conn (w->conns);
 * a conn owns its transport (which owns TLS state and output queue) and its front end's state
 * (fe_data), which it frees through fe->on_close once the transport has closed. */
#ifndef H2T_CONN_H
#define H2T_CONN_H

#include <uv.h>

#include "src/buf.h"
#include "src/worker.h"
#include "src/xport.h"

struct conn;

/* How far a connection has got before a front end owns it; the transitions are in conn.c. */
enum conn_phase {
  CONN_PROXY_HDR,     /* a ?proxy-protocol listener: the PROXY header (trusted source), or bytes
                         enough to see there is none (anyone else) */
  CONN_PEEK,          /* nothing read yet: the first byte tells TLS from plaintext */
  CONN_TLS_HELLO,     /* TLS: collecting the first record (the ClientHello); no SSL object yet */
  CONN_TLS_HANDSHAKE, /* TLS: OpenSSL is handshaking */
  CONN_SNIFF,         /* cleartext: not yet enough bytes to tell the h2 preface from h1 */
  CONN_OPEN,          /* a front end owns the connection */
};

/* The front end's side of the contract. Every op is non-NULL. Upcalls come from loop callbacks,
 * never from inside a conn_* call, and the conn is freed only after on_close, so a front end may
 * call conn_close/conn_abort from inside any upcall. */
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
  /* Last call, once the socket is closed: release fe_data. Conn functions called from here
   * (directly, or through a tunnel the front end ends) do nothing. */
  void (*on_close)(struct conn *c);
};

struct conn {
  struct worker *w;               /* back-pointer: the owning worker */
  struct list link;               /* in w->conns */
  struct list hs_link;            /* in w->handshakes while phase < CONN_OPEN and not closing */
  enum conn_phase phase;
  uint64_t accepted_ms;           /* loop time of the accept (the age of a handshake) */
  uv_tcp_t tcp;                   /* the client socket, run by |x| */
  struct xport x;                 /* the byte stream (TLS or not); its on_close frees the conn */
  struct bufq held;               /* before a front end: the first TLS record (TLS_HELLO) or the
                                     plaintext sniffed so far (SNIFF); chunks owned */
  const struct conn_fe_ops *fe;   /* NULL until chosen */
  void *fe_data;                  /* owned through fe->on_close */
  const struct config_listener *listener; /* &|listener_copy| */
  struct config_listener listener_copy; /* the listener it was accepted on, as configured then: a
                                           copy, so that a reload may free that snapshot */
  struct sockaddr_storage peer_addr; /* the client: the socket's peer, or the address a trusted
                                     PROXY protocol header carried */
  char peer[64];                  /* "addr:port" of |peer_addr| */
  unsigned tls_listener : 1;      /* accepted on a tls:// listener */
  unsigned pp_trusted : 1;        /* CONN_PROXY_HDR: the source is in proxy-protocol-from */
  unsigned closing : 1;           /* conn_close or conn_abort was called: no upcall to the front
                                     end but on_close from now on */
};

/* The worker's ops for client connections (accept, stop, the drain deadline), given to every
 * worker by the composition root (src/main.c). */
extern const struct worker_conn_ops conn_worker_ops;

/* Plaintext down: |chunk| is taken (encrypted on TLS conns). The bytes go out at the end of the
 * loop turn, coalesced with others. */
void conn_write(struct conn *c, struct buf_chunk *chunk);
/* Copies |len| bytes and queues them like conn_write. */
void conn_write_copy(struct conn *c, const void *data, size_t len);
/* Bytes queued and not yet written to the socket (ciphertext on TLS). */
static inline size_t conn_queued(const struct conn *c) { return xport_queued(&c->x); }
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
/* Whether the client speaks TLS to us (front ends size their writes to TLS records). */
static inline int conn_is_tls(const struct conn *c) { return c->x.tls != XPORT_TLS_NONE; }

#endif
