#include "h1/h1_resp.h"

#include <stdio.h>
#include <string.h>

#include "src/pxerr.h"

size_t h1_sf_string(char *out, size_t cap, const char *s) {
  size_t n = 0;
  if (cap < 3) return 0;
  out[n++] = '"';
  for (; s && *s && n + 4 < cap; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') out[n++] = '\\';
    out[n++] = (ch < 0x20 || ch > 0x7e) ? '?' : (char)ch;
  }
  out[n++] = '"';
  out[n] = '\0';
  return n;
}

size_t h1_resp_head(char *buf, size_t cap, int status, const char *content_type, size_t body_len,
                    int close) {
  int n = snprintf(buf, cap,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\n%s\r\n",
                   status, http_reason(status), content_type, body_len,
                   close ? "Connection: close\r\n" : "");
  return (n > 0 && (size_t)n < cap) ? (size_t)n : 0;
}

size_t h1_resp_error(char *buf, size_t cap, int status, const char *token, const char *detail) {
  char details[160];
  h1_sf_string(details, sizeof(details), detail ? detail : "");
  char body[256];
  int blen = snprintf(body, sizeof(body), "%d %s%s%s\n", status, http_reason(status),
                      detail ? ": " : "", detail ? detail : "");
  if (blen < 0 || (size_t)blen >= sizeof(body)) blen = (int)sizeof(body) - 1;
  int n = snprintf(buf, cap,
                   "HTTP/1.1 %d %s\r\nProxy-Status: h2tunnel; error=%s%s%s\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
                   "Cache-Control: no-store\r\nConnection: close\r\n\r\n%.*s",
                   status, http_reason(status), token, detail ? "; details=" : "",
                   detail ? details : "", blen, blen, body);
  return (n > 0 && (size_t)n < cap) ? (size_t)n : 0;
}
