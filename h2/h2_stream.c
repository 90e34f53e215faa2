/* HTTP/2 streams: request dispatch, CONNECT tunnels, forwarded requests (issue 11: a request for
 * another :authority runs an exchange with the origin, proxy/fwd.h, DATA credited as the origin
 * takes it) and local answers for the proxy's own authority.
 *
 * A CONNECT stream is a tunnel endpoint (checklist H2C-*):
 *   client DATA      -> inq -> tunnel (only while reading) -> consume = window credit
 *   tunnel write     -> outq -> DATA provider (deferred when empty, resumed on write)
 *   client END_STREAM-> on_eof once inq is delivered;  shutdown -> END_STREAM after outq
 *   abort            -> RST_STREAM(CONNECT_ERROR);     client RST_STREAM -> on_error
 * The stream is freed once nghttp2 has closed it AND its tunnel has detached (either order). */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "h2/h2_int.h"
#include "proxy/fwd.h"
#include "proxy/request.h"
#include "src/conn.h"
#include "src/local.h"
#include "src/log.h"
#include "src/membudget.h"
#include "src/net.h"
#include "src/pxerr.h"

static const struct tun_ep_ops h2_ep_ops;

struct h2_stream *h2_stream_new(struct h2_session *s, int32_t id) {
  struct h2_stream *st = xcalloc(1, sizeof(*st));
  st->s = s;
  st->id = id;
  st->ep.ops = &h2_ep_ops;
  bufq_init(&st->inq);
  bufq_init(&st->outq);
  st->start_ms = uv_now(&s->w->loop);
  list_insert_tail(&s->streams, &st->link);
  s->nstreams++;
  return st;
}

static void stream_free(struct h2_stream *st) {
  struct h2_session *s = st->s;
  list_remove(&st->link);
  /* Only streams count as activity: with the last one gone the idle clock starts (DOS-06). */
  if (--s->nstreams == 0) s->idle_since_ms = uv_now(&s->w->loop);
  bufq_clear(&st->inq, &s->w->pool);
  bufq_clear(&st->outq, &s->w->pool);
  free(st->method);
  free(st->authority);
  free(st->scheme);
  free(st->path);
  free(st->protocol);
  free(st->host);
  free(st->ws_version);
  free(st->ws_protocol);
  free(st->ws_extensions);
  free(st->origin);
  free(st->proxy_auth);
  free(st->fields);
  free(st->trailers);
  free(st->req_trailers);
  free(st->body);
  free(st);
  h2_session_schedule(s);
}

static void maybe_free(struct h2_stream *st) {
  if (st->closed && !st->ep.tun && !st->rq && !st->fx) stream_free(st);
}

/* The stream's receive window follows the memory budget (src/membudget.h): doubled while the
 * window is what holds the client back (h2_stream_on_window_sent), shrunk as the budget fills. */
static void tune_window(struct h2_stream *st) {
  if (st->state != H2S_TUNNEL) return;
  nghttp2_session *ng = st->s->ng;
  int32_t win = nghttp2_session_get_stream_effective_local_window_size(ng, st->id);
  if (win <= 0) return;
  size_t next = membudget_window(st->s->w->membudget, (size_t)win, st->win_bound, st->s->w->cfg->h2_stream_window_max);
  st->win_bound = 0;
  if (next != (size_t)win) nghttp2_session_set_local_window_size(ng, NGHTTP2_FLAG_NONE, st->id, (int32_t)next);
}

void h2_stream_on_window_sent(struct h2_stream *st) {
  uint64_t now = uv_hrtime();
  uint64_t since = st->wu_ns ? now - st->wu_ns : UINT64_MAX;
  /* Two updates within 2 s may be within two round trips: only then is the RTT worth a syscall. */
  if (since < 2000000000ull) {
    int fd = -1;
    uv_fileno((const uv_handle_t *)&st->s->c->tcp, &fd);
    st->win_bound = (unsigned)mb_window_bound(since, (uint64_t)net_tcp_rtt_us(fd) * 1000, st->held_back);
  }
  st->wu_ns = now;
  st->held_back = 0;
}

/* Credits |n| received bytes back to the client (stream and connection windows). Only bytes still
 * owed are credited: h2_stream_on_close already gave the connection window back for all of them,
 * and the tunnel's ep_close (run from inside on_stream_close, before |closed| is set) must not
 * credit the same bytes a second time. */
static void credit(struct h2_stream *st, size_t n) {
  n = MIN(n, st->uncredited);
  if (n == 0) return;
  st->uncredited -= n;
  if (!st->closed && !h2_session_ended(st->s)) {
    tune_window(st);
    nghttp2_session_consume(st->s->ng, st->id, n);
  }
  h2_session_schedule(st->s);
}

int h2_stream_on_header(struct h2_stream *st, const uint8_t *name, size_t namelen, const uint8_t *value,
                        size_t valuelen) {
  st->header_bytes += namelen + valuelen + 32;
  if (st->header_bytes > st->s->w->cfg->h2_max_header_list) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  /* The request fields a stream keeps; everything else is not needed by a proxy. */
  static const struct {
    const char *name;
    size_t off;
  } kept[] = {
      {":method", offsetof(struct h2_stream, method)},
      {":authority", offsetof(struct h2_stream, authority)},
      {":scheme", offsetof(struct h2_stream, scheme)},
      {":path", offsetof(struct h2_stream, path)},
      {":protocol", offsetof(struct h2_stream, protocol)},
      {"host", offsetof(struct h2_stream, host)},
      {"sec-websocket-version", offsetof(struct h2_stream, ws_version)},
      {"sec-websocket-protocol", offsetof(struct h2_stream, ws_protocol)},
      {"sec-websocket-extensions", offsetof(struct h2_stream, ws_extensions)},
      {"origin", offsetof(struct h2_stream, origin)},
      {"proxy-authorization", offsetof(struct h2_stream, proxy_auth)},
  };
  if (namelen > 0 && name[0] != ':' && !(st->method && strcmp(st->method, "CONNECT") == 0)) {
    /* Kept for forwarding (bounded by --h2-max-header-list above). */
    size_t need = namelen + valuelen + 2;
    if (st->fields_len + need > st->fields_cap) {
      st->fields_cap = MAX(st->fields_cap * 2, st->fields_len + need + 256);
      st->fields = realloc(st->fields, st->fields_cap);
      CHECK(st->fields != NULL);
    }
    memcpy(st->fields + st->fields_len, name, namelen);
    st->fields[st->fields_len + namelen] = '\0';
    memcpy(st->fields + st->fields_len + namelen + 1, value, valuelen);
    st->fields[st->fields_len + need - 1] = '\0';
    st->fields_len += need;
    st->nfields++;
  }
  char **slot = NULL;
  for (size_t i = 0; i < ARRAY_SIZE(kept) && !slot; i++)
    if (strlen(kept[i].name) == namelen && memcmp(kept[i].name, name, namelen) == 0)
      slot = (char **)((char *)st + kept[i].off);
  if (!slot) return 0;
  if (*slot) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* duplicated */
  *slot = xmalloc(valuelen + 1);
  memcpy(*slot, value, valuelen);
  (*slot)[valuelen] = '\0';
  return 0;
}

int h2_stream_on_trailer(struct h2_stream *st, const uint8_t *name, size_t namelen, const uint8_t *value,
                         size_t valuelen) {
  if (st->proto != PX_PROTO_FORWARD) return 0;
  st->header_bytes += namelen + valuelen + 32;
  if (st->header_bytes > st->s->w->cfg->h2_max_header_list) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  char *n = realloc(st->req_trailers, st->req_trailers_len + namelen + valuelen + 2);
  CHECK(n != NULL);
  memcpy(n + st->req_trailers_len, name, namelen);
  n[st->req_trailers_len + namelen] = '\0';
  memcpy(n + st->req_trailers_len + namelen + 1, value, valuelen);
  n[st->req_trailers_len + namelen + 1 + valuelen] = '\0';
  st->req_trailers = n;
  st->req_trailers_len += namelen + valuelen + 2;
  st->nreq_trailers++;
  return 0;
}

/* ---- responses ---- */

static ssize_t body_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud) {
  struct h2_stream *st = src->ptr;
  size_t n = MIN(len, st->body_len - st->body_off);
  memcpy(buf, st->body + st->body_off, n);
  st->body_off += n;
  if (st->body_off == st->body_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NO_COPY_NAME}

/* A complete response with a small body (copied); ends the stream. */
static void respond(struct h2_stream *st, int status, const char *ctype, const char *body, size_t len,
                    const char *proxy_status, const struct px_header *extra, size_t nextra) {
  if (st->responded || st->closed) return;
  st->responded = 1;
  st->state = H2S_RESPONDED;
  char sbuf[8], clen[24];
  snprintf(sbuf, sizeof(sbuf), "%d", status);
  snprintf(clen, sizeof(clen), "%zu", len);
  free(st->body);
  st->body = xmalloc(len + 1);
  memcpy(st->body, body, len);
  st->body_len = len;
  st->body_off = 0;
  nghttp2_nv nva[5 + PX_EXTRA_MAX] = {NV(":status", sbuf), NV("content-type", ctype), NV("content-length", clen),
                                     NV("cache-control", "no-store")};
  size_t n = 4;
  if (proxy_status) nva[n++] = (nghttp2_nv)NV("proxy-status", proxy_status);
  for (size_t i = 0; i < nextra && i < PX_EXTRA_MAX; i++)
    nva[n++] = (nghttp2_nv){(uint8_t *)extra[i].name, (uint8_t *)extra[i].value, strlen(extra[i].name),
                            strlen(extra[i].value), NGHTTP2_NV_FLAG_NONE};
  int head = st->method && strcmp(st->method, "HEAD") == 0;
  nghttp2_data_provider prd = {.source.ptr = st, .read_callback = body_read};
  nghttp2_submit_response(st->s->ng, st->id, nva, n, (len && !head) ? &prd : NULL);
  h2_session_schedule(st->s);
}

static void rst(struct h2_stream *st, uint32_t code) {
  if (st->closed || st->reset_sent || h2_session_ended(st->s)) return;
  st->reset_sent = 1;
  nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, code);
  h2_session_schedule(st->s);
}

/* ---- tunnel data path ---- */

/* A forwarded response's trailers (FWD-10) end the stream instead of the last DATA frame. */
static void submit_trailers(struct h2_stream *st, uint32_t *flags) {
  nghttp2_nv nva[64];
  size_t n = 0;
  const char *p = st->trailers;
  for (size_t i = 0; i < st->ntrailers && n < ARRAY_SIZE(nva); i++) {
    size_t nl = strlen(p);
    const char *v = p + nl + 1;
    size_t vl = strlen(v);
    nva[n++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)v, nl, vl, NGHTTP2_NV_FLAG_NONE};
    p = v + vl + 1;
  }
  if (nghttp2_submit_trailer(st->s->ng, st->id, nva, n) == 0) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
  st->ntrailers = 0;
}

/* Upstream -> client: the DATA provider. It only sizes the frame (NO_COPY): the payload goes
 * from outq to the connection in h2_stream_send_data, without passing through nghttp2's buffer. */
static ssize_t tunnel_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                           nghttp2_data_source *src, void *ud) {
  struct h2_stream *st = src->ptr;
  if (st->outq.bytes == 0) {
    if (st->out_eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (st->ntrailers) submit_trailers(st, flags);
      return 0;
    }
    st->data_deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  /* One outq chunk per frame keeps cleartext zero-copy; over TLS a frame plus its 9-byte
   * header fits one staging chunk, i.e. one TLS record. */
  size_t n = MIN(len, (size_t)st->outq.head->len);
  if (conn_is_tls(st->s->c)) n = MIN(n, (size_t)BUF_CHUNK_SIZE - 9);
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (n == st->outq.bytes && st->out_eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (st->ntrailers) submit_trailers(st, flags);
  }
  return (ssize_t)n;
}

int h2_stream_send_data(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd, size_t length,
                        nghttp2_data_source *src, void *ud) {
  struct h2_stream *st = src->ptr;
  struct h2_session *s = st->s;
  h2_session_stage(s, framehd, 9);
  struct buf_chunk *head = st->outq.head;
  if (!conn_is_tls(s->c) && head && head->len == length) {
    /* Cleartext and the frame is exactly one chunk: hand the chunk itself to the socket. */
    h2_session_stage_flush(s);
    conn_write(s->c, bufq_pop(&st->outq));
  } else {
    while (length > 0 && st->outq.head) {
      struct buf_chunk *c = st->outq.head;
      size_t n = MIN(length, (size_t)c->len);
      h2_session_stage(s, (const uint8_t *)buf_rd(c), n);
      bufq_skip(&st->outq, &s->w->pool, n);
      length -= n;
    }
  }
  st->ep.queued = st->outq.bytes;
  /* The tunnel may resume its reader; do it after nghttp2 returns (we are inside mem_send). */
  if ((st->ep.tun || st->fx) && st->outq.bytes <= s->w->cfg->low_water) st->drain_pending = 1;
  return 0;
}

static void resume(struct h2_stream *st) {
  if (st->data_deferred && !st->closed && !h2_session_ended(st->s)) {
    st->data_deferred = 0;
    nghttp2_session_resume_data(st->s->ng, st->id);
  }
  h2_session_schedule(st->s);
}

/* Client -> upstream: hands queued DATA to the tunnel while it reads, crediting what it takes. */
static void deliver(struct h2_stream *st) {
  while (st->reading && st->ep.tun && st->inq.head) {
    struct buf_chunk *c = bufq_pop(&st->inq);
    size_t n = c->len;
    tunnel_on_read(&st->ep, c);
    credit(st, n);
  }
  if (st->client_eof && !st->eof_delivered && st->inq.bytes == 0 && st->ep.tun && st->reading) {
    st->eof_delivered = 1;
    tunnel_on_eof(&st->ep);
  }
}

/* Client -> origin for a forwarded request: DATA goes on while the origin takes it, and is
 * credited as it goes (a slow origin stalls only its own stream). */
static void deliver_fwd(struct h2_stream *st) {
  size_t hw = st->s->w->cfg->high_water;
  size_t queued = 0;
  while (st->fx && st->inq.head && queued <= hw) {
    struct buf_chunk *c = bufq_pop(&st->inq);
    size_t n = c->len;
    queued = fwd_send_body(st->fx, buf_rd(c), n);
    buf_put(&st->s->w->pool, c);
    credit(st, n);
  }
  if (st->fx && st->client_eof && !st->eof_delivered && st->inq.bytes == 0) {
    /* The request's trailers go with the end of its body (FWD-10). */
    struct fwd_field *tr = xcalloc(st->nreq_trailers + 1, sizeof(*tr));
    const char *p = st->req_trailers;
    for (size_t i = 0; i < st->nreq_trailers; i++) {
      size_t nl = strlen(p);
      const char *v = p + nl + 1;
      size_t vl = strlen(v);
      tr[i] = (struct fwd_field){p, nl, v, vl};
      p = v + vl + 1;
    }
    st->eof_delivered = 1;
    fwd_send_end(st->fx, tr, st->nreq_trailers);
    free(tr);
  }
}

void h2_stream_on_data(struct h2_stream *st, const uint8_t *data, size_t len) {
  st->uncredited += len;
  if (st->state == H2S_FWD) {
    bufq_append(&st->inq, &st->s->w->pool, data, len);
    deliver_fwd(st);
    return;
  }
  if (st->state != H2S_TUNNEL && st->state != H2S_DIALING) {
    credit(st, len); /* a body we do not use (local requests): discard, keep the window open */
    return;
  }
  if (st->ep.aborted) {
    credit(st, len);
    return;
  }
  bufq_append(&st->inq, &st->s->w->pool, data, len);
  deliver(st);
}

void h2_stream_on_end(struct h2_stream *st) {
  st->client_eof = 1;
  if (st->state == H2S_TUNNEL) deliver(st);
  if (st->state == H2S_FWD) deliver_fwd(st);
}

void h2_stream_protocol_error(struct h2_stream *st) {
  log_info("h2 %s stream %d: HEADERS on a tunnel stream, resetting", st->s->c->peer, st->id);
  rst(st, NGHTTP2_PROTOCOL_ERROR);
  if (st->ep.tun) tunnel_on_error(&st->ep, TUN_CLOSE_PROTOCOL_ERROR);
}

/* Abandons the request being decided, and so whatever upstream it was opening. */
static void cancel_upstream(struct h2_stream *st) {
  if (st->rq) {
    px_request_cancel(st->rq);
    st->rq = NULL;
  }
  if (st->fx) {
    struct fwd *fx = st->fx;
    st->fx = NULL;
    fwd_cancel(fx);
  }
}

void h2_stream_on_close(struct h2_stream *st, uint32_t error_code) {
  /* Bytes never credited would shrink the connection window for good (checklist NG-05). */
  if (st->uncredited && !h2_session_ended(st->s)) nghttp2_session_consume_connection(st->s->ng, st->uncredited);
  st->uncredited = 0;
  cancel_upstream(st);
  if (st->ep.tun && (error_code != NGHTTP2_NO_ERROR || st->reset_sent || st->peer_reset)) {
    /* A reset ends the tunnel and resets the upstream (H2C-12). The client's own RST_STREAM
     * is client_reset; one sent by us or by nghttp2 (a flow-control violation, a malformed
     * frame) means the client broke the protocol. */
    tunnel_on_error(&st->ep, st->peer_reset ? TUN_CLOSE_CLIENT_RST : TUN_CLOSE_PROTOCOL_ERROR);
  }
  st->closed = 1;
  /* With both END_STREAMs exchanged the tunnel may still be delivering inq upstream: the stream
   * stays until the tunnel lets go of it. */
  maybe_free(st);
}

void h2_stream_on_end_sent(struct h2_stream *st) {
  /* A complete answer (error or local response) to a request whose sender has not finished:
   * RST_STREAM(NO_ERROR) tells it to stop (RFC 9113 §8.1, checklist H2C-18); otherwise the stream
   * stays half-closed and holds a MAX_CONCURRENT_STREAMS slot until the client ends it. Tunnels
   * are not concerned: their END_STREAM is the upstream FIN and the client may go on sending. */
  if (st->state == H2S_RESPONDED && !h2_session_ended(st->s) && nghttp2_session_get_stream_remote_close(st->s->ng, st->id) == 0)
    rst(st, NGHTTP2_NO_ERROR);
}

void h2_stream_after_send(struct h2_stream *st) {
  if (!st->drain_pending) return;
  st->drain_pending = 0;
  if (st->ep.tun) tunnel_on_drain(&st->ep);
  if (st->fx) fwd_resume(st->fx);
}

void h2_stream_abandon(struct h2_stream *st, enum tun_close_reason why) {
  cancel_upstream(st);
  /* Kill the tunnel while the stream counts as open, so that its close does not free it. */
  unsigned closed = st->closed;
  st->closed = 0;
  if (st->ep.tun) tunnel_kill(st->ep.tun, why);
  st->closed = closed;
}

void h2_stream_destroy(struct h2_stream *st) {
  cancel_upstream(st);
  stream_free(st);
}

/* ---- requests: the request path (proxy/request.h) decides, the stream answers ---- */

static void drop_request_body(struct h2_stream *st) {
  bufq_clear(&st->inq, &st->s->w->pool);
  credit(st, st->uncredited);
}

/* Success: 200 without END_STREAM (H2C-05), with the outcome's extra fields; the tunnel starts
 * next with this stream as its client side. */
static int px_answer_ok(void *fe, const struct px_outcome *out) {
  struct h2_stream *st = fe;
  nghttp2_nv nva[1 + PX_EXTRA_MAX] = {NV(":status", "200")};
  size_t n = 1;
  st->rq = NULL;
  for (size_t i = 0; i < out->nextra; i++) {
    nva[n++] = (nghttp2_nv){(uint8_t *)out->extra[i].name, (uint8_t *)out->extra[i].value,
                            strlen(out->extra[i].name), strlen(out->extra[i].value), NGHTTP2_NV_FLAG_NONE};
  }
  nghttp2_data_provider prd = {.source.ptr = st, .read_callback = tunnel_read};
  if (h2_session_ended(st->s) || nghttp2_submit_response(st->s->ng, st->id, nva, n, &prd) != 0) {
    drop_request_body(st);
    rst(st, NGHTTP2_INTERNAL_ERROR);
    return 0;
  }
  st->responded = 1;
  st->state = H2S_TUNNEL;
  st->has_tunnel = 1;
  h2_session_schedule(st->s);
  return 200;
}

/* Failure: :status, proxy-status and the text body (H2C-18); the request body is not wanted. */
static void px_answer_error(void *fe, const struct px_outcome *out) {
  struct h2_stream *st = fe;
  st->rq = NULL;
  drop_request_body(st);
  respond(st, out->status, "text/plain; charset=utf-8", out->body, strlen(out->body),
          out->proxy_status[0] ? out->proxy_status : NULL, out->extra, out->nextra);
}

static struct tun_ep *px_client_ep(void *fe) { return &((struct h2_stream *)fe)->ep; }

/* ---- forwarding (issue 11): the origin's HTTP/1.1 response as this stream's response ---- */

/* Copies |fields| to nghttp2 name/value pairs, names lowercased into |buf| (HTTP/2 wants them
 * lowercase, RFC 9113 §8.2.1). Returns the count; fields that do not fit are dropped. */
static size_t to_nv(const struct fwd_field *fields, size_t n, nghttp2_nv *nva, size_t cap, char *buf, size_t bufcap) {
  size_t k = 0, used = 0;
  for (size_t i = 0; i < n && k < cap; i++) {
    if (used + fields[i].name_len > bufcap) break;
    char *nm = buf + used;
    for (size_t j = 0; j < fields[i].name_len; j++) {
      char ch = fields[i].name[j];
      nm[j] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    used += fields[i].name_len;
    nva[k++] = (nghttp2_nv){(uint8_t *)nm, (uint8_t *)fields[i].value, fields[i].name_len, fields[i].value_len,
                            NGHTTP2_NV_FLAG_NONE};
  }
  return k;
}

/* Room for |fields| as nghttp2 pairs (plus |extra|) and their lowercased names. */
static nghttp2_nv *nv_alloc(const struct fwd_field *fields, size_t n, size_t extra, char **names, size_t *names_len) {
  size_t len = 1;
  for (size_t i = 0; i < n; i++) len += fields[i].name_len;
  *names = xmalloc(len);
  *names_len = len;
  return xcalloc(n + extra, sizeof(nghttp2_nv));
}

static void fx_interim(void *fe, int status, const struct fwd_field *fields, size_t n) {
  struct h2_stream *st = fe;
  if (st->closed || h2_session_ended(st->s)) return;
  char *names, sbuf[8];
  size_t names_len;
  nghttp2_nv *nva = nv_alloc(fields, n, 1, &names, &names_len);
  snprintf(sbuf, sizeof(sbuf), "%d", status);
  nva[0] = (nghttp2_nv)NV(":status", sbuf);
  size_t k = 1 + to_nv(fields, n, nva + 1, n, names, names_len);
  nghttp2_submit_headers(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NULL, nva, k, NULL);
  free(nva);
  free(names);
  h2_session_schedule(st->s);
}

static int fx_head(void *fe, int status, const struct fwd_field *fields, size_t n, int body, int64_t length) {
  struct h2_stream *st = fe;
  if (st->closed || h2_session_ended(st->s)) return -1;
  char *names, sbuf[8], clen[24];
  size_t names_len;
  nghttp2_nv *nva = nv_alloc(fields, n, 2, &names, &names_len);
  snprintf(sbuf, sizeof(sbuf), "%d", status);
  nva[0] = (nghttp2_nv)NV(":status", sbuf);
  size_t k = 1 + to_nv(fields, n, nva + 1, n, names, names_len);
  if (body && length >= 0) {
    snprintf(clen, sizeof(clen), "%lld", (long long)length);
    nva[k++] = (nghttp2_nv)NV("content-length", clen);
  }
  nghttp2_data_provider prd = {.source.ptr = st, .read_callback = tunnel_read};
  int rv = nghttp2_submit_response(st->s->ng, st->id, nva, k, body ? &prd : NULL);
  free(nva);
  free(names);
  if (rv != 0) return -1;
  st->responded = 1;
  if (!body) st->state = H2S_RESPONDED;
  h2_session_schedule(st->s);
  return 0;
}

static void fx_body(void *fe, const char *data, size_t len) {
  struct h2_stream *st = fe;
  if (st->closed || st->reset_sent) return;
  bufq_append(&st->outq, &st->s->w->pool, data, len);
  resume(st);
}

static void fx_end(void *fe, const struct fwd_field *trailers, size_t n, int req_done) {
  struct h2_stream *st = fe;
  st->fx = NULL;
  if (st->state == H2S_FWD) {
    /* Trailers (FWD-10) follow the body as a HEADERS frame with END_STREAM. */
    size_t need = 0;
    for (size_t i = 0; i < n; i++) need += trailers[i].name_len + trailers[i].value_len + 2;
    if (n && need < 65536) {
      free(st->trailers);
      st->trailers = xmalloc(need);
      char *p = st->trailers;
      for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < trailers[i].name_len; j++) {
          char ch = trailers[i].name[j];
          *p++ = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
        }
        *p++ = '\0';
        memcpy(p, trailers[i].value, trailers[i].value_len);
        p += trailers[i].value_len;
        *p++ = '\0';
      }
      st->ntrailers = n;
    }
    st->out_eof = 1;
    st->state = H2S_RESPONDED;
    resume(st);
  }
  (void)req_done; /* an unfinished request body is stopped by RST_STREAM(NO_ERROR) (H2C-18) */
  drop_request_body(st);
  maybe_free(st);
}

static void fx_error(void *fe, const struct px_outcome *out) {
  struct h2_stream *st = fe;
  st->fx = NULL;
  drop_request_body(st);
  respond(st, out->status, "text/plain; charset=utf-8", out->body, strlen(out->body),
          out->proxy_status[0] ? out->proxy_status : NULL, out->extra, out->nextra);
  maybe_free(st);
}

static void fx_abort(void *fe) {
  struct h2_stream *st = fe;
  st->fx = NULL;
  /* A cut response must not look complete (FWD-08). */
  bufq_clear(&st->outq, &st->s->w->pool);
  drop_request_body(st);
  st->state = H2S_RESPONDED;
  rst(st, NGHTTP2_INTERNAL_ERROR);
  maybe_free(st);
}

static size_t fx_queued(void *fe) { return ((struct h2_stream *)fe)->outq.bytes; }

static void fx_req_drain(void *fe) { deliver_fwd(fe); }

/* Never asked for: an HTTP/2 request carries no Upgrade (RFC 9113 §8.2.2); WebSocket over HTTP/2
 * is the extended CONNECT tunnel (RFC 8441). */
static struct tun_ep *fx_upgraded(void *fe, const struct fwd_field *fields, size_t n, struct bufq *early) {
  (void)fe;
  (void)fields;
  (void)n;
  (void)early;
  return NULL;
}

static const struct fwd_front_ops h2_fwd_ops = {
    .upgraded = fx_upgraded,
    .interim = fx_interim,
    .head = fx_head,
    .body = fx_body,
    .end = fx_end,
    .error = fx_error,
    .abort = fx_abort,
    .queued = fx_queued,
    .req_drain = fx_req_drain,
};

/* The request's fields for the origin: the stored ones, cookie crumbs joined with "; " (RFC 9113
 * §8.2.3, FWD-11). |cookie| receives the joined value (owned by the caller). Returns the count. */
static size_t request_fields(struct h2_stream *st, struct fwd_field *out, size_t cap, char **cookie, int64_t *clen) {
  size_t n = 0, cookie_len = 0;
  const char *p = st->fields;
  *cookie = NULL;
  *clen = -1;
  for (size_t i = 0; i < st->nfields; i++) {
    size_t nl = strlen(p);
    const char *v = p + nl + 1;
    size_t vl = strlen(v);
    if (nl == 6 && memcmp(p, "cookie", 6) == 0) {
      char *c = realloc(*cookie, cookie_len + vl + 3);
      CHECK(c != NULL);
      if (cookie_len) {
        memcpy(c + cookie_len, "; ", 2);
        cookie_len += 2;
      }
      memcpy(c + cookie_len, v, vl);
      cookie_len += vl;
      c[cookie_len] = '\0';
      *cookie = c;
    } else if (nl == 14 && memcmp(p, "content-length", 14) == 0) {
      *clen = (int64_t)strtoll(v, NULL, 10); /* nghttp2 checked it against the DATA (§8.1.1) */
    } else if (n < cap) {
      out[n++] = (struct fwd_field){p, nl, v, vl};
    }
    p = v + vl + 1;
  }
  if (*cookie && n < cap) out[n++] = (struct fwd_field){"cookie", 6, *cookie, cookie_len};
  return n;
}

static void px_answer_forward(void *fe, struct px_request *rq, struct fwd_up *up) {
  struct h2_stream *st = fe;
  struct fwd_field *fields = xcalloc(st->nfields + 1, sizeof(*fields));
  char *cookie;
  int64_t clen;
  st->rq = NULL;
  size_t n = request_fields(st, fields, st->nfields + 1, &cookie, &clen);
  /* The length: none when the HEADERS ended the stream, content-length when given, else the
   * DATA frames as they come (chunked to the origin). */
  int64_t length = (st->client_eof && st->inq.bytes == 0 && !st->uncredited) ? 0 : clen;
  struct fwd_req req = {.method = st->method,
                        .authority = st->authority ? st->authority : st->host,
                        .path = st->path ? st->path : "/",
                        .https = rq->tls,
                        .proto = "2",
                        .fields = fields,
                        .nfields = n,
                        .length = length};
  st->state = H2S_FWD;
  st->fx = fwd_start(up, rq, &req, &h2_fwd_ops, st);
  free(fields);
  free(cookie);
  if (length == 0) st->eof_delivered = 1;
  deliver_fwd(st);
}

static const struct px_front_ops h2_px_ops = {
    .answer_ok = px_answer_ok,
    .answer_error = px_answer_error,
    .client_ep = px_client_ep,
    .answer_forward = px_answer_forward,
};

/* A CONNECT of |proto| as the request path sees it (strings borrowed until it decides). */
static struct px_request *new_request(struct h2_stream *st, enum px_proto proto) {
  struct px_request *rq = px_request_new(st->s->w, PX_FRONT_H2, proto, &h2_px_ops, st);
  px_request_set_client(rq, st->s->c);
  rq->start_ms = st->start_ms;
  rq->authority = st->authority;
  rq->path = st->path;
  rq->tls = st->scheme && strcmp(st->scheme, "https") == 0;
  rq->ws = (struct ws_upgrade_req){.version = st->ws_version,
                                   .protocol = st->ws_protocol,
                                   .extensions = st->ws_extensions,
                                   .origin = st->origin};
  rq->credentials = st->proxy_auth;
  st->proxy_auth = NULL;
  st->proto = proto;
  st->rq = rq;
  return rq;
}

/* CONNECT (H2C-*), and extended CONNECT (RFC 8441): nghttp2 has checked :scheme, :path and
 * :authority (XC-03); connect-udp (RFC 9298 §3.4) and websocket are served. */
static void start_connect(struct h2_stream *st, int end_stream) {
  enum px_proto proto = PX_PROTO_CONNECT;
  if (st->protocol && strcmp(st->protocol, "connect-udp") == 0) proto = PX_PROTO_CONNECT_UDP;
  else if (st->protocol && strcmp(st->protocol, "websocket") == 0) proto = PX_PROTO_WEBSOCKET;
  struct px_request *rq = new_request(st, proto);
  if (st->protocol && proto == PX_PROTO_CONNECT) {
    px_request_fail(rq, PXERR_NOT_IMPLEMENTED, "unsupported :protocol"); /* XC-04 */
    return;
  }
  /* A Host that disagrees with :authority makes the request malformed (H2C-03). */
  if (!st->protocol && st->host && st->authority && strcasecmp(st->host, st->authority) != 0) {
    px_request_fail(rq, PXERR_BAD_REQUEST, "host differs from :authority");
    return;
  }
  st->state = H2S_DIALING;
  if (end_stream) st->client_eof = 1;
  px_request_start(rq);
}

/* An ordinary request for another authority: forwarded by the request path (issue 11). */
static void start_forward(struct h2_stream *st, int end_stream) {
  struct px_request *rq = new_request(st, PX_PROTO_FORWARD);
  if (!st->authority) rq->authority = st->host;
  /* A Via naming this proxy is a loop (FWD-04). */
  const char *p = st->fields;
  for (size_t i = 0; p && i < st->nfields; i++) {
    size_t nl = strlen(p);
    const char *v = p + nl + 1;
    if (nl == 3 && memcmp(p, "via", 3) == 0 && fwd_via_names(v, strlen(v), st->s->w->cfg->via_name)) {
      px_request_fail(rq, PXERR_LOOP, "request loop: Via names this proxy");
      return;
    }
    if (nl == 12 && memcmp(p, "max-forwards", 12) == 0 && fwd_max_forwards_zero(st->method, v, strlen(v))) {
      /* FWD-05: the last hop answers itself. */
      st->rq = NULL;
      px_request_answered(rq, 200, st->method, "Max-Forwards: 0");
      respond(st, 200, "text/plain; charset=utf-8", "", 0, NULL, NULL, 0);
      return;
    }
    p = v + strlen(v) + 1;
  }
  st->state = H2S_DIALING;
  if (end_stream) st->client_eof = 1;
  px_request_start(rq);
}

void h2_stream_on_request(struct h2_stream *st, int end_stream) {
  if (!st->method) {
    rst(st, NGHTTP2_PROTOCOL_ERROR);
    return;
  }
  if (strcmp(st->method, "CONNECT") == 0) {
    start_connect(st, end_stream);
    return;
  }
  /* Ordinary requests for the proxy itself get its local pages (H2-06); a request for any
   * other authority is forwarded, never answered with them (issue 11). Without :authority the
   * Host field names the target (RFC 9113 §8.3.1); with neither, the request is the proxy's. */
  const char *auth = st->authority ? st->authority : st->host;
  if (auth && !local_is_own(st->s->w->cfg, (const struct sockaddr *)&st->s->local, auth, strlen(auth))) {
    start_forward(st, end_stream);
    return;
  }
  struct local_resp r;
  local_handle(st->s->w, st->s->c->listener, st->method, st->path ? st->path : "/",
               st->authority ? st->authority : st->host, &r);
  respond(st, r.status, r.content_type, r.body, r.body_len, NULL, NULL, 0);
  free(r.body);
}

/* ---- this stream as a tunnel endpoint ---- */

static struct h2_stream *st_of(struct tun_ep *ep) { return container_of(ep, struct h2_stream, ep); }

static void ep_read_start(struct tun_ep *self) {
  struct h2_stream *st = st_of(self);
  st->reading = 1;
  deliver(st);
}

static void ep_read_stop(struct tun_ep *self) {
  struct h2_stream *st = st_of(self);
  st->reading = 0;
  st->held_back = 1; /* the upstream, not the window, holds the client back (auto-tuning) */
}

static void ep_write(struct tun_ep *self, struct buf_chunk *c) {
  struct h2_stream *st = st_of(self);
  if (st->closed || st->reset_sent || st->out_eof) {
    buf_put(&st->s->w->pool, c);
    return;
  }
  bufq_push(&st->outq, &st->s->w->pool, c);
  self->queued = st->outq.bytes;
  resume(st);
}

static void ep_shutdown(struct tun_ep *self) {
  struct h2_stream *st = st_of(self);
  st->out_eof = 1; /* END_STREAM after the queued bytes (H2C-09) */
  resume(st);
}

static void ep_abort(struct tun_ep *self) {
  struct h2_stream *st = st_of(self);
  bufq_clear(&st->outq, &st->s->w->pool);
  self->queued = 0;
  /* H2C-11; a WebSocket stream is cancelled instead (checklist §12). A malformed capsule from
   * the client makes the request malformed: PROTOCOL_ERROR (RFC 9297 §3.3, checklist UDP-06). */
  if (self->tun && tunnel_reason(self->tun) == TUN_CLOSE_PROTOCOL_ERROR)
    rst(st, NGHTTP2_PROTOCOL_ERROR);
  else
    rst(st, st->proto == PX_PROTO_WEBSOCKET ? NGHTTP2_CANCEL : NGHTTP2_CONNECT_ERROR);
}

static void ep_close(struct tun_ep *self) {
  struct h2_stream *st = st_of(self);
  st->reading = 0;
  /* Client bytes the tunnel will never take: credit them so the connection window survives. */
  size_t left = st->inq.bytes;
  bufq_clear(&st->inq, &st->s->w->pool);
  credit(st, left);
  if (self->aborted) ep_abort(self);
  maybe_free(st);
}

static const struct tun_ep_ops h2_ep_ops = {
    .kind = "h2",
    .read_start = ep_read_start,
    .read_stop = ep_read_stop,
    .write = ep_write,
    .shutdown = ep_shutdown,
    .abort = ep_abort,
    .close = ep_close,
};
