/* Fuzz target for src/users.c, the htpasswd parser: the input is a whole htpasswd file.
 *
 * Properties: a refused file has one error line "fuzz:LINE: ..." (LINE >= 1); an accepted one has
 * its users sorted, unique, each found by users_find, each name without ':' or control bytes and
 * each hash starting with an accepted prefix ($2y$ $2b$ $2a$ $5$ $6$ $y$). Every line parsed on
 * its own agrees with the whole-file answer. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/users.h"
#include "src/util.h" /* CHECK: aborts in every build */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int accepted_prefix(const char *h) {
  static const char *const prefixes[] = {"$2y$", "$2b$", "$2a$", "$5$", "$6$", "$y$"};
  for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
    if (strncmp(h, prefixes[i], strlen(prefixes[i])) == 0) return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  struct cfgfile_err err;
  struct users *u = users_parse("fuzz", text, size, &err);

  /* Each line alone: a refused line means the file is refused. */
  int line_refused = 0;
  for (size_t pos = 0; pos < size;) {
    const char *nl = memchr(text + pos, '\n', size - pos);
    size_t llen = nl ? (size_t)(nl - (text + pos)) : size - pos;
    struct users_entry e = {0};
    const char *why = NULL;
    size_t uend = 0;
    int r = users_parse_line(text + pos, llen, &e, &why, &uend);
    CHECK(r == 1 || r == 0 || r == -EINVAL);
    if (r < 0) CHECK(why != NULL);
    if (r < 0 || memchr(text + pos, '\0', llen)) line_refused = 1;
    free(e.name);
    free(e.hash);
    pos += llen + 1;
  }

  if (!u) {
    unsigned line = 0;
    CHECK(strncmp(err.text, "fuzz:", 5) == 0);
    CHECK(sscanf(err.text + 5, "%u:", &line) == 1 && line >= 1);
    return 0;
  }
  CHECK(!line_refused);
  for (size_t i = 0; i < u->n; i++) {
    const struct users_entry *e = &u->v[i];
    CHECK(e->name[0] != '\0' && strlen(e->name) <= USERS_NAME_MAX);
    CHECK(strchr(e->name, ':') == NULL);
    for (const char *p = e->name; *p; p++) CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
    CHECK(accepted_prefix(e->hash));
    CHECK(users_find(u, e->name) == e);
    if (i) CHECK(strcmp(u->v[i - 1].name, e->name) < 0);
  }
  users_free(u);
  return 0;
}
