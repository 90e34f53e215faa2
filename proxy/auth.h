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
 * A pass sets rq->out.user (NULL: anonymous). Each outcome is counted in the auth metrics.
 *
 * Ownership: struct px_auth lives inside the request; a pending check is cancelled by
 * px_auth_cancel (the work item finishes on its own, see src/auth.h). */
#ifndef H2T_PROXY_AUTH_H
#define H2T_PROXY_AUTH_H

#include <stdint.h>

#include "src/auth.h"
#include "src/pxerr.h"

struct px_request;

enum px_auth_verdict {
  PX_AUTH_PASS,    /* go on; rq->out.user says who (NULL: anonymous) */
  PX_AUTH_REFUSE,  /* answer |err| with |detail| and the extra fields set in rq->out */
  PX_AUTH_PENDING, /* a password check runs; |done| is called from the loop with PASS or REFUSE */
};

typedef void (*px_auth_done)(struct px_request *rq, enum px_auth_verdict v);

/* A request's authentication state (in struct px_request). */
struct px_auth {
  struct auth_verify *verify;         /* while PENDING */
  px_auth_done done;
  enum pxerr err;                     /* REFUSE */
  const char *detail;                 /* REFUSE: static */
  uint8_t digest[AUTH_DIGEST_LEN];    /* PENDING: the cache key of the credentials */
  char cert_user[256];                /* a client certificate's name (px_auth_set_cert) */
  char challenge[176];                /* the Proxy-Authenticate value of a 407 */
  char retry_after[24];               /* the Retry-After value of a 429 */
};

/* Takes the user name of a verified client certificate on the connection's TLS session (|ssl|,
 * may be NULL) into |rq|. */
void px_auth_set_cert(struct px_request *rq, void *ssl);
enum px_auth_verdict px_auth_check(struct px_request *rq, px_auth_done done);
/* Legal while PENDING: |done| will not be called. */
void px_auth_cancel(struct px_request *rq);

#endif
