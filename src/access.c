/* The access-control sections of the configuration file (see access.h): parsing with positions,
 * name resolution, and printing back as YAML.
 *
 * Every parse function takes a `struct pctx` (the file name for messages, the directory that
 * relative paths are resolved against, the error to fill) and a label naming where in the file it
 * is ("rules[2].allow.ports"), so each message says which key is wrong as well as where. */
#include "src/access.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/policy.h"
#include "src/units.h"
#include "src/users.h"
#include "src/util.h"

#define LABEL_MAX 320
#define NAME_MAX_LEN 64

struct pctx {
  const char *file;
  const char *base;
  struct cfgfile_err *err;
};

/* qsort and bsearch must not see a NULL array, even an empty one. */
static void sort_items(void *v, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
  if (n > 1) qsort(v, n, size, cmp);
}

static void *find_item(const void *key, const void *v, size_t n, size_t size,
                       int (*cmp)(const void *, const void *)) {
  return n ? bsearch(key, v, n, size, cmp) : NULL;
}

static struct access_pos pos_of(const struct cfgfile_node *n) {
  return (struct access_pos){n->line, n->col};
}

/* An error at a stored position (after the tree is gone). Returns -EINVAL. */
static int pos_err(struct cfgfile_err *err, const char *file, struct access_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int pos_err(struct cfgfile_err *err, const char *file, struct access_pos pos, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cfgfile_verrf(err, file ? file : "(config)", pos.line, pos.col, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

struct access *access_new(void) {
  struct access *a = xcalloc(1, sizeof(*a));
  a->auth.realm = xstrndup("h2tunnel", 8);
  a->auth.max_failures = 10;
  a->auth.failure_window_ms = 60000;
  a->auth.ban_ms = 300000;
  a->auth.cache_ttl_ms = 300000;
  a->auth.cache_size = 4096;
  a->auth.max_pending = 1000;
  a->tune = (struct access_tuning){.client_v4_prefix = 32,
                                   .client_v6_prefix = 64,
                                   .ban_slots = 16384,
                                   .hash_concurrency = 1,
                                   .bw_burst_ms = 50,
                                   .bw_burst_min = 128 * 1024};
  return a;
}

void access_nets_dispose(struct access_nets *nets) {
  for (size_t i = 0; i < nets->ntext; i++) free(nets->text[i]);
  free(nets->text);
  free(nets->v);
  memset(nets, 0, sizeof(*nets));
}

static void names_free(struct access_name *v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i].s);
  free(v);
}

static void rule_dispose(struct access_rule *r) {
  free(r->name);
  names_free(r->users, r->nusers);
  names_free(r->groups, r->ngroups);
  free(r->group_idx);
  access_nets_dispose(&r->clients);
  for (size_t i = 0; i < r->nhosts; i++) free(r->hosts[i].pattern);
  free(r->hosts);
  access_nets_dispose(&r->dests);
  free(r->ports);
}

void access_free(struct access *a) {
  if (!a) return;
  free(a->file);
  free(a->auth.htpasswd);
  free(a->auth.realm);
  free(a->auth.client_ca);
  access_nets_dispose(&a->auth.no_auth_nets);
  access_nets_dispose(&a->auth.allowed_client_nets);
  users_free(a->auth.users);
  for (size_t i = 0; i < a->ngroups; i++) {
    free(a->groups[i].name);
    names_free(a->groups[i].members, a->groups[i].n);
  }
  free(a->groups);
  for (size_t i = 0; i < a->nrules; i++) rule_dispose(&a->rules[i]);
  free(a->rules);
  for (size_t i = 0; i < a->limits.nusers; i++) free(a->limits.users[i].user);
  free(a->limits.users);
  free(a);
}

/* ---- small value parsers ------------------------------------------------------------------ */

/* Rule and group names: short tokens, safe in a Proxy-Status detail and a log line. */
static int valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > NAME_MAX_LEN) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.'))
      return 0;
  }
  return 1;
}

static int parse_cidr(const char *spec, struct access_cidr *out) {
  char text[INET6_ADDRSTRLEN];
  const char *slash = strchr(spec, '/');
  size_t alen = slash ? (size_t)(slash - spec) : strlen(spec);
  struct access_cidr c = {0};
  if (alen == 0 || alen >= sizeof(text)) return -EINVAL;
  memcpy(text, spec, alen);
  text[alen] = '\0';
  if (inet_pton(AF_INET, text, c.addr) == 1)
    c.family = AF_INET;
  else if (inet_pton(AF_INET6, text, c.addr) == 1)
    c.family = AF_INET6;
  else
    return -EINVAL;
  unsigned max = c.family == AF_INET ? 32 : 128;
  c.prefix = max;
  if (slash) {
    const char *d = slash + 1;
    size_t n = strlen(d);
    if (n == 0 || n > 3 || strspn(d, "0123456789") != n) return -EINVAL;
    c.prefix = (unsigned)atoi(d);
    if (c.prefix > max) return -EINVAL;
  }
  for (unsigned bit = c.prefix; bit < max; bit++)
    if (c.addr[bit / 8] & (0x80u >> (bit % 8))) return -EINVAL;
  *out = c;
  return 0;
}

int access_nets_add(struct access_nets *nets, const char *spec, int classes_ok, const char **why) {
  for (int c = 0; classes_ok && c < ADDR_CLASS_COUNT; c++) {
    if (strcmp(spec, addr_class_name((enum addr_class)c)) == 0) {
      nets->classes |= 1u << c;
      goto keep;
    }
  }
  struct access_cidr cidr;
  if (parse_cidr(spec, &cidr) != 0) {
    *why = classes_ok ? "not a CIDR, an address or an address class (loopback, private, ...)"
                      : "not a CIDR or an address";
    return -EINVAL;
  }
  nets->v = xgrow(nets->v, nets->n, sizeof(*nets->v));
  nets->v[nets->n++] = cidr;
keep:
  nets->text = xgrow(nets->text, nets->ntext, sizeof(*nets->text));
  nets->text[nets->ntext++] = xstrndup(spec, strlen(spec));
  return 0;
}

/* ---- matching client and target addresses ------------------------------------------------- */

int access_addr_bytes(const struct sockaddr *sa, uint8_t out[16], struct sockaddr_in *v4) {
  if (!sa) return 0;
  if (sa->sa_family == AF_INET) {
    memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    if (v4) *v4 = *(const struct sockaddr_in *)sa;
    return AF_INET;
  }
  if (sa->sa_family != AF_INET6) return 0;
  const uint8_t *a6 = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(a6, mapped, 12) == 0) { /* a dual-stack listener's IPv4 client is an IPv4 client */
    memcpy(out, a6 + 12, 4);
    if (v4) {
      memset(v4, 0, sizeof(*v4));
      v4->sin_family = AF_INET;
      memcpy(&v4->sin_addr, a6 + 12, 4);
    }
    return AF_INET;
  }
  memcpy(out, a6, 16);
  return AF_INET6;
}

static int cidr_has(const struct access_cidr *c, int family, const uint8_t *addr) {
  if (c->family != family) return 0;
  unsigned full = c->prefix / 8, rest = c->prefix % 8;
  if (memcmp(c->addr, addr, full) != 0) return 0;
  if (rest == 0) return 1;
  uint8_t mask = (uint8_t)(0xffu << (8 - rest));
  return (addr[full] & mask) == c->addr[full];
}

int access_nets_contain(const struct access_nets *nets, const struct sockaddr *sa) {
  uint8_t buf[16];
  struct sockaddr_in v4;
  int family = access_addr_bytes(sa, buf, &v4);
  if (!family) return 0;
  for (size_t i = 0; i < nets->n; i++)
    if (cidr_has(&nets->v[i], family, buf)) return 1;
  if (nets->classes) {
    enum addr_class c = addr_classify(family == AF_INET ? (const struct sockaddr *)&v4 : sa);
    if (nets->classes & (1u << c)) return 1;
  }
  return 0;
}

int access_nets_empty(const struct access_nets *nets) { return nets->n == 0 && nets->classes == 0; }

int access_client_key(const struct sockaddr *sa, unsigned v4_prefix, unsigned v6_prefix, struct access_client *out) {
  memset(out, 0, sizeof(*out));
  int family = access_addr_bytes(sa, out->addr, NULL);
  if (!family) return -1;
  unsigned max = family == AF_INET ? 32 : 128;
  unsigned prefix = family == AF_INET ? v4_prefix : v6_prefix;
  if (prefix == 0 || prefix > max) prefix = max;
  for (unsigned bit = prefix; bit < max; bit++) out->addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
  out->family = family;
  out->prefix = prefix;
  return 0;
}

void access_client_text(const struct access_client *k, char *out, size_t cap) {
  char addr[INET6_ADDRSTRLEN] = "";
  if (cap) out[0] = '\0';
  if (!k->family || !inet_ntop(k->family, k->addr, addr, sizeof(addr))) return;
  if (k->prefix == (k->family == AF_INET ? 32u : 128u))
    snprintf(out, cap, "%s", addr);
  else
    snprintf(out, cap, "%s/%u", addr, k->prefix);
}

/* "N/s", "N/m" or "N/h" with N >= 1. */
static int parse_rate(const char *s, uint64_t *count, uint64_t *period_ms) {
  const char *slash = strchr(s, '/');
  if (!slash || slash == s || strspn(s, "0123456789") != (size_t)(slash - s) || slash - s > 9)
    return -EINVAL;
  uint64_t n = strtoull(s, NULL, 10);
  if (n == 0) return -EINVAL;
  if (strcmp(slash, "/s") == 0)
    *period_ms = 1000;
  else if (strcmp(slash, "/m") == 0)
    *period_ms = 60000;
  else if (strcmp(slash, "/h") == 0)
    *period_ms = 3600000;
  else
    return -EINVAL;
  *count = n;
  return 0;
}

/* A size per second: "50m/s", "50MB/s", "1g/s"; at least 1 KiB/s. */
static int parse_bandwidth(const char *s, uint64_t *out) {
  size_t n = strlen(s);
  char text[64];
  if (n < 3 || n >= sizeof(text) || strcmp(s + n - 2, "/s") != 0) return -EINVAL;
  memcpy(text, s, n - 2);
  text[n - 2] = '\0';
  uint64_t v;
  if (units_parse_size(text, &v) != 0 || v < 1024) return -EINVAL;
  *out = v;
  return 0;
}

/* A count >= 1, or "unlimited" (stored as 0). */
static int parse_count(const char *s, uint64_t *out) {
  if (strcmp(s, "unlimited") == 0) {
    *out = 0;
    return 0;
  }
  size_t n = strlen(s);
  if (n == 0 || n > 9 || strspn(s, "0123456789") != n) return -EINVAL;
  *out = strtoull(s, NULL, 10);
  return *out ? 0 : -EINVAL;
}

/* Port "22", range "8000-8100", or "*" for all. */
static int parse_port_range(const char *s, struct access_port_range *out) {
  if (strcmp(s, "*") == 0) {
    *out = (struct access_port_range){1, 65535};
    return 0;
  }
  unsigned long v[2];
  const char *p = s;
  for (int i = 0; i < 2; i++) {
    size_t d = strspn(p, "0123456789");
    if (d == 0 || d > 5) return -EINVAL;
    v[i] = strtoul(p, NULL, 10);
    if (v[i] == 0 || v[i] > 65535) return -EINVAL;
    p += d;
    if (i == 0 && *p != '-') {
      v[1] = v[0];
      break;
    }
    if (i == 0) p++;
  }
  if (*p != '\0' || v[1] < v[0]) return -EINVAL;
  *out = (struct access_port_range){(uint16_t)v[0], (uint16_t)v[1]};
  return 0;
}

static int cmp_ranges(const void *a, const void *b) {
  const struct access_port_range *x = a, *y = b;
  return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Sorts and merges overlapping or adjacent ranges, so matching is one binary search. */
static void merge_ranges(struct access_port_range *v, size_t *n) {
  if (*n == 0) return;
  qsort(v, *n, sizeof(*v), cmp_ranges);
  size_t k = 0;
  for (size_t i = 1; i < *n; i++) {
    if ((unsigned)v[i].lo <= (unsigned)v[k].hi + 1) {
      if (v[i].hi > v[k].hi) v[k].hi = v[i].hi;
    } else {
      v[++k] = v[i];
    }
  }
  *n = k + 1;
}

/* A destination host pattern: "exact.host" or "*.suffix", letters, digits, '-', '_' and dots, no
 * empty label, labels up to 63 and names up to 253 bytes. Stored lowercased. */
static int parse_host(const char *s, struct access_host *out) {
  int suffix = strncmp(s, "*.", 2) == 0;
  const char *h = suffix ? s + 1 : s; /* keep the dot of "*.x": ".x" */
  size_t n = strlen(h);
  if (n == 0 || n > 254) return -EINVAL;
  size_t label = 0;
  for (size_t i = suffix ? 1 : 0; i <= n; i++) {
    char c = h[i];
    if (c == '.' || c == '\0') {
      if (label == 0 || label > 63) return -EINVAL;
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_'))
      return -EINVAL;
    label++;
  }
  out->pattern = xstrndup(h, n);
  for (size_t i = 0; i < n; i++)
    if (out->pattern[i] >= 'A' && out->pattern[i] <= 'Z') out->pattern[i] = (char)(out->pattern[i] + 32);
  out->len = n;
  out->suffix = suffix;
  return 0;
}

/* ---- node helpers -------------------------------------------------------------------------- */

static const char *scalar(struct pctx *c, const struct cfgfile_node *n, const char *label, const char *what) {
  return cfgfile_scalar(c->file, n, label, what, c->err);
}

static int fail_at(struct pctx *c, const struct cfgfile_node *n, const char *label, const char *what,
                   const char *val) {
  cfgfile_errf(c->err, c->file, n, "%s: '%s' is not %s", label, val, what);
  return -EINVAL;
}

static int unknown_key(struct pctx *c, const struct cfgfile_node *key, const char *label, const char *known) {
  cfgfile_errf(c->err, c->file, key, "%s: unknown key '%s' (known: %s)", label, key->str, known);
  return -EINVAL;
}

static int nets_from(struct pctx *c, const struct cfgfile_node *n, const char *label, struct access_nets *nets,
                     int classes_ok) {
  if (cfgfile_want_list(c->file, n, label, c->err)) return -EINVAL;
  access_nets_dispose(nets);
  for (size_t i = 0; i < cfgfile_nitems(n); i++) {
    const struct cfgfile_node *it = cfgfile_item(n, i);
    const char *why;
    if (access_nets_add(nets, it->str, classes_ok, &why)) {
      cfgfile_errf(c->err, c->file, it, "%s: '%s' is %s", label, it->str, why);
      return -EINVAL;
    }
  }
  return 0;
}

static int names_from(struct pctx *c, const struct cfgfile_node *n, const char *label, struct access_name **out,
                      size_t *count, int tokens) {
  if (cfgfile_want_list(c->file, n, label, c->err)) return -EINVAL;
  size_t k = cfgfile_nitems(n);
  *out = xcalloc(k, sizeof(**out));
  *count = 0;
  for (size_t i = 0; i < k; i++) {
    const struct cfgfile_node *it = cfgfile_item(n, i);
    int ok = tokens ? valid_name(it->str) : (it->len <= USERS_NAME_MAX && strcmp(it->str, "*") != 0);
    if (!ok)
      return fail_at(c, it, label, tokens ? "a name (letters, digits, '-', '_', '.'; up to 64)"
                                          : "a user name (write users: \"*\" alone for any user)",
                     it->str);
    (*out)[i].s = xstrndup(it->str, it->len);
    (*out)[i].pos = pos_of(it);
    (*count)++;
  }
  return 0;
}

static int duration_from(struct pctx *c, const struct cfgfile_node *n, const char *label, uint64_t *ms) {
  const char *s = scalar(c, n, label, "a duration");
  if (!s) return -EINVAL;
  if (units_parse_duration(s, ms) || *ms == 0)
    return fail_at(c, n, label, "a duration above 0 (\"30\", \"1.5s\", \"250ms\", \"5m\", \"1h\")", s);
  return 0;
}

static int count_from(struct pctx *c, const struct cfgfile_node *n, const char *label, uint64_t *v) {
  const char *s = scalar(c, n, label, "a count");
  if (!s) return -EINVAL;
  if (parse_count(s, v)) return fail_at(c, n, label, "a count from 1 to 999999999 or 'unlimited'", s);
  return 0;
}

static int path_from(struct pctx *c, const struct cfgfile_node *n, const char *label, char **out,
                     struct access_pos *pos) {
  const char *s = scalar(c, n, label, "a file name");
  if (!s) return -EINVAL;
  free(*out);
  *out = cfgfile_path(c->base, s);
  *pos = pos_of(n);
  return 0;
}

/* ---- auth ---------------------------------------------------------------------------------- */

static int parse_auth(struct pctx *c, struct access_auth *auth, const struct cfgfile_node *map) {
  static const char known[] = "htpasswd, realm, client-ca, client-cert, no-auth-nets, "
                              "allowed-client-nets, max-failures, failure-window, ban-time, "
                              "cache-ttl, cache-size, max-pending";
  const struct cfgfile_node *cert_node = NULL;
  if (cfgfile_want_map(c->file, map, "auth", c->err)) return -EINVAL;
  for (size_t i = 0; i + 1 < map->n; i += 2) {
    const struct cfgfile_node *k = map->kids[i], *v = map->kids[i + 1];
    char label[LABEL_MAX];
    snprintf(label, sizeof(label), "auth.%s", k->str);
    int r;
    if (strcmp(k->str, "htpasswd") == 0) {
      r = path_from(c, v, label, &auth->htpasswd, &auth->htpasswd_pos);
    } else if (strcmp(k->str, "client-ca") == 0) {
      r = path_from(c, v, label, &auth->client_ca, &auth->client_ca_pos);
    } else if (strcmp(k->str, "realm") == 0) {
      const char *s = scalar(c, v, label, "a realm name");
      if (!s) return -EINVAL;
      /* It goes into Proxy-Authenticate: Basic realm="..." as a quoted-string. */
      r = 0;
      for (size_t j = 0; j < v->len; j++)
        if (s[j] < 0x20 || s[j] > 0x7e || s[j] == '"' || s[j] == '\\') r = -EINVAL;
      if (r || v->len == 0 || v->len > 128)
        return fail_at(c, v, label, "a realm (printable ASCII without '\"' or '\\', up to 128)", s);
      free(auth->realm);
      auth->realm = xstrndup(s, v->len);
    } else if (strcmp(k->str, "client-cert") == 0) {
      const char *s = scalar(c, v, label, "required or optional");
      if (!s) return -EINVAL;
      if (strcmp(s, "required") == 0)
        auth->client_cert = ACCESS_CERT_REQUIRED;
      else if (strcmp(s, "optional") == 0)
        auth->client_cert = ACCESS_CERT_OPTIONAL;
      else
        return fail_at(c, v, label, "'required' or 'optional'", s);
      cert_node = v;
      r = 0;
    } else if (strcmp(k->str, "no-auth-nets") == 0) {
      r = nets_from(c, v, label, &auth->no_auth_nets, 1);
    } else if (strcmp(k->str, "allowed-client-nets") == 0) {
      r = nets_from(c, v, label, &auth->allowed_client_nets, 1);
    } else if (strcmp(k->str, "max-failures") == 0) {
      r = count_from(c, v, label, &auth->max_failures);
    } else if (strcmp(k->str, "failure-window") == 0) {
      r = duration_from(c, v, label, &auth->failure_window_ms);
    } else if (strcmp(k->str, "ban-time") == 0) {
      r = duration_from(c, v, label, &auth->ban_ms);
    } else if (strcmp(k->str, "cache-ttl") == 0) {
      r = duration_from(c, v, label, &auth->cache_ttl_ms);
    } else if (strcmp(k->str, "cache-size") == 0 || strcmp(k->str, "max-pending") == 0) {
      uint64_t *dst = k->str[0] == 'c' ? &auth->cache_size : &auth->max_pending;
      r = count_from(c, v, label, dst);
      if (r == 0 && *dst == 0) return fail_at(c, v, label, "a count from 1 to 999999999", "unlimited");
    } else {
      return unknown_key(c, k, "auth", known);
    }
    if (r) return r;
  }
  if (cert_node && !auth->client_ca) {
    cfgfile_errf(c->err, c->file, cert_node, "auth.client-cert: needs auth.client-ca");
    return -EINVAL;
  }
  if (auth->client_ca && auth->client_cert == ACCESS_CERT_NONE) auth->client_cert = ACCESS_CERT_REQUIRED;
  if ((auth->no_auth_nets.n || auth->no_auth_nets.classes) && !auth->htpasswd && !auth->client_ca) {
    cfgfile_errf(c->err, c->file, cfgfile_get(map, "no-auth-nets"),
                 "auth.no-auth-nets: means nothing without auth.htpasswd or auth.client-ca");
    return -EINVAL;
  }
  return 0;
}

/* ---- groups -------------------------------------------------------------------------------- */

static int parse_groups(struct pctx *c, struct access *a, const struct cfgfile_node *map) {
  if (cfgfile_want_map(c->file, map, "groups", c->err)) return -EINVAL;
  a->groups = xcalloc(map->n / 2, sizeof(*a->groups));
  for (size_t i = 0; i + 1 < map->n; i += 2) {
    const struct cfgfile_node *k = map->kids[i], *v = map->kids[i + 1];
    if (!valid_name(k->str))
      return fail_at(c, k, "groups", "a group name (letters, digits, '-', '_', '.'; up to 64)", k->str);
    struct access_group *g = &a->groups[a->ngroups++];
    g->name = xstrndup(k->str, k->len);
    g->pos = pos_of(k);
    char label[LABEL_MAX];
    snprintf(label, sizeof(label), "groups.%s", k->str);
    if (v->kind == CFGFILE_SEQ && v->n == 0) continue; /* an empty group is allowed */
    if (names_from(c, v, label, &g->members, &g->n, 0)) return -EINVAL;
  }
  return 0;
}

/* ---- rules --------------------------------------------------------------------------------- */

static int parse_match(struct pctx *c, struct access_rule *r, const struct cfgfile_node *map, const char *label) {
  static const char known[] = "users, groups, clients, dest, ports, protocols";
  char sub[LABEL_MAX + 16];
  if (cfgfile_want_map(c->file, map, label, c->err)) return -EINVAL;
  for (size_t i = 0; i + 1 < map->n; i += 2) {
    const struct cfgfile_node *k = map->kids[i], *v = map->kids[i + 1];
    snprintf(sub, sizeof(sub), "%s.%s", label, k->str);
    if (strcmp(k->str, "users") == 0) {
      if (v->kind == CFGFILE_SCALAR && strcmp(v->str, "*") == 0) {
        r->any_user = 1;
      } else if (names_from(c, v, sub, &r->users, &r->nusers, 0)) {
        return -EINVAL;
      }
    } else if (strcmp(k->str, "groups") == 0) {
      if (names_from(c, v, sub, &r->groups, &r->ngroups, 1)) return -EINVAL;
    } else if (strcmp(k->str, "clients") == 0) {
      if (nets_from(c, v, sub, &r->clients, 1)) return -EINVAL;
    } else if (strcmp(k->str, "dest") == 0) {
      if (cfgfile_want_list(c->file, v, sub, c->err)) return -EINVAL;
      for (size_t j = 0; j < cfgfile_nitems(v); j++) {
        const struct cfgfile_node *it = cfgfile_item(v, j);
        const char *why;
        if (strcmp(it->str, "*") == 0) {
          r->any_dest = 1;
          continue;
        }
        if (strchr(it->str, ':') || strchr(it->str, '/') || strspn(it->str, "0123456789.") == it->len) {
          if (access_nets_add(&r->dests, it->str, 0, &why))
            return fail_at(c, it, sub, "a CIDR or an address", it->str);
          continue;
        }
        r->hosts = xgrow(r->hosts, r->nhosts, sizeof(*r->hosts));
        if (parse_host(it->str, &r->hosts[r->nhosts]))
          return fail_at(c, it, sub, "a host name, \"*.suffix\", a CIDR or an address", it->str);
        r->nhosts++;
      }
    } else if (strcmp(k->str, "ports") == 0) {
      if (cfgfile_want_list(c->file, v, sub, c->err)) return -EINVAL;
      r->ports = xcalloc(cfgfile_nitems(v), sizeof(*r->ports));
      for (size_t j = 0; j < cfgfile_nitems(v); j++) {
        const struct cfgfile_node *it = cfgfile_item(v, j);
        if (parse_port_range(it->str, &r->ports[r->nports]))
          return fail_at(c, it, sub, "a port (1-65535), a range \"8000-8100\" or \"*\"", it->str);
        r->nports++;
      }
      merge_ranges(r->ports, &r->nports);
    } else if (strcmp(k->str, "protocols") == 0) {
      if (cfgfile_want_list(c->file, v, sub, c->err)) return -EINVAL;
      for (size_t j = 0; j < cfgfile_nitems(v); j++) {
        const struct cfgfile_node *it = cfgfile_item(v, j);
        if (strcmp(it->str, "connect") == 0)
          r->protocols |= ACCESS_PROTO_CONNECT;
        else if (strcmp(it->str, "websocket") == 0)
          r->protocols |= ACCESS_PROTO_WEBSOCKET;
        else if (strcmp(it->str, "connect-udp") == 0)
          r->protocols |= ACCESS_PROTO_CONNECT_UDP;
        else
          return fail_at(c, it, sub, "a protocol (connect, websocket, connect-udp)", it->str);
      }
    } else {
      return unknown_key(c, k, label, known);
    }
  }
  return 0;
}

static int parse_rule(struct pctx *c, struct access *a, struct access_rule *r, const struct cfgfile_node *map,
                      size_t index) {
  char label[LABEL_MAX];
  snprintf(label, sizeof(label), "rules[%zu]", index);
  r->pos = pos_of(map);
  if (map->kind != CFGFILE_MAP) {
    cfgfile_errf(c->err, c->file, map, "%s: expected a mapping with allow: or deny:, not %s", label,
                 cfgfile_kind_name(map));
    return -EINVAL;
  }
  const struct cfgfile_node *body = NULL;
  for (size_t i = 0; i + 1 < map->n; i += 2) {
    const struct cfgfile_node *k = map->kids[i], *v = map->kids[i + 1];
    if (strcmp(k->str, "name") == 0) {
      char sub[LABEL_MAX + 8];
      snprintf(sub, sizeof(sub), "%s.name", label);
      const char *s = scalar(c, v, sub, "a rule name");
      if (!s) return -EINVAL;
      if (!valid_name(s)) return fail_at(c, v, sub, "a rule name (letters, digits, '-', '_', '.'; up to 64)", s);
      for (size_t j = 0; &a->rules[j] != r; j++) { /* the rules before this one */
        if (strcmp(a->rules[j].name, s) == 0) {
          cfgfile_errf(c->err, c->file, v, "%s: the name '%s' is already used by rule %zu", sub, s, j + 1);
          return -EINVAL;
        }
      }
      r->name = xstrndup(s, v->len);
    } else if (strcmp(k->str, "keep-on-reload") == 0) {
      /* Tunnels this rule admitted survive a reload that would now refuse them (src/reload.h). */
      char sub[LABEL_MAX + 20];
      snprintf(sub, sizeof(sub), "%s.keep-on-reload", label);
      const char *s = scalar(c, v, sub, "true or false");
      if (!s) return -EINVAL;
      if (strcmp(s, "true") == 0)
        r->keep_on_reload = 1;
      else if (strcmp(s, "false") == 0)
        r->keep_on_reload = 0;
      else
        return fail_at(c, v, sub, "true or false", s);
    } else if (strcmp(k->str, "allow") == 0 || strcmp(k->str, "deny") == 0) {
      if (body) {
        cfgfile_errf(c->err, c->file, k, "%s: give allow: or deny:, not both", label);
        return -EINVAL;
      }
      body = v;
      r->action = k->str[0] == 'a' ? ACCESS_ALLOW : ACCESS_DENY;
    } else {
      return unknown_key(c, k, label, "name, keep-on-reload, allow, deny");
    }
  }
  if (!body) {
    cfgfile_errf(c->err, c->file, map, "%s: needs allow: or deny:", label);
    return -EINVAL;
  }
  if (!r->name) {
    char n[24];
    snprintf(n, sizeof(n), "#%zu", index + 1);
    r->name = xstrndup(n, strlen(n));
  }
  char sub[LABEL_MAX + 8];
  snprintf(sub, sizeof(sub), "%s.%s", label, r->action == ACCESS_ALLOW ? "allow" : "deny");
  return parse_match(c, r, body, sub);
}

static int parse_rules(struct pctx *c, struct access *a, const struct cfgfile_node *seq) {
  if (cfgfile_is_null(seq)) return 0; /* "rules:" with nothing: no rules */
  if (seq->kind != CFGFILE_SEQ) {
    cfgfile_errf(c->err, c->file, seq, "rules: expected a list of rules, not %s", cfgfile_kind_name(seq));
    return -EINVAL;
  }
  a->rules = xcalloc(seq->n, sizeof(*a->rules));
  for (size_t i = 0; i < seq->n; i++) {
    /* Counted before parsing so that a half-parsed rule is freed with the rest. */
    struct access_rule *r = &a->rules[a->nrules++];
    int rv = parse_rule(c, a, r, seq->kids[i], i);
    if (!r->name) r->name = xstrndup("", 0);
    if (rv) return rv;
  }
  return 0;
}

/* ---- limits -------------------------------------------------------------------------------- */

/* Sets one or both of a pair of bandwidth fields. */
static int bw_from(struct pctx *c, const struct cfgfile_node *v, const char *label, struct access_limits *l,
                   unsigned bits, uint64_t *up, uint64_t *down) {
  const char *s = scalar(c, v, label, "a bandwidth");
  uint64_t bw = 0;
  if (!s) return -EINVAL;
  if (strcmp(s, "unlimited") != 0 && parse_bandwidth(s, &bw))
    return fail_at(c, v, label, "a bandwidth per second (\"50m/s\", \"512k/s\", \"1g/s\") or 'unlimited'", s);
  if (l->set & bits) {
    cfgfile_errf(c->err, c->file, v, "%s: the same direction is already set in this block", label);
    return -EINVAL;
  }
  l->set |= bits;
  if (bits & (ACCESS_LIM_BW_UP | ACCESS_LIM_TBW_UP)) *up = bw;
  if (bits & (ACCESS_LIM_BW_DOWN | ACCESS_LIM_TBW_DOWN)) *down = bw;
  return 0;
}

/* |inherits|: a user's block, whose rate may come from limits.default. */
static int parse_limit_block(struct pctx *c, const struct cfgfile_node *map, const char *label,
                             struct access_limits *l, int inherits) {
  static const char known[] = "tunnels, rate, burst, bandwidth, bandwidth-up, bandwidth-down, "
                              "tunnel-bandwidth, tunnel-bandwidth-up, tunnel-bandwidth-down";
  if (cfgfile_want_map(c->file, map, label, c->err)) return -EINVAL;
  memset(l, 0, sizeof(*l));
  for (size_t i = 0; i + 1 < map->n; i += 2) {
    const struct cfgfile_node *k = map->kids[i], *v = map->kids[i + 1];
    char sub[LABEL_MAX + 32];
    snprintf(sub, sizeof(sub), "%s.%s", label, k->str);
    const char *key = k->str;
    int r;
    if (strcmp(key, "tunnels") == 0) {
      r = count_from(c, v, sub, &l->tunnels);
      l->set |= ACCESS_LIM_TUNNELS;
    } else if (strcmp(key, "burst") == 0) {
      r = count_from(c, v, sub, &l->burst);
      l->set |= ACCESS_LIM_BURST;
    } else if (strcmp(key, "rate") == 0) {
      const char *s = scalar(c, v, sub, "a rate");
      if (!s) return -EINVAL;
      l->rate_count = l->rate_period_ms = 0;
      if (strcmp(s, "unlimited") != 0 && parse_rate(s, &l->rate_count, &l->rate_period_ms))
        return fail_at(c, v, sub, "a rate (\"20/s\", \"100/m\", \"1000/h\") or 'unlimited'", s);
      l->set |= ACCESS_LIM_RATE;
      r = 0;
    } else if (strcmp(key, "bandwidth") == 0) {
      r = bw_from(c, v, sub, l, ACCESS_LIM_BW_UP | ACCESS_LIM_BW_DOWN, &l->bw_up, &l->bw_down);
    } else if (strcmp(key, "bandwidth-up") == 0) {
      r = bw_from(c, v, sub, l, ACCESS_LIM_BW_UP, &l->bw_up, &l->bw_down);
    } else if (strcmp(key, "bandwidth-down") == 0) {
      r = bw_from(c, v, sub, l, ACCESS_LIM_BW_DOWN, &l->bw_up, &l->bw_down);
    } else if (strcmp(key, "tunnel-bandwidth") == 0) {
      r = bw_from(c, v, sub, l, ACCESS_LIM_TBW_UP | ACCESS_LIM_TBW_DOWN, &l->tunnel_bw_up, &l->tunnel_bw_down);
    } else if (strcmp(key, "tunnel-bandwidth-up") == 0) {
      r = bw_from(c, v, sub, l, ACCESS_LIM_TBW_UP, &l->tunnel_bw_up, &l->tunnel_bw_down);
    } else if (strcmp(key, "tunnel-bandwidth-down") == 0) {
      r = bw_from(c, v, sub, l, ACCESS_LIM_TBW_DOWN, &l->tunnel_bw_up, &l->tunnel_bw_down);
    } else {
      return unknown_key(c, k, label, known);
    }
    if (r) return r;
  }
  if ((l->set & ACCESS_LIM_BURST) && l->burst && !(l->set & ACCESS_LIM_RATE) && !inherits) {
    cfgfile_errf(c->err, c->file, cfgfile_get(map, "burst"), "%s.burst: needs a rate in the same block", label);
    return -EINVAL;
  }
  if ((l->set & ACCESS_LIM_RATE) && !(l->set & ACCESS_LIM_BURST)) l->burst = l->rate_count;
  return 0;
}

/* The user's own fields over the default block; a user's own rate brings its own burst. */
static struct access_limits merge_limits(const struct access_limits *def, const struct access_limits *own) {
  struct access_limits m = *def;
  m.set |= own->set;
  if (own->set & ACCESS_LIM_TUNNELS) m.tunnels = own->tunnels;
  if (own->set & ACCESS_LIM_RATE) {
    m.rate_count = own->rate_count;
    m.rate_period_ms = own->rate_period_ms;
    m.burst = own->burst;
  }
  if (own->set & ACCESS_LIM_BURST) m.burst = own->burst;
  if (own->set & ACCESS_LIM_BW_UP) m.bw_up = own->bw_up;
  if (own->set & ACCESS_LIM_BW_DOWN) m.bw_down = own->bw_down;
  if (own->set & ACCESS_LIM_TBW_UP) m.tunnel_bw_up = own->tunnel_bw_up;
  if (own->set & ACCESS_LIM_TBW_DOWN) m.tunnel_bw_down = own->tunnel_bw_down;
  return m;
}

static int parse_limits(struct pctx *c, struct access_limit_set *ls, const struct cfgfile_node *map) {
  const struct cfgfile_node *users = NULL;
  if (cfgfile_want_map(c->file, map, "limits", c->err)) return -EINVAL;
  for (size_t i = 0; i + 1 < map->n; i += 2) {
    const struct cfgfile_node *k = map->kids[i], *v = map->kids[i + 1];
    char label[LABEL_MAX];
    snprintf(label, sizeof(label), "limits.%s", k->str);
    int r = 0;
    if (strcmp(k->str, "default") == 0)
      r = parse_limit_block(c, v, label, &ls->user_default, 0);
    else if (strcmp(k->str, "per-client") == 0)
      r = parse_limit_block(c, v, label, &ls->per_client, 0);
    else if (strcmp(k->str, "instance") == 0)
      r = parse_limit_block(c, v, label, &ls->instance, 0);
    else if (strcmp(k->str, "users") == 0)
      users = v;
    else
      return unknown_key(c, k, "limits", "default, users, per-client, instance");
    if (r) return r;
  }
  if (!users) return 0;
  /* After the loop: users inherit from default wherever default was written. */
  if (cfgfile_want_map(c->file, users, "limits.users", c->err)) return -EINVAL;
  ls->users = xcalloc(users->n / 2, sizeof(*ls->users));
  for (size_t i = 0; i + 1 < users->n; i += 2) {
    const struct cfgfile_node *k = users->kids[i], *v = users->kids[i + 1];
    char label[LABEL_MAX];
    snprintf(label, sizeof(label), "limits.users.%.200s", k->str);
    if (k->len == 0 || k->len > USERS_NAME_MAX) return fail_at(c, k, "limits.users", "a user name", k->str);
    struct access_user_limits *u = &ls->users[ls->nusers++];
    u->user = xstrndup(k->str, k->len);
    u->pos = pos_of(k);
    struct access_limits own;
    if (parse_limit_block(c, v, label, &own, 1)) return -EINVAL;
    u->lim = merge_limits(&ls->user_default, &own);
  }
  return 0;
}

/* ---- sections ------------------------------------------------------------------------------ */

static const char *const sections[] = {"auth", "groups", "rules", "limits"};

int access_is_section(const char *key) {
  for (size_t i = 0; i < ARRAY_SIZE(sections); i++)
    if (strcmp(key, sections[i]) == 0) return 1;
  return 0;
}

int access_parse_section(struct access *a, const char *key, const struct cfgfile_node *val,
                         const char *base_dir, struct cfgfile_err *err) {
  struct pctx c = {.file = a->file ? a->file : "(config)", .base = base_dir, .err = err};
  if (strcmp(key, "auth") == 0) return parse_auth(&c, &a->auth, val);
  if (strcmp(key, "groups") == 0) return parse_groups(&c, a, val);
  if (strcmp(key, "rules") == 0) return parse_rules(&c, a, val);
  if (strcmp(key, "limits") == 0) return parse_limits(&c, &a->limits, val);
  return -EINVAL;
}

/* ---- files and names ----------------------------------------------------------------------- */

int access_load_files(struct access *a, struct cfgfile_err *err) {
  if (a->auth.htpasswd) {
    struct cfgfile_err inner;
    users_free(a->auth.users);
    a->auth.users = users_load(a->auth.htpasswd, &inner);
    if (!a->auth.users)
      return pos_err(err, a->file, a->auth.htpasswd_pos, "auth.htpasswd: %s", inner.text);
  }
  if (a->auth.client_ca) {
    FILE *f = fopen(a->auth.client_ca, "r");
    if (!f)
      return pos_err(err, a->file, a->auth.client_ca_pos, "auth.client-ca: cannot read %s: %s",
                     a->auth.client_ca, strerror(errno));
    fclose(f);
  }
  return 0;
}

static int cmp_names(const void *x, const void *y) {
  return strcmp(((const struct access_name *)x)->s, ((const struct access_name *)y)->s);
}

static int cmp_groups(const void *x, const void *y) {
  return strcmp(((const struct access_group *)x)->name, ((const struct access_group *)y)->name);
}

static int cmp_user_limits(const void *x, const void *y) {
  return strcmp(((const struct access_user_limits *)x)->user, ((const struct access_user_limits *)y)->user);
}

/* With an htpasswd file, every named user must be in it. */
static int check_user(const struct access *a, const char *name, struct access_pos pos, const char *where,
                      struct cfgfile_err *err) {
  if (!a->auth.users || users_find(a->auth.users, name)) return 0;
  return pos_err(err, a->file, pos, "%s: unknown user '%s' (not in the htpasswd file)", where, name);
}

const struct access_group *access_find_group(const struct access *a, const char *name) {
  struct access_group key = {.name = (char *)name};
  return find_item(&key, a->groups, a->ngroups, sizeof(*a->groups), cmp_groups);
}

const struct access_limits *access_user_limits(const struct access *a, const char *user) {
  struct access_user_limits key = {.user = (char *)user};
  const struct access_user_limits *u =
      find_item(&key, a->limits.users, a->limits.nusers, sizeof(*a->limits.users), cmp_user_limits);
  return u ? &u->lim : &a->limits.user_default;
}

/* Sorts |v| by name and refuses a name given twice, pointing at the later one. */
static int sort_unique(const struct access *a, struct access_name *v, size_t n, const char *where,
                       struct cfgfile_err *err) {
  sort_items(v, n, sizeof(*v), cmp_names);
  for (size_t i = 1; i < n; i++) {
    if (strcmp(v[i - 1].s, v[i].s) != 0) continue;
    struct access_pos later = v[i].pos.line > v[i - 1].pos.line ||
                                      (v[i].pos.line == v[i - 1].pos.line && v[i].pos.col > v[i - 1].pos.col)
                                  ? v[i].pos
                                  : v[i - 1].pos;
    return pos_err(err, a->file, later, "%s: '%s' is listed twice", where, v[i].s);
  }
  return 0;
}

int access_link(struct access *a, struct cfgfile_err *err) {
  sort_items(a->groups, a->ngroups, sizeof(*a->groups), cmp_groups);
  for (size_t i = 1; i < a->ngroups; i++) /* YAML refuses duplicate keys; keep the invariant */
    CHECK(strcmp(a->groups[i - 1].name, a->groups[i].name) != 0);
  for (size_t i = 0; i < a->ngroups; i++) {
    struct access_group *g = &a->groups[i];
    for (size_t j = 0; j < g->n; j++)
      if (check_user(a, g->members[j].s, g->members[j].pos, "groups", err)) return -EINVAL;
    if (sort_unique(a, g->members, g->n, "groups", err)) return -EINVAL;
  }
  for (size_t i = 0; i < a->nrules; i++) {
    struct access_rule *r = &a->rules[i];
    for (size_t j = 0; j < r->nusers; j++)
      if (check_user(a, r->users[j].s, r->users[j].pos, "rules", err)) return -EINVAL;
    if (sort_unique(a, r->users, r->nusers, "rules", err)) return -EINVAL;
    free(r->group_idx);
    r->group_idx = xcalloc(r->ngroups, sizeof(*r->group_idx));
    for (size_t j = 0; j < r->ngroups; j++) {
      const struct access_group *g = access_find_group(a, r->groups[j].s);
      if (!g)
        return pos_err(err, a->file, r->groups[j].pos, "rules: unknown group '%s'%s", r->groups[j].s,
                       a->ngroups ? " (not under groups:)" : " (there is no groups: section)");
      r->group_idx[j] = (size_t)(g - a->groups);
    }
  }
  sort_items(a->limits.users, a->limits.nusers, sizeof(*a->limits.users), cmp_user_limits);
  for (size_t i = 0; i < a->limits.nusers; i++)
    if (check_user(a, a->limits.users[i].user, a->limits.users[i].pos, "limits.users", err)) return -EINVAL;
  return 0;
}

/* ---- printing ------------------------------------------------------------------------------ */

static void print_names(FILE *out, const struct access_name *v, size_t n) {
  fputc('[', out);
  for (size_t i = 0; i < n; i++) {
    if (i) fputs(", ", out);
    cfgfile_print_str(out, v[i].s);
  }
  fputc(']', out);
}

static void print_nets(FILE *out, const struct access_nets *nets) {
  fputc('[', out);
  for (size_t i = 0; i < nets->ntext; i++) {
    if (i) fputs(", ", out);
    cfgfile_print_str(out, nets->text[i]);
  }
  fputc(']', out);
}

static void print_rate(FILE *out, uint64_t count, uint64_t period_ms) {
  fprintf(out, "%llu/%s", (unsigned long long)count,
          period_ms == 1000 ? "s" : period_ms == 60000 ? "m" : "h");
}

static void print_bw(FILE *out, const char *sep, const char *key, uint64_t v) {
  char text[32];
  if (v == 0) {
    fprintf(out, "%s%s: unlimited", sep, key);
    return;
  }
  units_format_size(v, text, sizeof(text));
  fprintf(out, "%s%s: %s/s", sep, key, text);
}

static void print_limits(FILE *out, const struct access_limits *l) {
  const char *sep = "";
  fputc('{', out);
  if (l->set & ACCESS_LIM_TUNNELS) {
    if (l->tunnels)
      fprintf(out, "tunnels: %llu", (unsigned long long)l->tunnels);
    else
      fputs("tunnels: unlimited", out);
    sep = ", ";
  }
  if (l->set & ACCESS_LIM_RATE) {
    fprintf(out, "%srate: ", sep);
    if (l->rate_count)
      print_rate(out, l->rate_count, l->rate_period_ms);
    else
      fputs("unlimited", out);
    sep = ", ";
  }
  if (l->rate_count) { /* the effective burst, given or not */
    fprintf(out, "%sburst: %llu", sep, (unsigned long long)l->burst);
    sep = ", ";
  }
  static const struct {
    unsigned bit;
    const char *key;
    size_t off;
  } bws[] = {
      {ACCESS_LIM_BW_UP, "bandwidth-up", offsetof(struct access_limits, bw_up)},
      {ACCESS_LIM_BW_DOWN, "bandwidth-down", offsetof(struct access_limits, bw_down)},
      {ACCESS_LIM_TBW_UP, "tunnel-bandwidth-up", offsetof(struct access_limits, tunnel_bw_up)},
      {ACCESS_LIM_TBW_DOWN, "tunnel-bandwidth-down", offsetof(struct access_limits, tunnel_bw_down)},
  };
  for (size_t i = 0; i < ARRAY_SIZE(bws); i++) {
    if (!(l->set & bws[i].bit)) continue;
    uint64_t v;
    memcpy(&v, (const char *)l + bws[i].off, sizeof(v));
    print_bw(out, sep, bws[i].key, v);
    sep = ", ";
  }
  fputc('}', out);
}

static void print_rule(FILE *out, const struct access_rule *r) {
  const char *sep = "";
  if (r->name[0] == '#' && !r->keep_on_reload)
    fprintf(out, "  - %s: {", r->action == ACCESS_ALLOW ? "allow" : "deny");
  else if (r->name[0] == '#') {
    fprintf(out, "  - keep-on-reload: true\n    %s: {", r->action == ACCESS_ALLOW ? "allow" : "deny");
  } else {
    fputs("  - name: ", out);
    cfgfile_print_str(out, r->name);
    if (r->keep_on_reload) fputs("\n    keep-on-reload: true", out);
    fprintf(out, "\n    %s: {", r->action == ACCESS_ALLOW ? "allow" : "deny");
  }
  if (r->any_user) fputs("users: \"*\"", out), sep = ", ";
  if (r->nusers) fprintf(out, "%susers: ", sep), print_names(out, r->users, r->nusers), sep = ", ";
  if (r->ngroups) fprintf(out, "%sgroups: ", sep), print_names(out, r->groups, r->ngroups), sep = ", ";
  if (r->clients.ntext) fprintf(out, "%sclients: ", sep), print_nets(out, &r->clients), sep = ", ";
  if (r->any_dest || r->nhosts || r->dests.ntext) {
    const char *isep = "";
    fprintf(out, "%sdest: [", sep);
    if (r->any_dest) fputs("\"*\"", out), isep = ", ";
    for (size_t i = 0; i < r->nhosts; i++) {
      fprintf(out, "%s\"%s%s\"", isep, r->hosts[i].suffix ? "*" : "", r->hosts[i].pattern);
      isep = ", ";
    }
    for (size_t i = 0; i < r->dests.ntext; i++) {
      fputs(isep, out);
      cfgfile_print_str(out, r->dests.text[i]);
      isep = ", ";
    }
    fputc(']', out);
    sep = ", ";
  }
  if (r->nports) {
    fprintf(out, "%sports: [", sep);
    for (size_t i = 0; i < r->nports; i++) {
      if (r->ports[i].lo == r->ports[i].hi)
        fprintf(out, "%s%u", i ? ", " : "", r->ports[i].lo);
      else
        fprintf(out, "%s\"%u-%u\"", i ? ", " : "", r->ports[i].lo, r->ports[i].hi);
    }
    fputc(']', out);
    sep = ", ";
  }
  if (r->protocols) {
    static const char *const names[] = {"connect", "websocket", "connect-udp"};
    const char *isep = "";
    fprintf(out, "%sprotocols: [", sep);
    for (unsigned b = 0; b < 3; b++)
      if (r->protocols & (1u << b)) fprintf(out, "%s%s", isep, names[b]), isep = ", ";
    fputc(']', out);
  }
  fputc('}', out);
  if (r->name[0] == '#') fprintf(out, "  # rule %s", r->name);
  fputc('\n', out);
}

static void print_auth(FILE *out, const struct access_auth *au) {
  char t[3][32];
  if (au->htpasswd) {
    fputs("  htpasswd: ", out);
    cfgfile_print_str(out, au->htpasswd);
    if (au->users) fprintf(out, "  # %zu user(s)", au->users->n);
    fputc('\n', out);
  }
  fputs("  realm: ", out);
  cfgfile_print_str(out, au->realm);
  fputc('\n', out);
  if (au->client_ca) {
    fputs("  client-ca: ", out);
    cfgfile_print_str(out, au->client_ca);
    fprintf(out, "\n  client-cert: %s\n", au->client_cert == ACCESS_CERT_OPTIONAL ? "optional" : "required");
  }
  fputs("  no-auth-nets: ", out);
  print_nets(out, &au->no_auth_nets);
  fputs("\n  allowed-client-nets: ", out);
  print_nets(out, &au->allowed_client_nets);
  units_format_duration(au->failure_window_ms, t[1], sizeof(t[1]));
  units_format_duration(au->ban_ms, t[2], sizeof(t[2]));
  if (au->max_failures)
    snprintf(t[0], sizeof(t[0]), "%llu", (unsigned long long)au->max_failures);
  else
    snprintf(t[0], sizeof(t[0]), "unlimited");
  fprintf(out, "\n  max-failures: %s\n  failure-window: %s\n  ban-time: %s\n", t[0], t[1], t[2]);
  units_format_duration(au->cache_ttl_ms, t[0], sizeof(t[0]));
  fprintf(out, "  cache-ttl: %s\n  cache-size: %llu\n  max-pending: %llu\n", t[0],
          (unsigned long long)au->cache_size, (unsigned long long)au->max_pending);
}

void access_print_section(const struct access *a, const char *key, const char *comment, FILE *out) {
  /* Empty collections are written inline so that they parse back as collections. */
  const char *empty = strcmp(key, "groups") == 0 && a->ngroups == 0  ? " {}"
                      : strcmp(key, "rules") == 0 && a->nrules == 0 ? " []"
                                                                     : "";
  fprintf(out, "%s:%s%s%s\n", key, empty, comment && comment[0] ? "  # " : "", comment ? comment : "");
  if (strcmp(key, "auth") == 0) {
    print_auth(out, &a->auth);
  } else if (strcmp(key, "groups") == 0) {
    for (size_t i = 0; i < a->ngroups; i++) {
      fputs("  ", out);
      cfgfile_print_str(out, a->groups[i].name);
      fputs(": ", out);
      print_names(out, a->groups[i].members, a->groups[i].n);
      fputc('\n', out);
    }
  } else if (strcmp(key, "rules") == 0) {
    for (size_t i = 0; i < a->nrules; i++) print_rule(out, &a->rules[i]);
  } else if (strcmp(key, "limits") == 0) {
    const struct access_limit_set *ls = &a->limits;
    fputs("  default: ", out);
    print_limits(out, &ls->user_default);
    fputs("\n  per-client: ", out);
    print_limits(out, &ls->per_client);
    fputs("\n  instance: ", out);
    print_limits(out, &ls->instance);
    fputc('\n', out);
    if (ls->nusers) fputs("  users:\n", out);
    for (size_t i = 0; i < ls->nusers; i++) {
      fputs("    ", out);
      cfgfile_print_str(out, ls->users[i].user);
      fputs(": ", out);
      print_limits(out, &ls->users[i].lim);
      fputc('\n', out);
    }
  }
}
