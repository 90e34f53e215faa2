/* The connect-udp URI template (RFC 9298 §2): matches a request path such as
 * "/.well-known/masque/udp/192.0.2.6/443/" against a template with {target_host} and
 * {target_port} variables, percent-decoding the values. Pure; no I/O. */
#ifndef H2T_UDP_TMPL_H
#define H2T_UDP_TMPL_H

#include <stddef.h>
#include <stdint.h>

#define UDP_TMPL_DEFAULT "/.well-known/masque/udp/{target_host}/{target_port}/"

/* Checks |tmpl|: a path starting with '/', containing {target_host} and {target_port} exactly
 * once each, no other variables; variables may also appear in a query ("?h={target_host}&p=
 * {target_port}"). A variable must be followed by the end or by a literal that cannot occur in a
 * percent-encoded value (not '{', '%' or an unreserved character), since a value ends at the next
 * literal. Returns 0 or -EINVAL. */
int udp_tmpl_validate(const char *tmpl);

/* Matches |path| (|len| bytes, as received: percent-encoded) against |tmpl|. On success returns 0
 * and writes the decoded host (NUL-terminated, IPv6 without brackets, at most |host_cap|-1 bytes)
 * and the port (1..65535). Returns -EINVAL when the path does not match, the host is empty,
 * contains '/', '%' after decoding, control bytes or is too long, or the port is not 1..65535.
 * An IPv6 literal arrives with its colons percent-encoded ("2001%3Adb8%3A%3A1"); raw colons and
 * brackets ("[2001:db8::1]", encoded or not) are accepted too, and it is written in inet_ntop's
 * canonical form, zone ids refused. Names are lower-cased and limited to RFC 3986 reg-name
 * characters. On failure |host| is "" and |*port| is untouched. */
int udp_tmpl_match(const char *tmpl, const char *path, size_t len, char *host, size_t host_cap,
                   uint16_t *port);

#endif
