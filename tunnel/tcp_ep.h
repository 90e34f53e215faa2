/* The upstream TCP endpoint: dials the target through proxy/dialer.h (port policy, DNS, address
 * policy, addresses raced as RFC 8305 describes, all within the connect timeout), optionally runs
 * a TLS client handshake, and then serves as a tunnel side.
 *
 * Ownership: a tcp_ep owns itself. Before the dial callback its owner may abandon it with
 * tcp_ep_cancel; after a successful dial the tunnel drives it through its ops, and once closed it
 * frees itself when its handles are closed (after flushing, unless aborted). */
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
/* Dial options: TLS to the upstream (certificate and name verified against the worker's client
 * context), with |verify_name| as SNI and expected name (NULL: the target host). */
struct tcp_dial_opts {
  int tls;
  const char *verify_name;
  int trusted; /* an operator-configured backend: the address policy does not apply */
};

/* tcp_ep_dial with options; with TLS the callback runs after the handshake has verified the
 * server (failures: PXERR_TLS_CERT, PXERR_TLS_PROTOCOL). */
struct tcp_ep *tcp_ep_dial2(struct worker *w, const struct authority *target,
                            const struct tcp_dial_opts *opts, tcp_dial_cb cb, void *arg);

/* Before a tunnel takes the endpoint, plaintext it reads goes to a pre-reader (to run an HTTP/1.1
 * upgrade handshake, say): |chunk| is taken; at EOF or on error |chunk| is NULL and |err| is
 * UV_EOF or the error. Reading is started and stopped with the endpoint ops. */
typedef void (*tcp_pre_read_cb)(void *arg, struct buf_chunk *chunk, int err);
void tcp_ep_set_pre_reader(struct tcp_ep *ep, tcp_pre_read_cb cb, void *arg);

/* Abandons the endpoint, in any state: a dial in progress stops and its callback will not run;
 * a connected socket is reset; nothing calls back afterwards. A second call before the loop runs
 * again is a no-op. The memory goes once the handles have closed. */
void tcp_ep_cancel(struct tcp_ep *ep);
/* The endpoint interface of a connected tcp_ep. */
struct tun_ep *tcp_ep_tun(struct tcp_ep *ep);
/* "addr:port" actually connected. */
const char *tcp_ep_peer(const struct tcp_ep *ep);

#endif
