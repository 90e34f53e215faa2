/* The only contract between the tunnel and its two sides (type-only header, embedded by value in
 * each side's owner: h1_conn, h2_stream, tcp_ep, udp_ep).
 *
 * Ops (tunnel -> endpoint), every op non-NULL:
 *   read_start / read_stop  deliver / stop delivering on_read. Only the tunnel calls them.
 *   write(chunk)            takes the chunk and queues it; never refuses for being full. The
 *                           endpoint keeps |queued| exact (bytes accepted, not yet on the wire, or
 *                           for h2: not yet handed to the connection).
 *   shutdown                half-close: FIN / close_notify / END_STREAM after queued bytes.
 *   abort                   reset: TCP RST / RST_STREAM(CONNECT_ERROR). Queued bytes are dropped.
 *   close                   detach: after it returns no upcall reaches the tunnel; the endpoint's
 *                           owner releases its resources on its own schedule.
 *
 * Upcalls (endpoint -> tunnel, functions in tunnel.h):
 *   tunnel_on_read(ep, chunk)  only while reading is enabled; the chunk is taken.
 *   tunnel_on_drain(ep)        |queued| fell to the low-water mark (or to 0).
 *   tunnel_on_eof(ep)          the peer half-closed; no more on_read.
 *   tunnel_on_error(ep, r)     the side is dead (reset, I/O error); r is a close reason.
 */
#ifndef H2T_TUNNEL_ENDPOINT_H
#define H2T_TUNNEL_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>

struct buf_chunk;
struct tun_ep;
struct tunnel;

struct tun_ep_ops {
  const char *kind; /* "h1", "h2", "tcp", "udp": for logs */
  void (*read_start)(struct tun_ep *self);
  void (*read_stop)(struct tun_ep *self);
  void (*write)(struct tun_ep *self, struct buf_chunk *c);
  void (*shutdown)(struct tun_ep *self);
  void (*abort)(struct tun_ep *self);
  void (*close)(struct tun_ep *self);
};

/* Datagram counters kept by a datagram endpoint (connect-udp), for the access log and metrics. */
struct tun_dgram_stats {
  uint64_t dgrams_sent, bytes_sent;         /* to the upstream */
  uint64_t dgrams_received, bytes_received; /* from the upstream */
  uint64_t drops_up;                        /* client datagrams dropped (socket full, bad context) */
  uint64_t drops_down;                      /* upstream datagrams dropped (client side blocked) */
};

struct tun_ep {
  const struct tun_ep_ops *ops;
  struct tunnel *tun;   /* back-pointer; NULL before attach and after close */
  size_t queued;        /* bytes accepted by write and not yet flushed; kept by the endpoint */
  uint64_t bytes_read;  /* bytes delivered through on_read */
  unsigned rd_eof : 1;  /* on_eof was delivered */
  unsigned wr_shut : 1; /* shutdown was called */
  unsigned aborted : 1; /* error/abort happened on this side */
  const struct tun_dgram_stats *dgram; /* borrowed from the endpoint; NULL for byte streams */
};

#endif
