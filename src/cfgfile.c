/* The YAML configuration file as a tree with positions (see cfgfile.h).
 *
 * libyaml's event parser drives a small stack of open containers: every new node is attached to
 * the container on top at once, so the root owns everything built so far and one free releases
 * a half-built tree after an error. Duplicate keys are found when a mapping ends, by sorting its
 * keys (a hostile file with many keys costs n log n, not n^2). */
#include "src/cfgfile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "src/util.h"

void cfgfile_verrf(struct cfgfile_err *err, const char *file, unsigned line, unsigned col,
                   const char *fmt, va_list ap) {
  int n = snprintf(err->text, sizeof(err->text), "%s:%u:%u: ", file, line, col);
  if (n < 0 || (size_t)n >= sizeof(err->text)) return; /* a very long name: the text is cut */
  vsnprintf(err->text + n, sizeof(err->text) - (size_t)n, fmt, ap);
  cfgfile_err_clean(err);
}

void cfgfile_err_clean(struct cfgfile_err *err) {
  for (char *p = err->text; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

void cfgfile_errf(struct cfgfile_err *err, const char *file, const struct cfgfile_node *at,
                  const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cfgfile_verrf(err, file, at ? at->line : 1, at ? at->col : 1, fmt, ap);
  va_end(ap);
}

void cfgfile_print_str(FILE *out, const char *s) {
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      fputc('\\', out);
      fputc(*p, out);
    } else if (*p < 0x20 || *p == 0x7f) {
      fprintf(out, "\\x%02x", *p);
    } else if (p[0] == 0xc2 && p[1] == 0x85) { /* NEL, LS and PS would fold into spaces */
      fputs("\\N", out);
      p++;
    } else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
      fputs(p[2] == 0xa8 ? "\\L" : "\\P", out);
      p += 2;
    } else {
      fputc(*p, out);
    }
  }
  fputc('"', out);
}

static void node_free(struct cfgfile_node *n) {
  if (!n) return;
  for (size_t i = 0; i < n->n; i++) node_free(n->kids[i]);
  free(n->kids);
  free(n->str);
  free(n);
}

void cfgfile_free(struct cfgfile_doc *doc) {
  if (!doc) return;
  node_free(doc->root);
  free(doc->file);
  free(doc);
}

int cfgfile_is_null(const struct cfgfile_node *n) {
  if (n->kind != CFGFILE_SCALAR || !n->plain) return 0;
  static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
  for (size_t i = 0; i < ARRAY_SIZE(nulls); i++)
    if (strcmp(n->str, nulls[i]) == 0) return 1;
  return 0;
}

const struct cfgfile_node *cfgfile_get(const struct cfgfile_node *map, const char *key) {
  if (map->kind != CFGFILE_MAP) return NULL;
  for (size_t i = 0; i + 1 < map->n; i += 2)
    if (strcmp(map->kids[i]->str, key) == 0) return map->kids[i + 1];
  return NULL;
}

const char *cfgfile_kind_name(const struct cfgfile_node *n) {
  switch (n->kind) {
  case CFGFILE_SCALAR: return cfgfile_is_null(n) ? "nothing" : "a scalar";
  case CFGFILE_SEQ: return "a list";
  case CFGFILE_MAP: return "a mapping";
  }
  return "?";
}

const char *cfgfile_scalar(const char *file, const struct cfgfile_node *n, const char *label,
                           const char *what, struct cfgfile_err *err) {
  if (n->kind == CFGFILE_SCALAR && !cfgfile_is_null(n)) return n->str;
  cfgfile_errf(err, file, n, "%s: expected %s, not %s", label, what, cfgfile_kind_name(n));
  return NULL;
}

int cfgfile_want_list(const char *file, const struct cfgfile_node *n, const char *label,
                      struct cfgfile_err *err) {
  if (n->kind == CFGFILE_MAP || cfgfile_is_null(n)) {
    cfgfile_errf(err, file, n, "%s: expected a list, not %s", label, cfgfile_kind_name(n));
    return -EINVAL;
  }
  for (size_t i = 0; n->kind == CFGFILE_SEQ && i < n->n; i++) {
    const struct cfgfile_node *it = n->kids[i];
    if (it->kind != CFGFILE_SCALAR || cfgfile_is_null(it)) {
      cfgfile_errf(err, file, it, "%s: each item must be a single value, not %s", label,
                   cfgfile_kind_name(it));
      return -EINVAL;
    }
  }
  return 0;
}

size_t cfgfile_nitems(const struct cfgfile_node *n) { return n->kind == CFGFILE_SEQ ? n->n : 1; }

const struct cfgfile_node *cfgfile_item(const struct cfgfile_node *n, size_t i) {
  return n->kind == CFGFILE_SEQ ? n->kids[i] : n;
}

int cfgfile_want_map(const char *file, const struct cfgfile_node *n, const char *label,
                     struct cfgfile_err *err) {
  if (n->kind == CFGFILE_MAP || cfgfile_is_null(n)) return 0;
  cfgfile_errf(err, file, n, "%s: expected a mapping (key: value), not %s", label,
               cfgfile_kind_name(n));
  return -EINVAL;
}

char *cfgfile_dir(const char *file) {
  const char *slash = strrchr(file, '/');
  return xstrndup(file, slash ? (size_t)(slash - file) + 1 : 0);
}

char *cfgfile_path(const char *base_dir, const char *path) {
  /* An empty path means "not set" (the option's default), never the directory itself. */
  if (path[0] == '/' || path[0] == '\0' || base_dir[0] == '\0') return xstrndup(path, strlen(path));
  size_t b = strlen(base_dir), p = strlen(path);
  char *out = xmalloc(b + p + 1);
  memcpy(out, base_dir, b);
  memcpy(out + b, path, p + 1);
  return out;
}

/* The parser's working state; |stack| holds the open containers, innermost last. */
struct builder {
  const char *file;
  struct cfgfile_err *err;
  struct cfgfile_node *root;
  struct cfgfile_node *stack[CFGFILE_MAX_DEPTH];
  int depth;
  size_t nodes;
};

static int cmp_keys(const void *a, const void *b) {
  const struct cfgfile_node *x = *(const struct cfgfile_node *const *)a;
  const struct cfgfile_node *y = *(const struct cfgfile_node *const *)b;
  int c = strcmp(x->str, y->str);
  if (c) return c;
  if (x->line != y->line) return x->line < y->line ? -1 : 1;
  return x->col < y->col ? -1 : x->col > y->col;
}

/* Refuses a mapping that names a key twice, pointing at the earliest second mention. */
static int check_duplicates(struct builder *b, const struct cfgfile_node *map) {
  size_t nkeys = map->n / 2;
  if (nkeys < 2) return 0;
  const struct cfgfile_node **keys = xmalloc(nkeys * sizeof(*keys));
  for (size_t i = 0; i < nkeys; i++) keys[i] = map->kids[2 * i];
  qsort(keys, nkeys, sizeof(*keys), cmp_keys);
  const struct cfgfile_node *dup = NULL, *first = NULL;
  for (size_t i = 1; i < nkeys; i++) {
    if (strcmp(keys[i - 1]->str, keys[i]->str) != 0) continue;
    if (!dup || keys[i]->line < dup->line || (keys[i]->line == dup->line && keys[i]->col < dup->col)) {
      dup = keys[i];
      first = keys[i - 1];
    }
  }
  if (dup)
    cfgfile_errf(b->err, b->file, dup, "duplicate key '%s' (first given at line %u, column %u)",
                 dup->str, first->line, first->col);
  free(keys);
  return dup ? -EINVAL : 0;
}

/* Creates a node at |mark| and attaches it to the open container (or makes it the root). */
static struct cfgfile_node *add_node(struct builder *b, enum cfgfile_kind kind, yaml_mark_t mark) {
  struct cfgfile_node tmp = {.line = (unsigned)mark.line + 1, .col = (unsigned)mark.column + 1};
  if (++b->nodes > CFGFILE_MAX_NODES) {
    cfgfile_errf(b->err, b->file, &tmp, "too many values (more than %d)", CFGFILE_MAX_NODES);
    return NULL;
  }
  struct cfgfile_node *parent = b->depth ? b->stack[b->depth - 1] : NULL;
  if (parent && parent->kind == CFGFILE_MAP && parent->n % 2 == 0 && kind != CFGFILE_SCALAR) {
    cfgfile_errf(b->err, b->file, &tmp, "a key must be a plain name, not a list or mapping");
    return NULL;
  }
  if (!parent && b->root) {
    cfgfile_errf(b->err, b->file, &tmp, "unexpected second value at the top level");
    return NULL;
  }
  struct cfgfile_node *n = xcalloc(1, sizeof(*n));
  *n = tmp;
  n->kind = kind;
  if (!parent) {
    b->root = n;
  } else {
    parent->kids = xgrow(parent->kids, parent->n, sizeof(*parent->kids));
    parent->kids[parent->n++] = n;
  }
  return n;
}

/* Anchors, aliases and explicit tags make a configuration harder to read and to bound; refuse. */
static int refuse_extras(struct builder *b, yaml_mark_t mark, const yaml_char_t *anchor,
                         const yaml_char_t *tag) {
  struct cfgfile_node at = {.line = (unsigned)mark.line + 1, .col = (unsigned)mark.column + 1};
  if (anchor) {
    cfgfile_errf(b->err, b->file, &at, "anchors (&%s) are not supported", (const char *)anchor);
    return -EINVAL;
  }
  if (tag) {
    cfgfile_errf(b->err, b->file, &at, "explicit tags (%s) are not supported", (const char *)tag);
    return -EINVAL;
  }
  return 0;
}

/* Handles one event; returns 0, 1 at the end of the stream, or -EINVAL with the error set. */
static int on_event(struct builder *b, const yaml_event_t *ev, int *ndocs) {
  struct cfgfile_node *n;
  struct cfgfile_node at = {.line = (unsigned)ev->start_mark.line + 1,
                            .col = (unsigned)ev->start_mark.column + 1};
  switch (ev->type) {
  case YAML_STREAM_END_EVENT:
    return 1;
  case YAML_DOCUMENT_START_EVENT:
    if (++*ndocs > 1) {
      cfgfile_errf(b->err, b->file, &at, "a second YAML document; the file must hold exactly one");
      return -EINVAL;
    }
    return 0;
  case YAML_ALIAS_EVENT:
    cfgfile_errf(b->err, b->file, &at, "aliases (*%s) are not supported",
                 (const char *)ev->data.alias.anchor);
    return -EINVAL;
  case YAML_SCALAR_EVENT:
    if (refuse_extras(b, ev->start_mark, ev->data.scalar.anchor, ev->data.scalar.tag)) return -EINVAL;
    if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length)) {
      cfgfile_errf(b->err, b->file, &at, "a NUL byte in a value");
      return -EINVAL;
    }
    if (!(n = add_node(b, CFGFILE_SCALAR, ev->start_mark))) return -EINVAL;
    n->str = xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
    n->len = ev->data.scalar.length;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    return 0;
  case YAML_SEQUENCE_START_EVENT:
  case YAML_MAPPING_START_EVENT: {
    int seq = ev->type == YAML_SEQUENCE_START_EVENT;
    if (refuse_extras(b, ev->start_mark, seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor,
                      seq ? ev->data.sequence_start.tag : ev->data.mapping_start.tag))
      return -EINVAL;
    if (b->depth == CFGFILE_MAX_DEPTH) {
      cfgfile_errf(b->err, b->file, &at, "nested deeper than %d levels", CFGFILE_MAX_DEPTH);
      return -EINVAL;
    }
    if (!(n = add_node(b, seq ? CFGFILE_SEQ : CFGFILE_MAP, ev->start_mark))) return -EINVAL;
    b->stack[b->depth++] = n;
    return 0;
  }
  case YAML_SEQUENCE_END_EVENT:
    b->depth--;
    return 0;
  case YAML_MAPPING_END_EVENT:
    n = b->stack[--b->depth];
    return check_duplicates(b, n);
  default: /* stream start, document end, no event */
    return 0;
  }
}

/* libyaml's reader reports a byte offset, not a mark, for bad encodings: count lines up to it. */
static void offset_to_mark(const char *text, size_t len, size_t off, struct cfgfile_node *at) {
  at->line = 1;
  at->col = 1;
  for (size_t i = 0; i < off && i < len; i++) {
    if (text[i] == '\n') {
      at->line++;
      at->col = 1;
    } else {
      at->col++;
    }
  }
}

static void syntax_error(struct builder *b, const yaml_parser_t *p, const char *text, size_t len) {
  struct cfgfile_node at = {.line = (unsigned)p->problem_mark.line + 1,
                            .col = (unsigned)p->problem_mark.column + 1};
  if (p->error == YAML_READER_ERROR) offset_to_mark(text, len, p->problem_offset, &at);
  const char *problem = p->problem ? p->problem : "malformed YAML";
  if (p->context)
    cfgfile_errf(b->err, b->file, &at, "YAML syntax: %s (%s at line %u)", problem, p->context,
                 (unsigned)p->context_mark.line + 1);
  else
    cfgfile_errf(b->err, b->file, &at, "YAML syntax: %s", problem);
}

struct cfgfile_doc *cfgfile_parse(const char *file, const char *text, size_t len,
                                  struct cfgfile_err *err) {
  struct builder b = {.file = file, .err = err};
  struct cfgfile_doc *doc = NULL;
  yaml_parser_t p;
  int ndocs = 0, r = 0;

  if (len > CFGFILE_MAX_BYTES) {
    cfgfile_errf(err, file, NULL, "larger than %u bytes", CFGFILE_MAX_BYTES);
    return NULL;
  }
  CHECK(yaml_parser_initialize(&p));
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  while (r == 0) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) {
      syntax_error(&b, &p, text, len);
      r = -EINVAL;
      break;
    }
    r = on_event(&b, &ev, &ndocs);
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  if (r < 0) goto out;

  if (!b.root || cfgfile_is_null(b.root)) { /* an empty file (or only "---") sets nothing */
    node_free(b.root);
    b.root = xcalloc(1, sizeof(*b.root));
    b.root->kind = CFGFILE_MAP;
    b.root->line = b.root->col = 1;
  } else if (b.root->kind != CFGFILE_MAP) {
    cfgfile_errf(err, file, b.root, "the file must be a mapping of \"option: value\" lines, not %s",
                 cfgfile_kind_name(b.root));
    goto out;
  }
  doc = xcalloc(1, sizeof(*doc));
  doc->file = xstrndup(file, strlen(file));
  doc->root = b.root;
  b.root = NULL;
out:
  node_free(b.root);
  return doc;
}

char *cfgfile_read(const char *path, size_t max, size_t *len, struct cfgfile_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    cfgfile_errf(err, path, NULL, "cannot read: %s", strerror(errno));
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *buf = xmalloc(cap + 1);
  for (;;) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n > max) {
      cfgfile_errf(err, path, NULL, "larger than %zu bytes", max);
      goto fail;
    }
    if (got == 0) break;
    if (n == cap) {
      cap *= 2;
      buf = xrealloc(buf, cap + 1);
    }
  }
  if (ferror(f)) {
    cfgfile_errf(err, path, NULL, "cannot read: %s", strerror(errno));
    goto fail;
  }
  fclose(f);
  buf[n] = '\0';
  *len = n;
  return buf;
fail:
  fclose(f);
  free(buf);
  return NULL;
}
