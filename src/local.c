#include "src/local.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "src/access.h"
#include "src/config.h"
#include "src/limits.h"
#include "src/membudget.h"
#include "src/metrics.h"
#include "src/status.h"
#include "src/strbuf.h"
#include "src/util.h"
#include "src/worker.h"

static void text(struct local_resp *out, int status, const char *body) {
  out->status = status;
  out->content_type = "text/plain; charset=utf-8";
  out->body_len = strlen(body);
  out->body = xmalloc(out->body_len + 1);
  memcpy(out->body, body, out->body_len + 1);
}

/* /metrics tells who uses the proxy and how: once users must authenticate, only an admin
 * listener (bound where operators reach it) serves it. */
static int metrics_allowed(const struct worker *w, const struct config_listener *listener) {
  const struct access_auth *au = &w->cfg->access->auth;
  if (!au->users && !au->client_ca) return 1;
  return listener && listener->admin;
}

/* Moves |sb|'s text into |out| as a 200 of |type| (500 if it did not fit). */
static void take(struct local_resp *out, struct strbuf *sb, int rc, const char *type) {
  if (rc != 0) {
    strbuf_dispose(sb);
    return text(out, 500, "response too large\n");
  }
  out->status = 200;
  out->content_type = type;
  out->body_len = sb->len;
  out->body = xmalloc(sb->len + 1);
  memcpy(out->body, strbuf_str(sb), sb->len + 1);
  strbuf_dispose(sb);
}

void local_handle(struct worker *w, const struct config_listener *listener, const char *method, const char *path,
                  const char *host, struct local_resp *out) {
  memset(out, 0, sizeof(*out));
  METRIC_ADD(&w->metrics, requests_local, 1);
  size_t plen = strcspn(path, "?");
  int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  if (plen == 8 && strncmp(path, "/healthz", 8) == 0) {
    if (!get) return text(out, 405, "method not allowed\n");
    int draining = w->stopping || atomic_load_explicit(&w->health_draining, memory_order_relaxed);
    return text(out, draining ? 503 : 200, draining ? "draining\n" : "ok\n");
  }
  if (plen == 8 && strncmp(path, "/metrics", 8) == 0) {
    if (!get) return text(out, 405, "method not allowed\n");
    if (!metrics_allowed(w, listener)) return text(out, 403, "forbidden: /metrics is served on the admin listener (--listen URL?admin)\n");
    size_t cap = 131072;
    out->status = 200;
    out->content_type = "text/plain; version=0.0.4; charset=utf-8";
    out->body = xmalloc(cap);
    out->body_len = metrics_render(w->all_metrics, w->nworkers, out->body, cap);
    if (w->limits) { /* rules and limits, shared by the workers */
      struct strbuf sb;
      strbuf_init_fixed(&sb, out->body + out->body_len, cap - out->body_len);
      limits_render(w->limits, &sb);
      out->body_len += sb.len;
    }
    if (w->membudget) { /* the memory budget, shared likewise */
      struct strbuf sb;
      strbuf_init_fixed(&sb, out->body + out->body_len, cap - out->body_len);
      membudget_render(w->membudget, &sb);
      out->body_len += sb.len;
    }
    return;
  }
  if ((plen == 7 && strncmp(path, "/status", 7) == 0) || (plen == 12 && strncmp(path, "/status.json", 12) == 0)) {
    if (!get) return text(out, 405, "method not allowed\n");
    if (!status_allowed(w->cfg, listener))
      return text(out, 403, "forbidden: /status is served on the admin listener (--listen URL?admin), or on "
                            "loopback listeners when there is none\n");
    if (plen == 7) {
      text(out, 200, status_page_html);
      out->content_type = "text/html; charset=utf-8";
      return;
    }
    struct strbuf sb;
    strbuf_init(&sb, 64u << 20);
    int rc = status_render_json(w, &sb);
    return take(out, &sb, rc, "application/json");
  }
  if (plen == 10 && strncmp(path, "/proxy.pac", 10) == 0) {
    if (!get) return text(out, 405, "method not allowed\n");
    if (listener && listener->admin) return text(out, 404, "not found: /proxy.pac is served on the client listeners\n");
    struct strbuf sb;
    strbuf_init(&sb, 1u << 20);
    int rc = status_render_pac(w->cfg, host, &sb);
    return take(out, &sb, rc, "application/x-ns-proxy-autoconfig");
  }
  text(out, 404, "not found: this proxy answers /healthz, /metrics, /status, /status.json and /proxy.pac; use "
                 "CONNECT to tunnel\n");
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
