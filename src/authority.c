/* CONNECT target parsing (authority-form, RFC 9112 §3.2.3 / RFC 9110 §9.3.6; checklist H1C-02,
 * H1C-03, H2C-02).
 *
 * The parser is deliberately stricter than RFC 3986: it is the only gate between a client's bytes
 * and the resolver, so anything a resolver or a logger could read two ways is refused. In order:
 *   1. a byte scan over the whole target for control characters, whitespace, '%' and '@', so that
 *      the reason names the real problem whatever the position ("u@h:443" is "userinfo", not a
 *      bad host character);
 *   2. the host: "[...]" must hold an IPv6 address that inet_pton accepts (no zone id, no
 *      IPvFuture, no IPv4); otherwise the host ends at the last ':' and must be a non-empty reg-name, where a
 *      further ':' means an unbracketed IPv6 address;
 *   3. the port: 1 to 5 ASCII digits with a value in 1..65535. No sign, no default.
 * The struct is written only on success. */
#include "src/authority.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Longest text inet_pton(AF_INET6) can accept ("ffff:...:255.255.255.255" is 45 characters). */
#define V6_TEXT_MAX 45

static int fail(const char **why, const char *reason) {
  if (why != NULL) *why = reason;
  return -EINVAL;
}

/* RFC 3986 unreserved / sub-delims; pct-encoded is excluded because '%' is refused outright. */
static int is_regname_char(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return strchr("-._~!$&'()*+,;=", c) != NULL && c != '\0';
}

static int parse_port(const char *s, size_t len, uint16_t *port, const char **why) {
  unsigned long v = 0;

  if (len == 0) return fail(why, "empty port");
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return fail(why, "invalid port");
  }
  /* Leading zeros are legal port syntax, but more than 5 digits is never a real port and keeps the
   * accumulation below far from overflow. */
  if (len > 5) return fail(why, "port out of range");
  for (size_t i = 0; i < len; i++) v = v * 10 + (unsigned long)(s[i] - '0');
  if (v == 0 || v > 65535) return fail(why, "port out of range");
  *port = (uint16_t)v;
  return 0;
}

static int parse_ipv6(const char *s, size_t len, struct authority *a, const char **why) {
  char text[V6_TEXT_MAX + 1];
  struct in6_addr addr;

  if (len == 0) return fail(why, "empty host");
  if (len > V6_TEXT_MAX) return fail(why, "invalid IPv6 literal");
  memcpy(text, s, len);
  text[len] = '\0';
  if (inet_pton(AF_INET6, text, &addr) != 1) return fail(why, "invalid IPv6 literal");
  /* Store the canonical text so equal addresses compare equal and the log shows one spelling. */
  if (inet_ntop(AF_INET6, &addr, a->host, sizeof(a->host)) == NULL) {
    return fail(why, "invalid IPv6 literal");
  }
  a->kind = AUTHORITY_IPV6;
  return 0;
}

static int parse_name(const char *s, size_t len, struct authority *a, const char **why) {
  struct in_addr v4;

  if (len == 0) return fail(why, "empty host");
  /* Characters first, so "http://h:443" is a bad host rather than a would-be IPv6 address. */
  for (size_t i = 0; i < len; i++) {
    if (s[i] != ':' && !is_regname_char((unsigned char)s[i])) {
      return fail(why, "invalid character in host");
    }
  }
  if (memchr(s, ':', len) != NULL) return fail(why, "unbracketed IPv6 address");
  if (len > AUTHORITY_HOST_MAX) return fail(why, "host too long");
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    a->host[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  a->host[len] = '\0';
  /* glibc's inet_pton(AF_INET) takes only four decimal octets without leading zeros, so "127.1"
   * and "0x7f000001" stay names: the resolver may still turn them into addresses, and the policy
   * check on the resolved address is what catches them (H1C-13). */
  a->kind = inet_pton(AF_INET, a->host, &v4) == 1 ? AUTHORITY_IPV4 : AUTHORITY_NAME;
  return 0;
}

int authority_parse(const char *s, size_t len, struct authority *out, const char **why) {
  struct authority a;
  const char *port;
  size_t port_len;
  int rv;

  memset(&a, 0, sizeof(a));
  if (len == 0) return fail(why, "empty host");
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == ' ' || c == '\t') return fail(why, "whitespace not allowed");
    if (c < 0x20 || c == 0x7f) return fail(why, "control character not allowed");
    if (c == '%') return fail(why, "'%' not allowed");
    if (c == '@') return fail(why, "userinfo not allowed");
  }

  if (s[0] == '[') {
    const char *close = memchr(s, ']', len);
    size_t host_len;
    if (close == NULL) return fail(why, "unterminated IPv6 literal");
    host_len = (size_t)(close - s) - 1;
    rv = parse_ipv6(s + 1, host_len, &a, why);
    if (rv != 0) return rv;
    port = close + 1;
    port_len = len - host_len - 2;
    if (port_len == 0) return fail(why, "missing port");
    if (port[0] != ':') return fail(why, "invalid character after IPv6 literal");
    port++;
    port_len--;
  } else {
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--) {
      if (s[i - 1] == ':') {
        colon = s + i - 1;
        break;
      }
    }
    if (colon == NULL) return fail(why, "missing port");
    rv = parse_name(s, (size_t)(colon - s), &a, why);
    if (rv != 0) return rv;
    port = colon + 1;
    port_len = len - (size_t)(port - s);
  }

  rv = parse_port(port, port_len, &a.port, why);
  if (rv != 0) return rv;
  *out = a;
  return 0;
}

size_t authority_format(const struct authority *a, char *buf, size_t cap) {
  int n;

  if (cap == 0) return 0;
  if (a->kind == AUTHORITY_IPV6) {
    n = snprintf(buf, cap, "[%s]:%u", a->host, (unsigned)a->port);
  } else {
    n = snprintf(buf, cap, "%s:%u", a->host, (unsigned)a->port);
  }
  if (n < 0) {
    buf[0] = '\0';
    return 0;
  }
  /* On truncation report what is actually in |buf|, so the result is always a safe length. */
  return (size_t)n < cap ? (size_t)n : cap - 1;
}

int authority_from_host(const char *host, uint16_t port, struct authority *out) {
  /* Reuse every check of authority_parse on the equivalent authority-form text. */
  char buf[AUTHORITY_HOST_MAX + 16];
  int n = strchr(host, ':') ? snprintf(buf, sizeof(buf), "[%s]:%u", host, port)
                            : snprintf(buf, sizeof(buf), "%s:%u", host, port);
  if (n < 0 || (size_t)n >= sizeof(buf)) return -EINVAL;
  return authority_parse(buf, (size_t)n, out, NULL);
}
