/* The connect-udp URI template (RFC 9298 §2, RFC 6570 level 1).
 *
 * Level-1 expansion percent-encodes every byte of a value outside the unreserved set, so a value in
 * the path ends at the next literal character of the template ('/', '&', ...). udp_tmpl_validate
 * makes that rule unambiguous: a variable may not be followed by another variable, by an
 * unreserved character or by '%', since any of those could be part of the value itself.
 *
 * Matching compares the literal parts byte for byte with the path as received, cuts out the two
 * values, percent-decodes them and then checks them as strictly as src/authority.c checks a CONNECT
 * target, because the host goes to the resolver and the logs:
 *   - host: an IPv6 literal (it has a ':'; brackets are optional and stripped; no zone id), stored
 *     in inet_ntop's canonical text; otherwise an IPv4 address or reg-name of RFC 3986 unreserved
 *     and sub-delim characters, lower-cased, so '/', '%', '@', spaces and control bytes never pass;
 *   - port: 1 to 5 ASCII digits with a value in 1..65535; no sign, no spaces.
 * Raw (unencoded) bytes in a value are accepted and checked after decoding like encoded ones. */
#include "src/udp_tmpl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#define VAR_HOST "{target_host}"
#define VAR_PORT "{target_port}"
/* Longest text inet_pton(AF_INET6) can accept ("ffff:...:255.255.255.255" is 45 characters). */
#define V6_TEXT_MAX 45
#define PORT_DIGITS_MAX 5

static int is_unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

static int is_regname_char(unsigned char c) {
  return is_unreserved(c) || (c != '\0' && strchr("!$&'()*+,;=", c) != NULL);
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Which variable starts at |s| (1 host, 2 port), or 0 if none of ours. */
static int var_at(const char *s) {
  if (strncmp(s, VAR_HOST, sizeof(VAR_HOST) - 1) == 0) return 1;
  if (strncmp(s, VAR_PORT, sizeof(VAR_PORT) - 1) == 0) return 2;
  return 0;
}

int udp_tmpl_validate(const char *tmpl) {
  int hosts = 0, ports = 0;
  size_t i = 0;

  if (tmpl == NULL || tmpl[0] != '/') return -EINVAL;
  while (tmpl[i] != '\0') {
    unsigned char c = (unsigned char)tmpl[i];
    if (c <= 0x20 || c >= 0x7f || c == '}') return -EINVAL;
    if (c != '{') {
      i++;
      continue;
    }
    switch (var_at(tmpl + i)) {
    case 1:
      hosts++;
      i += sizeof(VAR_HOST) - 1;
      break;
    case 2:
      ports++;
      i += sizeof(VAR_PORT) - 1;
      break;
    default:
      return -EINVAL; /* another name, or an RFC 6570 operator such as {?x} */
    }
    c = (unsigned char)tmpl[i];
    if (c == '{' || c == '%' || is_unreserved(c)) return -EINVAL;
  }
  return hosts == 1 && ports == 1 ? 0 : -EINVAL;
}

/* Percent-decodes |n| bytes at |s| into |out| (NUL-terminated, at most |cap|-1 bytes). Refuses a
 * malformed escape, an empty value, a control byte (raw or decoded) and a value that does not
 * fit. Returns 0 with the decoded length in |*out_len|, or -EINVAL. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap, size_t *out_len) {
  size_t o = 0;

  if (n == 0) return -EINVAL;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%') {
      int hi, lo;
      if (n - i < 3) return -EINVAL;
      hi = hexval((unsigned char)s[i + 1]);
      lo = hexval((unsigned char)s[i + 2]);
      if (hi < 0 || lo < 0) return -EINVAL;
      c = (unsigned char)(hi * 16 + lo);
      i += 2;
    }
    if (c < 0x20 || c == 0x7f) return -EINVAL;
    if (o + 1 >= cap) return -EINVAL;
    out[o++] = (char)c;
  }
  out[o] = '\0';
  *out_len = o;
  return 0;
}

static int parse_port(const char *s, size_t n, uint16_t *port) {
  char digits[PORT_DIGITS_MAX + 1];
  unsigned long v = 0;
  size_t len;

  if (pct_decode(s, n, digits, sizeof(digits), &len) != 0) return -EINVAL;
  for (size_t i = 0; i < len; i++) {
    if (digits[i] < '0' || digits[i] > '9') return -EINVAL;
    v = v * 10 + (unsigned long)(digits[i] - '0');
  }
  if (v < 1 || v > 65535) return -EINVAL;
  *port = (uint16_t)v;
  return 0;
}

/* |text| holds |len| decoded bytes that look like an IPv6 literal (a ':' or a '['). Writes the
 * canonical text to |host|; the cap applies to that, not to the spelling on the wire. */
static int parse_v6(char *text, size_t len, char *host, size_t host_cap) {
  struct in6_addr a6;
  char canon[INET6_ADDRSTRLEN];
  size_t n;

  if (text[0] == '[') {
    /* "[v6]" as in an authority; brackets say IPv6, so "[name]" is refused below. */
    if (len < 3 || text[len - 1] != ']') return -EINVAL;
    text++;
    len -= 2;
    text[len] = '\0';
  }
  /* inet_pton refuses a zone id ("fe80::1%eth0") anyway; say so instead of relying on it. */
  if (memchr(text, ':', len) == NULL || memchr(text, '%', len) != NULL) return -EINVAL;
  if (inet_pton(AF_INET6, text, &a6) != 1) return -EINVAL;
  /* One spelling per address, as src/authority.c stores it, so policy and logs agree. */
  if (inet_ntop(AF_INET6, &a6, canon, sizeof(canon)) == NULL) return -EINVAL;
  n = strlen(canon);
  if (n + 1 > host_cap) return -EINVAL;
  memcpy(host, canon, n + 1);
  return 0;
}

/* |host| holds |len| decoded bytes of a would-be IPv4 address or reg-name; lower-cases it. */
static int parse_name(char *host, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)host[i];
    if (!is_regname_char(c)) return -EINVAL;
    if (c >= 'A' && c <= 'Z') host[i] = (char)(c - 'A' + 'a');
  }
  return 0;
}

int udp_tmpl_match(const char *tmpl, const char *path, size_t len, char *host, size_t host_cap,
                   uint16_t *port) {
  const char *hv = NULL, *pv = NULL;
  size_t hn = 0, pn = 0, i = 0, j = 0, n;
  char v6[V6_TEXT_MAX + 3]; /* room for brackets and the NUL */
  uint16_t p;
  int rv;

  if (host != NULL && host_cap > 0) host[0] = '\0';
  if (host == NULL || host_cap == 0 || port == NULL || (path == NULL && len > 0)) return -EINVAL;
  if (udp_tmpl_validate(tmpl) != 0) return -EINVAL;

  while (tmpl[i] != '\0') {
    int var = tmpl[i] == '{' ? var_at(tmpl + i) : 0;
    char stop;
    size_t k = j;

    if (var == 0) {
      if (j >= len || path[j] != tmpl[i]) return -EINVAL;
      i++;
      j++;
      continue;
    }
    i += var == 1 ? sizeof(VAR_HOST) - 1 : sizeof(VAR_PORT) - 1;
    /* The value runs to the next literal character, or to the end of the path. */
    stop = tmpl[i];
    while (k < len && (stop == '\0' || path[k] != stop)) k++;
    if (var == 1) {
      hv = path + j;
      hn = k - j;
    } else {
      pv = path + j;
      pn = k - j;
    }
    j = k;
  }
  if (j != len) return -EINVAL;

  if (parse_port(pv, pn, &p) != 0) return -EINVAL;
  /* An IPv6 literal is decoded aside first: its canonical form may be shorter than what the
   * client spelled ("0:0:0:0:0:0:0:1" is "::1"), and only the result has to fit |host|. A value
   * too long for that buffer cannot be IPv6, and parse_name refuses its ':' or '['. */
  if (pct_decode(hv, hn, v6, sizeof(v6), &n) == 0 && (v6[0] == '[' || memchr(v6, ':', n) != NULL)) {
    rv = parse_v6(v6, n, host, host_cap);
  } else if (pct_decode(hv, hn, host, host_cap, &n) == 0) {
    rv = parse_name(host, n);
  } else {
    rv = -EINVAL;
  }
  if (rv != 0) {
    host[0] = '\0';
    return -EINVAL;
  }
  *port = p;
  return 0;
}
