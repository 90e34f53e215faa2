#include "src/local.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "src/config.h"
#include "src/metrics.h"
#include "src/util.h"
#include "src/worker.h"

static void text(struct local_resp *out, int status, const char *body) {
  out->status = status;
  out->content_type = "text/plain; charset=utf-8";
  out->body_len = strlen(body);
  out->body = xmalloc(out->body_len + 1);
  memcpy(out->body, body, out->body_len + 1);
}

void local_handle(struct worker *w, const char *method, const char *path, struct local_resp *out) {
  memset(out, 0, sizeof(*out));
  METRIC_ADD(&w->metrics, requests_local, 1);
  size_t plen = strcspn(path, "?");
  int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  if (plen == 8 && strncmp(path, "/healthz", 8) == 0) {
    if (!get) return text(out, 405, "method not allowed\n");
    return text(out, w->stopping ? 503 : 200, w->stopping ? "draining\n" : "ok\n");
  }
  if (plen == 8 && strncmp(path, "/metrics", 8) == 0) {
    if (!get) return text(out, 405, "method not allowed\n");
    size_t cap = 32768;
    out->status = 200;
    out->content_type = "text/plain; version=0.0.4; charset=utf-8";
    out->body = xmalloc(cap);
    out->body_len = metrics_render(w->all_metrics, w->nworkers, out->body, cap);
    return;
  }
  text(out, 404, "not found: this proxy answers /healthz and /metrics; use CONNECT to tunnel\n");
}

/* Does |host| (|n| bytes, brackets removed) name the local address |local|? */
static int host_is_addr(const char *host, size_t n, const struct sockaddr *local) {
  char buf[64];
  unsigned char bin[16];
  if (!local || n == 0 || n >= sizeof(buf)) return 0;
  memcpy(buf, host, n);
  buf[n] = '\0';
  if (local->sa_family == AF_INET)
    return inet_pton(AF_INET, buf, bin) == 1 && memcmp(bin, &((const struct sockaddr_in *)local)->sin_addr, 4) == 0;
  if (local->sa_family == AF_INET6)
    return inet_pton(AF_INET6, buf, bin) == 1 && memcmp(bin, &((const struct sockaddr_in6 *)local)->sin6_addr, 16) == 0;
  return 0;
}

/* Is |host| one of the comma-separated |names| (case-insensitive)? */
static int host_in_list(const char *host, size_t n, const char *names) {
  const char *p = names;
  while (*p) {
    size_t len = strcspn(p, ",");
    const char *q = p;
    size_t l = len;
    while (l > 0 && *q == ' ') q++, l--;
    while (l > 0 && q[l - 1] == ' ') l--;
    if (l == n && strncasecmp(q, host, n) == 0) return 1;
    p += len;
    if (*p == ',') p++;
  }
  return 0;
}

int local_is_own(const struct config *cfg, const struct sockaddr *local, const char *authority, size_t len) {
  const char *host = authority;
  size_t hlen;
  const char *port = NULL;
  size_t plen = 0;
  if (len > 0 && authority[0] == '[') {
    const char *close = memchr(authority, ']', len);
    if (!close) return 0;
    host = authority + 1;
    hlen = (size_t)(close - host);
    size_t rest = len - (size_t)(close - authority) - 1;
    if (rest > 0) {
      if (close[1] != ':') return 0;
      port = close + 2;
      plen = rest - 1;
    }
  } else {
    const char *colon = memchr(authority, ':', len);
    hlen = colon ? (size_t)(colon - authority) : len;
    if (colon) {
      port = colon + 1;
      plen = len - hlen - 1;
    }
  }
  if (port) {
    unsigned v = 0;
    if (plen == 0 || plen > 5) return 0;
    for (size_t i = 0; i < plen; i++) {
      if (port[i] < '0' || port[i] > '9') return 0;
      v = v * 10 + (unsigned)(port[i] - '0');
    }
    unsigned lport = 0;
    if (local && local->sa_family == AF_INET) lport = ntohs(((const struct sockaddr_in *)local)->sin_port);
    if (local && local->sa_family == AF_INET6) lport = ntohs(((const struct sockaddr_in6 *)local)->sin6_port);
    if (v != lport) return 0;
  }
  if (hlen == 9 && strncasecmp(host, "localhost", 9) == 0) return 1;
  if (host_is_addr(host, hlen, local)) return 1;
  return cfg && host_in_list(host, hlen, cfg->proxy_names);
}
