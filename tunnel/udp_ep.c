/* connect-udp upstream. Downstream datagrams are received straight into a pooled chunk at an
 * offset that leaves room for the capsule header, which is then written in front of the payload:
 * no copy. Upstream capsules are decoded incrementally and each context-0 payload is sent with
 * uv_udp_try_send on the connected socket. */
#include "tunnel/udp_ep.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "src/buf.h"
#include "src/log.h"
#include "src/net.h"
#include "src/worker.h"
#include "tunnel/capsule.h"
#include "tunnel/tunnel.h"

/* Room kept before a received payload: type (1) + length varint (<= 4) + context ID (1). */
#define UDP_HEADROOM 8
#define UDP_MAX_PAYLOAD (BUF_CHUNK_SIZE - UDP_HEADROOM)

struct udp_ep {
  struct tun_ep ep;              /* the tunnel's view of this side */
  struct worker *w;              /* back-pointer: the owning worker */
  uv_udp_t *udp;                 /* owned: connected; freed in its close callback */
  struct worker_defer defer;     /* EOF delivery after the client side ended */
  struct capsule_decoder dec;    /* capsules from the client */
  struct tun_dgram_stats stats;
  char peer[64];
  uint64_t turn;                 /* w->turn when turn_bytes was last reset */
  size_t turn_bytes;             /* bytes received in that turn, against --read-budget */
  unsigned reading : 1;          /* the tunnel accepts datagrams now */
  unsigned receiving : 1;        /* uv_udp_recv_start is active */
  unsigned detached : 1;
};

static const struct tun_ep_ops udp_ep_ops;

struct tun_ep *udp_ep_tun(struct udp_ep *u) { return &u->ep; }
const char *udp_ep_peer(const struct udp_ep *u) { return u->peer; }

static void on_closed(uv_handle_t *h) {
  struct udp_ep *u = h->data;
  free(h);
  worker_defer_cancel(&u->defer);
  capsule_decoder_free(&u->dec);
  free(u);
}

/* Closes the socket (once); the memory goes in its close callback. */
static void release(struct udp_ep *u) {
  if (!uv_is_closing((uv_handle_t *)u->udp)) uv_close((uv_handle_t *)u->udp, on_closed);
}

struct udp_ep *udp_ep_new(struct worker *w, uv_udp_t *connected, const struct sockaddr *peer) {
  struct udp_ep *u = xcalloc(1, sizeof(*u));
  u->w = w;
  u->ep.ops = &udp_ep_ops;
  u->ep.dgram = &u->stats;
  u->udp = connected;
  connected->data = u;
  list_init(&u->defer.link);
  capsule_decoder_init(&u->dec, 0);
  net_format_addr(peer, u->peer, sizeof(u->peer));
  /* Never cause IP fragmentation: DF on IPv4 (RFC 9298 §3.1, UDP-07). */
  uv_os_fd_t fd;
  int pmtu = IP_PMTUDISC_DO;
  if (peer->sa_family == AF_INET && uv_fileno((uv_handle_t *)connected, &fd) == 0)
    setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu));
  /* Room for bursts: datagrams that do not fit are lost before we can count them. */
  int size = 1 << 20;
  uv_recv_buffer_size((uv_handle_t *)connected, &size);
  size = 1 << 20;
  uv_send_buffer_size((uv_handle_t *)connected, &size);
  return u;
}

void udp_ep_cancel(struct udp_ep *u) {
  u->detached = 1;
  release(u);
}

/* ---- upstream -> tunnel ---- */

static void unreachable(struct udp_ep *u, int err) {
  log_info("udp %s: %s, closing the tunnel", u->peer, uv_strerror(err));
  if (u->ep.tun) tunnel_on_error(&u->ep, TUN_CLOSE_UPSTREAM_RST);
}

/* Fairness, as on the byte streams (src/xport.c): at most --read-budget bytes per loop turn, so
 * that a flooding peer cannot hold the worker while other tunnels wait. An empty buffer ends
 * libuv's receive loop with UV_ENOBUFS; the socket stays readable and the next turn goes on. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct udp_ep *u = h->data;
  struct worker *w = u->w;
  if (u->turn != w->turn) {
    u->turn = w->turn;
    u->turn_bytes = 0;
  }
  if (w->cfg->read_budget && u->turn_bytes >= w->cfg->read_budget) {
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  struct buf_chunk *c = buf_get(&w->pool);
  buf->base = c->data + UDP_HEADROOM;
  buf->len = UDP_MAX_PAYLOAD;
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags) {
  struct udp_ep *u = h->data;
  if (nread == UV_ENOBUFS && !buf->base) return; /* this turn's read budget is spent (on_alloc) */
  if (nread > 0) u->turn_bytes += (size_t)nread;
  struct buf_chunk *c = buf->base ? container_of(buf->base - UDP_HEADROOM, struct buf_chunk, data) : NULL;
  if (nread <= 0 || u->detached || !u->ep.tun) {
    buf_put(&u->w->pool, c);
    /* ICMP unreachable on the connected socket: the target is gone, and the stream with it
     * (RFC 9298 §3.1, checklist UDP-07). nread 0 just means nothing more to read now. */
    if (nread < 0 && !u->detached && u->ep.tun) unreachable(u, (int)nread);
    return;
  }
  if ((flags & UV_UDP_PARTIAL) || !u->reading) {
    /* Truncated, or the client side is blocked: drop, never queue. */
    u->stats.drops_down++;
    METRIC_ADD(&u->w->metrics, udp_drops, 1);
    buf_put(&u->w->pool, c);
    return;
  }
  uint8_t hdr[UDP_HEADROOM + 8];
  size_t hl = varint_encode(CAPSULE_TYPE_DATAGRAM, hdr);
  hl += varint_encode((uint64_t)nread + 1, hdr + hl);
  hdr[hl++] = 0; /* context ID 0 */
  c->off = (uint32_t)(UDP_HEADROOM - hl);
  memcpy(c->data + c->off, hdr, hl);
  c->len = (uint32_t)(hl + (size_t)nread);
  u->stats.dgrams_received++;
  u->stats.bytes_received += (uint64_t)nread;
  METRIC_ADD(&u->w->metrics, udp_dgrams_down, 1);
  tunnel_on_read(&u->ep, c);
}

static void ep_read_start(struct tun_ep *self) {
  struct udp_ep *u = container_of(self, struct udp_ep, ep);
  u->reading = 1;
  if (!u->receiving && !u->detached && uv_udp_recv_start(u->udp, on_alloc, on_recv) == 0) u->receiving = 1;
}

/* The socket keeps receiving so that drops are counted rather than left to the kernel. */
static void ep_read_stop(struct tun_ep *self) { container_of(self, struct udp_ep, ep)->reading = 0; }

/* ---- tunnel -> upstream ---- */

static void ep_write(struct tun_ep *self, struct buf_chunk *c) {
  struct udp_ep *u = container_of(self, struct udp_ep, ep);
  const uint8_t *p = (const uint8_t *)buf_rd(c);
  size_t len = c->len;
  for (;;) {
    const uint8_t *payload;
    size_t plen;
    uint64_t dropped = 0;
    enum capsule_event e = capsule_decode(&u->dec, &p, &len, &payload, &plen, &dropped);
    u->stats.drops_up += dropped;
    if (dropped) METRIC_ADD(&u->w->metrics, udp_drops, dropped);
    if (e == CAPSULE_NEED_MORE) break;
    if (e == CAPSULE_ERROR) {
      log_info("udp %s: malformed capsule from the client, ending the tunnel", u->peer);
      buf_put(&u->w->pool, c);
      if (u->ep.tun) tunnel_on_error(&u->ep, TUN_CLOSE_PROTOCOL_ERROR);
      return;
    }
    uv_buf_t b = uv_buf_init((char *)payload, (unsigned)plen);
    int r = uv_udp_try_send(u->udp, &b, 1, NULL);
    if (r >= 0) {
      u->stats.dgrams_sent++;
      u->stats.bytes_sent += plen;
      METRIC_ADD(&u->w->metrics, udp_dgrams_up, 1);
    } else if (r == UV_ECONNREFUSED || r == UV_EHOSTUNREACH || r == UV_ENETUNREACH) {
      /* An ICMP error reported on this send: the target is gone (UDP-07). */
      u->stats.drops_up++;
      METRIC_ADD(&u->w->metrics, udp_drops, 1);
      buf_put(&u->w->pool, c);
      unreachable(u, r);
      return;
    } else {
      /* EAGAIN (socket full): the datagram is lost, as on a wire. */
      u->stats.drops_up++;
      METRIC_ADD(&u->w->metrics, udp_drops, 1);
    }
  }
  buf_put(&u->w->pool, c);
}

static void on_eof_deferred(struct worker_defer *d) {
  struct udp_ep *u = container_of(d, struct udp_ep, defer);
  if (!u->ep.tun) return;
  if (!capsule_decoder_at_boundary(&u->dec)) {
    /* A capsule cut short by the end of the stream is malformed (RFC 9297 §3.3, UDP-06). */
    log_info("udp %s: truncated capsule at the end of the client's stream", u->peer);
    tunnel_on_error(&u->ep, TUN_CLOSE_PROTOCOL_ERROR);
    return;
  }
  tunnel_on_eof(&u->ep);
}

/* The client ended its side: UDP has no half-close, so the whole tunnel ends (RFC 9298 §3.5). */
static void ep_shutdown(struct tun_ep *self) {
  struct udp_ep *u = container_of(self, struct udp_ep, ep);
  u->defer.cb = on_eof_deferred;
  worker_defer(u->w, &u->defer);
}

static void ep_abort(struct tun_ep *self) { (void)self; }

static void ep_close(struct tun_ep *self) {
  struct udp_ep *u = container_of(self, struct udp_ep, ep);
  u->detached = 1;
  u->reading = 0;
  release(u);
}

static const struct tun_ep_ops udp_ep_ops = {
    .kind = "udp",
    .read_start = ep_read_start,
    .read_stop = ep_read_stop,
    .write = ep_write,
    .shutdown = ep_shutdown,
    .abort = ep_abort,
    .close = ep_close,
};
