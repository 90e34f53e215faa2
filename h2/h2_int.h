/* Types shared by the h2 front end's files (h2_session.c, h2_stream.c); not for other layers. */
#ifndef H2T_H2_INT_H
#define H2T_H2_INT_H

#include <nghttp2/nghttp2.h>

#include "src/authority.h"
#include "src/buf.h"
#include "src/util.h"
#include "src/worker.h"
#include "tunnel/endpoint.h"
#include "tunnel/tunnel.h"

struct conn;
struct tcp_ep;
struct udp_ep;
struct ws_upgrade;

/* One HTTP/2 connection. Owned by its conn (fe_data); owns its nghttp2 session and streams. */
struct h2_session {
  struct conn *c;              /* back-pointer: the owning connection */
  struct worker *w;            /* borrowed */
  nghttp2_session *ng;         /* owned */
  struct list streams;         /* struct h2_stream.link: every stream with state */
  size_t nstreams;
  struct buf_chunk *stage;     /* owned: serialized frames not yet handed to the conn */
  struct worker_defer send;    /* end-of-turn send */
  unsigned goaway : 1;         /* GOAWAY submitted or sent (stop, idle, or error) */
  unsigned goaway_ours : 1;    /* we chose to send it (stop, idle), not nghttp2 */
  unsigned dying : 1;          /* the conn is being freed: no more nghttp2 calls */
  unsigned in_send : 1;
};

enum h2s_state { H2S_HEADERS, H2S_DIALING, H2S_TUNNEL, H2S_RESPONDED };

/* One stream. Owned by its session from on_begin_headers until it is both closed in nghttp2 and
 * detached from its tunnel (if any); then freed by h2_stream_maybe_free. */
struct h2_stream {
  struct h2_session *s;        /* back-pointer: the owning session */
  struct list link;            /* in s->streams */
  int32_t id;
  enum h2s_state state;
  /* Request head (owned strings, NULL when absent). */
  char *method, *authority, *scheme, *path, *protocol, *host;
  char *ws_version, *ws_protocol, *ws_extensions, *origin; /* RFC 8441 request fields */
  size_t header_bytes;
  /* Tunnel side. */
  struct tcp_ep *dial;         /* dial in progress, or NULL */
  struct udp_ep *udp;          /* connect-udp dial in progress, or NULL */
  struct ws_upgrade *ws;       /* WebSocket backend handshake in progress, or NULL */
  struct tun_ep ep;            /* this stream as a tunnel side */
  struct tun_info info;
  struct bufq inq;             /* client DATA not yet given to the tunnel (not yet credited) */
  struct bufq outq;            /* bytes for DATA frames to the client */
  size_t uncredited;           /* bytes received and not yet consumed (window credit owed) */
  /* Local response body. */
  char *body;                  /* owned */
  size_t body_len, body_off;
  unsigned reading : 1;        /* the tunnel wants on_read */
  unsigned client_eof : 1;     /* END_STREAM received */
  unsigned eof_delivered : 1;
  unsigned out_eof : 1;        /* send END_STREAM once outq is empty */
  unsigned data_deferred : 1;  /* the data provider returned DEFERRED */
  unsigned responded : 1;      /* response HEADERS submitted */
  unsigned closed : 1;         /* on_stream_close ran */
  unsigned reset_sent : 1;
  unsigned has_tunnel : 1;     /* ep attached to a tunnel at some point */
  unsigned drain_pending : 1;  /* outq fell to low water inside mem_send: tell the tunnel */
};

/* h2_stream.c */
struct h2_stream *h2_stream_new(struct h2_session *s, int32_t id);
/* The request head is complete: dispatch it (CONNECT, extended CONNECT, local, error). */
void h2_stream_on_request(struct h2_stream *st, int end_stream);
/* Client DATA for |st| (copied). */
void h2_stream_on_data(struct h2_stream *st, const uint8_t *data, size_t len);
/* END_STREAM received. */
void h2_stream_on_end(struct h2_stream *st);
/* nghttp2 closed the stream with |error_code|. May free |st|. */
void h2_stream_on_close(struct h2_stream *st, uint32_t error_code);
/* A trailer HEADERS or other protocol error on an established tunnel (H2C-13). */
void h2_stream_protocol_error(struct h2_stream *st);
/* The session is going away: kill the tunnel (recording |why|) or dial and free the stream now. */
void h2_stream_destroy(struct h2_stream *st, enum tun_close_reason why);
/* Stores a request header; returns 0 or an nghttp2 callback error code. */
int h2_stream_on_header(struct h2_stream *st, const uint8_t *name, size_t namelen,
                        const uint8_t *value, size_t valuelen);

/* The frame carrying our END_STREAM on |st| was sent. */
void h2_stream_on_end_sent(struct h2_stream *st);

/* Tells the tunnel about outq drains noted while nghttp2 was sending. */
void h2_stream_after_send(struct h2_stream *st);

/* nghttp2's send_data_callback for tunnel DATA (NO_COPY): writes the frame header and |length|
 * payload bytes from the stream's outq to the connection. */
int h2_stream_send_data(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd, size_t length,
                        nghttp2_data_source *src, void *ud);

/* h2_session.c */
/* Appends serialized bytes to the session's staging chunk (one TLS record per full chunk). */
void h2_session_stage(struct h2_session *s, const uint8_t *data, size_t len);
/* Hands the staging chunk to the connection now. */
void h2_session_stage_flush(struct h2_session *s);
/* Sends what nghttp2 has queued at the end of this loop turn. */
void h2_session_schedule(struct h2_session *s);

#endif
