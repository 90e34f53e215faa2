/* HTTP/1.1 response heads: the proxy's error answers, tunnel answers and local responses. Pure
 * functions; the Proxy-Status value and the error body come from the request path (pxerr.h). */
#ifndef H2T_H1_RESP_H
#define H2T_H1_RESP_H

#include <stddef.h>

struct px_header;

/* Writes a complete error response (head + |body| as text/plain, Connection: close) into |buf|,
 * with a Proxy-Status field when |proxy_status| is non-empty and the |nextra| extra fields
 * (Proxy-Authenticate, Retry-After). A non-empty |detail| goes into the reason phrase too,
 * "403 Forbidden (port 22 not allowed)": socat, ncat and git show only the status line (cut to
 * H1_RESP_DETAIL_MAX bytes, bytes a reason phrase may not hold as spaces).
 * Returns the length, or 0 if |cap| is too small. */
#define H1_RESP_DETAIL_MAX 120
size_t h1_resp_error(char *buf, size_t cap, int status, const char *detail, const char *proxy_status,
                     const char *body, const struct px_header *extra, size_t nextra);

/* Writes the head that opens a tunnel: "200 Connection Established", or with |upgrade| "101
 * Switching Protocols" with Connection: Upgrade and Upgrade: |upgrade|; then the |nextra| extra
 * fields. Returns the length, or 0 if |cap| is too small. */
size_t h1_resp_tunnel(char *buf, size_t cap, const char *upgrade, const struct px_header *extra, size_t nextra);

/* Writes a response head with Content-Length |body_len| (and Connection: close when |close|). */
size_t h1_resp_head(char *buf, size_t cap, int status, const char *content_type, size_t body_len,
                    int close);

#endif
