/* devca_ensure: creation, reuse, partial and full re-issue, failure paths, and a real TLS
 * handshake with the issued leaf. Every test works in its own mkdtemp directory. */
#define _GNU_SOURCE /* nftw */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/devca.h"
#include "src/log.h"

struct fixture {
  char base[64];      /* the mkdtemp directory, removed in teardown */
  char dir[PATH_MAX];  /* the state dir under it, two levels deep so parents are created */
};

/* A whole file in a malloc'd buffer. */
struct blob {
  unsigned char *data;
  size_t len;
};

static int setup(void **state) {
  struct fixture *fx = calloc(1, sizeof(*fx));
  if (fx == NULL) return -1;
  snprintf(fx->base, sizeof(fx->base), "%s", "/tmp/h2t-devca-XXXXXX");
  if (mkdtemp(fx->base) == NULL) {
    free(fx);
    return -1;
  }
  snprintf(fx->dir, sizeof(fx->dir), "%s/state/h2tunnel", fx->base);
  *state = fx;
  return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int teardown(void **state) {
  struct fixture *fx = *state;
  chmod(fx->base, 0700);
  int rc = nftw(fx->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(fx);
  return rc;
}

static void path_in(char *out, size_t cap, const char *dir, const char *name) {
  int n = snprintf(out, cap, "%s/%s", dir, name);
  assert_true(n > 0 && (size_t)n < cap);
}

static struct blob read_blob(const char *dir, const char *name) {
  char path[PATH_MAX];
  struct blob b = {NULL, 0};
  path_in(path, sizeof(path), dir, name);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  assert_true(n > 0);
  rewind(f);
  b.data = malloc((size_t)n);
  assert_non_null(b.data);
  b.len = fread(b.data, 1, (size_t)n, f);
  assert_int_equal(b.len, (size_t)n);
  fclose(f);
  return b;
}

static int blob_equal(struct blob a, struct blob b) {
  return a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
}

static X509 *read_cert(const char *dir, const char *name) {
  char path[PATH_MAX];
  path_in(path, sizeof(path), dir, name);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  assert_non_null(x);
  return x;
}

static EVP_PKEY *read_key(const char *dir, const char *name) {
  char path[PATH_MAX];
  path_in(path, sizeof(path), dir, name);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
  fclose(f);
  assert_non_null(k);
  return k;
}

static void write_file(const char *dir, const char *name, const char *text) {
  char path[PATH_MAX];
  path_in(path, sizeof(path), dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
}

static unsigned file_mode(const char *dir, const char *name) {
  char path[PATH_MAX];
  struct stat st;
  path_in(path, sizeof(path), dir, name);
  assert_int_equal(stat(path, &st), 0);
  return (unsigned)(st.st_mode & 07777);
}

static unsigned current_umask(void) {
  mode_t m = umask(0);
  umask(m);
  return (unsigned)m;
}

/* Entries in |dir| other than . and .. */
static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  assert_non_null(d);
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
  closedir(d);
  return n;
}

/* Full chain verification as a TLS client would do it: X509_STORE with only the CA, strict
 * RFC 5280 checks, server purpose, and the host name. Returns the X509_V_* result. */
static int verify_leaf(X509 *leaf, X509 *ca, const char *host) {
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  assert_non_null(store);
  assert_non_null(ctx);
  assert_int_equal(X509_STORE_add_cert(store, ca), 1);
  assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
  X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
  assert_int_equal(X509_VERIFY_PARAM_set1_host(param, host, 0), 1);
  assert_int_equal(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER), 1);
  int ok = X509_verify_cert(ctx);
  int err = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  ERR_clear_error();
  return ok == 1 ? X509_V_OK : (err != X509_V_OK ? err : -1);
}

static long validity_days(X509 *x) {
  int days = 0, secs = 0;
  assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
  return days;
}

/* Everything the first call must produce, checked from the files alone. */
static void check_issued_set(const char *dir) {
  X509 *ca = read_cert(dir, DEVCA_CA_CERT);
  X509 *leaf = read_cert(dir, DEVCA_LEAF_CERT);
  EVP_PKEY *ca_key = read_key(dir, DEVCA_CA_KEY);
  EVP_PKEY *leaf_key = read_key(dir, DEVCA_LEAF_KEY);
  char cn[256];

  /* The CA. */
  assert_int_equal(X509_check_private_key(ca, ca_key), 1);
  assert_int_equal(X509_check_ca(ca), 1);
  assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
  assert_non_null(X509_get0_subject_key_id(ca));
  assert_int_equal(X509_verify(ca, X509_get0_pubkey(ca)), 1);
  assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_commonName, cn, sizeof(cn)) > 0);
  assert_int_equal(strncmp(cn, "h2tunnel dev CA ", 16), 0);
  assert_int_equal(strlen(cn), 16 + 16);
  assert_int_equal(validity_days(ca), 3650);
  assert_int_equal(EVP_PKEY_get_base_id(ca_key), EVP_PKEY_EC);
  assert_int_equal(EVP_PKEY_get_bits(ca_key), 256);
  assert_int_equal(X509_get_signature_nid(ca), NID_ecdsa_with_SHA256);
  const ASN1_INTEGER *serial = X509_get0_serialNumber(ca);
  assert_true(ASN1_STRING_length(serial) >= 15 && ASN1_STRING_length(serial) <= 17);

  /* The leaf. */
  assert_int_equal(X509_check_private_key(leaf, leaf_key), 1);
  assert_int_equal(X509_check_ca(leaf), 0);
  assert_int_equal(X509_verify(leaf, X509_get0_pubkey(ca)), 1);
  assert_int_equal(verify_leaf(leaf, ca, "localhost"), X509_V_OK);
  assert_int_not_equal(verify_leaf(leaf, ca, "example.com"), X509_V_OK);
  assert_int_equal(X509_check_host(leaf, "localhost", 0, 0, NULL), 1);
  assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
  assert_int_equal(X509_check_ip_asc(leaf, "::1", 0), 1);
  assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.2", 0), 0);
  assert_true(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
  assert_int_equal(X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0), 1);
  assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
  assert_non_null(X509_get0_authority_key_id(leaf));
  assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
                                         X509_get0_subject_key_id(ca)), 0);
  assert_int_equal(validity_days(leaf), 397);
  assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);

  X509_free(ca);
  X509_free(leaf);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(leaf_key);
}

static void test_first_call_creates(void **state) {
  struct fixture *fx = *state;
  int created = -1;
  struct stat st;

  assert_int_equal(devca_ensure(fx->dir, &created), 0);
  assert_int_equal(created, 1);
  assert_int_equal(stat(fx->dir, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  assert_int_equal(file_mode(fx->dir, DEVCA_CA_KEY), 0600);
  assert_int_equal(file_mode(fx->dir, DEVCA_LEAF_KEY), 0600);
  assert_int_equal(file_mode(fx->dir, DEVCA_CA_CERT) & 077, 044 & ~current_umask());
  assert_int_equal(count_entries(fx->dir), 4); /* no temporary files left behind */
  check_issued_set(fx->dir);
}

static void test_second_call_reuses(void **state) {
  struct fixture *fx = *state;
  static const char *const names[] = {DEVCA_CA_CERT, DEVCA_CA_KEY, DEVCA_LEAF_CERT, DEVCA_LEAF_KEY};
  struct blob before[4], after[4];
  int created = -1;

  assert_int_equal(devca_ensure(fx->dir, &created), 0);
  assert_int_equal(created, 1);
  for (int i = 0; i < 4; i++) before[i] = read_blob(fx->dir, names[i]);
  assert_int_equal(devca_ensure(fx->dir, &created), 0);
  assert_int_equal(created, 0);
  for (int i = 0; i < 4; i++) {
    after[i] = read_blob(fx->dir, names[i]);
    assert_true(blob_equal(before[i], after[i]));
    free(before[i].data);
    free(after[i].data);
  }
}

static void test_missing_leaf_reissued_same_ca(void **state) {
  struct fixture *fx = *state;
  char path[PATH_MAX];
  int created = -1;

  assert_int_equal(devca_ensure(fx->dir, &created), 0);
  struct blob ca = read_blob(fx->dir, DEVCA_CA_CERT);
  struct blob ca_key = read_blob(fx->dir, DEVCA_CA_KEY);
  struct blob key = read_blob(fx->dir, DEVCA_LEAF_KEY);
  path_in(path, sizeof(path), fx->dir, DEVCA_LEAF_CERT);
  assert_int_equal(unlink(path), 0);

  assert_int_equal(devca_ensure(fx->dir, &created), 0);
  assert_int_equal(created, 1);
  struct blob ca2 = read_blob(fx->dir, DEVCA_CA_CERT);
  struct blob ca_key2 = read_blob(fx->dir, DEVCA_CA_KEY);
  struct blob key2 = read_blob(fx->dir, DEVCA_LEAF_KEY);
  assert_true(blob_equal(ca, ca2));
  assert_true(blob_equal(ca_key, ca_key2));
  assert_false(blob_equal(key, key2)); /* a fresh leaf gets a fresh key */
  check_issued_set(fx->dir);

  free(ca.data);
  free(ca2.data);
  free(ca_key.data);
  free(ca_key2.data);
  free(key.data);
  free(key2.data);
}

/* Overwrites cert.pem with a leaf for the existing key.pem, valid |days| days, signed by the dev
 * CA (|self_signed| 0) or by the leaf key itself. */
static void replace_leaf(const char *dir, int days, int self_signed) {
  X509 *ca = read_cert(dir, DEVCA_CA_CERT);
  EVP_PKEY *ca_key = read_key(dir, DEVCA_CA_KEY);
  EVP_PKEY *key = read_key(dir, DEVCA_LEAF_KEY);
  X509 *x = X509_new();
  char path[PATH_MAX];
  X509V3_CTX v3;

  assert_non_null(x);
  assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
  assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 42), 1);
  assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -86400));
  assert_non_null(X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL));
  assert_int_equal(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                              (const unsigned char *)"localhost", -1, -1, 0), 1);
  assert_int_equal(X509_set_issuer_name(x, self_signed ? X509_get_subject_name(x)
                                                       : X509_get_subject_name(ca)), 1);
  assert_int_equal(X509_set_pubkey(x, key), 1);
  X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
                                            "DNS:localhost,IP:127.0.0.1,IP:::1");
  assert_non_null(ext);
  assert_int_equal(X509_add_ext(x, ext, -1), 1);
  X509_EXTENSION_free(ext);
  assert_true(X509_sign(x, self_signed ? key : ca_key, EVP_sha256()) > 0);

  path_in(path, sizeof(path), dir, DEVCA_LEAF_CERT);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(PEM_write_X509(f, x), 1);
  assert_int_equal(fclose(f), 0);
  X509_free(x);
  X509_free(ca);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(key);
}

static void check_leaf_replaced_keeps_ca(const char *dir, int days, int self_signed) {
  int created = -1;
  assert_int_equal(devca_ensure(dir, &created), 0);
  struct blob ca = read_blob(dir, DEVCA_CA_CERT);
  replace_leaf(dir, days, self_signed);
  struct blob planted = read_blob(dir, DEVCA_LEAF_CERT);

  assert_int_equal(devca_ensure(dir, &created), 0);
  assert_int_equal(created, 1);
  struct blob ca2 = read_blob(dir, DEVCA_CA_CERT);
  struct blob leaf2 = read_blob(dir, DEVCA_LEAF_CERT);
  assert_true(blob_equal(ca, ca2));
  assert_false(blob_equal(planted, leaf2));
  check_issued_set(dir);
  free(ca.data);
  free(ca2.data);
  free(planted.data);
  free(leaf2.data);
}

static void test_expiring_leaf_reissued(void **state) {
  struct fixture *fx = *state;
  check_leaf_replaced_keeps_ca(fx->dir, 3, 0);
}

static void test_foreign_leaf_reissued(void **state) {
  struct fixture *fx = *state;
  check_leaf_replaced_keeps_ca(fx->dir, 300, 1);
}

/* Control for the two above: a planted leaf that is good enough is kept. */
static void test_valid_planted_leaf_kept(void **state) {
  struct fixture *fx = *state;
  int created = -1;
  assert_int_equal(devca_ensure(fx->dir, &created), 0);
  replace_leaf(fx->dir, 30, 0);
  struct blob planted = read_blob(fx->dir, DEVCA_LEAF_CERT);
  assert_int_equal(devca_ensure(fx->dir, &created), 0);
  assert_int_equal(created, 0);
  struct blob after = read_blob(fx->dir, DEVCA_LEAF_CERT);
  assert_true(blob_equal(planted, after));
  free(planted.data);
  free(after.data);
}

static void test_corrupt_ca_recreates_all(void **state) {
  struct fixture *fx = *state;
  int created = -1;

  assert_int_equal(devca_ensure(fx->dir, &created), 0);
  struct blob ca_key = read_blob(fx->dir, DEVCA_CA_KEY);
  struct blob leaf = read_blob(fx->dir, DEVCA_LEAF_CERT);
  struct blob key = read_blob(fx->dir, DEVCA_LEAF_KEY);
  write_file(fx->dir, DEVCA_CA_CERT, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                                     "-----END CERTIFICATE-----\n");

  assert_int_equal(devca_ensure(fx->dir, &created), 0);
  assert_int_equal(created, 1);
  struct blob ca_key2 = read_blob(fx->dir, DEVCA_CA_KEY);
  struct blob leaf2 = read_blob(fx->dir, DEVCA_LEAF_CERT);
  struct blob key2 = read_blob(fx->dir, DEVCA_LEAF_KEY);
  assert_false(blob_equal(ca_key, ca_key2));
  assert_false(blob_equal(leaf, leaf2));
  assert_false(blob_equal(key, key2));
  check_issued_set(fx->dir);

  free(ca_key.data);
  free(ca_key2.data);
  free(leaf.data);
  free(leaf2.data);
  free(key.data);
  free(key2.data);
}

static void test_missing_ca_key_recreates_all(void **state) {
  struct fixture *fx = *state;
  char path[PATH_MAX];
  int created = -1;

  assert_int_equal(devca_ensure(fx->dir, &created), 0);
  struct blob ca = read_blob(fx->dir, DEVCA_CA_CERT);
  path_in(path, sizeof(path), fx->dir, DEVCA_CA_KEY);
  assert_int_equal(unlink(path), 0);
  assert_int_equal(devca_ensure(fx->dir, &created), 0);
  assert_int_equal(created, 1);
  struct blob ca2 = read_blob(fx->dir, DEVCA_CA_CERT);
  assert_false(blob_equal(ca, ca2));
  check_issued_set(fx->dir);
  free(ca.data);
  free(ca2.data);
}

static void test_unwritable_path_fails(void **state) {
  struct fixture *fx = *state;
  char dir[PATH_MAX];
  int created = -1;

  /* A regular file where a parent directory should be: fails even for root. */
  write_file(fx->base, "plainfile", "x");
  path_in(dir, sizeof(dir), fx->base, "plainfile/state");
  assert_int_equal(devca_ensure(dir, &created), -ENOTDIR);
  assert_int_equal(created, 0);

  /* The state dir path itself is a file. */
  path_in(dir, sizeof(dir), fx->base, "plainfile");
  assert_int_equal(devca_ensure(dir, &created), -ENOTDIR);
  assert_int_equal(created, 0);

  assert_int_equal(devca_ensure("", &created), -EINVAL);

  /* A directory where ca.key should be: the old name cannot be replaced by rename. */
  char path[PATH_MAX];
  path_in(dir, sizeof(dir), fx->base, "blocked");
  assert_int_equal(mkdir(dir, 0700), 0);
  path_in(path, sizeof(path), dir, DEVCA_CA_KEY);
  assert_int_equal(mkdir(path, 0700), 0);
  assert_true(devca_ensure(dir, &created) < 0);
  assert_int_equal(created, 0);
  assert_int_equal(count_entries(dir), 1); /* nothing written, no temporary file left */

  /* Permission bits do not stop root, so the read-only cases need an unprivileged user. */
  if (geteuid() == 0) return;
  char ro[PATH_MAX];
  path_in(ro, sizeof(ro), fx->base, "ro");
  assert_int_equal(mkdir(ro, 0500), 0);
  path_in(dir, sizeof(dir), ro, "state");
  assert_int_equal(devca_ensure(dir, &created), -EACCES);
  assert_int_equal(created, 0);
  /* An existing directory we cannot write into. */
  assert_int_equal(devca_ensure(ro, &created), -EACCES);
  assert_int_equal(created, 0);
  assert_int_equal(chmod(ro, 0700), 0);
}

/* Moves handshake records between the two ends until both finish; 0 on success. */
static int run_handshake(SSL *cli, SSL *srv) {
  int cli_done = 0, srv_done = 0;
  for (int i = 0; i < 64 && !(cli_done && srv_done); i++) {
    if (!cli_done) {
      int r = SSL_do_handshake(cli);
      if (r == 1)
        cli_done = 1;
      else if (SSL_get_error(cli, r) != SSL_ERROR_WANT_READ)
        return -1;
    }
    if (!srv_done) {
      int r = SSL_do_handshake(srv);
      if (r == 1)
        srv_done = 1;
      else if (SSL_get_error(srv, r) != SSL_ERROR_WANT_READ)
        return -1;
    }
  }
  return cli_done && srv_done ? 0 : -1;
}

/* A client that trusts only ca.pem and checks |host| against the server's leaf. */
static int handshake_as(const char *dir, const char *host, long *verify_result) {
  char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
  path_in(cert, sizeof(cert), dir, DEVCA_LEAF_CERT);
  path_in(key, sizeof(key), dir, DEVCA_LEAF_KEY);
  path_in(ca, sizeof(ca), dir, DEVCA_CA_CERT);

  SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
  assert_non_null(sctx);
  assert_non_null(cctx);
  assert_int_equal(SSL_CTX_use_certificate_chain_file(sctx, cert), 1);
  assert_int_equal(SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM), 1);
  assert_int_equal(SSL_CTX_check_private_key(sctx), 1);
  assert_int_equal(SSL_CTX_load_verify_locations(cctx, ca, NULL), 1);
  SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);

  SSL *srv = SSL_new(sctx);
  SSL *cli = SSL_new(cctx);
  BIO *sbio = NULL, *cbio = NULL;
  assert_non_null(srv);
  assert_non_null(cli);
  assert_int_equal(BIO_new_bio_pair(&sbio, 0, &cbio, 0), 1);
  SSL_set_bio(srv, sbio, sbio); /* each SSL owns its end of the pair */
  SSL_set_bio(cli, cbio, cbio);
  SSL_set_accept_state(srv);
  SSL_set_connect_state(cli);
  assert_int_equal(SSL_set_tlsext_host_name(cli, host), 1);
  assert_int_equal(SSL_set1_host(cli, host), 1);

  int rc = run_handshake(cli, srv);
  *verify_result = SSL_get_verify_result(cli);

  SSL_free(cli);
  SSL_free(srv);
  SSL_CTX_free(cctx);
  SSL_CTX_free(sctx);
  ERR_clear_error();
  return rc;
}

static void test_tls_handshake(void **state) {
  struct fixture *fx = *state;
  int created = -1;
  long vr = -1;

  assert_int_equal(devca_ensure(fx->dir, &created), 0);
  assert_int_equal(handshake_as(fx->dir, "localhost", &vr), 0);
  assert_int_equal(vr, X509_V_OK);
  /* Control: the same client rejects the leaf for another name, so verification really ran. */
  assert_int_equal(handshake_as(fx->dir, "example.com", &vr), -1);
  assert_int_equal(vr, X509_V_ERR_HOSTNAME_MISMATCH);
}

int main(void) {
  /* The module logs at info on every call; keep the test output to failures. */
  log_set_level(LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_first_call_creates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_second_call_reuses, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_leaf_reissued_same_ca, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expiring_leaf_reissued, setup, teardown),
      cmocka_unit_test_setup_teardown(test_foreign_leaf_reissued, setup, teardown),
      cmocka_unit_test_setup_teardown(test_valid_planted_leaf_kept, setup, teardown),
      cmocka_unit_test_setup_teardown(test_corrupt_ca_recreates_all, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_ca_key_recreates_all, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unwritable_path_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tls_handshake, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
