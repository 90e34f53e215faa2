/* The access model of a YAML text, for the unit tests of auth, rules and limits (test_limits.c,
 * test_rules.c, test_request.c). Header-only (static), like upstream_fx.h; include it after
 * cmocka.h. Without an htpasswd section any user name is accepted. */
#ifndef H2T_TEST_ACCESS_FX_H
#define H2T_TEST_ACCESS_FX_H

#include <string.h>

#include "src/access.h"
#include "src/cfgfile.h"
#include "src/util.h"

/* Every section of |text| parsed into a new access model named |file|, then linked; a parse error
 * fails the test with its FILE:LINE:COL message. The caller frees it with access_free. */
static struct access *access_fx_load(const char *file, const char *text) {
  struct cfgfile_err err;
  struct cfgfile_doc *doc = cfgfile_parse(file, text, strlen(text), &err);
  if (!doc) fail_msg("%s", err.text);
  struct access *a = access_new();
  a->file = xstrndup(file, strlen(file));
  int r = 0;
  for (size_t i = 0; i + 1 < doc->root->n && r == 0; i += 2)
    r = access_parse_section(a, doc->root->kids[i]->str, doc->root->kids[i + 1], "", &err);
  cfgfile_free(doc);
  if (r == 0) r = access_link(a, &err);
  if (r) fail_msg("%s", err.text);
  return a;
}

#endif
