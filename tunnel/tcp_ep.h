/* The upstream TCP endpoint: resolves the target, applies the address policy to every resolved
 * address, connects (trying the allowed addresses in order within the connect timeout), and then
 * serves as a tunnel side.
 *
 * Ownership: a tcp_ep owns itself. Before the dial callback it is cancelled with tcp_ep_cancel;
 * after a successful dial the tunnel drives it through its ops, and once closed it frees itself
 * when its handles are closed (after flushing, unless aborted). */
#ifndef H2T_TCP_EP_H
#define H2T_TCP_EP_H

#include "src/authority.h"
#include "src/pxerr.h"
#include "tunnel/endpoint.h"

struct worker;
struct tcp_ep;

/* On success |ep| is connected and |err| is PXERR_NONE; on failure |ep| is NULL (already freed),
 * |err| says why and |detail| is a short static text for Proxy-Status details and logs. */
typedef void (*tcp_dial_cb)(void *arg, struct tcp_ep *ep, enum pxerr err, const char *detail);

/* Starts dialing |target| (port policy, DNS, address policy, connect). The callback always runs
 * later from the loop, never inside this call. */
struct tcp_ep *tcp_ep_dial(struct worker *w, const struct authority *target, tcp_dial_cb cb,
                           void *arg);
/* Abandons a dial in progress; the callback will not run. */
void tcp_ep_cancel(struct tcp_ep *ep);
/* The endpoint interface of a connected tcp_ep. */
struct tun_ep *tcp_ep_tun(struct tcp_ep *ep);
/* "addr:port" actually connected. */
const char *tcp_ep_peer(const struct tcp_ep *ep);

#endif
