/* The backend half of WebSocket over HTTP/2 (RFC 8441 §5 / RFC 6455 §4): checks the client's
 * fields and builds an HTTP/1.1 Upgrade request with our own Sec-WebSocket-Key (ws_upgrade_new,
 * no I/O), then dials the backend (proxy/dialer.h, under the caller's address check), runs TLS
 * with verification if asked, sends the request, reads the response head and checks
 * Sec-WebSocket-Accept (ws_upgrade_start). On success the connected tcp_ep is handed over, with
 * any bytes that followed the 101 head (WebSocket frames, checklist XC-09).
 * A ws_upgrade owns itself (and the backend connection) until its callback has run or it is
 * cancelled. */
#ifndef H2T_WS_UPGRADE_H
#define H2T_WS_UPGRADE_H

#include "src/authority.h"
#include "src/pxerr.h"
#include "proxy/resolve.h"
#include "tunnel/tcp_ep.h"

struct worker;
struct buf_chunk;
struct strbuf;
struct ws_upgrade;

/* What the client asked for; strings are copied. NULL fields are not sent. */
struct ws_upgrade_req {
  const char *path;       /* request target, e.g. "/chat?x=1" */
  const char *host;       /* Host field */
  const char *version;    /* Sec-WebSocket-Version (NULL: "13") */
  const char *protocol;   /* Sec-WebSocket-Protocol */
  const char *extensions; /* Sec-WebSocket-Extensions */
  const char *origin;     /* Origin */
};

struct ws_upgrade_result {
  int status;             /* the backend's status; 101 on success */
  char protocol[256];     /* Sec-WebSocket-Protocol chosen by the backend ("" if none) */
  char extensions[512];   /* Sec-WebSocket-Extensions accepted by the backend ("" if none) */
};

/* Outcomes: |err| != PXERR_NONE: no backend (dial failure, bad answer) and |ep| is NULL;
 * |err| == PXERR_NONE and res->status == 101: |ep| is connected and upgraded, |leftover| (taken,
 * may be NULL) holds backend bytes already read; otherwise the backend refused with res->status
 * and |ep| is NULL. */
typedef void (*ws_upgrade_cb)(void *arg, struct tcp_ep *ep, const struct ws_upgrade_result *res,
                              struct buf_chunk *leftover, enum pxerr err, const char *detail);

/* Checks the client's fields and builds the backend request (see ws_upgrade_build_request); no
 * I/O. Returns the upgrade, or NULL with *|err| (PXERR_BAD_REQUEST, PXERR_HEAD_TOO_LARGE) and
 * *|why| (static) when the fields make no valid request: that refusal costs no connection and
 * comes before the target policy. */
struct ws_upgrade *ws_upgrade_new(struct worker *w, const struct ws_upgrade_req *req, enum pxerr *err,
                                  const char **why);

/* Where the backend is and how to reach it. */
struct ws_backend_opts {
  int tls;                 /* TLS to the backend, certificate and name verified */
  const char *verify_name; /* SNI and the name to verify (copied); NULL: the backend's host */
  resolve_check_cb check;  /* the address check (dialer_start); NULL for a configured backend */
  void *check_arg;         /* borrowed until the callback */
};

/* Dials |backend| and runs the handshake. The callback always runs later from the loop. */
void ws_upgrade_start(struct ws_upgrade *u, const struct authority *backend, const struct ws_backend_opts *opts,
                      ws_upgrade_cb cb, void *arg);
/* Legal from ws_upgrade_new until the callback has run: the callback will not run; the backend
 * connection (if any) is reset. */
void ws_upgrade_cancel(struct ws_upgrade *u);

/* Pure: checks the client's fields and serializes the backend request with Sec-WebSocket-Key
 * |key| into |out| (initialised here; the caller disposes of it on success). Returns PXERR_NONE;
 * PXERR_BAD_REQUEST when :path is not origin-form, the host is empty, Sec-WebSocket-Version is
 * not 0..255 in digits, or any field holds a control byte (CR, LF, NUL, ...); or
 * PXERR_HEAD_TOO_LARGE when the request would pass |max| bytes. On error *|why| is a static
 * reason and |out| holds nothing. */
enum pxerr ws_upgrade_build_request(const struct ws_upgrade_req *req, const char *key, size_t max,
                                    struct strbuf *out, const char **why);

/* Pure: the Sec-WebSocket-Accept value for |key| (RFC 6455 §4.2.2) into |out| (>= 29 bytes). */
void ws_accept_for_key(const char *key, char *out);

#endif
