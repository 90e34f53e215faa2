/* The request path: from a parsed request to a running tunnel or an error answer, one module for
 * every front end and every protocol (DESIGN.md "One request path").
 *
 * A front end (h1/, h2/) parses a request, describes it in a struct px_request (px_request_new,
 * then the fields marked "front end"), and calls px_request_start. From there this module
 * decides, in this order and the same way for everyone:
 *
 *   interpret  the target as requested: the CONNECT authority, the connect-udp URI template,
 *              the WebSocket route and backend                                  (400, 421)
 *   admission  the worker is stopping (503); authentication (proxy/auth.h: 403, 407, 429,
 *              perhaps off the loop); the rules on the name (403, proxy/rules.h); the limits on
 *              tunnel counts and rates (429 with Retry-After, src/limits.h)
 *   [ws]       the backend Upgrade request is built from the client's fields      (400, 431)
 *   name       the policy on the name: the port, unless the backend is configured (403)
 *   resolve    DNS, then the rules still open and the policy on each address (403
 *              destination_ip_prohibited, 502, 504)
 *   dial       TCP (RFC 8305 racing) / UDP (a connected socket) / WebSocket (TCP or TLS, then
 *              the backend's HTTP/1.1 Upgrade)                                   (502, 504)
 *   answer     ops->answer_ok in the front end's framing, then the tunnel starts between
 *              ops->client_ep and the upstream, passing the early bytes; or ops->answer_error
 *
 * An error is described once, in |out| (status, Proxy-Status type and details, extra headers),
 * logged once (an access-log line) and counted once (metrics) here; each front end only
 * serialises it in its own framing. The front end refuses a request it could not parse with
 * px_request_fail, so that it is logged and counted the same way.
 *
 * Phases (|phase|):
 *   from        event                                   to          what happens
 *   NEW         px_request_start: an error at once      (freed)     answer_error (within the call)
 *   NEW         px_request_start: a password to check   AUTHENTICATING  px_auth_check (pending)
 *   AUTHENTICATING  checked: refused, or stopping       (freed)     answer_error
 *   AUTHENTICATING  checked: passed                     as from NEW below, from the loop
 *   NEW         px_request_start: CONNECT               DIALING     dialer_start
 *   NEW         px_request_start: connect-udp           RESOLVING   resolve_start
 *   NEW         px_request_start: WebSocket             UPGRADING   ws_upgrade_start
 *   NEW         px_request_start: FORWARD               FORWARDING  fwd_pool_get
 *   FORWARDING  a connection to the origin              (freed)     answer_forward
 *   NEW         px_request_fail                         (freed)     answer_error
 *   DIALING     connected                               (freed)     answer_ok, tunnel
 *   RESOLVING   an address allowed, UDP socket made     (freed)     answer_ok, tunnel
 *   UPGRADING   the backend's 101                       (freed)     answer_ok, tunnel
 *   DIALING, RESOLVING, UPGRADING: any failure, or the
 *               backend's own refusal (relayed)         (freed)     answer_error
 *   any         px_request_cancel                       (freed)     nothing is called
 * Results of the upstream modules always arrive from the loop, never inside px_request_start.
 *
 * Ownership: the request is heap-allocated by px_request_new and owns itself from
 * px_request_start (or px_request_fail) on; the front end keeps the pointer only to cancel it and
 * must forget it in answer_ok / answer_error, after which it is freed. A live tunnel carries
 * nothing of it: its access-log fields are copied into the tunnel. */
#ifndef H2T_PROXY_REQUEST_H
#define H2T_PROXY_REQUEST_H

#include <stdint.h>
#include <sys/socket.h>

#include "proxy/auth.h"
#include "proxy/ws_upgrade.h"
#include "src/authority.h"
#include "src/metrics.h"
#include "src/pxerr.h"

struct worker;
struct config;
struct config_listener;
struct access_rule;
struct conn;
struct buf_chunk;
struct tun_ep;
struct dialer;
struct resolve;
struct lim_ticket;
struct fwd_up;
struct fwd_get;
struct px_request;

#define PX_FRONT_MAP(XX) XX(H1, "h1") XX(H2, "h2")
enum px_front {
#define XX(n, s) PX_FRONT_##n,
  PX_FRONT_MAP(XX)
#undef XX
};

/* What was asked for. The tunnel protocols share the tunnel's values (enum tun_proto: metrics
 * and the tunnel's timeouts); FORWARD (absolute-form, :scheme http) is not a tunnel. */
#define PX_PROTO_MAP(XX)                                                                        \
  XX(CONNECT, "connect") XX(WEBSOCKET, "websocket") XX(CONNECT_UDP, "connect-udp") XX(FORWARD, "forward")
enum px_proto {
#define XX(n, s) PX_PROTO_##n,
  PX_PROTO_MAP(XX)
#undef XX
};

const char *px_front_name(enum px_front f);
const char *px_proto_name(enum px_proto p);

/* An extra response header; lowercase name (HTTP/2's rule; fine on HTTP/1.1). */
struct px_header {
  const char *name;  /* static */
  const char *value; /* static, or text inside the request */
};
#define PX_EXTRA_MAX 3

/* The decision, set by this module; the front end serialises it. */
struct px_outcome {
  int status;                          /* the HTTP status decided (success: 200) */
  enum pxerr err;                      /* PXERR_NONE on success and for a relayed refusal */
  const char *detail;                  /* Proxy-Status details, the log's and the h1 reason
                                          phrase's: static, |detail_buf|, or (a rule's denial)
                                          text inside the request, valid during the op like the
                                          strings below; or NULL */
  int relayed;                         /* the status is the WebSocket backend's own refusal */
  const struct access_rule *rule;      /* the rule that decided (allow or deny), borrowed from the
                                          config snapshot; NULL: no rule decided */
  const char *user;                    /* the authenticated user (borrowed from the config
                                          snapshot), set by authentication at admission; NULL:
                                          anonymous. Rules, limits and the log read it. */
  struct px_header extra[PX_EXTRA_MAX]; /* success: e.g. capsule-protocol, sec-websocket-* */
  size_t nextra;
  const char *proxy_status;            /* error: the Proxy-Status value ("" if relayed) */
  const char *body;                    /* error: the text body */
  char peer[64];                       /* success: "addr:port" of the upstream */
  char detail_buf[64];                 /* |detail| when it names a value ("port 22 not allowed") */
};
/* The outcome's strings (extra values, proxy_status, body) are valid during the op it is passed
 * to: a front end copies what it keeps. */

/* The front end's side of the contract. Each is called at most once; answer_ok and answer_error
 * are the request's last calls (client_ep follows answer_ok), and the front end forgets the
 * request in them. */
struct px_front_ops {
  /* Success: answer in the front end's framing with |out->extra| (h1 CONNECT: 200; h1
   * connect-udp: 101 and Upgrade; h2: :status 200). Returns the status sent, or 0 when the answer
   * could not be sent: the upstream is then aborted and no tunnel starts. */
  int (*answer_ok)(void *fe, const struct px_outcome *out);
  /* Failure: answer with out->status, out->proxy_status (none when empty) and out->body. */
  void (*answer_error)(void *fe, const struct px_outcome *out);
  /* The front end's side of the tunnel about to start (after answer_ok). */
  struct tun_ep *(*client_ep)(void *fe);
  /* FORWARD success: |up| is a connection to the origin (taken); the front end runs the
   * exchange on it (proxy/fwd.h fwd_start, with |rq| for the log fields; an upgrade request's
   * exchange takes |rq|->ticket for the tunnel it may become). Last call. */
  void (*answer_forward)(void *fe, struct px_request *rq, struct fwd_up *up);
};

/* Where a request is (the file comment has the transitions). */
enum px_phase {
  PX_NEW,       /* being described by the front end, or deciding within px_request_start */
  PX_AUTHENTICATING, /* a password is checked on the thread pool (|auth|.verify) */
  PX_DIALING,   /* CONNECT: |dialer| resolves and connects */
  PX_RESOLVING, /* connect-udp: |res| resolves */
  PX_UPGRADING, /* WebSocket: |ws_up| dials and runs the backend handshake */
  PX_FORWARDING, /* FORWARD: |get| takes a pooled connection or dials one (proxy/pool.h) */
};

struct px_request {
  /* Set by px_request_new: */
  struct worker *w;                       /* borrowed */
  struct config *cfg;                     /* a reference to w->cfg when the request began: the
                                             snapshot it is decided under (a reload does not
                                             change it); dropped when |rq| is freed */
  enum px_front front;
  enum px_proto proto;
  /* Front end, before px_request_start (px_request_set_client fills the client fields): */
  struct sockaddr_storage client_addr;    /* AF_UNSPEC when unknown */
  char client[64];                        /* "addr:port" */
  const struct config_listener *listener; /* borrowed; NULL when unknown */
  uint64_t start_ms;                      /* loop time the request began (access log) */
  const char *authority;                  /* CONNECT, WEBSOCKET: host:port as requested;
                                             FORWARD: host[:port] of the target (the port
                                             defaults to 80, or 443 with |tls|) */
  const struct authority *parsed;         /* CONNECT: |authority| already parsed and checked by
                                             the front end (h1_req), or NULL */
  const char *path;                       /* CONNECT_UDP: matched against the URI template;
                                             WEBSOCKET: :path */
  int tls;                                /* WEBSOCKET, FORWARD: :scheme https (TLS to the
                                             backend or origin) */
  struct ws_upgrade_req ws;               /* WEBSOCKET: the client's fields (path and host are
                                             filled here from |path| and |authority|) */
  char *credentials;                      /* owned: Proxy-Authorization as presented, or NULL
                                             (proxy/auth.c checks it at admission) */
  struct buf_chunk *early;                /* owned: client bytes that followed the head, or NULL */
  int first_on_conn;                      /* the connection's first request: admitted while the
                                             worker stops too (the connection was accepted before
                                             the listeners closed, or a binary upgrade's successor
                                             holds them: the client did nothing late) */
  /* The strings above are borrowed until px_request_start (or _fail) returns. */

  /* The decision (read by the front end in its ops): */
  struct px_outcome out;

  /* Private to request.c: */
  enum px_phase phase;
  const struct px_front_ops *ops;
  void *fe;                               /* the front end's object (h1_conn, h2_stream) */
  char target[300];                       /* the target as requested, for the log */
  struct authority dest;                  /* the target (WEBSOCKET: the backend) once interpreted */
  int trusted;                            /* WEBSOCKET: a configured backend (--ws-route) */
  struct dialer *dialer;                  /* DIALING */
  struct resolve *res;                    /* RESOLVING */
  struct ws_upgrade *ws_up;               /* UPGRADING (and NEW once built) */
  struct px_auth auth;                    /* authentication (AUTHENTICATING: a check runs) */
  /* Rules and limits (proxy/rules.h, src/limits.h): */
  int port_opened;                        /* a rule with `ports` allowed: --allow-ports not checked */
  int rules_by_addr;                      /* the rules decide per resolved address ... */
  size_t rules_from;                      /* ... from this rule on */
  const struct access_rule *addr_denied;  /* the rule that refused an address (for the count) */
  char rule_detail[96];                   /* "denied by rule NAME": Proxy-Status details */
  struct lim_ticket *ticket;              /* owned: the tunnel's hold on its limits, or NULL;
                                             handed to the tunnel on success */
  char retry_after[24];                   /* 429: the Retry-After value */
  int mb_held;                            /* counted by the memory budget (src/membudget.h): given
                                             back on failure, handed to the tunnel on success */
  struct fwd_get *get;                    /* FORWARDING */
  struct sockaddr_storage peer_addr;      /* the upstream connected (|out.peer| as an address),
                                             AF_UNSPEC until then: kept for a reload's re-check */
};

/* A request of |proto| arriving on |front|, answered through |ops| on |fe|. */
struct px_request *px_request_new(struct worker *w, enum px_front front, enum px_proto proto,
                                  const struct px_front_ops *ops, void *fe);
/* Fills the client fields from the connection it arrived on. */
void px_request_set_client(struct px_request *rq, struct conn *c);
/* Decides the request (see the file comment). May answer, and free |rq|, before it returns. */
void px_request_start(struct px_request *rq);
/* The front end refuses the request itself (it could not be parsed): |err| with |detail| (static)
 * is answered, logged and counted like any other refusal; |rq| is freed. */
void px_request_fail(struct px_request *rq, enum pxerr err, const char *detail);
/* The front end answered the request itself with |status| (FWD-05: OPTIONS or TRACE with
 * Max-Forwards: 0): one access-log line (|method|, |detail|, "answered":"proxy") and the forward
 * metrics, as for any request; |rq| is freed. */
void px_request_answered(struct px_request *rq, int status, const char *method, const char *detail);
/* The client is gone (connection closed, stream reset): stops whatever is being opened and frees
 * |rq| without calling the front end. Legal until answer_ok / answer_error. */
void px_request_cancel(struct px_request *rq);

#endif
