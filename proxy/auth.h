/* Authentication at admission: who the request's client is, decided the same way for every
 * front end and protocol (and for forwarded requests: it is a function of the request only).
 *
 * In this order (auth section of the configuration, README "Authentication"):
 *   1. allowed-client-nets: a client outside them gets 403 (client_net);
 *   2. no htpasswd and no client-ca: anonymous, as before;
 *   3. a verified TLS client certificate names the user (its subject CN, else its first SAN
 *      e-mail or DNS name);
 *   4. an address banned after too many failures gets 429 with Retry-After (banned);
 *   5. no Proxy-Authorization: anonymous from no-auth-nets; else 407 with Proxy-Authenticate
 *      (missing), or 403 when only certificates are configured (cert_required);
 *   6. Proxy-Authorization: Basic (src/credentials.h), a malformed value or another scheme is 407
 *      and counts as a failure; a value verified within cache-ttl passes at once (cached); else the
 *      password is checked on the thread pool (pending; more than max-pending at once: 503 busy),
 *      and a wrong one is 407 and counts as a failure.
 * A pass sets |user| (NULL: anonymous). Each outcome is counted in the auth metrics.
 *
 * Ownership: struct px_auth lives inside the request; a pending check is cancelled by
 * px_auth_cancel (the work item finishes on its own, see src/auth.h). */
#ifndef H2T_PROXY_AUTH_H
#define H2T_PROXY_AUTH_H

#include <stdint.h>
#include <sys/socket.h>

#include "src/auth.h"
#include "src/pxerr.h"

struct config;
struct worker;

enum px_auth_verdict {
  PX_AUTH_PASS,    /* go on; |user| says who (NULL: anonymous) */
  PX_AUTH_REFUSE,  /* answer |err| with |detail|, and the header |hdr_name| when set */
  PX_AUTH_PENDING, /* a password check runs; |done| is called from the loop with PASS or REFUSE */
};

typedef void (*px_auth_done)(void *arg, enum px_auth_verdict v);

/* A request's authentication (embedded in struct px_request, which fills the inputs). The module
 * knows nothing of the request beyond these fields, so forwarded requests can use it as well. */
struct px_auth {
  /* Inputs, borrowed for as long as the check may run: */
  struct worker *w;
  const struct config *cfg;
  const struct sockaddr_storage *client_addr;
  const char *client;                 /* "addr:port", for the ban's log line */
  const char *credentials;            /* Proxy-Authorization as presented, or NULL */
  /* Outputs: */
  const char *user;                   /* PASS: borrowed from the config snapshot or |cert_user| */
  enum pxerr err;                     /* REFUSE */
  const char *detail;                 /* REFUSE: static */
  const char *hdr_name, *hdr_value;   /* REFUSE: Proxy-Authenticate or Retry-After, or NULL */
  /* Private: */
  struct auth_verify *verify;         /* while PENDING */
  px_auth_done done;
  void *done_arg;
  uint8_t digest[AUTH_DIGEST_LEN];    /* PENDING: the cache key of the credentials */
  char cert_user[256];                /* a client certificate's name (px_auth_set_cert) */
  char challenge[176];                /* the Proxy-Authenticate value of a 407 */
  char retry_after[24];               /* the Retry-After value of a 429 */
};

/* Takes the user name of a verified client certificate on the connection's TLS session (|ssl|,
 * an SSL *, may be NULL) into |a|, when |cfg| has a client CA. */
void px_auth_set_cert(struct px_auth *a, const struct config *cfg, void *ssl);
/* Decides (see the order above). PENDING: |done|(|arg|, verdict) follows from the loop. */
enum px_auth_verdict px_auth_check(struct px_auth *a, px_auth_done done, void *arg);
/* Legal while PENDING: |done| will not be called. */
void px_auth_cancel(struct px_auth *a);

#endif
