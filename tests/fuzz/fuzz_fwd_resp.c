/* Fuzz target for proxy/fwd_resp.c, the origin's response to a forwarded request as proxy/fwd.c
 * parses it (issue 8; checklist FWD-03, FWD-07..10, FWD-14). The first input byte picks the
 * request (HEAD or not, an upgrade asked or not), the head limit and a split pattern; the rest is
 * what an origin sends, then it closes. The input is parsed whole, one byte at a time, and in
 * pieces: the events (statuses, fields, body bytes, where an upgrade begins, the fault's kind)
 * must be the same every way. And every way:
 *   - the fields passed on carry no hop-by-hop field, nothing a Connection field lists, no
 *     Content-Length, and no CR, LF or NUL (FWD-03, RFC 9112 §5.2);
 *   - HEAD, 204 and 304 announce no body; a body with a length delivers exactly that many bytes;
 *     body bytes come only between the final head and the end (FWD-08, FWD-09);
 *   - a 101 is relayed only when an upgrade was asked, with an Upgrade field (FWD-14);
 *   - bytes after a complete response make the connection unfit for reuse (FWD-07). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/fwd_resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    if (!(x)) {                                                                                    \
      fprintf(stderr, "fuzz_fwd_resp: CHECK(%s) failed at line %d\n", #x, __LINE__);              \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* What one run saw: a transcript of its events, comparable between runs. */
struct run {
  struct fwd_resp r;
  char log[8192];
  size_t log_len;
  int in_body;          /* between HEAD and END */
  int64_t length;       /* of the body announced at HEAD, or -1 */
  uint64_t body_bytes;
  int ended;            /* END, UPGRADE or ERROR */
};

static void note(struct run *u, const void *p, size_t n) {
  size_t room = sizeof(u->log) - u->log_len;
  if (n > room) n = room;
  memcpy(u->log + u->log_len, p, n);
  u->log_len += n;
}

/* "<tag><a>/<b>:" into the transcript. */
static void notef(struct run *u, char tag, long long a, long long b) {
  char buf[64];
  int n = snprintf(buf, sizeof(buf), "%c%lld/%lld:", tag, a, b);
  note(u, buf, (size_t)n);
}

static void on_body(void *arg, const char *data, size_t len) {
  struct run *u = arg;
  CHECK(u->in_body);
  u->body_bytes += len;
  note(u, data, len);
}

static int name_is(const struct fwd_field *f, const char *lit) {
  return f->name_len == strlen(lit) && strncasecmp(f->name, lit, f->name_len) == 0;
}

static void check_field_text(const struct fwd_field *f) {
  CHECK(f->name_len > 0);
  for (size_t i = 0; i < f->name_len; i++) CHECK(f->name[i] != '\r' && f->name[i] != '\n' && f->name[i] != '\0');
  for (size_t i = 0; i < f->value_len; i++) CHECK(f->value[i] != '\r' && f->value[i] != '\n' && f->value[i] != '\0');
}

/* The fields of the event, checked against the filter's promise, into the transcript. */
static void check_fields(struct run *u, enum fwd_resp_filter filter) {
  static struct fwd_field all[FWD_RESP_MAX_FIELDS], out[FWD_RESP_MAX_FIELDS];
  size_t na = fwd_resp_fields(&u->r, all, FWD_RESP_ALL);
  size_t n = fwd_resp_fields(&u->r, out, filter);
  CHECK(n <= na && na <= FWD_RESP_MAX_FIELDS);
  for (size_t i = 0; i < n; i++) {
    check_field_text(&out[i]);
    int upgrade_kept = filter == FWD_RESP_UPGRADED && name_is(&out[i], "upgrade");
    if (!upgrade_kept) {
      CHECK(!fwd_resp_hop_by_hop(out[i].name, out[i].name_len));
      CHECK(!name_is(&out[i], "content-length"));
      CHECK(!fwd_resp_connection_lists(all, na, out[i].name, out[i].name_len));
    }
    note(u, out[i].name, out[i].name_len);
    note(u, ":", 1);
    note(u, out[i].value, out[i].value_len);
    note(u, "\n", 1);
  }
}

/* Acts on one event as fwd.c would. Returns 1 when the run is over. */
static int on_event(struct run *u, enum fwd_resp_ev ev, size_t at) {
  struct fwd_resp *r = &u->r;
  switch (ev) {
  case FWD_RESP_MORE:
    return 0;
  case FWD_RESP_INTERIM:
    CHECK(!u->in_body);
    CHECK(r->status >= 100 && r->status < 200 && r->status != 101);
    notef(u, 'I', r->status, 0);
    check_fields(u, FWD_RESP_END_TO_END);
    return 0;
  case FWD_RESP_HEAD:
    CHECK(!u->in_body);
    CHECK(r->status >= 200 && r->status <= 599);
    if (r->is_head || r->status == 204 || r->status == 304) CHECK(!r->body);
    CHECK(r->length >= -1);
    if (!r->body) CHECK(r->length == -1);
    notef(u, 'H', r->status, r->length);
    check_fields(u, FWD_RESP_END_TO_END);
    u->in_body = 1;
    u->length = r->length;
    return 0;
  case FWD_RESP_UPGRADE:
    CHECK(!u->in_body);
    CHECK(r->upgrade_asked && r->status == 101);
    notef(u, 'U', r->status, (long long)at);
    check_fields(u, FWD_RESP_UPGRADED);
    u->ended = 1;
    return 1;
  case FWD_RESP_END:
    CHECK(u->in_body);
    if (u->length >= 0) CHECK(u->body_bytes == (uint64_t)u->length);
    note(u, "E:", 2);
    check_fields(u, FWD_RESP_END_TO_END); /* the trailers */
    u->in_body = 0;
    u->ended = 1;
    return 1;
  case FWD_RESP_ERROR:
    CHECK(r->error != NULL);
    CHECK(r->err == PXERR_RESP_INVALID || r->err == PXERR_RESP_INCOMPLETE);
    notef(u, 'X', (long long)r->err, 0);
    u->ended = 1;
    return 1;
  }
  CHECK(0);
  return 1;
}

/* Runs the whole input through |u|, ending pieces at |cuts| (ascending), or |step| bytes at a
 * time when |step| > 0; then the origin closes. */
static void run(struct run *u, const char *s, size_t len, int is_head, int upgrade, size_t max, const size_t *cuts,
                size_t ncuts, size_t step) {
  memset(u, 0, sizeof(*u));
  u->length = -1;
  fwd_resp_init(&u->r, max, is_head, upgrade, on_body, u);
  size_t off = 0, i = 0;
  while (!u->ended && off < len) {
    size_t end = step ? (len - off < step ? len : off + step) : (i < ncuts ? cuts[i++] : len);
    if (end < off) end = off;
    if (end > len) end = len;
    /* fwd.c feeds each read until MORE, and again after INTERIM and HEAD. */
    size_t pos = off;
    for (;;) {
      size_t used = 0;
      enum fwd_resp_ev ev = fwd_resp_feed(&u->r, s + pos, end - pos, &used);
      CHECK(used <= end - pos);
      if (ev == FWD_RESP_MORE) CHECK(used == end - pos);
      pos += used;
      if (ev == FWD_RESP_END && pos < end) CHECK(!u->r.keep_alive); /* bytes follow in this read */
      if (on_event(u, ev, pos)) break;
      if (ev == FWD_RESP_MORE) break;
    }
    off = end;
  }
  while (!u->ended) {
    enum fwd_resp_ev ev = fwd_resp_finish(&u->r);
    CHECK(ev != FWD_RESP_MORE);
    if (on_event(u, ev, len)) break;
  }
  fwd_resp_dispose(&u->r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t ctl = data[0];
  const char *s = (const char *)data + 1;
  size_t len = size - 1;
  int is_head = ctl & 1;
  int upgrade = (ctl >> 1) & 1;
  size_t max = (ctl & 4) ? 128 : 65536;
  static struct run a, b, c;
  run(&a, s, len, is_head, upgrade, max, NULL, 0, 0);
  run(&b, s, len, is_head, upgrade, max, NULL, 0, 1);
  size_t cuts[3] = {len / 3, len / 2, len - len / 5};
  if (ctl & 8) cuts[0] = (ctl >> 4) < len ? (size_t)(ctl >> 4) : len;
  run(&c, s, len, is_head, upgrade, max, cuts, 3, 0);
  CHECK(a.log_len == b.log_len && memcmp(a.log, b.log, a.log_len) == 0);
  CHECK(a.log_len == c.log_len && memcmp(a.log, c.log, a.log_len) == 0);
  return 0;
}
