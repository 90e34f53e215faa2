/* Types shared by the h2 front end's files (h2_session.c, h2_stream.c); not for other layers. */
#ifndef H2T_H2_INT_H
#define H2T_H2_INT_H

#include <nghttp2/nghttp2.h>

#include "proxy/request.h"
#include "src/authority.h"
#include "src/buf.h"
#include "src/log.h"
#include "src/util.h"
#include "src/worker.h"
#include "tunnel/endpoint.h"
#include "tunnel/tunnel.h"

struct conn;
struct fwd;

/* Why a session ended: the log word, the log level, the access-log close reason of tunnels
 * still open, and how the connection ends: H2_FIN_GOAWAY (GOAWAY, RST_STREAM(CANCEL) for the
 * streams still open, then a graceful close), H2_FIN_CLOSE (the client closed: graceful close
 * only) or H2_FIN_ABORT (the socket failed: nothing can be sent). */
#define H2_END_MAP(XX)                                                                          \
  XX(CLIENT_CLOSED, "client_closed", LOG_DEBUG, CLIENT_GONE, CLOSE)  /* TCP FIN, close_notify */ \
  XX(CLIENT_GOAWAY, "client_goaway", LOG_DEBUG, CLIENT_GONE, GOAWAY) /* and no stream left */    \
  XX(CLIENT_RESET, "client_reset", LOG_INFO, CLIENT_RST, ABORT)      /* ECONNRESET */            \
  XX(IO_ERROR, "io_error", LOG_INFO, CLIENT_ERROR, ABORT)            /* a read or write failed */\
  XX(CONN_CLOSED, "conn_closed", LOG_INFO, CLIENT_ERROR, ABORT)      /* by the conn layer */     \
  XX(SHUTDOWN, "shutdown", LOG_INFO, SHUTDOWN, GOAWAY)               /* stop, no stream left */  \
  XX(DRAIN_DEADLINE, "drain_deadline", LOG_INFO, SHUTDOWN, GOAWAY)                               \
  XX(IDLE_TIMEOUT, "idle_timeout", LOG_INFO, IDLE_TIMEOUT, GOAWAY)                               \
  XX(PREFACE_TIMEOUT, "preface_timeout", LOG_INFO, PROTOCOL_ERROR, GOAWAY)                       \
  XX(HEADER_TIMEOUT, "header_timeout", LOG_INFO, PROTOCOL_ERROR, GOAWAY)                         \
  XX(DISCARD_LIMIT, "discard_limit", LOG_WARN, PROTOCOL_ERROR, GOAWAY)                           \
  XX(ABUSE_LIMIT, "abuse_limit", LOG_WARN, PROTOCOL_ERROR, GOAWAY)   /* nghttp2's flood limits */\
  XX(PROTOCOL_ERROR, "protocol_error", LOG_WARN, PROTOCOL_ERROR, GOAWAY)                         \
  XX(INTERNAL_ERROR, "internal_error", LOG_ERROR, CLIENT_ERROR, GOAWAY)

enum h2_fin { H2_FIN_GOAWAY, H2_FIN_CLOSE, H2_FIN_ABORT };

enum h2_end {
#define XX(n, s, level, tun, fin) H2_END_##n,
  H2_END_MAP(XX)
#undef XX
};

/* Where a session is in its life; h2_session.c opens with the transitions. */
enum h2_sess_state {
  H2_SESS_PREFACE,  /* attached: the client's preface and first SETTINGS are due */
  H2_SESS_OPEN,     /* serving streams */
  H2_SESS_DRAINING, /* a GOAWAY announced the end (ours on stop, nghttp2's own, or the client's):
                       no new streams; the live ones finish */
  H2_SESS_CLOSED,   /* ended (h2_session.c end_session): the conn is closing; no more nghttp2
                       calls from stream code */
};

/* One HTTP/2 connection. Owned by its conn (fe_data); owns its nghttp2 session and streams. */
struct h2_session {
  struct conn *c;              /* back-pointer: the owning connection */
  struct worker *w;            /* borrowed */
  nghttp2_session *ng;         /* owned */
  struct list streams;         /* struct h2_stream.link: every stream with state */
  size_t nstreams;
  struct buf_chunk *stage;     /* owned: serialized frames not yet handed to the conn */
  struct worker_defer send;    /* end-of-turn send */
  enum h2_sess_state state;
  enum h2_end drain_cause;     /* why DRAINING began (set with it) */
  char why[160];               /* what DRAINING's cause said (nghttp2's reason), for the log */
  /* Deadlines (uv_now milliseconds; DOS-06). The conn's one timer is armed for the earliest. */
  uint64_t since_ms;           /* attach: the preface and SETTINGS are due by --header-timeout */
  uint64_t idle_since_ms;      /* the last stream went away (or attach): --conn-idle-timeout */
  int32_t hdr_sid;             /* the stream whose header block is arriving, 0 if none */
  uint64_t hdr_since_ms;       /* when that block began: --header-timeout */
  uint64_t drain_at_ms;        /* on stop: when the session ends at the latest, 0 if never */
  /* DATA on closed or reset streams (--h2-max-discard): a bucket refilled per minute. */
  int64_t conn_credited;       /* connection WINDOW_UPDATE increments sent for received DATA */
  uint64_t data_used;          /* DATA payload (and padding) received for live streams */
  int64_t discard_seen;        /* DATA discarded so far, as last charged */
  uint64_t discard_left;
  uint64_t discard_ms;
  uint32_t goaway_code;        /* the last GOAWAY that went out, if goaway_sent */
  struct sockaddr_storage local; /* the address the client connected to: which :authority is
                                    the proxy itself (local_is_own) */
  char ng_error[160];          /* nghttp2's last error message (error callback), for the log */
  unsigned goaway_sent : 1;
  unsigned goaway_wanted : 1;  /* end_session queued a GOAWAY that has not gone out yet */
  unsigned in_send : 1;
};

/* Stream code must not call nghttp2 once the session has ended. */
static inline int h2_session_ended(const struct h2_session *s) { return s->state == H2_SESS_CLOSED; }

enum h2s_state { H2S_HEADERS, H2S_DIALING, H2S_TUNNEL, H2S_FWD, H2S_RESPONDED };

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
  char *proxy_auth;            /* Proxy-Authorization, until it goes to the request */
  /* Forwarding (issue 11): every regular request field of a request other than CONNECT, packed
   * as name NUL value NUL (lowercase names, as HTTP/2 sends them). */
  char *fields;                /* owned */
  size_t fields_len, fields_cap, nfields;
  struct fwd *fx;              /* H2S_FWD: the exchange with the origin, or NULL */
  char *trailers;              /* owned: the response trailers to send after the body, packed
                                  like |fields| */
  size_t trailers_len, ntrailers;
  char *req_trailers;          /* owned: the request's trailers (forwarding), packed likewise */
  size_t req_trailers_len, nreq_trailers;
  size_t header_bytes;
  uint64_t start_ms;           /* loop time the stream began (the request's access-log start) */
  /* Tunnel side. */
  struct px_request *rq;       /* the request being decided (DIALING), or NULL */
  enum px_proto proto;         /* what the CONNECT asked for (an abort resets a WebSocket
                                  with CANCEL, the others with CONNECT_ERROR) */
  struct tun_ep ep;            /* this stream as a tunnel side */
  struct bufq inq;             /* client DATA not yet given to the tunnel (not yet credited) */
  struct bufq outq;            /* bytes for DATA frames to the client */
  size_t uncredited;           /* bytes received and not yet consumed (window credit owed) */
  uint64_t wu_ns;              /* uv_hrtime of the last stream WINDOW_UPDATE sent (auto-tuning) */
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
  unsigned reset_sent : 1;     /* we submitted RST_STREAM */
  unsigned peer_reset : 1;     /* the client sent RST_STREAM */
  unsigned has_tunnel : 1;     /* ep attached to a tunnel at some point */
  unsigned drain_pending : 1;  /* outq fell to low water inside mem_send: tell the tunnel */
  unsigned win_bound : 1;      /* auto-tuning: the window held the client back (grow it at the
                                  next credit) */
  unsigned held_back : 1;      /* the tunnel stopped reading since the last WINDOW_UPDATE */
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
/* The session is ending: cancel the upstream being opened and kill the tunnel (recording |why|).
 * The stream stays (nghttp2 may still send its RST_STREAM) until nghttp2 closes it or
 * h2_stream_destroy. */
void h2_stream_abandon(struct h2_stream *st, enum tun_close_reason why);
/* Frees an abandoned stream now. */
void h2_stream_destroy(struct h2_stream *st);
/* Stores a request header; returns 0 or an nghttp2 callback error code. */
int h2_stream_on_header(struct h2_stream *st, const uint8_t *name, size_t namelen,
                        const uint8_t *value, size_t valuelen);

/* A trailer field of the request (kept for a forwarded request, FWD-10; else ignored). */
int h2_stream_on_trailer(struct h2_stream *st, const uint8_t *name, size_t namelen, const uint8_t *value,
                         size_t valuelen);

/* A WINDOW_UPDATE for |st| went out: window auto-tuning (src/membudget.h) times them. */
void h2_stream_on_window_sent(struct h2_stream *st);

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
