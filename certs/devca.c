/* Development CA and localhost leaf, made in-process with the OpenSSL 3 API.
 *
 * The state directory holds four files: ca.pem/ca.key (a self-signed ECDSA P-256 CA, 10 years) and
 * cert.pem/key.pem (an ECDSA P-256 leaf for localhost, 127.0.0.1 and ::1, 397 days, signed by the
 * CA). devca_ensure() decides in two steps:
 *
 *   CA pair loads, key matches, self-signature verifies, is a CA, > 7 days left?
 *     no  -> new CA and new leaf (a leaf of a replaced CA is useless)
 *     yes -> leaf pair loads, key matches, verifies with the CA key, names OK, > 7 days left?
 *              no  -> new leaf from the existing CA (the user may already trust that CA)
 *              yes -> reuse everything, write nothing
 *
 * Every file is written to a temporary name with O_CREAT|O_EXCL and renamed into place, so a
 * reader never sees half a PEM file, and a crash between files leaves a pair that fails the
 * checks above and is re-issued on the next start. */
#include "certs/devca.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "src/log.h"

#define CA_DAYS 3650
#define LEAF_DAYS 397 /* the longest leaf lifetime browsers accept */
#define MIN_DAYS_LEFT 7
/* Certificates start an hour in the past so a client clock slightly behind ours still accepts
 * a freshly issued leaf. */
#define BACKDATE_SECS 3600
#define SERIAL_BYTES 16

/* Logs |what| for |path| with the oldest queued OpenSSL error, and empties the queue so the next
 * caller does not see stale errors. Returns -EIO, the code we give every OpenSSL failure. */
static int ssl_fail(const char *what, const char *path) {
  char buf[256] = "no OpenSSL error queued";
  unsigned long e = ERR_get_error();
  if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  log_error("devca: %s %s: %s", what, path, buf);
  return -EIO;
}

static int join_path(char *out, size_t cap, const char *dir, const char *name) {
  int n = snprintf(out, cap, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= cap) {
    log_error("devca: path too long: %s/%s", dir, name);
    return -ENAMETOOLONG;
  }
  return 0;
}

/* mkdir -p with mode 0700 for every directory we create; existing directories are left as they
 * are, but a group- or world-accessible state directory is reported. */
static int make_dirs(const char *dir) {
  char tmp[PATH_MAX];
  struct stat st;
  size_t len = strlen(dir);
  if (len == 0) {
    log_error("devca: empty state directory");
    return -EINVAL;
  }
  if (len >= sizeof(tmp)) {
    log_error("devca: path too long: %s", dir);
    return -ENAMETOOLONG;
  }
  memcpy(tmp, dir, len + 1);
  for (char *p = tmp + 1; ; p++) {
    if (*p != '/' && *p != '\0') continue;
    char saved = *p;
    *p = '\0';
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
      int err = errno;
      log_error("devca: cannot create directory %s: %s", tmp, strerror(err));
      return -err;
    }
    *p = saved;
    if (saved == '\0') break;
  }
  if (stat(dir, &st) != 0) {
    int err = errno;
    log_error("devca: cannot stat %s: %s", dir, strerror(err));
    return -err;
  }
  if (!S_ISDIR(st.st_mode)) {
    log_error("devca: %s is not a directory", dir);
    return -ENOTDIR;
  }
  if (st.st_mode & 077) log_warn("devca: %s is accessible by other users (mode %03o)", dir,
                                 (unsigned)(st.st_mode & 0777));
  return 0;
}

/* Results of loading a certificate or key file. */
#define LOAD_OK 0
#define LOAD_MISSING 1
#define LOAD_INVALID 2

/* Opens |path| for reading. Returns LOAD_OK, LOAD_MISSING, or a negative errno after logging:
 * an existing file we cannot read is not replaced behind the user's back. */
static int open_read(const char *path, FILE **out) {
  *out = fopen(path, "r");
  if (*out != NULL) return LOAD_OK;
  if (errno == ENOENT) return LOAD_MISSING;
  int err = errno;
  log_error("devca: cannot read %s: %s", path, strerror(err));
  return -err;
}

/* Reads one certificate. Returns LOAD_OK with *|out| set, LOAD_MISSING, LOAD_INVALID when the
 * file holds no PEM certificate, or a negative errno. */
static int load_cert(const char *path, X509 **out) {
  FILE *f = NULL;
  int rc = open_read(path, &f);
  *out = NULL;
  if (rc != LOAD_OK) return rc;
  *out = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  ERR_clear_error();
  return *out != NULL ? LOAD_OK : LOAD_INVALID;
}

/* Same contract as load_cert, for an unencrypted private key. */
static int load_key(const char *path, EVP_PKEY **out) {
  FILE *f = NULL;
  struct stat st;
  int rc = open_read(path, &f);
  *out = NULL;
  if (rc != LOAD_OK) return rc;
  if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
    log_warn("devca: private key %s is readable by other users (mode %03o)", path,
             (unsigned)(st.st_mode & 0777));
  *out = PEM_read_PrivateKey(f, NULL, NULL, NULL);
  fclose(f);
  ERR_clear_error();
  return *out != NULL ? LOAD_OK : LOAD_INVALID;
}

/* Loads a certificate and its key. Returns LOAD_OK, or LOAD_MISSING / LOAD_INVALID with *|bad|
 * naming the file at fault, or a negative errno. On anything but LOAD_OK nothing is returned. */
static int load_pair(const char *cert_path, const char *key_path, X509 **cert, EVP_PKEY **key,
                     const char **bad) {
  int rc = load_cert(cert_path, cert);
  *key = NULL;
  *bad = cert_path;
  if (rc == LOAD_OK) {
    rc = load_key(key_path, key);
    *bad = key_path;
  }
  if (rc != LOAD_OK) {
    X509_free(*cert);
    EVP_PKEY_free(*key);
    *cert = NULL;
    *key = NULL;
  }
  return rc;
}

/* 1 when |x| is still valid MIN_DAYS_LEFT days from now (and already valid now). */
static int lasts_long_enough(X509 *x) {
  time_t now = time(NULL);
  time_t later = now + (time_t)MIN_DAYS_LEFT * 86400;
  return X509_cmp_time(X509_get0_notBefore(x), &now) < 0 &&
         X509_cmp_time(X509_get0_notAfter(x), &later) > 0;
}

/* NULL when the CA pair is usable, else why not. */
static const char *check_ca(X509 *ca, EVP_PKEY *key) {
  const char *why = NULL;
  if (X509_check_private_key(ca, key) != 1)
    why = "key does not match certificate";
  else if (X509_check_ca(ca) != 1)
    why = "not a CA certificate";
  else if (X509_verify(ca, X509_get0_pubkey(ca)) != 1)
    why = "self-signature does not verify";
  else if (!lasts_long_enough(ca))
    why = "expired or expires within 7 days";
  ERR_clear_error();
  return why;
}

/* NULL when the leaf pair is usable under |ca|, else why not. */
static const char *check_leaf(X509 *leaf, EVP_PKEY *key, X509 *ca) {
  const char *why = NULL;
  if (X509_check_private_key(leaf, key) != 1)
    why = "key does not match certificate";
  else if (X509_verify(leaf, X509_get0_pubkey(ca)) != 1)
    why = "not signed by the dev CA";
  else if (X509_check_host(leaf, "localhost", 0, 0, NULL) != 1 ||
           X509_check_ip_asc(leaf, "127.0.0.1", 0) != 1 || X509_check_ip_asc(leaf, "::1", 0) != 1)
    why = "does not name localhost, 127.0.0.1 and ::1";
  else if (X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0) != 1)
    why = "not usable for a TLS server";
  else if (!lasts_long_enough(leaf))
    why = "expired or expires within 7 days";
  ERR_clear_error();
  return why;
}

/* Writes |key| (when non-NULL) or |cert| to |path| through a temporary file in the same directory,
 * fsynced before the rename so a crash leaves either the old file or the complete new one. */
static int write_pem(const char *dir, const char *name, EVP_PKEY *key, X509 *cert) {
  char path[PATH_MAX], tmp[PATH_MAX];
  FILE *f = NULL;
  int fd = -1, rc, n;

  rc = join_path(path, sizeof(path), dir, name);
  if (rc != 0) return rc;
  /* The pid keeps two processes sharing a state dir from writing the same temporary file. */
  n = snprintf(tmp, sizeof(tmp), "%s/.%s.%ld.tmp", dir, name, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof(tmp)) {
    log_error("devca: path too long: %s", path);
    return -ENAMETOOLONG;
  }
  (void)unlink(tmp); /* left over by a crash of an earlier process with our pid */
  /* Keys are private from the first byte on; certificates are public. */
  fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, key != NULL ? 0600 : 0644);
  if (fd < 0) {
    rc = -errno;
    log_error("devca: cannot create %s: %s", tmp, strerror(-rc));
    goto out;
  }
  f = fdopen(fd, "w");
  if (f == NULL) {
    rc = -errno;
    log_error("devca: fdopen %s: %s", tmp, strerror(-rc));
    goto out;
  }
  fd = -1; /* owned by |f| now */
  if ((key != NULL ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
                   : PEM_write_X509(f, cert)) != 1) {
    rc = ssl_fail("cannot write", tmp);
    goto out;
  }
  if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
    rc = -errno;
    log_error("devca: cannot write %s: %s", tmp, strerror(-rc));
    goto out;
  }
  rc = fclose(f);
  f = NULL;
  if (rc != 0) {
    rc = -errno;
    log_error("devca: cannot write %s: %s", tmp, strerror(-rc));
    goto out;
  }
  if (rename(tmp, path) != 0) {
    rc = -errno;
    log_error("devca: cannot rename %s to %s: %s", tmp, path, strerror(-rc));
    goto out;
  }
  return 0;

out:
  if (f != NULL) fclose(f);
  if (fd >= 0) close(fd);
  (void)unlink(tmp);
  return rc;
}

/* Adds one extension in openssl.cnf syntax ("critical,CA:TRUE"). |ctx| names issuer and subject,
 * which subjectKeyIdentifier and authorityKeyIdentifier need. */
static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value) {
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
  int ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok ? 0 : ssl_fail("cannot add extension", OBJ_nid2sn(nid));
}

/* A new v3 certificate for |key| with a random serial, subject CN=|cn|, valid from an hour ago
 * for |days| days, issued by |issuer| (NULL for self-signed). Extensions are added by the caller
 * before signing. */
static int new_cert(X509 **out, EVP_PKEY *key, const char *cn, X509 *issuer, int days) {
  unsigned char serial[SERIAL_BYTES];
  BIGNUM *bn = NULL;
  X509 *x = X509_new();
  X509_NAME *name;
  int rc = -EIO;

  *out = NULL;
  if (x == NULL) goto out;
  if (RAND_bytes(serial, sizeof(serial)) != 1) goto out;
  serial[sizeof(serial) - 1] |= 1; /* RFC 5280 forbids a zero serial */
  bn = BN_bin2bn(serial, sizeof(serial), NULL);
  if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL) goto out;
  if (X509_set_version(x, X509_VERSION_3) != 1) goto out;
  if (X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_SECS) == NULL) goto out;
  if (X509_time_adj_ex(X509_getm_notAfter(x), days, -BACKDATE_SECS, NULL) == NULL) goto out;
  name = X509_get_subject_name(x);
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1)
    goto out;
  if (X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) != 1) goto out;
  if (X509_set_pubkey(x, key) != 1) goto out;
  *out = x;
  x = NULL;
  rc = 0;

out:
  if (rc != 0) rc = ssl_fail("cannot build certificate", cn);
  BN_free(bn);
  X509_free(x);
  return rc;
}

static int new_key(EVP_PKEY **out) {
  *out = EVP_EC_gen("P-256");
  return *out != NULL ? 0 : ssl_fail("cannot generate", "P-256 key");
}

/* A self-signed CA named "h2tunnel dev CA <hex>"; the random suffix tells the CAs of different
 * machines or state dirs apart in a trust store. */
static int make_ca(X509 **ca_out, EVP_PKEY **key_out) {
  unsigned char id[8];
  char cn[64];
  X509V3_CTX ctx;
  X509 *ca = NULL;
  EVP_PKEY *key = NULL;
  int rc;

  if (RAND_bytes(id, sizeof(id)) != 1) return ssl_fail("cannot get random bytes for", "CA name");
  /* One call with a fixed format: 16 + 16 hex digits always fit in |cn|. */
  snprintf(cn, sizeof(cn), "h2tunnel dev CA %02x%02x%02x%02x%02x%02x%02x%02x", id[0], id[1], id[2], id[3],
           id[4], id[5], id[6], id[7]);

  rc = new_key(&key);
  if (rc != 0) goto out;
  rc = new_cert(&ca, key, cn, NULL, CA_DAYS);
  if (rc != 0) goto out;
  X509V3_set_ctx(&ctx, ca, ca, NULL, NULL, 0);
  /* pathlen:0 keeps the CA from signing intermediates: it only ever signs our leaf. */
  rc = add_ext(ca, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  if (rc == 0) rc = add_ext(ca, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  if (rc == 0) rc = add_ext(ca, &ctx, NID_subject_key_identifier, "hash");
  if (rc != 0) goto out;
  if (X509_sign(ca, key, EVP_sha256()) <= 0) {
    rc = ssl_fail("cannot sign", cn);
    goto out;
  }
  *ca_out = ca;
  *key_out = key;
  ca = NULL;
  key = NULL;

out:
  X509_free(ca);
  EVP_PKEY_free(key);
  return rc;
}

static int make_leaf(X509 *ca, EVP_PKEY *ca_key, X509 **leaf_out, EVP_PKEY **key_out) {
  X509V3_CTX ctx;
  X509 *leaf = NULL;
  EVP_PKEY *key = NULL;
  int rc;

  rc = new_key(&key);
  if (rc != 0) goto out;
  rc = new_cert(&leaf, key, "localhost", ca, LEAF_DAYS);
  if (rc != 0) goto out;
  X509V3_set_ctx(&ctx, ca, leaf, NULL, NULL, 0);
  rc = add_ext(leaf, &ctx, NID_basic_constraints, "critical,CA:FALSE");
  if (rc == 0) rc = add_ext(leaf, &ctx, NID_key_usage, "critical,digitalSignature");
  if (rc == 0) rc = add_ext(leaf, &ctx, NID_ext_key_usage, "serverAuth");
  if (rc == 0) rc = add_ext(leaf, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
  if (rc == 0) rc = add_ext(leaf, &ctx, NID_subject_key_identifier, "hash");
  if (rc == 0) rc = add_ext(leaf, &ctx, NID_authority_key_identifier, "keyid:always");
  if (rc != 0) goto out;
  if (X509_sign(leaf, ca_key, EVP_sha256()) <= 0) {
    rc = ssl_fail("cannot sign", "localhost leaf");
    goto out;
  }
  *leaf_out = leaf;
  *key_out = key;
  leaf = NULL;
  key = NULL;

out:
  X509_free(leaf);
  EVP_PKEY_free(key);
  return rc;
}

/* Step 1: loads the CA pair from |dir|, or makes and writes a new one when it is missing or
 * unusable (*|fresh| = 1). Returns 0 with *|ca| and *|ca_key| owned by the caller. */
static int ensure_ca(const char *dir, X509 **ca, EVP_PKEY **ca_key, int *fresh) {
  char cert_path[PATH_MAX], key_path[PATH_MAX];
  const char *bad = NULL, *why = NULL;
  int rc;

  *fresh = 0;
  rc = join_path(cert_path, sizeof(cert_path), dir, DEVCA_CA_CERT);
  if (rc == 0) rc = join_path(key_path, sizeof(key_path), dir, DEVCA_CA_KEY);
  if (rc != 0) return rc;
  rc = load_pair(cert_path, key_path, ca, ca_key, &bad);
  if (rc < 0) return rc;
  if (rc == LOAD_OK && (why = check_ca(*ca, *ca_key)) == NULL) return 0;

  if (rc == LOAD_MISSING)
    log_info("devca: %s missing, creating a new dev CA", bad);
  else
    log_warn("devca: replacing the dev CA: %s %s", why != NULL ? cert_path : bad,
             why != NULL ? why : "does not parse");
  X509_free(*ca);
  EVP_PKEY_free(*ca_key);
  *ca = NULL;
  *ca_key = NULL;
  rc = make_ca(ca, ca_key);
  if (rc != 0) return rc;
  /* Key first: a crash after it leaves a mismatched pair, which the next run replaces. */
  rc = write_pem(dir, DEVCA_CA_KEY, *ca_key, NULL);
  if (rc == 0) rc = write_pem(dir, DEVCA_CA_CERT, NULL, *ca);
  if (rc != 0) return rc;
  *fresh = 1;
  log_info("devca: created dev CA %s; trust it to use the dev certificate", cert_path);
  return 0;
}

/* Step 2: keeps the leaf pair in |dir| when it is valid under |ca| and |force| is 0, or issues
 * and writes a new one (*|fresh| = 1). */
static int ensure_leaf(const char *dir, X509 *ca, EVP_PKEY *ca_key, int force, int *fresh) {
  char cert_path[PATH_MAX], key_path[PATH_MAX];
  const char *bad = NULL, *why = NULL;
  X509 *leaf = NULL;
  EVP_PKEY *key = NULL;
  int rc;

  *fresh = 0;
  rc = join_path(cert_path, sizeof(cert_path), dir, DEVCA_LEAF_CERT);
  if (rc == 0) rc = join_path(key_path, sizeof(key_path), dir, DEVCA_LEAF_KEY);
  if (rc != 0) return rc;
  if (!force) {
    rc = load_pair(cert_path, key_path, &leaf, &key, &bad);
    if (rc < 0) goto out;
    if (rc == LOAD_OK && (why = check_leaf(leaf, key, ca)) == NULL) goto out; /* rc is 0 */
    if (rc == LOAD_MISSING)
      log_info("devca: %s missing, issuing a new leaf", bad);
    else
      log_warn("devca: re-issuing the leaf: %s %s", why != NULL ? cert_path : bad,
               why != NULL ? why : "does not parse");
    X509_free(leaf);
    EVP_PKEY_free(key);
    leaf = NULL;
    key = NULL;
  }
  rc = make_leaf(ca, ca_key, &leaf, &key);
  if (rc != 0) goto out;
  rc = write_pem(dir, DEVCA_LEAF_KEY, key, NULL);
  if (rc == 0) rc = write_pem(dir, DEVCA_LEAF_CERT, NULL, leaf);
  if (rc != 0) goto out;
  *fresh = 1;
  log_info("devca: issued %s for localhost, 127.0.0.1 and ::1, valid %d days", cert_path,
           LEAF_DAYS);

out:
  X509_free(leaf);
  EVP_PKEY_free(key);
  return rc;
}

int devca_ensure(const char *dir, int *created) {
  X509 *ca = NULL;
  EVP_PKEY *ca_key = NULL;
  int new_ca = 0, new_leaf = 0;
  int rc;

  *created = 0;
  rc = make_dirs(dir);
  if (rc != 0) goto out;
  rc = ensure_ca(dir, &ca, &ca_key, &new_ca);
  if (rc != 0) goto out;
  /* A leaf of a replaced CA no longer verifies, so it is re-issued without looking. */
  rc = ensure_leaf(dir, ca, ca_key, new_ca, &new_leaf);
  if (rc != 0) goto out;
  if (!new_ca && !new_leaf) log_info("devca: reusing the dev CA and leaf in %s", dir);

out:
  *created = new_ca || new_leaf;
  if (rc != 0) log_error("devca: cannot prepare dev certificates in %s: %s", dir, strerror(-rc));
  X509_free(ca);
  EVP_PKEY_free(ca_key);
  return rc;
}
