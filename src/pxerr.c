#include "src/pxerr.h"

#include <stdio.h>

static const struct {
  int status;
  const char *token;
  const char *name;
} table[] = {
#define XX(n, st, tok) {st, tok, #n},
    PXERR_MAP(XX)
#undef XX
};

int pxerr_status(enum pxerr e) { return table[e].status; }
const char *pxerr_token(enum pxerr e) { return table[e].token; }
const char *pxerr_name(enum pxerr e) { return table[e].name; }

const char *http_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 103: return "Early Hints";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 401: return "Unauthorized";
  case 400: return "Bad Request";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 407: return "Proxy Authentication Required";
  case 408: return "Request Timeout";
  case 414: return "URI Too Long";
  case 421: return "Misdirected Request";
  case 429: return "Too Many Requests";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 422: return "Unprocessable Content";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  case 508: return "Loop Detected";
  default: return "Unknown";
  }
}

size_t pxerr_sf_string(char *out, size_t cap, const char *s) {
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

size_t pxerr_proxy_status(char *out, size_t cap, enum pxerr e, const char *detail) {
  /* The type is a short token; the details take what is left of a PXERR_PROXY_STATUS_MAX. */
  char details[160];
  pxerr_sf_string(details, sizeof(details), detail);
  int n = snprintf(out, cap, "h2tunnel; error=%s%s%s", pxerr_token(e), detail ? "; details=" : "",
                   detail ? details : "");
  return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

size_t pxerr_body(char *out, size_t cap, int status, const char *detail) {
  int n = snprintf(out, cap, "%d %s%s%s\n", status, http_reason(status), detail ? ": " : "", detail ? detail : "");
  if (n < 0) n = 0;
  if ((size_t)n >= cap) { /* cut: keep the newline */
    n = (int)cap - 1;
    out[n - 1] = '\n';
  }
  return (size_t)n;
}
