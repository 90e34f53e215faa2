/* HTTP/1.1 response heads: status line, Proxy-Status (RFC 9209), error bodies. Pure functions. */
#ifndef H2T_H1_RESP_H
#define H2T_H1_RESP_H

#include <stddef.h>

/* Writes a complete error response (head + short text body, Connection: close) into |buf|.
 * |token| is the Proxy-Status error type, |detail| a short text (may be NULL). Returns the length,
 * or 0 if |cap| is too small. */
size_t h1_resp_error(char *buf, size_t cap, int status, const char *token, const char *detail);

/* Writes a response head with Content-Length |body_len| (and Connection: close when |close|). */
size_t h1_resp_head(char *buf, size_t cap, int status, const char *content_type, size_t body_len,
                    int close);

/* Appends |s| to |out| as an RFC 8941 sf-string (quotes, escapes; non-printable bytes become '?'). */
size_t h1_sf_string(char *out, size_t cap, const char *s);

#endif
