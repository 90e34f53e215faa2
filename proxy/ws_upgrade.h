/* The backend half of WebSocket over HTTP/2 (RFC 8441 §5 / RFC 6455 §4): dials the backend (TCP,
 * or TLS with verification), sends an HTTP/1.1 Upgrade request with our own Sec-WebSocket-Key,
 * reads the response head and checks Sec-WebSocket-Accept. On success the connected tcp_ep is
 * handed over, with any bytes that followed the 101 head (WebSocket frames, checklist XC-09).
 * A ws_upgrade owns itself (and the tcp_ep) until its callback has run or it is cancelled. */
#ifndef H2T_WS_UPGRADE_H
#define H2T_WS_UPGRADE_H

#include "src/authority.h"
#include "src/pxerr.h"
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

/* Starts the upgrade. The callback always runs later from the loop. Fields that make no valid
 * request (see ws_upgrade_build_request) end it with that error before anything is dialed. */
struct ws_upgrade *ws_upgrade_start(struct worker *w, const struct authority *backend,
                                    const struct tcp_dial_opts *opts, const struct ws_upgrade_req *req,
                                    ws_upgrade_cb cb, void *arg);
/* The callback will not run; the backend connection (if any) is reset. */
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
