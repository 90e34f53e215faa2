#include "src/local.h"

#include <stdio.h>
#include <string.h>

#include "src/access.h"
#include "src/config.h"
#include "src/limits.h"
#include "src/metrics.h"
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

void local_handle(struct worker *w, const struct config_listener *listener, const char *method, const char *path,
                  struct local_resp *out) {
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
    size_t cap = 65536;
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
    return;
  }
  text(out, 404, "not found: this proxy answers /healthz and /metrics; use CONNECT to tunnel\n");
}
