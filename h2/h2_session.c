/* HTTP/2 front end: one nghttp2 server session per connection.
 *
 * Input: decrypted bytes -> nghttp2_session_mem_recv -> callbacks -> streams (h2_stream.c).
 * Output: once per loop turn nghttp2_session_mem_send is drained into 16 KiB staging chunks that
 * become conn writes (one TLS record each), and only while the conn's queue is under its cap, so
 * one busy stream cannot fill the connection; the conn's on_drain resumes sending.
 * Flow control: automatic WINDOW_UPDATE is off; streams consume (credit) what their tunnel takes. */
#include "h2/h2_session.h"

#include <string.h>

#include "h2/h2_int.h"
#include "src/conn.h"
#include "src/log.h"

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

static void send_now(struct h2_session *s) {
  if (s->dying || s->in_send || s->c->closing) return;
  s->in_send = 1;
  while (conn_queued(s->c) < out_cap(s)) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(s->ng, &data);
    if (n < 0) {
      log_warn("h2 %s: send failed: %s", s->c->peer, nghttp2_strerror((int)n));
      s->in_send = 0;
      conn_abort(s->c);
      return;
    }
    if (n == 0) break;
    h2_session_stage(s, data, (size_t)n);
  }
  h2_session_stage_flush(s);
  s->in_send = 0;
  /* Streams whose queue drained while nghttp2 pulled DATA may let their upstream read again. */
  struct list *n, *next;
  for (n = s->streams.next; n != &s->streams; n = next) {
    next = n->next;
    h2_stream_after_send(container_of(n, struct h2_stream, link));
  }
  if (!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng)) {
    conn_close(s->c); /* GOAWAY exchanged and nothing left: a clean close */
    return;
  }
  /* No streams: the connection idle timeout runs; any stream stops it. */
  if (s->nstreams == 0)
    conn_set_timer(s->c, s->goaway ? 1000 : s->w->cfg->conn_idle_timeout_ms);
  else
    conn_set_timer(s->c, 0);
}

static void on_send_deferred(struct worker_defer *d) { send_now(container_of(d, struct h2_session, send)); }

void h2_session_schedule(struct h2_session *s) {
  if (!s->dying) worker_defer(s->w, &s->send);
}

static void submit_goaway(struct h2_session *s, uint32_t code, const char *why) {
  if (s->goaway || s->dying) return;
  s->goaway = 1;
  s->goaway_ours = 1;
  nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->ng), code,
                        (const uint8_t *)why, strlen(why));
  h2_session_schedule(s);
}

/* ---- nghttp2 callbacks ---- */

static struct h2_stream *stream_of(struct h2_session *s, int32_t id) {
  return nghttp2_session_get_stream_user_data(s->ng, id);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
  struct h2_session *s = ud;
  if (f->hd.type != NGHTTP2_HEADERS) return 0;
  if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (s->goaway) return 0;
    struct h2_stream *st = h2_stream_new(s, f->hd.stream_id);
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st);
    METRIC_ADD(&s->w->metrics, h2_streams, 1);
  }
  return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud) {
  struct h2_session *s = ud;
  struct h2_stream *st = stream_of(s, f->hd.stream_id);
  if (!st || f->hd.type != NGHTTP2_HEADERS) return 0;
  if (f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0; /* trailers: handled at frame end */
  return h2_stream_on_header(st, name, namelen, value, valuelen);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
  struct h2_session *s = ud;
  if (f->hd.stream_id == 0) return 0;
  struct h2_stream *st = stream_of(s, f->hd.stream_id);
  if (!st) return 0;
  int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (f->hd.type) {
  case NGHTTP2_HEADERS:
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      h2_stream_on_request(st, end);
    } else if (st->state == H2S_TUNNEL || st->state == H2S_DIALING) {
      /* A trailer on a tunnel is a stream error (RFC 9113 §8.5, checklist H2C-13). */
      h2_stream_protocol_error(st);
    } else if (end) {
      h2_stream_on_end(st);
    }
    break;
  case NGHTTP2_DATA:
    if (end) h2_stream_on_end(st);
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
  h2_stream_on_data(st, data, len);
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t error_code, void *ud) {
  struct h2_session *s = ud;
  struct h2_stream *st = stream_of(s, id);
  if (st) {
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    h2_stream_on_close(st, error_code);
  }
  return 0; /* always 0 (CVE-2023-35945) */
}

/* A sent END_STREAM may call for a RST_STREAM(NO_ERROR) (h2_stream_on_end_sent). Every GOAWAY we
 * send is logged with its cause, whoever queued it (us, or nghttp2's flood and rapid-reset
 * limits). */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
  struct h2_session *s = ud;
  if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    struct h2_stream *st = stream_of(s, f->hd.stream_id);
    if (st) h2_stream_on_end_sent(st);
  }
  if (f->hd.type == NGHTTP2_GOAWAY) {
    s->goaway = 1;
    METRIC_ADD(&s->w->metrics, h2_goaway_sent, 1);
    log_info("h2 %s: GOAWAY sent: %s (last stream %d): %.*s", s->c->peer,
             nghttp2_http2_strerror(f->goaway.error_code), f->goaway.last_stream_id,
             (int)f->goaway.opaque_data_len, (const char *)f->goaway.opaque_data);
    if (!s->goaway_ours)
      log_warn("h2 %s: the client broke the protocol or hit an abuse limit (rapid reset, CONTINUATION, "
               "SETTINGS or PING flood); connection closed", s->c->peer);
  }
  return 0;
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *f, int lib_error, void *ud) {
  struct h2_session *s = ud;
  log_debug("h2 %s: invalid frame type %u on stream %d: %s", s->c->peer, f->hd.type, f->hd.stream_id,
            nghttp2_strerror(lib_error));
  return 0;
}

static int on_error2(nghttp2_session *ng, int lib_error, const char *msg, size_t len, void *ud) {
  struct h2_session *s = ud;
  log_debug("h2 %s: %.*s", s->c->peer, (int)len, msg);
  return 0;
}

/* ---- conn front-end ops ---- */

static void fe_on_read(struct conn *c, struct buf_chunk *chunk) {
  struct h2_session *s = c->fe_data;
  ssize_t r = nghttp2_session_mem_recv(s->ng, (const uint8_t *)buf_rd(chunk), chunk->len);
  buf_put(&c->w->pool, chunk);
  if (r < 0) {
    /* A fatal receive error (flood, CONTINUATION limit, bad preface): say so with a GOAWAY when
     * nghttp2 has not queued one itself, send it, then close. */
    log_warn("h2 %s: connection error: %s", c->peer, nghttp2_strerror((int)r));
    if (!s->goaway) {
      uint32_t code = r == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR;
#ifdef HAVE_NGHTTP2_MAX_CONTINUATIONS
      if (r == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) code = NGHTTP2_ENHANCE_YOUR_CALM;
#endif
      s->goaway_ours = 1;
      nghttp2_session_terminate_session(s->ng, code);
    }
    send_now(s);
    if (!c->closing) conn_close(c);
    return;
  }
  h2_session_schedule(s);
}

static void kill_all(struct h2_session *s, enum tun_close_reason why) {
  s->dying = 1;
  while (!list_empty(&s->streams))
    h2_stream_destroy(container_of(s->streams.next, struct h2_stream, link), why);
}

static void fe_on_eof(struct conn *c) {
  struct h2_session *s = c->fe_data;
  /* The client closed the connection (curl does so instead of ending its streams): every tunnel
   * on it is reset upstream (H2C-12). */
  kill_all(s, TUN_CLOSE_CLIENT_GONE);
  conn_close(c);
}

static void fe_on_error(struct conn *c, int err) {
  kill_all(c->fe_data, err == UV_ECONNRESET ? TUN_CLOSE_CLIENT_RST : TUN_CLOSE_CLIENT_ERROR);
  conn_abort(c);
}

static void fe_on_drain(struct conn *c) { send_now(c->fe_data); }

static void fe_on_timeout(struct conn *c) {
  struct h2_session *s = c->fe_data;
  if (s->nstreams > 0) return;
  if (s->goaway) {
    conn_close(c);
    return;
  }
  submit_goaway(s, NGHTTP2_NO_ERROR, "idle");
}

static void fe_on_stop(struct conn *c) { submit_goaway(c->fe_data, NGHTTP2_NO_ERROR, "shutdown"); }

static void fe_on_close(struct conn *c) {
  struct h2_session *s = c->fe_data;
  kill_all(s, TUN_CLOSE_CLIENT_ERROR);
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
  const struct config *cfg = c->w->cfg;
  struct h2_session *s = xcalloc(1, sizeof(*s));
  s->c = c;
  s->w = c->w;
  list_init(&s->streams);
  list_init(&s->send.link);
  s->send.cb = on_send_deferred;

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

  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->h2_max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg->h2_stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->h2_max_header_list},
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
  };
  size_t niv = ARRAY_SIZE(iv) - (cfg->h2_enable_connect_protocol ? 0 : 1);
  CHECK(nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, niv) == 0);
  if (cfg->h2_conn_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
    nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, (int32_t)cfg->h2_conn_window);

  c->fe = &h2_fe_ops;
  c->fe_data = s;
  h2_session_schedule(s);
}
