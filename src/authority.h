/* Pure parsing of a CONNECT target in authority form: "host:port", "[v6]:port" (RFC 9112 §3.2.3,
 * RFC 9110 §9.3.6, checklist H1C-01..03, H2C-02). No I/O; shared by the h1 and h2 front ends. */
#ifndef H2T_AUTHORITY_H
#define H2T_AUTHORITY_H

#include <stddef.h>
#include <stdint.h>

#define AUTHORITY_HOST_MAX 255
/* A buffer this large always holds authority_format()'s output: "[" host "]:" 5 digits NUL. */
#define AUTHORITY_FORMAT_MAX (AUTHORITY_HOST_MAX + 9)

enum authority_kind { AUTHORITY_NAME = 0, AUTHORITY_IPV4 = 1, AUTHORITY_IPV6 = 2 };

struct authority {
  char host[AUTHORITY_HOST_MAX + 1]; /* NUL-terminated; names lowercased; IPv6 without brackets,
                                      * in inet_ntop's canonical text */
  uint16_t port;                     /* 1..65535 */
  enum authority_kind kind;
};

/* Parses |len| bytes at |s| (not NUL-terminated) as authority-form. Returns 0 on success, or
 * -EINVAL with *|why| (if non-NULL) set to a short static reason ("missing port", "port out of
 * range", "userinfo not allowed", ...). Rejects: empty host, missing/empty/zero/over-range/signed/
 * non-digit port, unbracketed IPv6, userinfo ('@'), '%', whitespace, control characters, bytes
 * outside the RFC 3986 reg-name set, a host longer than AUTHORITY_HOST_MAX, and bracketed text
 * that is not an IPv6 address. |kind| is AUTHORITY_IPV4 only for a strict dotted quad that
 * inet_pton(AF_INET) accepts: "127.1" or "0x7f000001" are AUTHORITY_NAME, so the caller must
 * check the resolved address, not the kind. |out| is written only on success. */
int authority_parse(const char *s, size_t len, struct authority *out, const char **why);

/* Builds an authority from an already-decoded |host| (name, IPv4 or IPv6 without brackets) and
 * |port|, with the same host checks as authority_parse. Returns 0 or -EINVAL. */
int authority_from_host(const char *host, uint16_t port, struct authority *out);

/* Writes "host:port" or "[v6]:port" into |buf| (always NUL-terminated when |cap| > 0). Returns the
 * length written, which is shorter than the full text only if |cap| < AUTHORITY_FORMAT_MAX. The
 * output parses back to the same struct authority. */
size_t authority_format(const struct authority *a, char *buf, size_t cap);

#endif
