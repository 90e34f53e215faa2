/* PROXY protocol v1 and v2 parser (see proxyproto.h). */
#include "src/proxyproto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "src/access.h"
#include "src/policy.h"

static const uint8_t v2_sig[PP_V2_SIG_LEN] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_sig[] = "PROXY ";

static int fail(const char **why, const char *reason) {
  if (why) *why = reason;
  return -EINVAL;
}

int pp_sniff(const uint8_t *p, size_t len) {
  size_t n = len < PP_SIG_MIN ? len : PP_SIG_MIN;
  int v1 = memcmp(p, v1_sig, n) == 0, v2 = memcmp(p, v2_sig, n) == 0;
  if (!v1 && !v2) return 0;
  return len >= PP_SIG_MIN ? 1 : -1;
}

/* ---- v1 --------------------------------------------------------------------------------------- */

/* The next space-separated field of [*s, end) into |out| (NUL-terminated); 0 or -1. */
static int v1_field(const char **s, const char *end, char *out, size_t cap) {
  const char *b = *s, *e = b;
  while (e < end && *e != ' ') e++;
  if (e == b || (size_t)(e - b) >= cap) return -1;
  memcpy(out, b, (size_t)(e - b));
  out[e - b] = '\0';
  *s = e < end ? e + 1 : e; /* past the single space */
  if (e < end && *s == end) return -1; /* a trailing space */
  return 0;
}

static int v1_port(const char *t, uint16_t *port) {
  size_t n = strlen(t);
  if (n == 0 || n > 5 || (n > 1 && t[0] == '0')) return -1;
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (t[i] < '0' || t[i] > '9') return -1;
    v = v * 10 + (unsigned)(t[i] - '0');
  }
  if (v > 65535) return -1;
  *port = (uint16_t)v;
  return 0;
}

static int v1_addr(int family, const char *t, uint16_t port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, t, &sin->sin_addr) != 1) return -1;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, t, &sin6->sin6_addr) != 1) return -1;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
  }
  return 0;
}

static int parse_v1(const uint8_t *p, size_t len, struct pp_header *out, const char **why) {
  size_t lim = len < PP_V1_MAX ? len : PP_V1_MAX;
  const uint8_t *cr = NULL;
  for (size_t i = 0; i < lim; i++) {
    if (p[i] == '\r') {
      cr = p + i;
      break;
    }
    if (p[i] == '\n' || p[i] == '\0') return fail(why, "v1: a control byte in the line");
  }
  if (!cr) return len >= PP_V1_MAX ? fail(why, "v1: no CRLF within 107 bytes") : 0;
  size_t n = (size_t)(cr - p);
  if (n + 1 >= len) return n + 2 > PP_V1_MAX ? fail(why, "v1: no CRLF within 107 bytes") : 0;
  if (cr[1] != '\n') return fail(why, "v1: CR without LF");
  if (n + 2 > PP_V1_MAX) return fail(why, "v1: no CRLF within 107 bytes");

  const char *s = (const char *)p + sizeof(v1_sig) - 1, *end = (const char *)cr;
  char proto[8], a[48], b[48], sp[8], dp[8];
  memset(out, 0, sizeof(*out));
  out->version = 1;
  if ((size_t)(end - s) >= 7 && memcmp(s, "UNKNOWN", 7) == 0 && (end - s == 7 || s[7] == ' ')) {
    out->has_addr = 0; /* the rest of the line is ignored (spec 2.1) */
    return (int)(n + 2);
  }
  if (v1_field(&s, end, proto, sizeof(proto))) return fail(why, "v1: no protocol");
  int family;
  if (strcmp(proto, "TCP4") == 0)
    family = AF_INET;
  else if (strcmp(proto, "TCP6") == 0)
    family = AF_INET6;
  else
    return fail(why, "v1: protocol not TCP4, TCP6 or UNKNOWN");
  if (v1_field(&s, end, a, sizeof(a)) || v1_field(&s, end, b, sizeof(b)) || v1_field(&s, end, sp, sizeof(sp)) ||
      v1_field(&s, end, dp, sizeof(dp)) || s != end)
    return fail(why, "v1: not four fields after the protocol, single spaces");
  uint16_t sport, dport;
  if (v1_port(sp, &sport) || v1_port(dp, &dport)) return fail(why, "v1: a port not 0..65535");
  if (v1_addr(family, a, sport, &out->src) || v1_addr(family, b, dport, &out->dst))
    return fail(why, "v1: an address not of the protocol's family");
  out->has_addr = 1;
  return (int)(n + 2);
}

/* ---- v2 --------------------------------------------------------------------------------------- */

static int parse_v2(const uint8_t *p, size_t len, struct pp_header *out, const char **why) {
  if (len < PP_V2_HEAD_LEN) return 0;
  unsigned ver = p[12] >> 4, cmd = p[12] & 0x0f, fam = p[13] >> 4, proto = p[13] & 0x0f;
  size_t body = ((size_t)p[14] << 8) | p[15];
  if (ver != 2) return fail(why, "v2: version not 2");
  if (cmd > 1) return fail(why, "v2: command not LOCAL or PROXY");
  if (fam > 3) return fail(why, "v2: unknown address family");
  if (proto > 2) return fail(why, "v2: unknown transport protocol");
  if (len < PP_V2_HEAD_LEN + body) return 0;
  memset(out, 0, sizeof(*out));
  out->version = 2;
  const uint8_t *a = p + PP_V2_HEAD_LEN;
  int total = (int)(PP_V2_HEAD_LEN + body);
  if (cmd == 0) return total; /* LOCAL: the balancer's own connection (a health check) */
  if (fam == 0 || fam == 3) return total; /* UNSPEC, UNIX: no client address to use */
  if (proto != 1) return fail(why, "v2: PROXY over a transport other than STREAM");
  if (fam == 1) {
    if (body < 12) return fail(why, "v2: length too short for INET addresses");
    struct sockaddr_in *s = (struct sockaddr_in *)&out->src, *d = (struct sockaddr_in *)&out->dst;
    s->sin_family = d->sin_family = AF_INET;
    memcpy(&s->sin_addr, a, 4);
    memcpy(&d->sin_addr, a + 4, 4);
    memcpy(&s->sin_port, a + 8, 2);
    memcpy(&d->sin_port, a + 10, 2);
  } else {
    if (body < 36) return fail(why, "v2: length too short for INET6 addresses");
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src, *d = (struct sockaddr_in6 *)&out->dst;
    s->sin6_family = d->sin6_family = AF_INET6;
    memcpy(&s->sin6_addr, a, 16);
    memcpy(&d->sin6_addr, a + 16, 16);
    memcpy(&s->sin6_port, a + 32, 2);
    memcpy(&d->sin6_port, a + 34, 2);
  }
  out->has_addr = 1;
  return total; /* TLVs after the addresses are skipped */
}

int pp_parse(const uint8_t *p, size_t len, struct pp_header *out, const char **why) {
  int s = pp_sniff(p, len);
  if (s == 0) return fail(why, "not a PROXY protocol header");
  if (s < 0) return 0;
  if (p[0] == 'P') return parse_v1(p, len, out, why);
  if (len < PP_V2_SIG_LEN) return memcmp(p, v2_sig, len) == 0 ? 0 : fail(why, "v2: bad signature");
  if (memcmp(p, v2_sig, PP_V2_SIG_LEN) != 0) return fail(why, "v2: bad signature");
  return parse_v2(p, len, out, why);
}

/* ---- trusted sources -------------------------------------------------------------------------- */

static int cidr_has(const struct access_cidr *c, const uint8_t *addr, int family) {
  if (c->family != family) return 0;
  unsigned full = c->prefix / 8, rest = c->prefix % 8;
  if (memcmp(c->addr, addr, full) != 0) return 0;
  if (rest == 0) return 1;
  uint8_t mask = (uint8_t)(0xffu << (8 - rest));
  return (addr[full] & mask) == c->addr[full];
}

int pp_source_trusted(const struct access_nets *nets, const struct sockaddr *sa) {
  const uint8_t *addr;
  if (sa->sa_family == AF_INET)
    addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
  else if (sa->sa_family == AF_INET6)
    addr = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
  else
    return 0;
  if (nets->classes & (1u << addr_classify(sa))) return 1;
  for (size_t i = 0; i < nets->n; i++)
    if (cidr_has(&nets->v[i], addr, sa->sa_family)) return 1;
  return 0;
}
