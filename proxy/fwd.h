/* One forwarded request (issue 11; checklist FWD-*): an HTTP/1.1 exchange with the origin on an
 * upstream connection from the pool (proxy/pool.h), between a front end that speaks to the client
 * (h1 or h2) and the origin.
 *
 *   request   fwd_start serialises the head in origin-form (RFC 9112 §3.2.1): Host from the
 *             target, hop-by-hop fields removed (FWD-03), Via added (FWD-04), Max-Forwards
 *             decremented (FWD-05), Forwarded/X-Forwarded-For only with --forwarded-for; the
 *             body follows through fwd_send_body / fwd_send_end, framed with Content-Length when
 *             the client gave one, else chunked (trailers kept, FWD-10)
 *   response  parsed with llhttp, strict (FWD-07): 1xx other than 101 go to ops->interim
 *             (FWD-09); the final head to ops->head with the hop-by-hop fields removed and Via
 *             added; the body, decoded, to ops->body; the end and trailers to ops->end
 *   errors    before any response byte was passed on: ops->error with the status and
 *             Proxy-Status (502 for a bad or missing response, 504 after
 *             --fwd-response-timeout); after it: ops->abort, so that a cut response never looks
 *             complete (FWD-08). A reused connection that fails before any response byte is
 *             replaced by a new one once, when the request is idempotent and has no body
 *             (FWD-13).
 *
 * Backpressure: body bytes go to the client only while ops->queued stays under --high-water
 * (reading the origin stops above it; fwd_resume starts it again), and fwd_send_body returns
 * the bytes queued towards the origin so the front end stops reading its client above it
 * (ops->req_drain says when to read again).
 *
 * Ownership: fwd_start returns an exchange that owns itself and its upstream connection; the
 * front end keeps the pointer until ops->end, ops->error or ops->abort (the exchange's last
 * call, after which it logs one access-log line and frees itself), or until fwd_cancel. */
#ifndef H2T_FWD_H
#define H2T_FWD_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/fwd_resp.h"

struct worker;
struct fwd;
struct fwd_up;
struct px_request;
struct px_outcome;
struct tun_ep;
struct bufq;

struct fwd_req {
  const char *method;               /* static or borrowed: "GET" */
  const char *authority;            /* host[:port] as requested: the Host sent */
  const char *path;                 /* origin-form: "/..." (with the query) */
  int https;                        /* the target's scheme (the upstream speaks TLS) */
  const char *proto;                /* the client's protocol version for Via: "1.0", "1.1", "2" */
  const struct fwd_field *fields;   /* the client's fields, any case; borrowed during fwd_start */
  size_t nfields;
  int64_t length;                   /* the body's length when known (0: none), -1: unknown */
  int upgrade;                      /* HTTP/1.1 Upgrade asked for (FWD-14): the client's Upgrade
                                       goes with "Connection: upgrade"; no body */
};

/* The front end's side: every op non-NULL. Calls come from loop callbacks, never from inside
 * a fwd_* call. |fields| are valid during the call only. */
struct fwd_front_ops {
  /* An interim response (1xx but 101), passed on (FWD-09). */
  void (*interim)(void *fe, int status, const struct fwd_field *fields, size_t n);
  /* The final response head. |body|: content follows (not for HEAD, 204, 304); |length|: its
   * length when the origin said (Content-Length), else -1. Returns 0, or -1 when the client is
   * gone (the exchange is then cancelled: no further call). */
  int (*head)(void *fe, int status, const struct fwd_field *fields, size_t n, int body, int64_t length);
  /* Body bytes (decoded from the origin's framing). */
  void (*body)(void *fe, const char *data, size_t len);
  /* The response is complete, with its trailers (n may be 0). |req_done|: the request was sent
   * whole; if not, the client's framing is in doubt (h1 closes the connection). Last call. */
  void (*end)(void *fe, const struct fwd_field *trailers, size_t n, int req_done);
  /* Failed before ops->head: answer |out| (status, Proxy-Status, body) as an error. Last call. */
  void (*error)(void *fe, const struct px_outcome *out);
  /* Failed after ops->head: cut the response (h1: close the connection without the
   * terminator; h2: RST_STREAM(INTERNAL_ERROR)). Last call. */
  void (*abort)(void *fe);
  /* Bytes queued towards the client (for backpressure). */
  size_t (*queued)(void *fe);
  /* The origin took queued request bytes: the front end may read its client again. */
  void (*req_drain)(void *fe);
  /* An upgrade request's 101 (FWD-14), with the origin's fields (Upgrade kept, Via added): the
   * front end writes it with "Connection: upgrade", moves the client bytes it holds beyond the
   * request head into |early| (they go to the origin first), and returns its side of the tunnel
   * the exchange becomes; or NULL when the client is gone. Last call. */
  struct tun_ep *(*upgraded)(void *fe, const struct fwd_field *fields, size_t n, struct bufq *early);
};

/* Starts the exchange described by |req| on |up| (BUSY, taken), for the request |rq| decided by
 * the request path (its client, target, user and start time are copied for the access log).
 * When |req|->length != 0 the body follows through fwd_send_body. Never NULL; a request that
 * cannot be sent (a head too large) ends in ops->error from the loop. An upgrade request takes
 * |rq|->ticket (its tunnel's limits). */
struct fwd *fwd_start(struct fwd_up *up, struct px_request *rq, const struct fwd_req *req,
                      const struct fwd_front_ops *ops, void *fe);

/* Request body bytes (copied). Returns the bytes queued towards the origin. */
size_t fwd_send_body(struct fwd *f, const char *data, size_t len);
/* The request body is complete, with trailers (chunked only; else dropped). */
void fwd_send_end(struct fwd *f, const struct fwd_field *trailers, size_t n);
/* The client side drained below --low-water: read the origin again. */
void fwd_resume(struct fwd *f);
/* The client is gone: the upstream connection is closed (never reused), one access-log line. */
void fwd_cancel(struct fwd *f);

/* 1 if |name| (|len| bytes, any case) is a hop-by-hop field an intermediary removes (RFC 9110
 * §7.6.1, FWD-03): Connection, Keep-Alive, Proxy-Connection, Proxy-Authorization,
 * Proxy-Authenticate, TE, Transfer-Encoding, Upgrade. (Exposed for the h2 front end and tests.) */
int fwd_is_hop_by_hop(const char *name, size_t len);
/* 1 if the comma list |v| names our |via_name| as a received-by (a request loop, FWD-04). */
int fwd_via_names(const char *v, size_t len, const char *via_name);

/* 1 if |method| is OPTIONS or TRACE and the Max-Forwards value |v| is 0: the proxy answers
 * itself instead of forwarding (RFC 9110 §7.6.2, FWD-05). */
int fwd_max_forwards_zero(const char *method, const char *v, size_t len);

#endif
