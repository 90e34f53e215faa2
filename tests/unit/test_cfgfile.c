/* Unit tests for src/cfgfile.c: the YAML tree keeps 1-based positions, and every refused document
 * (syntax, duplicates, aliases, tags, depth, NUL, encoding, shape) gives "FILE:LINE:COL: ...". */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/cfgfile.h"
#include "src/util.h"

static struct cfgfile_doc *parse(const char *text, struct cfgfile_err *err) {
  return cfgfile_parse("t.yaml", text, strlen(text), err);
}

static void test_tree_and_positions(void **state) {
  (void)state;
  struct cfgfile_err err;
  struct cfgfile_doc *doc = parse("# comment\n"
                                  "a: 1\n"
                                  "list: [x, \"y z\", 'q']\n"
                                  "map:\n"
                                  "  k: ~\n"
                                  "  j: \"\"\n",
                                  &err);
  assert_non_null(doc);
  const struct cfgfile_node *root = doc->root;
  assert_int_equal(root->kind, CFGFILE_MAP);
  assert_int_equal(root->n, 6);
  assert_string_equal(root->kids[0]->str, "a");
  assert_int_equal(root->kids[0]->line, 2);
  assert_int_equal(root->kids[0]->col, 1);
  const struct cfgfile_node *a = cfgfile_get(root, "a");
  assert_string_equal(a->str, "1");
  assert_int_equal(a->line, 2);
  assert_int_equal(a->col, 4);
  assert_true(a->plain);
  const struct cfgfile_node *list = cfgfile_get(root, "list");
  assert_int_equal(list->kind, CFGFILE_SEQ);
  assert_int_equal(cfgfile_nitems(list), 3);
  assert_string_equal(cfgfile_item(list, 1)->str, "y z");
  assert_false(cfgfile_item(list, 1)->plain);
  assert_int_equal(cfgfile_item(list, 1)->line, 3);
  assert_int_equal(cfgfile_item(list, 1)->col, 11);
  const struct cfgfile_node *map = cfgfile_get(root, "map");
  assert_int_equal(map->kind, CFGFILE_MAP);
  assert_true(cfgfile_is_null(cfgfile_get(map, "k")));
  assert_false(cfgfile_is_null(cfgfile_get(map, "j"))); /* a quoted empty string is a value */
  assert_null(cfgfile_get(map, "nope"));
  /* A scalar walks as a list of one. */
  assert_int_equal(cfgfile_nitems(a), 1);
  assert_ptr_equal(cfgfile_item(a, 0), a);
  cfgfile_free(doc);
}

static void test_empty_is_empty_map(void **state) {
  (void)state;
  static const char *const empties[] = {"", "# only a comment\n", "---\n", "~\n", "---\n...\n"};
  for (size_t i = 0; i < ARRAY_SIZE(empties); i++) {
    struct cfgfile_err err;
    struct cfgfile_doc *doc = parse(empties[i], &err);
    if (!doc) fail_msg("'%s' refused: %s", empties[i], err.text);
    assert_int_equal(doc->root->kind, CFGFILE_MAP);
    assert_int_equal(doc->root->n, 0);
    cfgfile_free(doc);
  }
}

struct bad_case {
  const char *text;
  const char *want; /* the whole message starts with this */
};

static const struct bad_case bad_cases[] = {
    {"a: [1, 2\n", "t.yaml:2:1: YAML syntax: did not find expected ',' or ']'"},
    {"a: 1\n b: 2\n", "t.yaml:2:3: YAML syntax: mapping values are not allowed in this context"},
    {"a: \"open\n", "t.yaml:2:1: YAML syntax: found unexpected end of stream"},
    {"a: 1\nb: 2\na: 3\n", "t.yaml:3:1: duplicate key 'a' (first given at line 1, column 1)"},
    {"m:\n  x: 1\n  y: 2\n  x: 3\n  y: 4\n", "t.yaml:4:3: duplicate key 'x' (first given at line 2, column 3)"},
    {"a: &anchor 1\n", "t.yaml:1:4: anchors (&anchor) are not supported"},
    {"a: &x [1]\nb: *x\n", "t.yaml:1:4: anchors (&x) are not supported"},
    {"b: *x\n", "t.yaml:1:4: aliases (*x) are not supported"},
    {"a: !!str 1\n", "t.yaml:1:4: explicit tags (tag:yaml.org,2002:str) are not supported"},
    {"a: 1\n---\nb: 2\n", "t.yaml:2:1: a second YAML document; the file must hold exactly one"},
    {"- a\n- b\n", "t.yaml:1:1: the file must be a mapping of \"option: value\" lines, not a list"},
    {"just text\n", "t.yaml:1:1: the file must be a mapping of \"option: value\" lines, not a scalar"},
    {"[a]: 1\n", "t.yaml:1:1: a key must be a plain name, not a list or mapping"},
    {"a: \"x\\0y\"\n", "t.yaml:1:4: a NUL byte in a value"},
    {"a: b\nc: \xff\n", "t.yaml:2:4: YAML syntax: invalid leading UTF-8 octet"},
    {"a:\tb\n\tc: d\n", "t.yaml:2:1: YAML syntax: found a tab character that violates indentation"},
};

static void test_refused(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
    struct cfgfile_err err;
    struct cfgfile_doc *doc = parse(bad_cases[i].text, &err);
    if (doc) fail_msg("case %zu accepted", i);
    if (strncmp(err.text, bad_cases[i].want, strlen(bad_cases[i].want)) != 0)
      fail_msg("case %zu: got '%s', want '%s...'", i, err.text, bad_cases[i].want);
  }
}

static void test_depth_and_size_bounds(void **state) {
  (void)state;
  struct cfgfile_err err;
  /* Nesting one level past the bound (the root mapping counts as the first level). */
  char deep[4 * CFGFILE_MAX_DEPTH + 16];
  size_t n = 0;
  n += (size_t)snprintf(deep + n, sizeof(deep) - n, "a: ");
  for (int i = 0; i < CFGFILE_MAX_DEPTH; i++) deep[n++] = '[';
  deep[n] = '\0';
  assert_null(parse(deep, &err));
  assert_non_null(strstr(err.text, "nested deeper than 32 levels"));
  assert_int_equal(strncmp(err.text, "t.yaml:1:", 9), 0);

  /* Exactly at the bound is fine. */
  n = (size_t)snprintf(deep, sizeof(deep), "a: ");
  for (int i = 0; i < CFGFILE_MAX_DEPTH - 1; i++) deep[n++] = '[';
  for (int i = 0; i < CFGFILE_MAX_DEPTH - 1; i++) deep[n++] = ']';
  deep[n] = '\0';
  struct cfgfile_doc *doc = parse(deep, &err);
  if (!doc) fail_msg("%s", err.text);
  cfgfile_free(doc);

  char *big = xcalloc(1, CFGFILE_MAX_BYTES + 2);
  memset(big, '#', CFGFILE_MAX_BYTES + 1);
  assert_null(cfgfile_parse("t.yaml", big, CFGFILE_MAX_BYTES + 1, &err));
  assert_string_equal(err.text, "t.yaml:1:1: larger than 1048576 bytes");
  free(big);
}

/* A mapping with very many keys is checked for duplicates in n log n (this would take minutes
 * with a pairwise comparison); the duplicate is found at its position. */
static void test_many_keys(void **state) {
  (void)state;
  const int nkeys = 30000;
  char *text = xmalloc((size_t)nkeys * 16 + 32);
  size_t n = 0;
  for (int i = 0; i < nkeys; i++) n += (size_t)sprintf(text + n, "k%d: %d\n", i, i);
  n += (size_t)sprintf(text + n, "k17: dup\n");
  struct cfgfile_err err;
  assert_null(cfgfile_parse("t.yaml", text, n, &err));
  assert_string_equal(err.text, "t.yaml:30001:1: duplicate key 'k17' (first given at line 18, column 1)");
  free(text);
}

static void test_read_file(void **state) {
  (void)state;
  struct cfgfile_err err;
  size_t len = 0;
  assert_null(cfgfile_read("/nonexistent/h2t.yaml", 100, &len, &err));
  assert_string_equal(err.text, "/nonexistent/h2t.yaml:1:1: cannot read: No such file or directory");
  assert_null(cfgfile_read("/", 100, &len, &err));
  assert_string_equal(err.text, "/:1:1: cannot read: Is a directory");

  char path[] = "/tmp/h2t-cfgfile-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "a: 1\n", 5), 5);
  close(fd);
  char *text = cfgfile_read(path, 100, &len, &err);
  assert_non_null(text);
  assert_int_equal(len, 5);
  assert_string_equal(text, "a: 1\n");
  free(text);
  assert_null(cfgfile_read(path, 4, &len, &err)); /* over the cap */
  assert_non_null(strstr(err.text, "larger than 4 bytes"));
  unlink(path);
}

static void test_paths(void **state) {
  (void)state;
  char *d = cfgfile_dir("etc/h2tunnel.yaml");
  assert_string_equal(d, "etc/");
  char *p = cfgfile_path(d, "users");
  assert_string_equal(p, "etc/users");
  free(p);
  p = cfgfile_path(d, "");
  assert_string_equal(p, ""); /* empty: not set, not the directory */
  free(p);
  p = cfgfile_path(d, "/abs/users");
  assert_string_equal(p, "/abs/users");
  free(p);
  free(d);
  d = cfgfile_dir("h2tunnel.yaml");
  assert_string_equal(d, "");
  p = cfgfile_path(d, "users");
  assert_string_equal(p, "users");
  free(p);
  free(d);
}

/* Strings printed by cfgfile_print_str parse back to the same bytes. */
static void test_print_str_roundtrip(void **state) {
  (void)state;
  static const char *const strs[] = {"", "plain", "with \"quotes\" and \\", "tab\tnl\ncr\r",
                                     "nel\xc2\x85 ls\xe2\x80\xa8 ps\xe2\x80\xa9", "\x01\x7f",
                                     "# not a comment", "- not a list", "caf\xc3\xa9"};
  for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fputs("k: ", f);
    cfgfile_print_str(f, strs[i]);
    fclose(f);
    struct cfgfile_err err;
    struct cfgfile_doc *doc = cfgfile_parse("t.yaml", buf, len, &err);
    if (!doc) fail_msg("'%s' printed as %s: %s", strs[i], buf, err.text);
    assert_string_equal(cfgfile_get(doc->root, "k")->str, strs[i]);
    cfgfile_free(doc);
    free(buf);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tree_and_positions),
      cmocka_unit_test(test_empty_is_empty_map),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_depth_and_size_bounds),
      cmocka_unit_test(test_many_keys),
      cmocka_unit_test(test_read_file),
      cmocka_unit_test(test_paths),
      cmocka_unit_test(test_print_str_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
