#include "src/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "src/log.h"
#include "src/util.h"

/* The server's preference decides (|arg|: the front-end table's list, in ALPN wire format). A
 * client that offers ALPN but none of ours gets the no_application_protocol alert (RFC 7301
 * §3.2): serving it http/1.1 anyway would answer a protocol it did not ask for. A client offering
 * no ALPN at all never gets here (the connection layer serves it the fallback front end). */
static int on_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg) {
  const struct tls_alpn_prefs *prefs = arg;
  unsigned char *sel;
  if (SSL_select_next_proto(&sel, outlen, prefs->wire, (unsigned int)prefs->len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

static BIO_METHOD *bio_method(void);

const char *tls_error_string(char *buf, size_t cap) {
  unsigned long e = ERR_get_error();
  if (e == 0) {
    snprintf(buf, cap, "no OpenSSL error");
  } else {
    ERR_error_string_n(e, buf, cap);
  }
  ERR_clear_error();
  return buf;
}

SSL_CTX *tls_ctx_new(const char *cert_file, const char *key_file, const struct tls_alpn_prefs *alpn) {
  char err[256];
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    log_error("tls: SSL_CTX_new: %s", tls_error_string(err, sizeof(err)));
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  /* No renegotiation, server cipher preference, and TLS buffers released while idle. */
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  /* AES-128-GCM first (hardware AES makes it the cheapest AEAD per byte, ~40% less than
   * AES-256), ChaCha20 for clients without AES instructions; the server's order wins. */
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384");
  SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!SHA1:!kRSA");
  /* No 0-RTT: early data could replay a CONNECT (checklist H2-09). */
  SSL_CTX_set_max_early_data(ctx, 0);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
    log_error("tls: cannot load certificate chain %s: %s", cert_file,
              tls_error_string(err, sizeof(err)));
    goto fail;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
    log_error("tls: cannot load private key %s: %s", key_file, tls_error_string(err, sizeof(err)));
    goto fail;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    log_error("tls: key %s does not match certificate %s", key_file, cert_file);
    goto fail;
  }
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn_select, (void *)alpn);
  /* Resumption through stateless tickets only: a server-side session cache would keep a session
   * per connection in memory (about 8 KiB each). One ticket per handshake is enough. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 1);
  (void)bio_method(); /* created here, before any worker thread uses it */
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

int tls_ctx_client_ca(SSL_CTX *ctx, const char *ca_file, int required) {
  char err[256];
  STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
  if (!names || SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    log_error("tls: client CA %s: %s", ca_file, tls_error_string(err, sizeof(err)));
    return -1;
  }
  SSL_CTX_set_client_CA_list(ctx, names); /* the CAs named in the CertificateRequest */
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
  SSL_CTX_set_verify_depth(ctx, 4);
  return 0;
}

SSL_CTX *tls_client_ctx_new(const char *ca_file) {
  char err[256];
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  int ok = (ca_file && ca_file[0]) ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                   : SSL_CTX_set_default_verify_paths(ctx);
  if (ok != 1) {
    log_error("tls: cannot load upstream trust %s: %s", (ca_file && ca_file[0]) ? ca_file : "(system)",
              tls_error_string(err, sizeof(err)));
    SSL_CTX_free(ctx);
    return NULL;
  }
  (void)bio_method();
  return ctx;
}

int tls_write_all(SSL *ssl, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    size_t n = 0;
    /* With SSL_MODE_ENABLE_PARTIAL_WRITE one call may take a single record. */
    if (SSL_write_ex(ssl, p, len, &n) != 1 || n == 0) return -EPROTO;
    p += n;
    len -= n;
  }
  return 0;
}

/* The BIO: reads pull from io->in, writes append to io->out. */
static int bio_write(BIO *b, const char *data, int len) {
  struct tls_io *io = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  bufq_append(io->out, io->pool, data, (size_t)len);
  return len;
}

static int bio_read(BIO *b, char *out, int len) {
  struct tls_io *io = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  if (io->in.bytes == 0) {
    BIO_set_retry_read(b);
    return -1;
  }
  size_t n = bufq_peek(&io->in, out, (size_t)len);
  bufq_skip(&io->in, io->pool, n);
  return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  struct tls_io *io = BIO_get_data(b);
  switch (cmd) {
  case BIO_CTRL_FLUSH:
    return 1;
  case BIO_CTRL_PENDING:
    return (long)io->in.bytes;
  case BIO_CTRL_WPENDING:
    return (long)io->out->bytes;
  default:
    return 0;
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO_METHOD *bio_method(void) {
  /* Created once, on the main thread before workers start (tls_ctx_new is called first). */
  static BIO_METHOD *m;
  if (!m) {
    m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "h2tunnel-bufq");
    CHECK(m != NULL);
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
  }
  return m;
}

BIO *tls_bio_new(struct tls_io *io) {
  BIO *b = BIO_new(bio_method());
  CHECK(b != NULL);
  BIO_set_data(b, io);
  return b;
}

SSL *tls_ssl_new(SSL_CTX *ctx, struct tls_io *io) {
  SSL *ssl = SSL_new(ctx);
  CHECK(ssl != NULL);
  BIO *b = tls_bio_new(io);
  SSL_set_bio(ssl, b, b);
  return ssl;
}

int tls_cert_trust(const char *cert_file, const char *host, struct tls_cert_trust *out) {
  memset(out, 0, sizeof(*out));
  FILE *f = fopen(cert_file, "r");
  if (!f) return -1;
  X509 *leaf = PEM_read_X509(f, NULL, NULL, NULL);
  STACK_OF(X509) *chain = sk_X509_new_null();
  X509 *x;
  while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) sk_X509_push(chain, x);
  fclose(f);
  ERR_clear_error(); /* the read that ended the loop */
  if (!leaf) {
    sk_X509_pop_free(chain, X509_free);
    return -1;
  }
  out->root_in_file = X509_check_issued(leaf, leaf) == X509_V_OK;
  for (int i = 0; i < sk_X509_num(chain); i++)
    if (X509_check_issued(sk_X509_value(chain, i), sk_X509_value(chain, i)) == X509_V_OK) out->root_in_file = 1;
  out->host_ok = X509_check_ip_asc(leaf, host, 0) == 1 || X509_check_host(leaf, host, 0, 0, NULL) == 1;
  GENERAL_NAMES *names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
    if (g->type != GEN_DNS) continue;
    const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
    int n = ASN1_STRING_length(g->d.dNSName);
    if (n > 0 && (size_t)n < sizeof(out->dns_name) && !memchr(d, '\0', (size_t)n)) {
      memcpy(out->dns_name, d, (size_t)n);
      out->dns_name[n] = '\0';
      break;
    }
  }
  GENERAL_NAMES_free(names);
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  if (store && ctx && X509_STORE_set_default_paths(store) == 1 && X509_STORE_CTX_init(ctx, store, leaf, chain) == 1) {
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    out->system_trusted = X509_verify_cert(ctx) == 1;
  }
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  ERR_clear_error();
  X509_free(leaf);
  sk_X509_pop_free(chain, X509_free);
  return 0;
}
