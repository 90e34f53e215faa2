/* Fuzz target for h1/h1_req.c, the HTTP/1.1 request-head parser (llhttp plus the proxy's checks).
 * The first input byte picks the limits (bit 7: a small head budget, so short inputs reach 414 and
 * 431) and seeds the splits; the rest is what a client sends on one connection. Invariants checked
 * on every input:
 *   - every piece is an exact-size heap copy, so ASan sees any read outside it; |used| never passes
 *     the piece, MORE takes it all;
 *   - a refusal carries a client-error pxerr (never INTERNAL) and a reason;
 *   - the log of results (each request's kind, method, target, end offset; the final verdict) is
 *     the same whether the bytes come at once, cut in two, or in pieces of random sizes;
 *   - every returned request starts with a request line of exactly "method SP target SP
 *     HTTP/1.0|HTTP/1.1 CRLF" (after empty lines), and |target| is the text between the spaces;
 *   - an accepted CONNECT or connect-udp head ends in CRLF CRLF exactly at the reported end, with
 *     CRLF line ends only and no obs-fold: the tunnel's first byte is the one after it;
 *   - an accepted CONNECT's authority is its target parsed, and survives format/parse; a
 *     connect-udp path is the tail of its target; a local target is origin-form;
 *   - a request's Proxy-Authorization value (h1_req_take_credentials) holds no CR or LF, and is
 *     the same however the bytes were split. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "h1/h1_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    if (!(x)) {                                                                                    \
      fprintf(stderr, "fuzz_h1_req: CHECK(%s) failed at line %d\n", #x, __LINE__);                 \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

struct run {
  char log[8192];
  size_t n;
};

static void logf_(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct run *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(r->log + r->n, sizeof(r->log) - r->n, fmt, ap);
  va_end(ap);
  CHECK(k >= 0);
  r->n += (size_t)k;
  if (r->n >= sizeof(r->log)) r->n = sizeof(r->log) - 1; /* a long log is compared truncated */
}

static uint32_t fnv1a(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

/* A small xorshift so piece sizes depend only on the seed. */
static uint32_t next(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

/* The request line of the request that starts at |start|: single spaces, version 1.0 or 1.1, and
 * the target llhttp delivered is the text between the spaces. Returns the offset after its CRLF. */
static size_t check_request_line(const uint8_t *s, size_t start, size_t end, const struct h1_req *r) {
  size_t i = start, eol, sp1 = 0, sp2 = 0;
  int spaces = 0;
  while (i + 1 < end && s[i] == '\r' && s[i + 1] == '\n') i += 2;
  for (eol = i; eol + 1 < end && !(s[eol] == '\r' && s[eol + 1] == '\n'); eol++) {
    CHECK(s[eol] != '\n' && s[eol] != '\r' && s[eol] != '\t');
    if (s[eol] == ' ') {
      spaces++;
      if (spaces == 1) sp1 = eol;
      if (spaces == 2) sp2 = eol;
    }
  }
  CHECK(eol + 1 < end);
  CHECK(spaces == 2 && sp1 > i && sp2 > sp1 + 1 && eol == sp2 + 9);
  CHECK(memcmp(s + sp2 + 1, "HTTP/1.", 7) == 0 && (s[eol - 1] == '0' || s[eol - 1] == '1'));
  CHECK(r->head.minor == s[eol - 1] - '0');
  CHECK(r->target != NULL && r->target_len == sp2 - sp1 - 1);
  CHECK(memcmp(r->target, s + sp1 + 1, r->target_len) == 0 && strlen(r->target) == r->target_len);
  CHECK(strncmp((const char *)s + i, r->head.method, sp1 - i) == 0 && r->head.method[sp1 - i] == '\0');
  return eol + 2;
}

/* A head after which the connection is a tunnel: CRLF line ends only, no obs-fold, and the first
 * empty line exactly at |end|. |from| is the first byte after the request line's CRLF. */
static void check_tunnel_head(const uint8_t *s, size_t from, size_t end) {
  CHECK(end >= from + 2 && memcmp(s + end - 4, "\r\n\r\n", 4) == 0);
  for (size_t k = from - 2; k < end; k++) {
    if (s[k] == '\n') CHECK(s[k - 1] == '\r');
    if (s[k] == '\r') CHECK(k + 1 < end && s[k + 1] == '\n');
    if (s[k] == '\n' && k + 1 < end) CHECK(s[k + 1] != ' ' && s[k + 1] != '\t');
    if (k + 4 < end) CHECK(memcmp(s + k, "\r\n\r\n", 4) != 0);
  }
}

static void check_done(const uint8_t *s, size_t start, size_t end, const struct h1_req *r, struct run *out) {
  const struct h1_req_head *h = &r->head;
  size_t body = check_request_line(s, start, end, r);
  switch (h->kind) {
  case H1_REQ_CONNECT: {
    struct authority again;
    char text[AUTHORITY_FORMAT_MAX];
    CHECK(strcmp(h->method, "CONNECT") == 0);
    check_tunnel_head(s, body, end);
    CHECK(authority_parse(r->target, r->target_len, &again, NULL) == 0);
    CHECK(memcmp(&again, &h->authority, sizeof(again)) == 0);
    size_t n = authority_format(&h->authority, text, sizeof(text));
    CHECK(n > 0 && authority_parse(text, n, &again, NULL) == 0);
    CHECK(strcmp(again.host, h->authority.host) == 0 && again.port == h->authority.port &&
          again.kind == h->authority.kind);
    logf_(out, "CONNECT %s @%zu|", text, end);
    break;
  }
  case H1_REQ_CONNECT_UDP: {
    size_t pl;
    CHECK(strcmp(h->method, "GET") == 0 && h->minor == 1);
    check_tunnel_head(s, body, end);
    CHECK(h->path != NULL);
    pl = strlen(h->path);
    CHECK(pl <= r->target_len && strcmp(r->target + r->target_len - pl, h->path) == 0);
    CHECK(pl == 0 || h->path[0] == '/');
    logf_(out, "UDP %08x @%zu|", fnv1a(h->path, pl), end);
    break;
  }
  case H1_REQ_LOCAL:
  case H1_REQ_ABSOLUTE:
    CHECK(end >= body + 2);
    if (h->kind == H1_REQ_LOCAL)
      CHECK(r->target[0] == '/');
    else
      CHECK(strncasecmp(r->target, "http://", 7) == 0 || strncasecmp(r->target, "https://", 8) == 0);
    logf_(out, "%s %s %08x ka=%d @%zu|", h->kind == H1_REQ_LOCAL ? "LOCAL" : "ABS", h->method,
          fnv1a(r->target, r->target_len), h->keep_alive, end);
    break;
  }
}

/* Feeds |in| in pieces: all at once (mode 0), cut at one point (1), or random sizes (2). */
static void run(const uint8_t *in, size_t len, const struct h1_req_limits *lim, int mode, uint32_t seed,
                struct run *out) {
  struct h1_req r;
  size_t off = 0, start = 0;
  size_t cut = len ? 1 + seed % len : 0;
  int stop = 0;

  out->n = 0;
  out->log[0] = '\0';
  h1_req_init(&r, lim);
  while (!stop && off < len) {
    size_t n = len - off;
    if (mode == 1 && off < cut) n = cut - off;
    if (mode == 2) {
      uint32_t x = next(&seed);
      size_t want = (x & 0x100) ? 1 + x % 200 : 1 + x % 7;
      if (want < n) n = want;
    }
    char *copy = malloc(n);
    CHECK(copy != NULL);
    memcpy(copy, in + off, n);
    const char *p = copy;
    size_t left = n;
    while (!stop && left > 0) {
      size_t used = (size_t)-1;
      enum h1_req_status st = h1_req_feed(&r, p, left, &used);
      CHECK(used <= left);
      if (st == H1_REQ_MORE) {
        CHECK(used == left);
      } else if (st == H1_REQ_ERROR) {
        CHECK(r.err == PXERR_BAD_REQUEST || r.err == PXERR_URI_TOO_LONG || r.err == PXERR_HEAD_TOO_LARGE ||
              r.err == PXERR_VERSION || r.err == PXERR_NOT_IMPLEMENTED);
        CHECK(r.detail != NULL && r.detail[0] != '\0');
        logf_(out, "%d %s", pxerr_status(r.err), r.detail);
        stop = 1;
      } else if (st == H1_REQ_BODY_END) {
        /* A forwarded request's body ended: the next request may follow (issue 11). */
        size_t end = off + (size_t)(p - copy) + used;
        CHECK(r.head.kind == H1_REQ_ABSOLUTE);
        CHECK(!h1_req_started(&r));
        logf_(out, "END @%zu|", end);
        start = end;
        stop = !r.head.keep_alive;
      } else {
        CHECK(st == H1_REQ_DONE);
        size_t end = off + (size_t)(p - copy) + used;
        check_done(in, start, end, &r, out);
        if (r.head.kind == H1_REQ_ABSOLUTE) {
          /* The head goes to the origin as received: no field may carry a CR or LF, and the
           * target's authority and path none either (no smuggled lines). */
          for (size_t i = 0; i < r.nhead_fields; i++) {
            CHECK(r.fl[i].name_len > 0);
            CHECK(!memchr(h1_req_fl_name(&r, i), '\r', r.fl[i].name_len) && !memchr(h1_req_fl_name(&r, i), '\n', r.fl[i].name_len));
            CHECK(!memchr(h1_req_fl_value(&r, i), '\r', r.fl[i].value_len) && !memchr(h1_req_fl_value(&r, i), '\n', r.fl[i].value_len));
          }
          CHECK(!strpbrk(r.head.path, "\r\n \t"));
          CHECK(!memchr(r.head.scheme_auth, '\r', r.head.scheme_auth_len) && !memchr(r.head.scheme_auth, '\n', r.head.scheme_auth_len));
          CHECK(h1_req_started(&r));
          char *cred = h1_req_take_credentials(&r);
          free(cred);
          start = end;
          p += used;
          left -= used;
          continue;
        }
        CHECK(!h1_req_started(&r));
        /* Credentials go to the request path as presented: one field value, whole. */
        char *cred = h1_req_take_credentials(&r);
        CHECK(!cred || !strpbrk(cred, "\r\n"));
        logf_(out, "cred %08x|", cred ? fnv1a(cred, strlen(cred)) : 0u);
        free(cred);
        start = end;
        stop = r.head.kind == H1_REQ_CONNECT || r.head.kind == H1_REQ_CONNECT_UDP || !r.head.keep_alive;
      }
      p += used;
      left -= used;
    }
    free(copy);
    off += n;
  }
  if (!stop) logf_(out, h1_req_started(&r) ? "more" : "idle");
  h1_req_dispose(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct run whole, cut, pieces;
  static const struct h1_req_limits small = {.max_head_bytes = 256, .max_fields = 8};
  static const struct h1_req_limits big = {.max_head_bytes = 8192, .max_fields = 100};

  if (size < 1) return 0;
  const struct h1_req_limits *lim = (data[0] & 0x80) ? &small : &big;
  uint32_t seed = 0x9e3779b9u ^ ((uint32_t)data[0] << 8) ^ (uint32_t)size;
  data++;
  size--;

  run(data, size, lim, 0, seed, &whole);
  run(data, size, lim, 1, seed, &cut);
  run(data, size, lim, 2, seed, &pieces);
  if (strcmp(whole.log, cut.log) != 0 || strcmp(whole.log, pieces.log) != 0)
    fprintf(stderr, "whole:  %s\ncut:    %s\npieces: %s\n", whole.log, cut.log, pieces.log);
  CHECK(strcmp(whole.log, cut.log) == 0);
  CHECK(strcmp(whole.log, pieces.log) == 0);
  return 0;
}
