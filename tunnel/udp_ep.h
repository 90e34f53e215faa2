/* The connect-udp upstream endpoint (RFC 9298): a connected UDP socket whose tunnel-facing side
 * speaks the capsule byte stream. Upstream datagrams become DATAGRAM capsules (context 0) handed
 * to the tunnel; capsules written by the tunnel become datagrams. UDP has no backpressure: while
 * the client side is blocked, or the socket is full, datagrams are dropped and counted, never
 * queued. Ownership as for tcp_ep: self-owned, freed from its handle's close callback. */
#ifndef H2T_UDP_EP_H
#define H2T_UDP_EP_H

#include "src/authority.h"
#include "src/pxerr.h"
#include "tunnel/endpoint.h"

struct worker;
struct udp_ep;

typedef void (*udp_dial_cb)(void *arg, struct udp_ep *ep, enum pxerr err, const char *detail);

/* Resolves |target| under policy and connects a UDP socket. The callback runs later from the
 * loop; on failure |ep| is NULL and already freed. */
struct udp_ep *udp_ep_dial(struct worker *w, const struct authority *target, udp_dial_cb cb, void *arg);
void udp_ep_cancel(struct udp_ep *ep);
struct tun_ep *udp_ep_tun(struct udp_ep *ep);
const char *udp_ep_peer(const struct udp_ep *ep);

#endif
