/* Pure parsing of a CONNECT target in authority form: "host:port", "[v6]:port" (RFC 9112 §3.2.3,
 * RFC 9110 §9.3.6, checklist H1C-01..03, H2C-02). No I/O; shared by the h1 and h2 front ends. */
#ifndef H2T_AUTHORITY_H
#define H2T_AUTHORITY_H

#include <stddef.h>
#include <stdint.h>

#define AUTHORITY_HOST_MAX 255

enum authority_kind { AUTHORITY_NAME = 0, AUTHORITY_IPV4 = 1, AUTHORITY_IPV6 = 2 };

struct authority {
  char host[AUTHORITY_HOST_MAX + 1]; /* NUL-terminated; IPv6 without brackets; names lowercased */
  uint16_t port;                     /* 1..65535 */
  enum authority_kind kind;
};

/* Parses |len| bytes at |s| (not NUL-terminated) as authority-form. Returns 0 on success, or
 * -EINVAL with *|why| (if non-NULL) set to a short static reason ("missing port", "port out of
 * range", "userinfo not allowed", ...). Rejects: empty host, missing/empty/zero/over-range/signed/
 * non-digit port, unbracketed IPv6, userinfo ('@'), '%', whitespace, control characters, bytes
 * outside the RFC 3986 reg-name set, and bracketed text that is not an IPv6 address. */
int authority_parse(const char *s, size_t len, struct authority *out, const char **why);

/* Writes "host:port" or "[v6]:port" into |buf| (always NUL-terminated). Returns the length. */
size_t authority_format(const struct authority *a, char *buf, size_t cap);

#endif
