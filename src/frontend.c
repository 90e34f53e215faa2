#include "src/frontend.h"

#include <string.h>

#include "src/util.h"

void frontend_table_init(struct frontend_table *t) { memset(t, 0, sizeof(*t)); }

void frontend_table_add(struct frontend_table *t, const struct frontend *fe, int fallback) {
  size_t id = strlen(fe->alpn);
  CHECK(t->n < FRONTEND_MAX && id > 0 && id < 256 && t->alpn_len + 1 + id <= sizeof(t->alpn));
  t->fe[t->n++] = fe;
  t->alpn[t->alpn_len++] = (unsigned char)id;
  memcpy(t->alpn + t->alpn_len, fe->alpn, id);
  t->alpn_len += id;
  if (fallback) t->fallback = fe;
}

const struct frontend *frontend_by_alpn(const struct frontend_table *t, const unsigned char *id, size_t len) {
  for (size_t i = 0; i < t->n; i++)
    if (strlen(t->fe[i]->alpn) == len && memcmp(t->fe[i]->alpn, id, len) == 0) return t->fe[i];
  return NULL;
}

const struct frontend *frontend_sniff(const struct frontend_table *t, const void *head, size_t n) {
  for (size_t i = 0; i < t->n; i++) {
    const char *p = t->fe[i]->preface;
    if (!p) continue;
    size_t plen = strlen(p);
    if (memcmp(head, p, MIN(n, plen)) != 0) continue;
    return n >= plen ? t->fe[i] : NULL;
  }
  return t->fallback;
}

size_t frontend_sniff_len(const struct frontend_table *t) {
  size_t max = 0;
  for (size_t i = 0; i < t->n; i++)
    if (t->fe[i]->preface) max = MAX(max, strlen(t->fe[i]->preface));
  return max;
}
