/* TLS contexts -- the server's (TLS 1.2+, ALPN by the front-end table) and the client's for
 * upstreams -- and a BIO
 * that moves ciphertext between OpenSSL and a connection's chunk queues without a memory BIO's
 * extra buffer (an idle connection holds no TLS I/O buffers). */
#ifndef H2T_TLS_H
#define H2T_TLS_H

#include <openssl/ssl.h>

#include "src/buf.h"

/* ALPN protocol ids in the server's order of preference, in wire format (length-prefixed). */
struct tls_alpn_prefs {
  const unsigned char *wire; /* borrowed: must outlive every context made with it */
  size_t len;
};

/* Creates the server context from PEM files, choosing ALPN by |alpn| (borrowed, kept). Returns
 * NULL after logging why. */
SSL_CTX *tls_ctx_new(const char *cert_file, const char *key_file, const struct tls_alpn_prefs *alpn);

/* Asks clients of the server context |ctx| for a certificate issued under |ca_file| (PEM): with
 * |required| the handshake fails without one; without, a client may send none. A certificate that
 * does not verify fails the handshake either way. Returns 0, or -1 after logging why. */
int tls_ctx_client_ca(SSL_CTX *ctx, const char *ca_file, int required);

/* Creates the client context for TLS to upstreams (wss:// WebSocket backends): TLS 1.2+, peer
 * verification against |ca_file| (PEM) or, when NULL/empty, the system trust store. */
SSL_CTX *tls_client_ctx_new(const char *ca_file);

/* Ciphertext queues a BIO reads from and writes to. Embedded in the connection that owns it. */
struct tls_io {
  struct bufq in;        /* received ciphertext not yet read by OpenSSL; chunks owned */
  struct bufq *out;      /* borrowed: where OpenSSL's ciphertext goes (the socket's queue) */
  struct buf_pool *pool; /* borrowed: the worker's */
};

/* Returns a BIO over |io| (borrowed; it must outlive the BIO). SSL_set_bio(ssl, b, b) takes it. */
BIO *tls_bio_new(struct tls_io *io);
/* A new SSL object of |ctx| whose ciphertext goes through |io| (borrowed; it must outlive the SSL).
 * The caller sets the accept or connect state. Aborts on out-of-memory. */
SSL *tls_ssl_new(SSL_CTX *ctx, struct tls_io *io);

/* Encrypts all |len| bytes (several records when needed) into the BIO's queue. Our BIO never
 * blocks, so anything short of everything is a TLS state error. Returns 0 or -EPROTO. */
int tls_write_all(SSL *ssl, const void *data, size_t len);

/* How a client comes to trust the certificate chain in |cert_file| (the start-up "Try it" lines). */
struct tls_cert_trust {
  int system_trusted;   /* verifies against the system trust store (with the file's intermediates) */
  int root_in_file;     /* the file holds a self-signed certificate: the file itself is a CA bundle
                           a client can trust */
  int host_ok;          /* the leaf covers |host| (an IP literal or a DNS name) */
  char dns_name[256];   /* the leaf's first DNS subjectAltName, or "" */
};
/* Fills |out| for |cert_file| and |host|. Returns 0, or -1 when the file cannot be read. */
int tls_cert_trust(const char *cert_file, const char *host, struct tls_cert_trust *out);

/* Describes the current OpenSSL error queue (and clears it) for a log line. */
const char *tls_error_string(char *buf, size_t cap);

#endif
