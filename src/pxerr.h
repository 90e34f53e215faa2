/* Proxy-generated errors: one table gives each its HTTP status and its RFC 9209 Proxy-Status
 * error type, so h1 and h2 answers, metrics and logs always agree (checklist §12, PS-01). */
#ifndef H2T_PXERR_H
#define H2T_PXERR_H

#include <stddef.h>

#define PXERR_MAP(XX)                                                                            \
  XX(NONE, 200, "none")                                                                          \
  XX(BAD_REQUEST, 400, "http_request_error")                                                     \
  XX(URI_TOO_LONG, 414, "http_request_error")                                                    \
  XX(HEAD_TOO_LARGE, 431, "http_request_error")                                                  \
  XX(VERSION, 505, "http_request_error")                                                         \
  XX(PORT_DENIED, 403, "http_request_denied")                                                    \
  XX(DEST_PROHIBITED, 403, "destination_ip_prohibited")                                          \
  XX(NOT_FOUND, 404, "http_request_error")                                                       \
  XX(METHOD, 405, "http_request_error")                                                          \
  XX(MISDIRECTED, 421, "http_request_denied")                                                    \
  XX(AUTH_REQUIRED, 407, "http_request_denied")                                                  \
  XX(AUTH_BANNED, 429, "http_request_denied")                                                    \
  XX(CLIENT_DENIED, 403, "http_request_denied")                                                  \
  XX(RULE_DENIED, 403, "http_request_denied")       /* a rule (details name it) */               \
  XX(LIMITED, 429, "http_request_denied")           /* a tunnel count or rate limit */           \
  XX(NOT_IMPLEMENTED, 501, "http_request_error")                                                 \
  XX(DNS_ERROR, 502, "dns_error")                                                                \
  XX(DNS_TIMEOUT, 504, "dns_timeout")                                                            \
  XX(CONN_REFUSED, 502, "connection_refused")                                                    \
  XX(CONN_TIMEOUT, 504, "connection_timeout")                                                    \
  XX(UNREACHABLE, 502, "destination_ip_unroutable")                                              \
  XX(CONN_ERROR, 502, "proxy_internal_error")                                                    \
  XX(UPGRADE_FAILED, 502, "http_upgrade_failed")                                                 \
  XX(LOOP, 508, "proxy_loop_detected")                                                           \
  XX(RESP_INVALID, 502, "http_protocol_error")                                                   \
  XX(RESP_INCOMPLETE, 502, "http_response_incomplete")                                           \
  XX(RESP_TIMEOUT, 504, "http_response_timeout")                                                 \
  XX(POOL_FULL, 503, "connection_limit_reached")                                                 \
  XX(TLS_CERT, 502, "tls_certificate_error")                                                     \
  XX(TLS_PROTOCOL, 502, "tls_protocol_error")                                                    \
  XX(LIMIT, 503, "connection_limit_reached")                                                     \
  XX(SHUTTING_DOWN, 503, "proxy_internal_response")                                              \
  XX(INTERNAL, 500, "proxy_internal_error")

enum pxerr {
#define XX(n, st, tok) PXERR_##n,
  PXERR_MAP(XX)
#undef XX
      PXERR_COUNT
};

/* Room for a Proxy-Status value and for an error body (pxerr_proxy_status, pxerr_body). */
#define PXERR_PROXY_STATUS_MAX 256
#define PXERR_BODY_MAX 256

int pxerr_status(enum pxerr e);
const char *pxerr_token(enum pxerr e);
/* A short lowercase name for metrics labels, e.g. "conn_refused". */
const char *pxerr_name(enum pxerr e);
const char *http_reason(int status);

/* The Proxy-Status field value for |e| (RFC 9209 §2), the one serialisation every front end
 * sends: "h2tunnel; error=<type>" plus "; details=<sf-string>" when |detail| is non-NULL, with
 * the details cut to fit. Writes into |out| (NUL-terminated) and returns the length; |cap| is
 * at least PXERR_PROXY_STATUS_MAX. */
size_t pxerr_proxy_status(char *out, size_t cap, enum pxerr e, const char *detail);

/* The text body of an error answer: "<status> <reason>[: <detail>]\n", cut to fit |cap| (at
 * least 2) but always ending in a newline. Returns the length. */
size_t pxerr_body(char *out, size_t cap, int status, const char *detail);

/* Writes |s| (NULL: "") into |out| as an RFC 8941 sf-string: quoted, '"' and '\\' escaped,
 * bytes outside printable ASCII as '?'; cut to fit |cap| but never inside an escape. Returns the
 * length (NUL-terminated), or 0 when |cap| < 3 (nothing written). */
size_t pxerr_sf_string(char *out, size_t cap, const char *s);

#endif
