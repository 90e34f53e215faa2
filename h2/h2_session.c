/* HTTP/2 front end: one nghttp2 server session per connection.
 *
 * Input: decrypted bytes -> nghttp2_session_mem_recv -> callbacks -> streams (h2_stream.c).
 * Output: once per loop turn nghttp2_session_mem_send is drained into 16 KiB staging chunks that
 * become conn writes (one TLS record each), and only while the conn's queue is under its cap, so
 * one busy stream cannot fill the connection; the conn's on_drain resumes sending.
 * Flow control: automatic WINDOW_UPDATE is off; streams consume (credit) what their tunnel takes.
 *
 * Life of a session (enum h2_sess_state):
 *
 *   PREFACE  --first SETTINGS from the client-->                       OPEN
 *   PREFACE, OPEN --stop: our GOAWAY(NO_ERROR) / nghttp2 sends its own GOAWAY (a limit or a
 *                   protocol error) / the client's GOAWAY-->           DRAINING
 *   DRAINING --nghttp2 wants neither to read nor to write (NG-09)-->   end_session
 *   any      --a deadline, a limit, a fatal error, EOF or an I/O error-->  end_session -> CLOSED
 *
 * end_session is the only way out: it logs one line "h2 <peer>: session ended: <reason> (<why>)",
 * queues a GOAWAY with the reason's error code and sends it (unless the socket is dead or that
 * GOAWAY already went out), ends the streams' tunnels, and closes the conn.
 *
 * One conn timer serves every deadline (DOS-06), armed for the earliest that applies:
 *   PREFACE            preface and SETTINGS within --header-timeout of attach
 *   OPEN, hdr_sid != 0 a stream's header block within --header-timeout of its first byte
 *   no stream          --conn-idle-timeout since the last stream went away; frames without a
 *                      stream (PING, SETTINGS, WINDOW_UPDATE) do not count as activity
 *   stopping           --drain-timeout, a tenth (at most 1 s) early so that the GOAWAY and the
 *                      FIN leave before the worker's hard close at the deadline */
#include "h2/h2_session.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "h2/h2_int.h"
#include "src/conn.h"
#include "src/frontend.h"
#include "src/log.h"
#include "src/membudget.h"

static const struct conn_fe_ops h2_fe_ops;

void h2_session_stage_flush(struct h2_session *s) {
  if (s->stage && s->stage->len) {
    conn_write(s->c, s->stage);
    s->stage = NULL;
  }
}

void h2_session_stage(struct h2_session *s, const uint8_t *data, size_t len) {
  while (len > 0) {
    if (!s->stage) s->stage = buf_get(&s->w->pool);
    size_t n = MIN(len, buf_room(s->stage));
    memcpy(s->stage->data + s->stage->off + s->stage->len, data, n);
    s->stage->len += (uint32_t)n;
    data += n;
    len -= n;
    if (buf_room(s->stage) == 0) h2_session_stage_flush(s);
  }
}

/* The output cap: enough to keep the socket busy, small enough that frames stay in nghttp2's
 * per-stream queues (where flow control and priorities apply) instead of one big buffer. */
static size_t out_cap(const struct h2_session *s) { return MAX((size_t)4 * BUF_CHUNK_SIZE, s->w->cfg->low_water); }

static uint64_t now_ms(const struct h2_session *s) { return uv_now(&s->w->loop); }

static const struct {
  const char *name;
  enum log_level level;
  enum tun_close_reason tun;
  enum h2_fin fin;
} end_info[] = {
#define XX(n, s, lvl, t, f) {s, lvl, TUN_CLOSE_##t, H2_FIN_##f},
    H2_END_MAP(XX)
#undef XX
};

/* Serializes what nghttp2 has queued into conn writes while the conn's queue is under its cap.
 * An ending session also pulls past the cap until its GOAWAY is out: control frames go before
 * DATA, so that is at most the queued ACKs and RST_STREAMs (bounded by nghttp2's limits).
 * Returns 0 or nghttp2's error. */
static int pull(struct h2_session *s) {
  int r = 0;
  s->in_send = 1;
  while (conn_queued(s->c) < out_cap(s) || s->goaway_wanted) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(s->ng, &data);
    if (n <= 0) {
      r = (int)n;
      break;
    }
    h2_session_stage(s, data, (size_t)n);
  }
  h2_session_stage_flush(s);
  s->in_send = 0;
  return r;
}

/* Ends every stream's upstream side (tunnels killed with |why|); with |rst|, the streams still
 * open get RST_STREAM(CANCEL), queued behind the GOAWAY. Streams are freed by on_stream_close
 * or free_streams. */
static void abandon_streams(struct h2_session *s, enum tun_close_reason why, int rst) {
  struct list *n;
  for (n = s->streams.next; n != &s->streams; n = n->next) {
    struct h2_stream *st = container_of(n, struct h2_stream, link);
    if (rst && !st->closed && !st->reset_sent)
      nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    h2_stream_abandon(st, why);
  }
}

/* After this nghttp2 is not called again, so the user data it still points at is never read. */
static void free_streams(struct h2_session *s) {
  while (!list_empty(&s->streams)) h2_stream_destroy(container_of(s->streams.next, struct h2_stream, link));
}

/* The one way a session ends (see the file comment). |code| is the GOAWAY error code; it is not
 * sent again when a GOAWAY with that code, or with any error code, already went out. */
static void end_session(struct h2_session *s, enum h2_end why, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void end_session(struct h2_session *s, enum h2_end why, uint32_t code, const char *fmt, ...) {
  if (s->state == H2_SESS_CLOSED) return;
  s->state = H2_SESS_CLOSED; /* stream code stops calling nghttp2 */
  char detail[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof(detail), fmt, ap);
  va_end(ap);
  enum h2_fin fin = s->c->closing ? H2_FIN_ABORT : end_info[why].fin;
  int again = s->goaway_sent && (s->goaway_code == code || s->goaway_code != NGHTTP2_NO_ERROR);
  int32_t last = nghttp2_session_get_last_proc_stream_id(s->ng);
  if (fin != H2_FIN_GOAWAY)
    log_msg(end_info[why].level, "h2 %s: session ended: %s (%s); no GOAWAY, last stream %d", s->c->peer,
            end_info[why].name, detail, last);
  else
    log_msg(end_info[why].level, "h2 %s: session ended: %s (%s); GOAWAY %s%s, last stream %d", s->c->peer,
            end_info[why].name, detail, nghttp2_http2_strerror(again ? s->goaway_code : code),
            again ? " (already sent)" : "", last);
  if (fin == H2_FIN_GOAWAY && !again) {
    const char *tok = end_info[why].name;
    if (nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, last, code, (const uint8_t *)tok, strlen(tok)) == 0)
      s->goaway_wanted = 1;
  }
  abandon_streams(s, end_info[why].tun, fin == H2_FIN_GOAWAY);
  if (fin == H2_FIN_GOAWAY && !s->in_send) pull(s);
  s->goaway_wanted = 0;
  free_streams(s);
  worker_defer_cancel(&s->send);
  if (s->c->closing) return; /* closed by the conn layer already */
  if (fin == H2_FIN_ABORT)
    conn_abort(s->c);
  else
    conn_close(s->c);
}

/* PREFACE or OPEN -> DRAINING; the first cause is kept. */
static void start_draining(struct h2_session *s, enum h2_end cause, const char *why) {
  if (s->state != H2_SESS_PREFACE && s->state != H2_SESS_OPEN) return;
  s->state = H2_SESS_DRAINING;
  s->drain_cause = cause;
  /* Truncated to the buffer on purpose (a log line's reason): an explicit copy, which -O2's
   * -Wformat-truncation does not flag. */
  size_t n = strlen(why);
  if (n >= sizeof(s->why)) n = sizeof(s->why) - 1;
  memcpy(s->why, why, n);
  s->why[n] = '\0';
}

/* Arms the conn timer for the earliest deadline that applies (file comment). */
static void arm_timer(struct h2_session *s) {
  const struct config *cfg = s->w->cfg;
  uint64_t due = UINT64_MAX;
  if (s->state == H2_SESS_PREFACE && cfg->header_timeout_ms) due = MIN(due, s->since_ms + cfg->header_timeout_ms);
  if (s->state == H2_SESS_OPEN && s->hdr_sid && cfg->header_timeout_ms)
    due = MIN(due, s->hdr_since_ms + cfg->header_timeout_ms);
  if (s->nstreams == 0 && cfg->conn_idle_timeout_ms) due = MIN(due, s->idle_since_ms + cfg->conn_idle_timeout_ms);
  if (s->drain_at_ms) due = MIN(due, s->drain_at_ms);
  uint64_t now = now_ms(s);
  conn_set_timer(s->c, due == UINT64_MAX ? 0 : due > now ? due - now : 1);
}

static void send_now(struct h2_session *s) {
  if (s->state == H2_SESS_CLOSED || s->in_send || s->c->closing) return;
  int r = pull(s);
  if (r < 0) {
    end_session(s, H2_END_INTERNAL_ERROR, NGHTTP2_INTERNAL_ERROR, "sending failed: %s", nghttp2_strerror(r));
    return;
  }
  /* Streams whose queue drained while nghttp2 pulled DATA may let their upstream read again. */
  struct list *n, *next;
  for (n = s->streams.next; n != &s->streams; n = next) {
    next = n->next;
    h2_stream_after_send(container_of(n, struct h2_stream, link));
  }
  if (s->state == H2_SESS_CLOSED) return;
  if (!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng)) {
    /* NG-09: a GOAWAY went one way or the other and nothing is left (or nghttp2 ended the
     * session itself after its GOAWAY). */
    enum h2_end why = s->state == H2_SESS_DRAINING ? s->drain_cause : H2_END_PROTOCOL_ERROR;
    uint32_t code = s->goaway_sent ? s->goaway_code : NGHTTP2_NO_ERROR;
    end_session(s, why, code, "%s", s->why[0] ? s->why : "nghttp2 has nothing left to do");
    return;
  }
  arm_timer(s);
}

static void on_send_deferred(struct worker_defer *d) { send_now(container_of(d, struct h2_session, send)); }

void h2_session_schedule(struct h2_session *s) {
  if (s->state != H2_SESS_CLOSED) worker_defer(s->w, &s->send);
}

static uint64_t discard_max(const struct config *cfg) {
  return cfg->h2_max_discard ? cfg->h2_max_discard : 2 * (uint64_t)cfg->h2_conn_window;
}

/* Charges the DATA received for streams that are closed or reset since the last call; 0 once
 * the budget is spent. nghttp2 credits such DATA back to the connection window by itself (NG-05)
 * and calls no callback for it, so it is counted as what the connection received (the WINDOW_UPDATEs
 * sent for it plus what is not credited yet) less what went to live streams. The bucket refills
 * at its size per minute. */
static int discard_ok(struct h2_session *s) {
  int64_t received = s->conn_credited + nghttp2_session_get_effective_recv_data_length(s->ng);
  int64_t discarded = received - (int64_t)s->data_used;
  if (discarded <= s->discard_seen) return 1; /* a WINDOW_UPDATE queued, not yet sent */
  uint64_t n = (uint64_t)(discarded - s->discard_seen);
  s->discard_seen = discarded;
  log_debug("h2 %s: %" PRIu64 " bytes of DATA for closed or reset streams (%" PRId64 " in all)", s->c->peer, n,
            discarded);
  uint64_t max = discard_max(s->w->cfg);
  uint64_t now = now_ms(s), dt = MIN(now - s->discard_ms, (uint64_t)60000);
  s->discard_left = MIN(max, s->discard_left + dt * max / 60000);
  s->discard_ms = now;
  if (n > s->discard_left) return 0;
  s->discard_left -= n;
  return 1;
}

/* ---- nghttp2 callbacks ---- */

static struct h2_stream *stream_of(struct h2_session *s, int32_t id) {
  return nghttp2_session_get_stream_user_data(s->ng, id);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
  struct h2_session *s = ud;
  if (f->hd.type != NGHTTP2_HEADERS) return 0;
  if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (s->state != H2_SESS_OPEN && s->state != H2_SESS_PREFACE) {
      /* After our GOAWAY: refused, so that the client may retry elsewhere (NG-04). */
      nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
      return 0;
    }
    struct h2_stream *st = h2_stream_new(s, f->hd.stream_id);
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st);
    METRIC_ADD(&s->w->metrics, h2_streams, 1);
  } else if (!stream_of(s, f->hd.stream_id)) {
    return 0;
  }
  /* A header block is arriving (a request, or trailers): it must end in --header-timeout. */
  s->hdr_sid = f->hd.stream_id;
  s->hdr_since_ms = now_ms(s);
  return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud) {
  struct h2_session *s = ud;
  struct h2_stream *st = stream_of(s, f->hd.stream_id);
  if (!st || f->hd.type != NGHTTP2_HEADERS) return 0;
  if (f->headers.cat != NGHTTP2_HCAT_REQUEST) return h2_stream_on_trailer(st, name, namelen, value, valuelen);
  return h2_stream_on_header(st, name, namelen, value, valuelen);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
  struct h2_session *s = ud;
  if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK) && s->state == H2_SESS_PREFACE)
    s->state = H2_SESS_OPEN; /* the preface is complete (H2-03) */
  if (f->hd.type == NGHTTP2_GOAWAY) {
    char why[96];
    snprintf(why, sizeof(why), "the client sent GOAWAY %s", nghttp2_http2_strerror(f->goaway.error_code));
    start_draining(s, H2_END_CLIENT_GOAWAY, why);
  }
  if (f->hd.type == NGHTTP2_HEADERS && f->hd.stream_id == s->hdr_sid) s->hdr_sid = 0; /* block complete */
  if (f->hd.stream_id == 0) return 0;
  struct h2_stream *st = stream_of(s, f->hd.stream_id);
  if (!st) return 0;
  int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (f->hd.type) {
  case NGHTTP2_HEADERS:
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      h2_stream_on_request(st, end);
    } else if ((st->state == H2S_TUNNEL || st->state == H2S_DIALING) && st->proto != PX_PROTO_FORWARD) {
      /* A trailer on a tunnel is a stream error (RFC 9113 §8.5, checklist H2C-13). */
      h2_stream_protocol_error(st);
    } else if (end) {
      h2_stream_on_end(st);
    }
    break;
  case NGHTTP2_DATA:
    if (!st->closed && !st->reset_sent) s->data_used += f->data.padlen;
    if (end) h2_stream_on_end(st);
    break;
  case NGHTTP2_RST_STREAM:
    st->peer_reset = 1; /* on_stream_close follows */
    break;
  default:
    break;
  }
  return 0;
}

static int on_data_chunk_recv(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                              size_t len, void *ud) {
  struct h2_session *s = ud;
  struct h2_stream *st = stream_of(s, id);
  if (!st) {
    /* No stream state (refused or gone): give the connection window back at once. */
    nghttp2_session_consume_connection(ng, len);
    return 0;
  }
  if (!st->closed && !st->reset_sent) s->data_used += len;
  h2_stream_on_data(st, data, len);
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t error_code, void *ud) {
  struct h2_session *s = ud;
  if (id == s->hdr_sid) s->hdr_sid = 0; /* reset before its block ended */
  struct h2_stream *st = stream_of(s, id);
  if (st) {
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    h2_stream_on_close(st, error_code);
  }
  return 0; /* always 0 (CVE-2023-35945) */
}

/* A sent END_STREAM may call for a RST_STREAM(NO_ERROR) (h2_stream_on_end_sent). A GOAWAY that
 * nghttp2 sends on its own (a protocol error, or its flood and rapid-reset limits) starts the
 * end of the session; the reason is logged when it ends. */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
  struct h2_session *s = ud;
  if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    struct h2_stream *st = stream_of(s, f->hd.stream_id);
    if (st) h2_stream_on_end_sent(st);
  }
  if (f->hd.type == NGHTTP2_RST_STREAM && f->hd.stream_id == s->hdr_sid) s->hdr_sid = 0; /* refused */
  if (f->hd.type == NGHTTP2_RST_STREAM) {
    struct h2_stream *st = stream_of(s, f->hd.stream_id);
    if (!st || !st->reset_sent)
      log_debug("h2 %s stream %d: reset by nghttp2: %s (%s)", s->c->peer, f->hd.stream_id,
                nghttp2_http2_strerror(f->rst_stream.error_code), s->ng_error);
  }
  if (f->hd.type == NGHTTP2_WINDOW_UPDATE && f->hd.stream_id == 0)
    s->conn_credited += f->window_update.window_size_increment;
  if (f->hd.type == NGHTTP2_WINDOW_UPDATE && f->hd.stream_id != 0) {
    struct h2_stream *st = stream_of(s, f->hd.stream_id);
    if (st) h2_stream_on_window_sent(st);
  }
  if (f->hd.type == NGHTTP2_GOAWAY) {
    uint32_t code = f->goaway.error_code;
    s->goaway_sent = 1;
    s->goaway_code = code;
    s->goaway_wanted = 0;
    METRIC_ADD(&s->w->metrics, h2_goaway_sent, 1);
    log_debug("h2 %s: GOAWAY sent: %s (last stream %d): %.*s", s->c->peer, nghttp2_http2_strerror(code),
              f->goaway.last_stream_id, (int)f->goaway.opaque_data_len, (const char *)f->goaway.opaque_data);
    if (s->state == H2_SESS_PREFACE || s->state == H2_SESS_OPEN) {
      /* Not ours (ours are queued after start_draining or in end_session): nghttp2's. Its rapid
       * reset limit says INTERNAL_ERROR without a reason; its other limits ENHANCE_YOUR_CALM. */
      char why[200];
      if (f->goaway.opaque_data_len)
        snprintf(why, sizeof(why), "nghttp2: %.*s", (int)f->goaway.opaque_data_len, (const char *)f->goaway.opaque_data);
      else if (code == NGHTTP2_INTERNAL_ERROR)
        snprintf(why, sizeof(why), "nghttp2's stream reset rate limit (rapid reset: --h2-reset-burst, --h2-reset-rate)");
      else
        snprintf(why, sizeof(why), "nghttp2: %s", s->ng_error[0] ? s->ng_error : nghttp2_http2_strerror(code));
      int abuse = code == NGHTTP2_ENHANCE_YOUR_CALM || code == NGHTTP2_INTERNAL_ERROR;
      start_draining(s, abuse ? H2_END_ABUSE_LIMIT : H2_END_PROTOCOL_ERROR, why);
    }
  }
  return 0;
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *f, int lib_error, void *ud) {
  struct h2_session *s = ud;
  snprintf(s->ng_error, sizeof(s->ng_error), "%s", nghttp2_strerror(lib_error));
  log_debug("h2 %s: invalid frame type %u on stream %d: %s", s->c->peer, f->hd.type, f->hd.stream_id,
            nghttp2_strerror(lib_error));
  return 0;
}

static int on_error2(nghttp2_session *ng, int lib_error, const char *msg, size_t len, void *ud) {
  struct h2_session *s = ud;
  snprintf(s->ng_error, sizeof(s->ng_error), "%.*s", (int)len, msg);
  log_debug("h2 %s: %.*s", s->c->peer, (int)len, msg);
  return 0;
}

/* ---- conn front-end ops ---- */

static void fe_on_read(struct conn *c, struct buf_chunk *chunk) {
  struct h2_session *s = c->fe_data;
  ssize_t r = nghttp2_session_mem_recv(s->ng, (const uint8_t *)buf_rd(chunk), chunk->len);
  buf_put(&c->w->pool, chunk);
  if (r >= 0 && !discard_ok(s)) {
    end_session(s, H2_END_DISCARD_LIMIT, NGHTTP2_ENHANCE_YOUR_CALM,
                "more than %" PRIu64 " bytes of DATA on closed or reset streams in a minute (--h2-max-discard)",
                discard_max(s->w->cfg));
    return;
  }
  if (r >= 0) {
    h2_session_schedule(s);
    return;
  }
  /* A fatal receive error (DOS-03). */
  enum h2_end why = H2_END_PROTOCOL_ERROR;
  uint32_t code = NGHTTP2_PROTOCOL_ERROR;
  if (r == NGHTTP2_ERR_FLOODED) {
    why = H2_END_ABUSE_LIMIT;
    code = NGHTTP2_ENHANCE_YOUR_CALM;
  }
#ifdef HAVE_NGHTTP2_MAX_CONTINUATIONS
  if (r == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
    why = H2_END_ABUSE_LIMIT;
    code = NGHTTP2_ENHANCE_YOUR_CALM;
  }
#endif
  if (r == NGHTTP2_ERR_NOMEM || r == NGHTTP2_ERR_CALLBACK_FAILURE) {
    why = H2_END_INTERNAL_ERROR;
    code = NGHTTP2_INTERNAL_ERROR;
  }
  end_session(s, why, code, "nghttp2: %s", nghttp2_strerror((int)r));
}

static void fe_on_eof(struct conn *c) {
  /* The client closed the connection (curl does so instead of ending its streams): every tunnel
   * on it is reset upstream (H2C-12). */
  end_session(c->fe_data, H2_END_CLIENT_CLOSED, NGHTTP2_NO_ERROR, "the client closed the connection");
}

static void fe_on_error(struct conn *c, int err) {
  end_session(c->fe_data, err == UV_ECONNRESET ? H2_END_CLIENT_RESET : H2_END_IO_ERROR, NGHTTP2_NO_ERROR, "%s: %s",
              uv_err_name(err), uv_strerror(err));
}

static void fe_on_drain(struct conn *c) { send_now(c->fe_data); }

static void fe_on_timeout(struct conn *c) {
  struct h2_session *s = c->fe_data;
  const struct config *cfg = s->w->cfg;
  uint64_t now = now_ms(s), hdr = cfg->header_timeout_ms, idle = cfg->conn_idle_timeout_ms;
  if (s->drain_at_ms && now >= s->drain_at_ms)
    end_session(s, H2_END_DRAIN_DEADLINE, NGHTTP2_NO_ERROR, "%zu stream(s) still open at the drain deadline",
                s->nstreams);
  else if (s->state == H2_SESS_PREFACE && hdr && now >= s->since_ms + hdr)
    end_session(s, H2_END_PREFACE_TIMEOUT, NGHTTP2_ENHANCE_YOUR_CALM,
                "no connection preface and SETTINGS within %" PRIu64 " ms (--header-timeout)", hdr);
  else if (s->state == H2_SESS_OPEN && s->hdr_sid && hdr && now >= s->hdr_since_ms + hdr)
    end_session(s, H2_END_HEADER_TIMEOUT, NGHTTP2_ENHANCE_YOUR_CALM,
                "the header block of stream %d not complete within %" PRIu64 " ms (--header-timeout)", s->hdr_sid,
                hdr);
  else if (s->nstreams == 0 && idle && now >= s->idle_since_ms + idle)
    end_session(s, H2_END_IDLE_TIMEOUT, NGHTTP2_NO_ERROR, "no stream for %" PRIu64 " ms (--conn-idle-timeout)",
                idle);
  else
    arm_timer(s);
}

static void fe_on_stop(struct conn *c) {
  struct h2_session *s = c->fe_data;
  const struct config *cfg = s->w->cfg;
  if (s->state == H2_SESS_CLOSED) return;
  int ours = s->state == H2_SESS_PREFACE || s->state == H2_SESS_OPEN || s->drain_cause == H2_END_CLIENT_GOAWAY;
  start_draining(s, H2_END_SHUTDOWN, "the proxy is stopping; the last stream ended");
  if (ours && !s->goaway_sent) /* H2-05: live streams go on, new ones are refused */
    nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->ng),
                          NGHTTP2_NO_ERROR, (const uint8_t *)"shutdown", 8);
  /* End before the worker's hard close at the deadline, so that our last frames leave. */
  if (cfg->drain_timeout_ms)
    s->drain_at_ms = now_ms(s) + cfg->drain_timeout_ms - MIN(cfg->drain_timeout_ms / 10, (uint64_t)1000);
  h2_session_schedule(s);
}

static void fe_on_close(struct conn *c) {
  struct h2_session *s = c->fe_data;
  if (s->state != H2_SESS_CLOSED)
    log_info("h2 %s: session ended: %s (closed by the connection layer); no GOAWAY, last stream %d", c->peer,
             end_info[H2_END_CONN_CLOSED].name, nghttp2_session_get_last_proc_stream_id(s->ng));
  s->state = H2_SESS_CLOSED;
  abandon_streams(s, s->w->stopping == WORKER_DEADLINE ? TUN_CLOSE_SHUTDOWN : TUN_CLOSE_CLIENT_ERROR, 0);
  free_streams(s);
  worker_defer_cancel(&s->send);
  buf_put(&s->w->pool, s->stage);
  nghttp2_session_del(s->ng);
  free(s);
  c->fe_data = NULL;
}

static const struct conn_fe_ops h2_fe_ops = {
    .on_read = fe_on_read,
    .on_eof = fe_on_eof,
    .on_error = fe_on_error,
    .on_drain = fe_on_drain,
    .on_timeout = fe_on_timeout,
    .on_stop = fe_on_stop,
    .on_close = fe_on_close,
};

void h2_session_attach(struct conn *c) {
  METRIC_ADD(&c->w->metrics, conns_h2, 1);
  const struct config *cfg = c->w->cfg;
  struct h2_session *s = xcalloc(1, sizeof(*s));
  int llen = sizeof(s->local);
  if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&s->local, &llen) != 0) s->local.ss_family = AF_UNSPEC;
  s->c = c;
  s->w = c->w;
  list_init(&s->streams);
  list_init(&s->send.link);
  s->send.cb = on_send_deferred;
  s->state = H2_SESS_PREFACE;
  s->since_ms = s->idle_since_ms = s->discard_ms = now_ms(s);
  s->discard_left = discard_max(cfg);

  nghttp2_session_callbacks *cbs;
  CHECK(nghttp2_session_callbacks_new(&cbs) == 0);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  nghttp2_session_callbacks_set_send_data_callback(cbs, h2_stream_send_data);
  nghttp2_session_callbacks_set_error_callback2(cbs, on_error2);

  nghttp2_option *opt;
  CHECK(nghttp2_option_new(&opt) == 0);
  /* Credit is consumption: a stream's window is returned only as its upstream takes the bytes. */
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_settings(opt, cfg->h2_max_settings);
  nghttp2_option_set_max_outbound_ack(opt, cfg->h2_max_outbound_ack);
#ifdef HAVE_NGHTTP2_RESET_RATE_LIMIT
  nghttp2_option_set_stream_reset_rate_limit(opt, cfg->h2_reset_burst, cfg->h2_reset_rate);
#endif
#ifdef HAVE_NGHTTP2_MAX_CONTINUATIONS
  nghttp2_option_set_max_continuations(opt, cfg->h2_max_continuations);
#endif
  CHECK(nghttp2_session_server_new2(&s->ng, cbs, s, opt) == 0);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);

  /* The windows are the configured ones while the memory budget is roomy (src/membudget.h). */
  uint32_t stream_window = (uint32_t)membudget_size(s->w->membudget, cfg->h2_stream_window, MB_H2_WINDOW_FLOOR);
  uint32_t conn_window =
      (uint32_t)membudget_size(s->w->membudget, cfg->h2_conn_window, NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE);
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->h2_max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->h2_max_header_list},
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
  };
  size_t niv = ARRAY_SIZE(iv) - (cfg->h2_enable_connect_protocol ? 0 : 1);
  CHECK(nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, niv) == 0);
  if (conn_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE) {
    nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, (int32_t)conn_window);
    /* That WINDOW_UPDATE widens the window; it credits no received byte (discard_ok). */
    s->conn_credited = -(int64_t)(conn_window - NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE);
  }

  c->fe = &h2_fe_ops;
  c->fe_data = s;
  h2_session_schedule(s);
}

/* RFC 9113 §3.4: the connection preface, which a cleartext client with prior knowledge starts with. */
const struct frontend h2_frontend = {
    .name = "h2", .alpn = "h2", .preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", .attach = h2_session_attach};
