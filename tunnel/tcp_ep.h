/* The upstream TCP endpoint: wraps a connected socket (handed over by proxy/dialer.c), optionally
 * runs a TLS client handshake on it, and then serves as a tunnel side. It does not dial: finding
 * and connecting the target is the request path's (proxy/).
 *
 * Ownership: a tcp_ep owns itself and the socket it was given. Its owner may abandon it at any
 * time with tcp_ep_cancel; a tunnel drives it through its ops, and once closed it frees itself
 * when its handles are closed (after flushing, unless aborted). */
#ifndef H2T_TCP_EP_H
#define H2T_TCP_EP_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "src/pxerr.h"
#include "tunnel/endpoint.h"

struct worker;
struct tcp_ep;
struct buf_chunk;

/* Wraps |connected| (taken: a uv_tcp_t that is the start of its own heap allocation, as the
 * dialer hands it over; freed in its close callback). |peer| is the address it is connected to.
 * The endpoint is open at once (TCP_NODELAY set), with reading stopped. */
struct tcp_ep *tcp_ep_new(struct worker *w, uv_tcp_t *connected, const struct sockaddr *peer);

/* On success |ep| is the endpoint, verified, and |err| is PXERR_NONE; on failure |ep| is NULL
 * (the endpoint is closing and frees itself), |err| is PXERR_TLS_CERT, PXERR_TLS_PROTOCOL or
 * PXERR_CONN_TIMEOUT and |detail| a short static text. */
typedef void (*tcp_tls_cb)(void *arg, struct tcp_ep *ep, enum pxerr err, const char *detail);

/* Runs a TLS client handshake (the worker's client context) on a fresh open endpoint, with |name|
 * as SNI and the name to verify (a host name or an IP literal), within |timeout_ms|. The callback
 * runs later from the loop, never from inside this call. */
void tcp_ep_tls_start(struct tcp_ep *ep, const char *name, uint64_t timeout_ms, tcp_tls_cb cb, void *arg);

/* Before a tunnel takes the endpoint, plaintext it reads goes to a pre-reader (to run an HTTP/1.1
 * upgrade handshake, say): |chunk| is taken; at EOF or on error |chunk| is NULL and |err| is
 * UV_EOF or the error. Reading is started and stopped with the endpoint ops. */
typedef void (*tcp_pre_read_cb)(void *arg, struct buf_chunk *chunk, int err);
void tcp_ep_set_pre_reader(struct tcp_ep *ep, tcp_pre_read_cb cb, void *arg);

/* Abandons the endpoint, in any state: a handshake in progress stops and its callback will not
 * run; the socket is reset; nothing calls back afterwards. A second call is a no-op. The memory
 * goes once the handles have closed. */
void tcp_ep_cancel(struct tcp_ep *ep);
/* The endpoint interface. */
struct tun_ep *tcp_ep_tun(struct tcp_ep *ep);
/* "addr:port" connected to. */
const char *tcp_ep_peer(const struct tcp_ep *ep);
/* The same address. */
const struct sockaddr *tcp_ep_peer_addr(const struct tcp_ep *ep);

#endif
