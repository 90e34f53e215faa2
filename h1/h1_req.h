/* HTTP/1.1 request heads, parsed and checked with no I/O: bytes in, a checked head or an error
 * (with its pxerr and a short reason) out, plus where the head ended.
 *
 * It owns llhttp (strict: no lenient flags) and every check the proxy makes on a head, so that
 * h1_conn.c only feeds bytes, acts on the result and writes answers. The checks (RFC 9112; ids
 * from the spec checklist):
 *   - request line: exactly "method SP target SP HTTP/d.d CRLF" — no version (HTTP/0.9 form),
 *     extra or other whitespace, bare CR or LF are 400 (H1S-07, H1S-09); a well-formed version
 *     other than HTTP/1.0 or HTTP/1.1 is 505 (RFC 9110 §15.6.6, §2.5);
 *   - field lines: no obs-fold and no whitespace-led line anywhere (H1S-06, H1S-08), no
 *     whitespace between a field name and its colon (H1S-05);
 *   - sizes: the whole head against |max_head_bytes| (414 while still in the request line, 431
 *     after), the field count against |max_fields| (431) (H1S-10);
 *   - Host: exactly one on HTTP/1.1, at most one on HTTP/1.0, and a valid uri-host [":" port]
 *     (H1C-04); on CONNECT it must name the target's authority;
 *   - CONNECT: authority-form target (H1C-01..03) and no content (H1C-10);
 *   - Upgrade: "connect-udp" on a GET without content (RFC 9298 §3.2) is a UDP tunnel; another
 *     upgrade is relayed on an absolute-form request (FWD-14: |upgrade|) and 501 on any other;
 *     on HTTP/1.0 the field is ignored (RFC 9110 §7.8);
 *   - any other request: origin-form is for the proxy itself, absolute-form is forwarding.
 *
 * Two parsers read every head byte: llhttp, and a line scanner here that checks what llhttp 8.1
 * lets through (it folds obs-fold, skips repeated spaces, takes "Host :" as a field named "host ",
 * and reads "CONNECT h:p" as HTTP/0.9).
 * They must agree on where the head ends, or the request is refused: the tunnel's first byte is
 * never a matter of opinion (H1C-08).
 *
 * Request states (|state|):
 *   HEAD   -> BODY      the head was accepted; llhttp reads and drops a local request's body
 *   HEAD   -> UPGRADED  a CONNECT or connect-udp head was returned: the bytes after it are the
 *                       tunnel's; nothing more may be fed
 *   BODY   -> NEXT      the whole message was returned (LOCAL, ABSOLUTE)
 *   NEXT   -> HEAD      on the next feed: the next pipelined request starts (H1S-14)
 *   HEAD or BODY -> FAILED   an error was returned; nothing more may be fed
 */
#ifndef H2T_H1_REQ_H
#define H2T_H1_REQ_H

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>

#include "src/authority.h"
#include "src/pxerr.h"

struct h1_req_limits {
  size_t max_head_bytes; /* request line + field lines + the empty line, leading CRLFs included */
  size_t max_fields;     /* field lines */
};

enum h1_req_kind {
  H1_REQ_CONNECT,     /* CONNECT host:port: |authority| is the target */
  H1_REQ_CONNECT_UDP, /* GET + Upgrade: connect-udp: |path| is matched against the URI template */
  H1_REQ_LOCAL,       /* origin-form: a request to the proxy itself (its body was read and dropped) */
  H1_REQ_ABSOLUTE,    /* absolute-form: a forwarding request (its body was read and dropped) */
};

enum h1_req_status {
  H1_REQ_MORE,     /* every byte was taken; the request is not complete yet */
  H1_REQ_DONE,     /* |head| holds a checked request; *used says where it ended */
  H1_REQ_BODY_END, /* ABSOLUTE: the body (after H1_REQ_DONE) is complete; *used is its end */
  H1_REQ_ERROR,    /* |err| and |detail| say why; the connection must be answered and closed */
};

/* A field line as received (name and value trimmed; not NUL-terminated): offsets into the
 * request's field store, see h1_req_field. */
struct h1_req_fl {
  uint32_t name, name_len, value, value_len;
};

enum h1_req_state { H1_REQ_S_HEAD, H1_REQ_S_BODY, H1_REQ_S_NEXT, H1_REQ_S_UPGRADED, H1_REQ_S_FAILED };

/* The line scanner's position in a head; see h1_req.c. */
enum h1_req_line {
  H1_LINE_LEAD,
  H1_LINE_LEAD_CR,
  H1_LINE_METHOD,
  H1_LINE_TARGET,
  H1_LINE_VERSION,
  H1_LINE_RL_CR,
  H1_LINE_START,
  H1_LINE_NAME,
  H1_LINE_VALUE,
  H1_LINE_FIELD_CR,
  H1_LINE_END_CR,
  H1_LINE_DONE,
};

/* Which field's value llhttp is delivering. */
enum h1_req_field { H1_FIELD_OTHER, H1_FIELD_HOST, H1_FIELD_UPGRADE, H1_FIELD_PROXY_AUTH };

/* A checked request head. Valid after H1_REQ_DONE until the next h1_req_feed or h1_req_dispose. */
struct h1_req_head {
  enum h1_req_kind kind;      /* after H1_REQ_ERROR too, as far as known (CONNECT_UDP for a refused
                               * connect-udp request, for its log line; CONNECT when unknown) */
  const char *method;         /* static: llhttp's method name, e.g. "GET" */
  int minor;                  /* HTTP/1.|minor|: 0 or 1 */
  int keep_alive;             /* LOCAL: the connection may carry another request */
  struct authority authority; /* CONNECT: the target */
  const char *path;           /* CONNECT_UDP, LOCAL, ABSOLUTE: the path and query of the target
                                 (ABSOLUTE: what follows the authority: "/...", "?..." or "";
                                 borrowed from |target|) */
  const char *scheme_auth;    /* ABSOLUTE: the authority of the target (borrowed from |target|,
                                 |scheme_auth_len| bytes, not NUL-terminated) */
  size_t scheme_auth_len;
  int https;                  /* ABSOLUTE: the target's scheme is https */
  int64_t length;             /* ABSOLUTE: the body's Content-Length, -1 chunked, 0 none */
  int expect_continue;        /* "Expect: 100-continue" */
  int upgrade;                /* ABSOLUTE, HTTP/1.1: Upgrade (not connect-udp) with Connection:
                                 upgrade, to be relayed to the origin (FWD-14); no body */
};

/* Embedded by value in its owner (h1_conn); h1_req_init / h1_req_dispose. Fields below |err| are
 * private to h1_req.c. */
struct h1_req {
  struct h1_req_head head;
  char *target;      /* owned, NUL-terminated: the request-target as received so far (also for a
                      * rejected head, for its log line); NULL before the first byte of it */
  size_t target_len;
  enum pxerr err;     /* after H1_REQ_ERROR */
  const char *detail; /* after H1_REQ_ERROR: static text or |detail_buf| */

  struct h1_req_limits limits;
  enum h1_req_state state;
  llhttp_t parser;
  size_t target_cap;
  char detail_buf[128];
  /* Line scanner, per head: */
  enum h1_req_line line;
  size_t head_bytes;       /* bytes scanned in this head */
  size_t nfields;          /* field lines */
  size_t part_len;         /* bytes of the current request-line part (method, target, version),
                            * counted up to sizeof(version) */
  char version[9];         /* the version text; a 9th byte means "longer than HTTP/d.d" */
  enum pxerr scan_err;     /* the scanner's verdict on the bytes fed */
  const char *scan_detail;
  /* Field values llhttp hands over, per head: */
  char field[20];          /* first bytes of the current field name, lowercased */
  size_t field_len;
  enum h1_req_field field_kind;
  int host_count, upgrade_count, auth_count;
  char host[AUTHORITY_FORMAT_MAX + 2]; /* the first Host value; one byte over = too long */
  size_t host_len;
  char upgrade[16];        /* the first Upgrade value, lowercased; one byte over = not ours */
  size_t upgrade_len;
  char *credentials;       /* owned: the first Proxy-Authorization value (bounded by the head),
                            * NUL-terminated, or NULL */
  size_t credentials_len;
  /* Every field line of a request other than CONNECT, for forwarding (bounded by the head's
   * limits); trailers of a chunked body follow the head's fields (from |nhead_fields| on). */
  char *fstore;            /* owned: names and values */
  size_t fstore_len, fstore_cap;
  struct h1_req_fl *fl;    /* owned */
  size_t nfl, fl_cap, nhead_fields;
  int fl_in_value;
  /* ABSOLUTE: the body, decoded (chunked framing removed), as llhttp reads it. */
  void (*on_body)(void *arg, const char *data, size_t len);
  void *body_arg;
};

/* Field |i| of the last request (see struct h1_req fields above). */
static inline const char *h1_req_fl_name(const struct h1_req *r, size_t i) { return r->fstore + r->fl[i].name; }
static inline const char *h1_req_fl_value(const struct h1_req *r, size_t i) { return r->fstore + r->fl[i].value; }

/* Prepares |r| to read the first request of a connection under |limits|. */
void h1_req_init(struct h1_req *r, const struct h1_req_limits *limits);

/* Frees what |r| owns. |r| may be disposed of more than once. */
void h1_req_dispose(struct h1_req *r);

/* Feeds |len| bytes at |data| (not NUL-terminated; |len| may be 0) and returns:
 *   H1_REQ_MORE: all of them were taken (*|used| == |len|);
 *   H1_REQ_DONE: a request is complete in |r->head|. For CONNECT and CONNECT_UDP, *|used| is the
 *     end of the head and data[*used..len) is the tunnel's first payload; feed nothing more. For
 *     LOCAL and ABSOLUTE it is the end of the message; the next call (with data + *used) starts
 *     the next request;
 *     For ABSOLUTE it is the end of the head: the body follows in the next feeds, handed to
 *     |on_body| as it is read, and H1_REQ_BODY_END says where the message ended (the next call
 *     then starts the next request). Framing faults in the body (bad chunk size, ...) are
 *     H1_REQ_ERROR;
 *   H1_REQ_ERROR: |r->err| and |r->detail| say why (*|used| is where parsing stopped); feed
 *     nothing more.
 * Feeding the same bytes cut into pieces gives the same results. */
enum h1_req_status h1_req_feed(struct h1_req *r, const char *data, size_t len, size_t *used);

/* The first Proxy-Authorization value of the request returned last (trailing whitespace cut),
 * handed over to the caller (free() it), or NULL. Not checked here. */
char *h1_req_take_credentials(struct h1_req *r);

/* 1 while a request has begun (some byte of it was taken) but has not been returned. */
int h1_req_started(const struct h1_req *r);

#endif
