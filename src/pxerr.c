#include "src/pxerr.h"

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
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 400: return "Bad Request";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 407: return "Proxy Authentication Required";
  case 408: return "Request Timeout";
  case 414: return "URI Too Long";
  case 421: return "Misdirected Request";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}
