/* Requests addressed to the proxy itself (origin-form on h1, :scheme/:path on h2):
 * /healthz, /metrics, /status, /status.json and /proxy.pac (src/status.h). Shared by both front
 * ends. */
#ifndef H2T_LOCAL_H
#define H2T_LOCAL_H

#include <stddef.h>

struct config_listener;
struct worker;
struct config;
struct sockaddr;

struct local_resp {
  int status;
  const char *content_type; /* static */
  char *body;               /* owned: free() it */
  size_t body_len;
};

/* Answers |method| |path| (path may carry a query) received on |listener| (may be NULL: unknown)
 * with |host| (Host / :authority, or NULL). With authentication configured, /metrics is answered
 * only on an admin listener (403 elsewhere); /healthz always; /status and /status.json as
 * status_allowed says; /proxy.pac on the client (non-admin) listeners. Always fills |out|. */
void local_handle(struct worker *w, const struct config_listener *listener, const char *method, const char *path,
                  const char *host, struct local_resp *out);

/* Is |authority| (|len| bytes: host [":" port], as a client wrote it in an absolute-form target
 * or :authority) the proxy itself, on a connection accepted at the local address |local|? The
 * names that count are "localhost", the address the client connected to (IPv6 in brackets), and
 * each of --proxy-name; the port must be absent or |local|'s port. Only such requests get the
 * local pages; any other authority is a request to forward (issue 11). */
int local_is_own(const struct config *cfg, const struct sockaddr *local, const char *authority, size_t len);

#endif
