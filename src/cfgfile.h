/* The YAML configuration file, read with libyaml into a small tree whose every node remembers where
 * it was written, so that every later check can say "FILE:LINE:COL: what is wrong".
 *
 * cfgfile_parse is pure (bytes in, tree or error out); only cfgfile_read touches the file system.
 * Refused here, before any option is looked at: YAML syntax errors (libyaml's message and mark),
 * a document that is not a mapping, duplicate keys, keys that are not scalars, anchors and aliases
 * (no sharing, no "billion laughs"), explicit tags, more than one document, nesting deeper than
 * CFGFILE_MAX_DEPTH, more than CFGFILE_MAX_NODES nodes, NUL bytes in scalars, and files larger than
 * CFGFILE_MAX_BYTES. An empty file is an empty mapping. */
#ifndef H2T_CFGFILE_H
#define H2T_CFGFILE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#define CFGFILE_MAX_BYTES (1u << 20)
#define CFGFILE_MAX_DEPTH 32
#define CFGFILE_MAX_NODES 100000

/* One load error, a single line: "FILE:LINE:COL: what is wrong" (1-based line and column). */
struct cfgfile_err {
  char text[768];
};

enum cfgfile_kind { CFGFILE_SCALAR, CFGFILE_SEQ, CFGFILE_MAP };

/* A node of the tree. Owned by its parent (the root by its cfgfile_doc); freed with the doc. */
struct cfgfile_node {
  enum cfgfile_kind kind;
  unsigned line, col;          /* where the node starts, 1-based */
  /* CFGFILE_SCALAR: the value, NUL-terminated (owned; never holds a NUL byte). |plain| is 1 for
   * an unquoted scalar, so that `~`, `null` and nothing at all can mean "no value". */
  char *str;
  size_t len;
  int plain;
  /* CFGFILE_SEQ: |n| items. CFGFILE_MAP: |n| / 2 pairs, keys (always scalars) at even indexes,
   * each followed by its value. Owned array of owned nodes. */
  struct cfgfile_node **kids;
  size_t n;
};

/* A parsed file: the root mapping and the name used in messages. */
struct cfgfile_doc {
  char *file;                  /* owned copy of the name */
  struct cfgfile_node *root;   /* owned; always a CFGFILE_MAP */
};

/* Parses |len| bytes of |text| named |file| (used in messages only). Returns a new document, or
 * NULL with |err| filled in. */
struct cfgfile_doc *cfgfile_parse(const char *file, const char *text, size_t len,
                                  struct cfgfile_err *err);
void cfgfile_free(struct cfgfile_doc *doc);

/* Reads the whole of |path| (at most |max| bytes) into a new NUL-terminated buffer the caller
 * frees, and its length into *|len|. Returns NULL with |err| filled in ("PATH:1:1: cannot read:
 * why") when the file cannot be read or is larger than |max|. */
char *cfgfile_read(const char *path, size_t max, size_t *len, struct cfgfile_err *err);

/* Fills |err| with "FILE:LINE:COL: " and the formatted text; |at| may be NULL (then 1:1). */
void cfgfile_errf(struct cfgfile_err *err, const char *file, const struct cfgfile_node *at,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* As cfgfile_errf, at |line|:|col|, with a va_list. */
void cfgfile_verrf(struct cfgfile_err *err, const char *file, unsigned line, unsigned col,
                   const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
/* Messages quote values from files: this keeps them one line with no terminal controls, each
 * control byte replaced by '?'. cfgfile_errf does it; other writers of an error call it. */
void cfgfile_err_clean(struct cfgfile_err *err);
/* Writes |s| as a YAML double-quoted string that parses back to exactly |s|. */
void cfgfile_print_str(FILE *out, const char *s);

/* 1 when |n| is a plain scalar meaning "no value": empty, "~" or null/Null/NULL. */
int cfgfile_is_null(const struct cfgfile_node *n);
/* The value of key |key| in the mapping |map|, or NULL. */
const struct cfgfile_node *cfgfile_get(const struct cfgfile_node *map, const char *key);
/* A short name of the node's kind for messages: "a scalar", "a list", "a mapping". */
const char *cfgfile_kind_name(const struct cfgfile_node *n);

/* The text of scalar |n|, or NULL with |err| set to "FILE:LINE:COL: LABEL: expected WHAT, not a
 * list" (or "..., nothing" for a null). */
const char *cfgfile_scalar(const char *file, const struct cfgfile_node *n, const char *label,
                           const char *what, struct cfgfile_err *err);
/* Checks that |n| is a list or a single scalar (a list of one), with scalar items; returns 0 or
 * -EINVAL with |err| set. Then cfgfile_nitems / cfgfile_item walk it. */
int cfgfile_want_list(const char *file, const struct cfgfile_node *n, const char *label,
                      struct cfgfile_err *err);
size_t cfgfile_nitems(const struct cfgfile_node *n);
const struct cfgfile_node *cfgfile_item(const struct cfgfile_node *n, size_t i);
/* Checks that |n| is a mapping (a null counts as an empty one); returns 0 or -EINVAL. */
int cfgfile_want_map(const char *file, const struct cfgfile_node *n, const char *label,
                     struct cfgfile_err *err);

/* The directory of |file| with its trailing '/', or "" when it has none. Owned by the caller. */
char *cfgfile_dir(const char *file);
/* |path| as written in a file that lives in |base_dir|: absolute and empty paths stay, relative
 * ones are joined to |base_dir|. Owned by the caller. */
char *cfgfile_path(const char *base_dir, const char *path);

#endif
