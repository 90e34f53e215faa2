/* Proxy-Authorization: Basic, strictly (see credentials.h). */
#include "src/credentials.h"

#include <openssl/crypto.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* The value of a base64 character, or -1. Written as a function rather than a 256-byte table so
 * the rules are readable: the standard alphabet only (RFC 4648 §4), no URL-safe variant. */
static int b64_value(unsigned char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+') return 62;
  if (ch == '/') return 63;
  return -1;
}

/* Decodes canonical padded base64 |in| (|len| bytes) into |out| (|cap| bytes). Returns the
 * decoded length, or -1. */
static long b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, const char **why) {
  if (len == 0 || len % 4 != 0) {
    *why = "base64 length is not a multiple of 4";
    return -1;
  }
  size_t pad = 0;
  if (in[len - 1] == '=') pad++;
  if (in[len - 2] == '=') pad++;
  size_t n = len / 4 * 3 - pad;
  if (n > cap) {
    *why = "credentials too long";
    return -1;
  }
  size_t o = 0;
  for (size_t i = 0; i < len; i += 4) {
    int v[4];
    int last = i + 4 == len;
    for (int k = 0; k < 4; k++) {
      unsigned char ch = (unsigned char)in[i + k];
      if (ch == '=' && last && (size_t)k >= 4 - pad) {
        v[k] = 0;
        continue;
      }
      v[k] = b64_value(ch);
      if (v[k] < 0) {
        *why = ch == '=' ? "base64 padding in the middle" : "not a base64 character";
        return -1;
      }
    }
    uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    if (last && ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))) {
      *why = "base64 with non-zero unused bits";
      return -1;
    }
    size_t take = last ? 3 - pad : 3;
    uint8_t b[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
    memcpy(out + o, b, take);
    o += take;
  }
  return (long)o;
}

/* 1 when |s| (|len| bytes) is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF) without control characters (C0, DEL; C1 as U+0080..U+009F). */
static int utf8_text(const uint8_t *s, size_t len) {
  for (size_t i = 0; i < len;) {
    uint8_t c = s[i];
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) return 0;
      i++;
      continue;
    }
    size_t n;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0) {
      n = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (len - i < n) return 0;
    for (size_t k = 1; k < n; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f)) return 0;
    i += n;
  }
  return 1;
}

enum credentials_status credentials_parse(const char *value, size_t len, struct credentials *out, const char **why) {
  memset(out, 0, sizeof(*out));
  /* The scheme: a token, then one SP (RFC 9110 §11.4: credentials = auth-scheme [ 1*SP token68 ];
   * we take exactly one, as every client sends). */
  size_t s = 0;
  while (s < len && value[s] != ' ') s++;
  if (s == 0) {
    *why = len == 0 ? "empty Proxy-Authorization" : "no scheme";
    return CREDENTIALS_MALFORMED;
  }
  if (s != 5 || strncasecmp(value, "basic", 5) != 0) {
    *why = "not the Basic scheme";
    return CREDENTIALS_OTHER_SCHEME;
  }
  if (s + 1 >= len) {
    *why = "Basic without credentials";
    return CREDENTIALS_MALFORMED;
  }
  if (len > CREDENTIALS_HEADER_MAX) {
    *why = "credentials too long";
    return CREDENTIALS_MALFORMED;
  }
  uint8_t raw[CREDENTIALS_USER_MAX + 1 + CREDENTIALS_PASS_MAX + 2];
  long n = b64_decode(value + s + 1, len - s - 1, raw, sizeof(raw), why);
  int r = CREDENTIALS_MALFORMED;
  if (n < 0) goto out;
  const uint8_t *colon = memchr(raw, ':', (size_t)n);
  if (!colon) {
    *why = "no ':' between user and password";
    goto out;
  }
  size_t ulen = (size_t)(colon - raw), plen = (size_t)n - ulen - 1;
  if (ulen == 0) {
    *why = "empty user";
    goto out;
  }
  if (ulen > CREDENTIALS_USER_MAX || plen > CREDENTIALS_PASS_MAX) {
    *why = "credentials too long";
    goto out;
  }
  if (!utf8_text(raw, ulen) || !utf8_text(colon + 1, plen)) {
    *why = "credentials are not UTF-8 text";
    goto out;
  }
  memcpy(out->user, raw, ulen);
  out->user_len = ulen;
  memcpy(out->pass, colon + 1, plen);
  out->pass_len = plen;
  r = CREDENTIALS_OK;
out:
  OPENSSL_cleanse(raw, sizeof(raw));
  return (enum credentials_status)r;
}

void credentials_wipe(struct credentials *c) { OPENSSL_cleanse(c, sizeof(*c)); }
