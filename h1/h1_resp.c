#include "h1/h1_resp.h"

#include <stdio.h>
#include <string.h>

#include "proxy/request.h"
#include "src/pxerr.h"
#include "src/strbuf.h"

size_t h1_resp_head(char *buf, size_t cap, int status, const char *content_type, size_t body_len,
                    int close) {
  int n = snprintf(buf, cap,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\n%s\r\n",
                   status, http_reason(status), content_type, body_len,
                   close ? "Connection: close\r\n" : "");
  return (n > 0 && (size_t)n < cap) ? (size_t)n : 0;
}

size_t h1_resp_error(char *buf, size_t cap, int status, const char *detail, const char *proxy_status,
                     const char *body, const struct px_header *extra, size_t nextra) {
  struct strbuf sb;
  strbuf_init_fixed(&sb, buf, cap);
  strbuf_printf(&sb, "HTTP/1.1 %d %s", status, http_reason(status));
  if (detail && detail[0]) {
    /* reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ) (RFC 9112 §4); no CR or LF may pass. */
    char phrase[H1_RESP_DETAIL_MAX + 1];
    size_t n = 0;
    for (; detail[n] && n < H1_RESP_DETAIL_MAX; n++) {
      unsigned char ch = (unsigned char)detail[n];
      phrase[n] = (char)((ch < 0x20 && ch != '\t') || ch == 0x7f ? ' ' : ch);
    }
    phrase[n] = '\0';
    strbuf_printf(&sb, " (%s)", phrase);
  }
  strbuf_puts(&sb, "\r\n");
  if (proxy_status && proxy_status[0]) strbuf_printf(&sb, "Proxy-Status: %s\r\n", proxy_status);
  for (size_t i = 0; i < nextra; i++) strbuf_printf(&sb, "%s: %s\r\n", extra[i].name, extra[i].value);
  strbuf_printf(&sb,
                "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n%s",
                strlen(body), body);
  return sb.overflow ? 0 : sb.len;
}

size_t h1_resp_tunnel(char *buf, size_t cap, const char *upgrade, const struct px_header *extra, size_t nextra) {
  struct strbuf sb;
  strbuf_init_fixed(&sb, buf, cap);
  if (upgrade)
    strbuf_printf(&sb, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n", upgrade);
  else
    strbuf_puts(&sb, "HTTP/1.1 200 Connection Established\r\n");
  for (size_t i = 0; i < nextra; i++) strbuf_printf(&sb, "%s: %s\r\n", extra[i].name, extra[i].value);
  strbuf_puts(&sb, "\r\n");
  return sb.overflow ? 0 : sb.len;
}
