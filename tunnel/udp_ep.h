/* The connect-udp upstream endpoint (RFC 9298): a connected UDP socket whose tunnel-facing side
 * speaks the capsule byte stream. Upstream datagrams become DATAGRAM capsules (context 0) handed
 * to the tunnel; capsules written by the tunnel become datagrams. UDP has no backpressure: while
 * the client side is blocked, or the socket is full, datagrams are dropped and counted, never
 * queued. It does not resolve or choose the target: the request path (proxy/) connects the socket.
 * Ownership as for tcp_ep: self-owned, freed from its handle's close callback. */
#ifndef H2T_UDP_EP_H
#define H2T_UDP_EP_H

#include <sys/socket.h>
#include <uv.h>

#include "tunnel/endpoint.h"

struct worker;
struct udp_ep;

/* Wraps |connected| (taken: a uv_udp_t that is the start of its own heap allocation, initialised
 * and connected to |peer|; freed in its close callback). Sets the socket up for tunnelling:
 * don't-fragment on IPv4 (RFC 9298 §3.1) and large buffers. Reading starts with the tunnel. */
struct udp_ep *udp_ep_new(struct worker *w, uv_udp_t *connected, const struct sockaddr *peer);
/* Abandons an endpoint no tunnel has taken: the socket is closed, the memory goes after. */
void udp_ep_cancel(struct udp_ep *ep);
struct tun_ep *udp_ep_tun(struct udp_ep *ep);
const char *udp_ep_peer(const struct udp_ep *ep);

#endif
