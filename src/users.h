/* Users and their password hashes from an Apache htpasswd file (`user:hash` lines).
 *
 * Accepted hashes are the ones libxcrypt computes slowly on purpose: bcrypt ($2y$, $2b$, $2a$),
 * SHA-crypt ($5$, $6$) and yescrypt ($y$). Everything else is refused when the file is loaded,
 * so a weak hash never reaches a verification: plain text, {SHA} (unsalted SHA-1), MD5 ($apr1$,
 * $1$), DES crypt, and any prefix we do not know. Blank lines and lines starting with '#' are
 * skipped; a trailing "\r" is ignored. User names are 1..USERS_NAME_MAX bytes with no control
 * character; a name given twice is refused.
 *
 * Built once at start-up; read-only afterwards, so workers may share it without locks. */
#ifndef H2T_USERS_H
#define H2T_USERS_H

#include <stddef.h>

#include "src/cfgfile.h"

#define USERS_NAME_MAX 255
#define USERS_FILE_MAX (16u << 20)

enum users_hash { USERS_BCRYPT, USERS_SHA256, USERS_SHA512, USERS_YESCRYPT };

struct users_entry {
  char *name;            /* owned */
  char *hash;            /* owned: the crypt(3) string, prefix included */
  enum users_hash kind;
  unsigned line;         /* where it was defined */
};

/* The loaded file: entries sorted by name (strcmp) for users_find's binary search. */
struct users {
  char *file;            /* owned: the path, for messages */
  struct users_entry *v; /* owned array */
  size_t n;
};

/* Parses one line (without its "\n") into |out| (its strings owned by the caller afterwards).
 * Returns 1 for an entry, 0 for a blank or comment line, or -EINVAL with *|why| set to a short
 * static reason; for a refused hash *|user_end| is set to the length of the user name, so the
 * caller can name the user. Pure. */
int users_parse_line(const char *line, size_t len, struct users_entry *out, const char **why,
                     size_t *user_end);

/* Parses a whole htpasswd text named |file|. Returns a new struct users, or NULL with |err| set
 * to "FILE:LINE: user 'x': what is wrong". Pure. */
struct users *users_parse(const char *file, const char *text, size_t len, struct cfgfile_err *err);
/* Reads and parses |path|. Errors as users_parse, or "PATH:1:1: cannot read: why". */
struct users *users_load(const char *path, struct cfgfile_err *err);
void users_free(struct users *u);

/* The entry for |name|, or NULL. */
const struct users_entry *users_find(const struct users *u, const char *name);

/* Checks |password| (|len| bytes) for |name| with crypt_rn and a constant-time comparison.
 * Returns 0 on a match, -EACCES for a wrong password or unknown user (an unknown user still pays
 * for one hash, so the answer's timing does not tell which), -EINVAL for a password holding a NUL
 * byte, -ENOMEM when libxcrypt fails. Slow on purpose (bcrypt cost 10 takes ~50-80 ms): call it
 * off the event loop. Thread-safe. */
int users_verify(const struct users *u, const char *name, const char *password, size_t len);

#endif
