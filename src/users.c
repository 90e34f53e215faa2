/* htpasswd users (see users.h). The hash checks are syntactic and strict, so that a truncated or
 * mistyped hash is caught at start-up with its line number rather than failing every login;
 * libxcrypt's crypt_checksalt must agree as well. */
#include "src/users.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "src/util.h"

/* crypt(3)'s base-64 alphabet. */
static int b64_run(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '/'))
      return 0;
  }
  return 1;
}

/* "$2y$NN$" + 22 salt + 31 hash characters; cost 04..31. */
static int check_bcrypt(const char *h, size_t n) {
  if (n != 60 || h[6] != '$' || h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9') return 0;
  int cost = (h[4] - '0') * 10 + (h[5] - '0');
  return cost >= 4 && cost <= 31 && b64_run(h + 7, 53);
}

/* "$5$[rounds=N$]salt$hash": salt 1..16, hash 43 ($5$) or 86 ($6$) characters. */
static int check_shacrypt(const char *h, size_t n, size_t hashlen) {
  const char *p = h + 3, *end = h + n;
  if (end - p > 7 && memcmp(p, "rounds=", 7) == 0) {
    p += 7;
    const char *d = p;
    while (p < end && *p >= '0' && *p <= '9') p++;
    if (p == d || p - d > 9 || p == end || *p != '$') return 0;
    p++;
  }
  const char *salt = p;
  while (p < end && *p != '$') p++;
  size_t slen = (size_t)(p - salt);
  if (slen == 0 || slen > 16 || p == end || !b64_run(salt, slen)) return 0;
  p++;
  return (size_t)(end - p) == hashlen && b64_run(p, hashlen);
}

/* "$y$params$salt$hash", three non-empty fields. */
static int check_yescrypt(const char *h, size_t n) {
  const char *p = h + 3, *end = h + n;
  for (int field = 0; field < 3; field++) {
    const char *s = p;
    while (p < end && *p != '$') p++;
    if (p == s || !b64_run(s, (size_t)(p - s))) return 0;
    if (field < 2) {
      if (p == end) return 0;
      p++;
    }
  }
  return p == end;
}

/* Sorts |h| into an accepted kind, or returns -EINVAL with the reason. */
static int classify(const char *h, size_t n, enum users_hash *kind, const char **why) {
  static const struct {
    const char *prefix;
    const char *why;
  } weak[] = {
      {"$apr1$", "weak or unknown hash format (MD5 $apr1$)"},
      {"$1$", "weak or unknown hash format (MD5-crypt $1$)"},
      {"{SHA}", "weak or unknown hash format ({SHA}: unsalted SHA-1)"},
      {"{SSHA}", "weak or unknown hash format ({SSHA}: salted SHA-1)"},
  };
  int ok;

  for (size_t i = 0; i < ARRAY_SIZE(weak); i++) {
    if (n >= strlen(weak[i].prefix) && memcmp(h, weak[i].prefix, strlen(weak[i].prefix)) == 0) {
      *why = weak[i].why;
      return -EINVAL;
    }
  }
  if (n >= 4 && h[0] == '$' && h[1] == '2' && (h[2] == 'y' || h[2] == 'b' || h[2] == 'a') && h[3] == '$') {
    *kind = USERS_BCRYPT;
    ok = check_bcrypt(h, n);
    *why = "malformed bcrypt hash";
  } else if (n >= 3 && (memcmp(h, "$5$", 3) == 0 || memcmp(h, "$6$", 3) == 0)) {
    *kind = h[1] == '5' ? USERS_SHA256 : USERS_SHA512;
    ok = check_shacrypt(h, n, h[1] == '5' ? 43 : 86);
    *why = h[1] == '5' ? "malformed SHA-256-crypt hash" : "malformed SHA-512-crypt hash";
  } else if (n >= 3 && memcmp(h, "$y$", 3) == 0) {
    *kind = USERS_YESCRYPT;
    ok = check_yescrypt(h, n);
    *why = "malformed yescrypt hash";
  } else if (n > 0 && h[0] == '$') {
    *why = "weak or unknown hash format (unknown $...$ prefix)";
    return -EINVAL;
  } else if (n == 13 && b64_run(h, n)) {
    *why = "weak or unknown hash format (DES crypt)";
    return -EINVAL;
  } else {
    *why = "weak or unknown hash format (plain text?)";
    return -EINVAL;
  }
  if (!ok) return -EINVAL;
  /* The hash is copied into a NUL-terminated string before this check. */
  char tmp[CRYPT_OUTPUT_SIZE];
  if (n >= sizeof(tmp)) return -EINVAL;
  memcpy(tmp, h, n);
  tmp[n] = '\0';
  /* Only a malformed or disabled setting is refused here: Debian's libxcrypt calls SHA-256-crypt
   * "legacy", but it is on our list (and still salted and iterated), so the list decides. */
  int cs = crypt_checksalt(tmp);
  if (cs == CRYPT_SALT_INVALID || cs == CRYPT_SALT_METHOD_DISABLED) {
    *why = "hash refused by libxcrypt";
    return -EINVAL;
  }
  return 0;
}

int users_parse_line(const char *line, size_t len, struct users_entry *out, const char **why,
                     size_t *user_end) {
  if (len > 0 && line[len - 1] == '\r') len--;
  if (len == 0 || line[0] == '#') return 0;
  const char *colon = memchr(line, ':', len);
  if (!colon) {
    *why = "no ':' between user and hash";
    return -EINVAL;
  }
  size_t ulen = (size_t)(colon - line);
  *user_end = ulen;
  if (ulen == 0 || ulen > USERS_NAME_MAX) {
    *why = ulen ? "user name longer than 255 bytes" : "empty user name";
    return -EINVAL;
  }
  for (size_t i = 0; i < ulen; i++) {
    unsigned char c = (unsigned char)line[i];
    if (c < 0x20 || c == 0x7f) {
      *why = "control character in the user name";
      return -EINVAL;
    }
  }
  const char *h = colon + 1;
  size_t hlen = len - ulen - 1;
  enum users_hash kind;
  if (classify(h, hlen, &kind, why) != 0) return -EINVAL;
  out->name = xstrndup(line, ulen);
  out->hash = xstrndup(h, hlen);
  out->kind = kind;
  return 1;
}

static int cmp_entries(const void *a, const void *b) {
  const struct users_entry *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* "FILE:LINE: [user 'name': ]why", one clean line whatever bytes the name holds. */
static void line_errf(struct cfgfile_err *err, const char *file, unsigned line, const char *user,
                      size_t ulen, const char *why) {
  if (user)
    snprintf(err->text, sizeof(err->text), "%s:%u: user '%.*s': %s", file, line,
             (int)MIN(ulen, (size_t)USERS_NAME_MAX), user, why);
  else
    snprintf(err->text, sizeof(err->text), "%s:%u: %s", file, line, why);
  cfgfile_err_clean(err);
}

struct users *users_parse(const char *file, const char *text, size_t len, struct cfgfile_err *err) {
  struct users *u = xcalloc(1, sizeof(*u));
  size_t cap = 0;
  unsigned lineno = 0;
  u->file = xstrndup(file, strlen(file));
  for (size_t pos = 0; pos < len;) {
    const char *line = text + pos;
    const char *nl = memchr(line, '\n', len - pos);
    size_t llen = nl ? (size_t)(nl - line) : len - pos;
    pos += llen + 1;
    lineno++;
    if (memchr(line, '\0', llen)) {
      line_errf(err, file, lineno, NULL, 0, "a NUL byte in the line");
      goto fail;
    }
    struct users_entry e = {.line = lineno};
    const char *why = NULL;
    size_t ulen = 0;
    int r = users_parse_line(line, llen, &e, &why, &ulen);
    if (r < 0) {
      int named = ulen > 0 && memchr(line, ':', llen) != NULL;
      line_errf(err, file, lineno, named ? line : NULL, ulen, why);
      goto fail;
    }
    if (r == 0) continue;
    if (u->n == cap) {
      cap = cap ? 2 * cap : 16;
      u->v = xrealloc(u->v, cap * sizeof(*u->v));
    }
    u->v[u->n++] = e;
  }
  if (u->n > 1) qsort(u->v, u->n, sizeof(*u->v), cmp_entries);
  for (size_t i = 1; i < u->n; i++) {
    if (strcmp(u->v[i - 1].name, u->v[i].name) == 0) {
      char why[64];
      snprintf(why, sizeof(why), "given twice (first on line %u)", u->v[i - 1].line);
      line_errf(err, file, u->v[i].line, u->v[i].name, strlen(u->v[i].name), why);
      goto fail;
    }
  }
  return u;
fail:
  users_free(u);
  return NULL;
}

struct users *users_load(const char *path, struct cfgfile_err *err) {
  size_t len;
  char *text = cfgfile_read(path, USERS_FILE_MAX, &len, err);
  if (!text) return NULL;
  struct users *u = users_parse(path, text, len, err);
  free(text);
  return u;
}

void users_free(struct users *u) {
  if (!u) return;
  for (size_t i = 0; i < u->n; i++) {
    free(u->v[i].name);
    free(u->v[i].hash);
  }
  free(u->v);
  free(u->file);
  free(u);
}

const struct users_entry *users_find(const struct users *u, const char *name) {
  size_t lo = 0, hi = u ? u->n : 0;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(name, u->v[mid].name);
    if (c == 0) return &u->v[mid];
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

/* Hashed when the user is unknown, so that a miss costs as much as a wrong password. */
static const char dummy_hash[] = "$2y$10$33SmCVON9SMv3qrLiAl/z.Jf315ZN/Al2hTFU7qb95Xf1LZQi1IuO";

int users_verify(const struct users *u, const char *name, const char *password, size_t len) {
  if (memchr(password, '\0', len)) return -EINVAL;
  const struct users_entry *e = users_find(u, name);
  const char *setting = e ? e->hash : dummy_hash;
  char *phrase = xstrndup(password, len);
  struct crypt_data *cd = xcalloc(1, sizeof(*cd)); /* ~32 KiB: not on a thread-pool stack */
  const char *out = crypt_rn(phrase, setting, cd, (int)sizeof(*cd));
  int r = -ENOMEM;
  if (out) {
    size_t n = strlen(setting);
    int same = strlen(out) == n && CRYPTO_memcmp(out, setting, n) == 0;
    r = e && same ? 0 : -EACCES;
  }
  OPENSSL_cleanse(cd, sizeof(*cd));
  OPENSSL_cleanse(phrase, len);
  free(cd);
  free(phrase);
  return r;
}
