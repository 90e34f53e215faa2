/* Proxy-Authorization: Basic (RFC 7617), decoded strictly. Pure: no allocation, no I/O.
 *
 * Accepted: the scheme "Basic" (any case, RFC 9110 §11.1), exactly one space, then token68 in
 * the standard base64 alphabet with canonical padding (length a multiple of 4, '=' only at the
 * end, the unused bits of the last character zero), nothing after it. The decoded text must be
 * "user-id:password" (the first ':' splits, RFC 7617 §2), valid UTF-8 (we announce
 * charset="UTF-8"), without control characters (RFC 7617 §2: CTLs are not allowed in either
 * part), with a user-id of 1..CREDENTIALS_USER_MAX bytes and a password of at most
 * CREDENTIALS_PASS_MAX bytes. Anything else is refused with a short static reason that never
 * quotes the input, so it may be logged. */
#ifndef H2T_CREDENTIALS_H
#define H2T_CREDENTIALS_H

#include <stddef.h>

#define CREDENTIALS_USER_MAX 255 /* = USERS_NAME_MAX */
#define CREDENTIALS_PASS_MAX 1024
/* The longest header value decoded: "Basic " and the base64 of user ':' password. */
#define CREDENTIALS_HEADER_MAX (6 + 4 * ((CREDENTIALS_USER_MAX + 1 + CREDENTIALS_PASS_MAX + 2) / 3))

/* A decoded pair. The caller owns it (on its stack, say) and wipes it with credentials_wipe. */
struct credentials {
  char user[CREDENTIALS_USER_MAX + 1];   /* NUL-terminated */
  size_t user_len;
  char pass[CREDENTIALS_PASS_MAX + 1];   /* NUL-terminated */
  size_t pass_len;
};

enum credentials_status {
  CREDENTIALS_OK,
  CREDENTIALS_OTHER_SCHEME, /* a well-formed value of a scheme we do not take */
  CREDENTIALS_MALFORMED,    /* Basic, but not a valid token68 / user-pass */
};

/* Decodes |value| (|len| bytes, the field value with surrounding whitespace already removed by
 * the HTTP parser) into |out|. Returns CREDENTIALS_OK, or another status with *|why| set (static).
 * On failure |out| holds nothing of the password. */
enum credentials_status credentials_parse(const char *value, size_t len, struct credentials *out, const char **why);

/* Overwrites |c| so no password stays in memory. */
void credentials_wipe(struct credentials *c);

#endif
