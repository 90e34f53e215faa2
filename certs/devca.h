/* First-run development CA and leaf certificate, made with the OpenSSL API (no shell-out). */
#ifndef H2T_DEVCA_H
#define H2T_DEVCA_H

/* File names inside the state directory. */
#define DEVCA_CA_CERT "ca.pem"
#define DEVCA_CA_KEY "ca.key"
#define DEVCA_LEAF_CERT "cert.pem"
#define DEVCA_LEAF_KEY "key.pem"

/* Ensures |dir| holds a dev CA (ca.pem, ca.key) and a leaf (cert.pem, key.pem) for localhost,
 * 127.0.0.1 and ::1 signed by it. Creates |dir| (0700, parents too) and the files when missing;
 * keys are written 0600. Existing valid files are reused; a leaf that does not verify against the
 * CA, or expires within 7 days, is re-issued. Sets *|created| to 1 when anything was written.
 * Returns 0, or a negative errno after logging the reason. */
int devca_ensure(const char *dir, int *created);

#endif
