/* Fuzz target for src/credentials.c, the Proxy-Authorization: Basic decoder: the input is a
 * header value.
 *
 * Properties: never reads past |size| (the input is copied to an exact-size heap block, so ASan
 * sees an overrun); a status is one of the three; an accepted value decodes to a non-empty user
 * without ':' and both parts without control bytes, within the size bounds, and encoding the pair
 * again with canonical base64 gives back the token exactly (the decoder is strict: one spelling
 * per pair); a refusal leaves no password bytes in |out| and gives a reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/credentials.h"
#include "src/util.h" /* CHECK: aborts in every build */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t b64(const uint8_t *in, size_t n, char *out) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t w = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    out[o++] = tbl[w >> 18 & 63];
    out[o++] = tbl[w >> 12 & 63];
    out[o++] = i + 1 < n ? tbl[w >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? tbl[w & 63] : '=';
  }
  return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *v = malloc(size ? size : 1);
  CHECK(v);
  if (size) memcpy(v, data, size);
  struct credentials c;
  const char *why = NULL;
  enum credentials_status st = credentials_parse(v, size, &c, &why);
  CHECK(st == CREDENTIALS_OK || st == CREDENTIALS_OTHER_SCHEME || st == CREDENTIALS_MALFORMED);
  if (st == CREDENTIALS_OK) {
    CHECK(c.user_len >= 1 && c.user_len <= CREDENTIALS_USER_MAX && c.pass_len <= CREDENTIALS_PASS_MAX);
    CHECK(strlen(c.user) == c.user_len && strlen(c.pass) == c.pass_len);
    CHECK(!memchr(c.user, ':', c.user_len));
    for (size_t i = 0; i < c.user_len; i++) CHECK((uint8_t)c.user[i] >= 0x20 && (uint8_t)c.user[i] != 0x7f);
    for (size_t i = 0; i < c.pass_len; i++) CHECK((uint8_t)c.pass[i] >= 0x20 && (uint8_t)c.pass[i] != 0x7f);
    static uint8_t raw[CREDENTIALS_USER_MAX + 1 + CREDENTIALS_PASS_MAX];
    static char enc[CREDENTIALS_HEADER_MAX + 4];
    memcpy(raw, c.user, c.user_len);
    raw[c.user_len] = ':';
    memcpy(raw + c.user_len + 1, c.pass, c.pass_len);
    size_t n = b64(raw, c.user_len + 1 + c.pass_len, enc);
    CHECK(size == 6 + n && memcmp(v + 6, enc, n) == 0);
  } else {
    CHECK(why != NULL && why[0] != '\0');
    CHECK(c.pass_len == 0 && c.pass[0] == '\0');
  }
  credentials_wipe(&c);
  free(v);
  return 0;
}
