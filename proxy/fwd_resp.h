/* The origin's response to a forwarded request (issue 11, checklist FWD-03, FWD-07..10, FWD-14):
 * a pure parser over llhttp in its strict default, plus the checks a proxy adds. Bytes go in, in
 * any split; out come events, one at a time, with the head's fields kept until the next event;
 * body bytes (the origin's framing removed) go to |on_body| as they are parsed. No I/O: the
 * exchange (proxy/fwd.c) acts on each event, and tests/fuzz/fuzz_fwd_resp.c drives it alone.
 *
 *   state    event (fwd_resp_feed / fwd_resp_finish)          to
 *   HEAD     a 1xx head other than 101          INTERIM       HEAD (the next head follows)
 *   HEAD     101, the request asked to upgrade  UPGRADE       DONE (the rest is the new protocol)
 *   HEAD     the final head (>= 200)            HEAD          BODY (HEAD request: END next)
 *   BODY     the body's end (and trailers)      END           DONE
 *   any      a fault                            ERROR         FAILED
 *
 * Faults (|err|, |error|): what llhttp strict refuses (Content-Length with Transfer-Encoding,
 * differing Content-Lengths, a Transfer-Encoding not ending in chunked, bad chunk sizes, bad
 * bytes), obs-fold anywhere in a head or trailer, a bare CR or LF in a head, a status outside
 * 100..599, a field with an empty name, a head larger than |max_head| or with more than
 * FWD_RESP_MAX_FIELDS fields, a 101 nobody asked for (or one without Upgrade): all
 * PXERR_RESP_INVALID; the connection closing early (fwd_resp_finish): PXERR_RESP_INCOMPLETE.
 *
 * Ownership: embedded by its user; fwd_resp_dispose frees the field buffer. */
#ifndef H2T_FWD_RESP_H
#define H2T_FWD_RESP_H

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>

#include "src/pxerr.h"
#include "src/strbuf.h"

#define FWD_RESP_MAX_FIELDS 256

/* A header field, not NUL-terminated. */
struct fwd_field {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};

enum fwd_resp_ev {
  FWD_RESP_MORE,    /* every byte given was taken: feed more */
  FWD_RESP_INTERIM, /* a 1xx head (not 101): |status|, fwd_resp_fields */
  FWD_RESP_HEAD,    /* the final head: |status|, fwd_resp_fields, |body|, |length| */
  FWD_RESP_UPGRADE, /* a 101 to an upgrade request: |status|, fwd_resp_fields; the bytes after
                       *used are the new protocol's */
  FWD_RESP_END,     /* the response is complete: trailers in fwd_resp_fields, |keep_alive| */
  FWD_RESP_ERROR,   /* |err| and |error| say why */
};

enum fwd_resp_state { FWD_RESP_S_HEAD, FWD_RESP_S_BODY, FWD_RESP_S_DONE, FWD_RESP_S_FAILED };

/* Which fields fwd_resp_fields returns. */
enum fwd_resp_filter {
  FWD_RESP_ALL,         /* every field as received (values trimmed) */
  FWD_RESP_END_TO_END,  /* without hop-by-hop fields, those Connection lists, Content-Length */
  FWD_RESP_UPGRADED,    /* END_TO_END, but Upgrade kept (a relayed 101, FWD-14) */
};

typedef void (*fwd_resp_body_cb)(void *arg, const char *data, size_t len);

struct fwd_resp {
  llhttp_t parser;
  enum fwd_resp_state state;
  int is_head;                 /* the request was HEAD: no body whatever the fields say */
  int upgrade_asked;           /* the request asked for an upgrade: a 101 is relayed */
  fwd_resp_body_cb on_body;
  void *body_arg;
  /* Results. */
  int status;                  /* of the last head */
  int body;                    /* HEAD: content follows (not for HEAD, 204, 304) */
  int64_t length;              /* HEAD: the body's Content-Length, or -1 (chunked, close) */
  int has_length;              /* HEAD: the origin sent Content-Length (kept for HEAD and 304) */
  uint64_t content_length;     /* ... its value */
  int http_minor;              /* of the response (for Via) */
  int keep_alive;              /* END: the connection may carry another exchange */
  enum pxerr err;              /* ERROR */
  const char *error;           /* ERROR: static, or |error_buf| */
  char error_buf[128];
  /* The head being read: fields packed in |fbuf| as offsets. */
  size_t max_head;
  struct strbuf fbuf;
  struct { size_t name, name_len, value, value_len; } fl[FWD_RESP_MAX_FIELDS];
  size_t nfl;
  int in_value;
  int too_big;
  int obs_fold;
  int bad_status;              /* a status outside 100..599 */
  int bad_name;                /* a field with an empty name */
  int value_done;              /* a field's value ended: a name must come next */
  int scan_crlf;               /* the head's line scanner: 0, CR 1, CRLF 2, CRLFCR 3, end 4 */
  int got_bytes;               /* some byte of a response arrived */
  int end_pending;             /* HEAD reported at the message's end: END comes next */
  int paused_at_end;           /* llhttp paused at a message's end (not at a head) */
  int head_reported;           /* HEAD was reported: its fields go before trailers are read */
};

/* Prepares |r| for one response of at most |max_head| bytes of head (each head; trailers too). */
void fwd_resp_init(struct fwd_resp *r, size_t max_head, int is_head, int upgrade_asked, fwd_resp_body_cb on_body,
                   void *body_arg);
void fwd_resp_dispose(struct fwd_resp *r);

/* Parses |len| bytes up to the next event; *|used| says how many were taken (all of them for
 * MORE). Call again with the rest after INTERIM and HEAD (with no bytes left too: a response
 * without a body ends without another byte). After END, UPGRADE and ERROR nothing more is parsed
 * (the same event again, *used 0). At END, |keep_alive| is 0 when bytes followed the response in
 * this input. */
enum fwd_resp_ev fwd_resp_feed(struct fwd_resp *r, const char *data, size_t len, size_t *used);

/* The origin closed its side: END for a close-delimited body (keep_alive 0), HEAD or END still
 * pending, else ERROR (PXERR_RESP_INCOMPLETE). Call again after HEAD. */
enum fwd_resp_ev fwd_resp_finish(struct fwd_resp *r);

/* The fields of the last head (or the trailers at END) into |out| (FWD_RESP_MAX_FIELDS), valid
 * until the next feed. Returns the count. */
size_t fwd_resp_fields(const struct fwd_resp *r, struct fwd_field *out, enum fwd_resp_filter filter);

/* 1 if |name| (|len| bytes, any case) is a hop-by-hop field an intermediary removes (RFC 9110
 * §7.6.1, FWD-03): Connection, Keep-Alive, Proxy-Connection, Proxy-Authorization,
 * Proxy-Authenticate, TE, Transfer-Encoding, Upgrade. */
int fwd_resp_hop_by_hop(const char *name, size_t len);
/* 1 if some Connection field among |fields| lists |name| (RFC 9110 §7.6.1). */
int fwd_resp_connection_lists(const struct fwd_field *fields, size_t n, const char *name, size_t len);
/* 1 if the comma list |v| has the token |name| (any case). */
int fwd_resp_list_has(const char *v, size_t vlen, const char *name, size_t nlen);

#endif
