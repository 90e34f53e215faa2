/* Authentication at admission (see auth.h for the order of the checks). */
#include "proxy/auth.h"

#include <errno.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "src/access.h"
#include "src/config.h"
#include "src/credentials.h"
#include "src/log.h"
#include "src/users.h"
#include "src/worker.h"

/* ---- client certificates ------------------------------------------------------------------------- */

/* The user a certificate names: the subject's CN, else the first e-mail or DNS SAN. */
static int cert_name(X509 *x, char *out, size_t cap) {
  int len = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)cap);
  if (len > 0 && (size_t)len < cap && strlen(out) == (size_t)len) return 0;
  out[0] = '\0';
  GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  int r = -1;
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && r; i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
    if (g->type != GEN_EMAIL && g->type != GEN_DNS) continue;
    const ASN1_IA5STRING *s = g->d.ia5;
    if (s->length <= 0 || (size_t)s->length >= cap || memchr(s->data, '\0', (size_t)s->length)) continue;
    memcpy(out, s->data, (size_t)s->length);
    out[s->length] = '\0';
    r = 0;
  }
  GENERAL_NAMES_free(sans);
  return r;
}

void px_auth_set_cert(struct px_auth *a, const struct config *cfg, void *ssl_) {
  SSL *ssl = ssl_;
  a->cert_user[0] = '\0';
  if (!ssl || !cfg->access->auth.client_ca) return;
  X509 *x = SSL_get0_peer_certificate(ssl);
  if (!x || SSL_get_verify_result(ssl) != X509_V_OK) return;
  char name[sizeof(a->cert_user)];
  if (cert_name(x, name, sizeof(name)) != 0) return;
  for (const char *p = name; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) return; /* not a name we would log or match */
  memcpy(a->cert_user, name, strlen(name) + 1);
}

/* ---- the decision -------------------------------------------------------------------------------- */

static enum px_auth_verdict pass(struct px_auth *a, const char *user, enum auth_ok how) {
  a->user = user;
  METRIC_ADD(&a->w->metrics, auth_ok[how], 1);
  return PX_AUTH_PASS;
}

static enum px_auth_verdict refuse(struct px_auth *a, enum pxerr err, const char *detail, enum auth_fail why) {
  a->err = err;
  a->detail = detail;
  METRIC_ADD(&a->w->metrics, auth_fail[why], 1);
  if (err == PXERR_AUTH_REQUIRED) {
    /* RFC 7617 §2.1: the charset parameter says the server expects UTF-8 user-pass. The realm
     * was checked at load (printable ASCII, no '"' or '\\'). */
    snprintf(a->challenge, sizeof(a->challenge), "Basic realm=\"%s\", charset=\"UTF-8\"",
             a->cfg->access->auth.realm);
    a->hdr_name = "proxy-authenticate";
    a->hdr_value = a->challenge;
  }
  return PX_AUTH_REFUSE;
}

/* A failed attempt from the client's address; the ban it may start is logged once. */
static void count_failure(struct px_auth *a) {
  const struct access_auth *au = &a->cfg->access->auth;
  struct worker *w = a->w;
  if (auth_guard_fail(w->auth_guard, (const struct sockaddr *)a->client_addr, uv_now(&w->loop),
                      au->max_failures, au->failure_window_ms, au->ban_ms)) {
    METRIC_ADD(&w->metrics, auth_bans, 1);
    const struct access_tuning *t = &a->cfg->access->tune;
    struct access_client k;
    char addr[ACCESS_CLIENT_TEXT_MAX];
    access_client_key((const struct sockaddr *)a->client_addr, t->client_v4_prefix, t->client_v6_prefix, &k);
    access_client_text(&k, addr, sizeof(addr)); /* the ban is on the address, or its network */
    log_warn("auth: %s banned for %llu s after %llu failed logins within %llu s", addr,
             (unsigned long long)(au->ban_ms / 1000), (unsigned long long)au->max_failures,
             (unsigned long long)(au->failure_window_ms / 1000));
  }
}

static void on_verified(void *arg, int result, const struct users_entry *user) {
  struct px_auth *a = arg;
  struct worker *w = a->w;
  a->verify = NULL;
  enum px_auth_verdict v;
  if (result == 0 && user) {
    /* Checked against a users file a reload has replaced since: not worth keeping. */
    if (a->cfg->access->auth.users == w->cfg->access->auth.users)
      auth_cache_put(w->auth_cache, a->cfg->access->auth.users, a->digest, user, uv_now(&w->loop));
    v = pass(a, user->name, AUTH_OK_PASSWORD);
  } else if (result == -EACCES || result == -EINVAL) {
    count_failure(a);
    v = refuse(a, PXERR_AUTH_REQUIRED, "invalid credentials", AUTH_FAIL_INVALID);
  } else {
    v = refuse(a, PXERR_INTERNAL, "password check failed", AUTH_FAIL_BUSY);
  }
  a->done(a->done_arg, v);
}

enum px_auth_verdict px_auth_check(struct px_auth *a, px_auth_done done, void *arg) {
  const struct access_auth *au = &a->cfg->access->auth;
  struct worker *w = a->w;
  const struct sockaddr *sa = (const struct sockaddr *)a->client_addr;
  a->user = NULL;
  a->hdr_name = a->hdr_value = NULL;
  if (!access_nets_empty(&au->allowed_client_nets) && !access_nets_contain(&au->allowed_client_nets, sa))
    return refuse(a, PXERR_CLIENT_DENIED, "client address not allowed", AUTH_FAIL_CLIENT_NET);
  if (!au->users && !au->client_ca) return PX_AUTH_PASS; /* no authentication configured */
  if (a->cert_user[0]) return pass(a, a->cert_user, AUTH_OK_CERT);
  uint64_t now = uv_now(&w->loop);
  uint64_t left = auth_guard_banned(w->auth_guard, sa, now);
  if (left) {
    snprintf(a->retry_after, sizeof(a->retry_after), "%llu", (unsigned long long)((left + 999) / 1000));
    refuse(a, PXERR_AUTH_BANNED, "too many failed logins from this address", AUTH_FAIL_BANNED);
    a->hdr_name = "retry-after";
    a->hdr_value = a->retry_after;
    return PX_AUTH_REFUSE;
  }
  int no_auth = access_nets_contain(&au->no_auth_nets, sa);
  if (!a->credentials || !au->users) {
    if (no_auth) return pass(a, NULL, AUTH_OK_NO_AUTH_NET);
    if (!au->users) return refuse(a, PXERR_CLIENT_DENIED, "a client certificate is required", AUTH_FAIL_CERT_REQUIRED);
    return refuse(a, PXERR_AUTH_REQUIRED, "proxy authentication required", AUTH_FAIL_MISSING);
  }
  /* Credentials given are checked, from no-auth-nets too: they name the user. */
  size_t len = strlen(a->credentials);
  struct credentials cred;
  const char *why = NULL;
  enum credentials_status st = credentials_parse(a->credentials, len, &cred, &why);
  if (st != CREDENTIALS_OK) {
    count_failure(a);
    return refuse(a, PXERR_AUTH_REQUIRED, st == CREDENTIALS_OTHER_SCHEME ? "only the Basic scheme is supported" : why,
                  st == CREDENTIALS_OTHER_SCHEME ? AUTH_FAIL_SCHEME : AUTH_FAIL_MALFORMED);
  }
  auth_cache_digest(w->auth_cache, a->credentials, len, a->digest);
  const struct users_entry *e = auth_cache_get(w->auth_cache, au->users, a->digest, now);
  if (e) {
    credentials_wipe(&cred);
    return pass(a, e->name, AUTH_OK_CACHED);
  }
  if (w->auth_cache->pending >= au->max_pending) {
    credentials_wipe(&cred);
    return refuse(a, PXERR_LIMIT, "too many password checks in progress", AUTH_FAIL_BUSY);
  }
  a->done = done;
  a->done_arg = arg;
  a->verify = auth_verify_start(&w->loop, w->auth_cache, au->users, &cred, a->digest, on_verified, a);
  credentials_wipe(&cred);
  return PX_AUTH_PENDING;
}

void px_auth_cancel(struct px_auth *a) {
  if (!a->verify) return;
  auth_verify_cancel(a->verify);
  a->verify = NULL;
}
