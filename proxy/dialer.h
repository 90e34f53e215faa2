/* The dialer: turns a target (host:port) into one connected TCP socket. DNS and the caller's
 * address check run first (proxy/resolve.h); then the allowed addresses are raced the way
 * RFC 8305 (Happy Eyeballs v2) describes -- IPv6 and IPv4 interleaved, IPv6 first; the next
 * attempt starts when the previous one fails or after the connection attempt delay
 * (--happy-eyeballs-delay), whichever comes first; the first connection wins and the others are
 * closed -- all under one deadline (--connect-timeout).
 *
 * Ownership: a dialer owns itself, its timer and every attempt's socket. The winner's socket is
 * handed to the callback; everything else is closed by the dialer, and the dialer frees itself
 * once its last handle has closed. The owner keeps the pointer only until the callback runs or
 * it calls dialer_cancel. */
#ifndef H2T_DIALER_H
#define H2T_DIALER_H

#include <uv.h>

#include "src/authority.h"
#include "src/dns.h"
#include "src/pxerr.h"
#include "proxy/resolve.h"

struct worker;
struct dialer;

/* On success |tcp| is a connected socket and |err| is PXERR_NONE. |tcp| then belongs to the
 * callee: its |data| is free for the callee's use, and the callee closes it with uv_close and
 * free()s it in the close callback (the handle is the start of its own allocation). |peer| is the
 * address connected, valid during the call. On failure |tcp| and |peer| are NULL, |err| says why
 * (refused, timeout, unreachable, DNS, the address check) and |detail| is a short static text. */
typedef void (*dialer_cb)(void *arg, uv_tcp_t *tcp, const struct sockaddr *peer, enum pxerr err,
                          const char *detail);

/* Starts dialing |target|; |check| (with |check_arg|, borrowed until the callback) judges each
 * resolved address, NULL for an operator-configured backend (see resolve_start). The callback
 * runs exactly once, always later from the loop (from the worker's deferred queue, so a cancel
 * arriving in the same loop turn wins), unless dialer_cancel comes first. Never NULL. */
struct dialer *dialer_start(struct worker *w, const struct authority *target, resolve_check_cb check,
                            void *check_arg, dialer_cb cb, void *arg);

/* The callback will not run; every socket the dialer opened is closed. Legal until the callback
 * has run; a second call before that is a no-op. |d| must not be used afterwards. */
void dialer_cancel(struct dialer *d);

/* The RFC 8305 section 4 order of |res| as indexes into it: the families alternate, IPv6 first,
 * each family in the resolver's order. Writes res->n indexes to |order|. (Exposed for tests.) */
void dialer_order(const struct dns_result *res, size_t order[DNS_MAX_ADDRS]);

#endif
