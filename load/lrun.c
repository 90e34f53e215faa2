/* One load-generating thread. See lrun.h for the layering.
 *
 * Tunnel life (struct ltun):
 *
 *   T_FREE --start--> T_WAIT --request sent--> T_OPENING --2xx--> T_OPEN --done--> T_FREE
 *                       (h1: TCP/TLS setup;        |                 |
 *                        h2 udp: SETTINGS)         +-- non-2xx, reset, EOF, timeout: failed
 *
 * Each mode is a sequence of "phases": send some bytes (up_left, after an optional 8-byte count
 * in hdr), expect some bytes back (expect). When a phase's bytes have all arrived the workload
 * either starts another phase (rr) or finishes: it marks the tunnel ok and sends FIN /
 * END_STREAM. The tunnel is complete when the peer's FIN has arrived too (h2: the stream is
 * closed). An EOF before the workload finished is an error.
 *
 * Nothing here copies payload per byte except into the transport: sent payload comes from a
 * constant pattern buffer, received payload is only counted. */
#include "load/lrun.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include "load/lstats.h"
#include "load/opts.h"
#include "tunnel/capsule.h"

#define OUT_HIGH (1u << 20)      /* bytes in uv_write above which we stop producing output */
#define RBUF_SIZE (256 * 1024)   /* shared read buffer per thread */
#define HEAD_MAX 8192            /* HTTP/1.1 response head */
#define CHUNK (64 * 1024)        /* payload per h1 write */
#define UDP_STALL_MS 200         /* no datagram back for this long: the in-flight ones are lost */
#define H2_STREAM_WINDOW (16 * 1024 * 1024)
#define H2_CONN_WINDOW (1 << 30)

static char pattern[CHUNK]; /* constant payload, written once in lrun_global_init */

enum conn_state { C_CONNECTING, C_TLS, C_READY };
enum tun_state { T_FREE, T_WAIT, T_OPENING, T_OPEN };

struct lconn;

struct ltun {
  struct lconn *c;         /* back-pointer: the connection carrying this tunnel */
  int32_t sid;             /* h2 stream id, 0 before submission and for h1 */
  enum tun_state state;
  uint64_t t_start;        /* ns: tunnel started (h1: TCP connect started) */
  uint64_t t_req;          /* ns: CONNECT sent (h2) or TCP connect started (h1) */
  uint64_t t_rt;           /* ns: current round trip started */
  uint64_t last_ms;        /* loop time of the last progress, for --timeout */
  uint8_t hdr[8];          /* count sent before the payload (bulk) */
  uint8_t hdr_len, hdr_off;
  uint64_t up_left;        /* payload bytes still to send in this phase */
  uint64_t expect;         /* bytes still expected back in this phase */
  uint64_t got;            /* bytes received in this tunnel */
  int status;              /* CONNECT answer */
  char *pstatus;           /* owned: Proxy-Status of a non-2xx answer, or NULL */
  uint32_t inflight;       /* udp: datagrams sent and neither received nor presumed lost */
  uint64_t last_rx_ms;     /* udp: loop time of the last datagram back */
  struct capsule_decoder *dec; /* owned (udp): capsules from the proxy */
  unsigned fin_want : 1;   /* send FIN once the queued bytes are out */
  unsigned fin_sent : 1;
  unsigned fin_rcvd : 1;
  unsigned ok : 1;         /* the workload finished */
  unsigned failed : 1;     /* an error was counted for this tunnel */
  unsigned hold : 1;       /* idle: open and waiting for the hold to end */
  unsigned active : 1;     /* counted in stats.active */
};

/* A pending uv_write and its bytes. */
struct wreq {
  uv_write_t req;
  struct lconn *c;         /* back-pointer */
  size_t len, cap;
  char data[];
};

struct lconn {
  struct lrun *w;          /* back-pointer: the owning run */
  struct lconn *prev, *next; /* link in w->conns */
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_shutdown_t sreq;
  enum conn_state state;
  uint64_t t0_ms;          /* loop time the connection started, for the setup timeout */
  SSL *ssl;                /* owned, or NULL in cleartext */
  BIO *rbio, *wbio;        /* borrowed from ssl: ciphertext in / out */
  nghttp2_session *ngh;    /* owned (h2) */
  struct wreq *out;        /* owned: cleartext output being assembled, or NULL */
  size_t wq;               /* bytes in uv_write requests in flight */
  char *head;              /* owned (h1): response head being assembled, or NULL */
  size_t head_len;
  int ntun;                /* slots in tun: 1 for h1, -m for h2 */
  int nactive;             /* slots not T_FREE */
  struct ltun *tun;        /* owned: the tunnel slots */
  unsigned closing : 1;
  unsigned in_recv : 1;    /* inside nghttp2_session_mem_recv: no mem_send now */
  unsigned settings : 1;   /* h2: the proxy's SETTINGS arrived */
  unsigned goaway : 1;     /* h2: no new streams */
  unsigned shut : 1;       /* h1: uv_shutdown issued */
};

struct lrun {
  uv_loop_t loop;
  uv_thread_t tid;
  const struct load_opts *o; /* borrowed */
  SSL_CTX *ssl_ctx;        /* borrowed, may be NULL */
  int index;
  int nconns_want;         /* connections to keep open */
  int nconns;              /* connections not yet freed */
  struct lconn *conns;     /* list of connections not closing */
  uint64_t budget;         /* units of work still to start */
  int stopping;            /* no new work: bound reached, error limit, stop request */
  int finished;
  int hold_over;           /* idle: the hold time has passed */
  uint64_t t_start, t_end;
  char stop_reason[320];
  uv_timer_t deadline, tick;
  uv_async_t stop_async;
  int handles;             /* timers/async not yet closed */
  nghttp2_session_callbacks *cbs; /* owned */
  nghttp2_option *ngopt;   /* owned */
  char *rbuf;              /* owned: read buffer, used within one read callback */
  char *pbuf;              /* owned: TLS plaintext buffer */
  void (*on_done)(void *arg);
  void *done_arg;
  struct lstats st;
};

static void conn_new(struct lrun *w);
static void conn_close(struct lconn *c);
static void conn_fail(struct lconn *c, enum lstats_err kind, const char *msg);
static void conn_flush(struct lconn *c);
static void h1_pump(struct lconn *c);
static void h2_send(struct lconn *c);
static void tun_start(struct ltun *t);
static void tun_fail(struct ltun *t, enum lstats_err kind, int status, const char *msg);
static void run_cut(struct lrun *w, const char *why);
static void run_check_done(struct lrun *w);
static void on_deadline(uv_timer_t *tm);

static uint64_t now_ns(void) { return uv_hrtime(); }

/* ---- work budget ---------------------------------------------------------------------------- */

static int take_budget(struct lrun *w) {
  if (w->stopping || w->budget == 0) return 0;
  if (w->budget != UINT64_MAX) w->budget--;
  return 1;
}

/* Whether finished tunnels are replaced by new ones (rate and bulk). */
static int replaces(const struct lrun *w) {
  return (w->o->mode == MODE_RATE || w->o->mode == MODE_BULK) && !w->stopping && w->budget > 0;
}

/* ---- tunnel state --------------------------------------------------------------------------- */

static void set_active(struct ltun *t, int on) {
  struct lrun *w = t->c->w;
  if (on && !t->active) {
    t->active = 1;
    int64_t a = atomic_fetch_add_explicit(&w->st.active, 1, memory_order_relaxed) + 1;
    if (a > w->st.active_max) w->st.active_max = a;
  } else if (!on && t->active) {
    t->active = 0;
    atomic_fetch_sub_explicit(&w->st.active, 1, memory_order_relaxed);
  }
}

/* Returns |t| to T_FREE, releasing what it owns. */
static void tun_reset(struct ltun *t) {
  set_active(t, 0);
  free(t->pstatus);
  if (t->dec) {
    capsule_decoder_free(t->dec);
    free(t->dec);
  }
  struct lconn *c = t->c;
  if (t->state != T_FREE) c->nactive--;
  memset(t, 0, sizeof(*t));
  t->c = c;
}

/* Asks for more output from |t| after its phase changed. */
static void tun_kick(struct ltun *t) {
  struct lconn *c = t->c;
  if (c->closing) return;
  if (c->ngh) {
    if (t->sid > 0) nghttp2_session_resume_data(c->ngh, t->sid);
    h2_send(c);
  } else {
    h1_pump(c);
  }
}

/* The workload is done: FIN after the queued bytes. */
static void tun_finish(struct ltun *t) {
  t->ok = 1;
  t->fin_want = 1;
  tun_kick(t);
}

static void put_be64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* One echo round trip of --msg bytes. */
static void start_round_trip(struct ltun *t) {
  t->up_left = t->c->w->o->msg;
  t->expect = t->c->w->o->msg;
  t->t_rt = now_ns();
  tun_kick(t);
}

/* The tunnel is established: start the workload. */
static void work_begin(struct ltun *t) {
  struct lrun *w = t->c->w;
  const struct load_opts *o = w->o;
  switch (o->mode) {
  case MODE_RATE: start_round_trip(t); break;
  case MODE_RR:
    if (take_budget(w)) start_round_trip(t);
    else tun_finish(t);
    break;
  case MODE_IDLE:
    if (w->hold_over) start_round_trip(t);
    else t->hold = 1;
    break;
  case MODE_BULK:
    if (o->dir == DIR_BOTH) {
      t->up_left = o->size;
      t->expect = o->size;
    } else {
      put_be64(t->hdr, o->size);
      t->hdr_len = 8;
      t->up_left = o->dir == DIR_UP ? o->size : 0;
      t->expect = o->dir == DIR_UP ? 8 : o->size;
    }
    tun_kick(t);
    break;
  case MODE_UDP:
    t->last_rx_ms = uv_now(&w->loop);
    tun_kick(t);
    break;
  }
}

/* All bytes of the current phase have arrived. */
static void work_phase_done(struct ltun *t) {
  struct lrun *w = t->c->w;
  switch (w->o->mode) {
  case MODE_RATE:
  case MODE_IDLE:
    lstats_hist_add(&w->st.rtt, now_ns() - t->t_rt);
    lstats_add(&w->st.rr, 1);
    tun_finish(t);
    break;
  case MODE_RR:
    lstats_hist_add(&w->st.rtt, now_ns() - t->t_rt);
    lstats_add(&w->st.rr, 1);
    if (take_budget(w)) start_round_trip(t);
    else tun_finish(t);
    break;
  case MODE_BULK: tun_finish(t); break;
  case MODE_UDP: break;
  }
}

static void udp_on_payload(struct ltun *t, const uint8_t *p, size_t len) {
  struct lrun *w = t->c->w;
  lstats_add(&w->st.dgram_rcvd, 1);
  lstats_add(&w->st.bytes_down, len);
  if (t->inflight > 0) t->inflight--;
  t->last_rx_ms = uv_now(&w->loop);
  if (len >= 8) {
    uint64_t sent = 0;
    memcpy(&sent, p, 8);
    uint64_t now = now_ns();
    if (sent <= now) lstats_hist_add(&w->st.rtt, now - sent);
  }
}

/* udp: finish once nothing is left to send and nothing is in flight. */
static void udp_maybe_finish(struct ltun *t) {
  struct lrun *w = t->c->w;
  if (!t->fin_want && t->inflight == 0 && (w->budget == 0 || w->stopping)) tun_finish(t);
}

static void tun_on_data(struct ltun *t, const uint8_t *p, size_t len) {
  struct lrun *w = t->c->w;
  if (t->state != T_OPEN || t->failed) return;
  t->last_ms = uv_now(&w->loop);
  t->got += len;
  if (w->o->mode != MODE_UDP) lstats_add(&w->st.bytes_down, len);
  if (w->o->mode == MODE_UDP) {
    while (len > 0) {
      const uint8_t *payload;
      size_t plen;
      enum capsule_event e = capsule_decode(t->dec, &p, &len, &payload, &plen, NULL);
      if (e == CAPSULE_NEED_MORE) break;
      if (e == CAPSULE_ERROR) {
        tun_fail(t, LSTATS_ERR_PROTOCOL, 0, "malformed capsule from the proxy");
        return;
      }
      udp_on_payload(t, payload, plen);
    }
    udp_maybe_finish(t);
    tun_kick(t);
    return;
  }
  if (t->expect == 0) return; /* extra bytes: counted, ignored */
  t->expect = len >= t->expect ? 0 : t->expect - len;
  if (t->expect == 0) work_phase_done(t);
}

/* A tunnel completed its workload and both FINs: count it, then free or reuse its slot. */
static void tun_complete(struct ltun *t) {
  struct lrun *w = t->c->w;
  lstats_add(&w->st.tunnels_ok, 1);
  lstats_hist_add(&w->st.tunnel, now_ns() - t->t_start);
}

static void h1_check_done(struct ltun *t) {
  if (t->ok && t->fin_rcvd && t->fin_sent && !t->failed) {
    tun_complete(t);
    tun_reset(t);
    conn_close(t->c);
  }
}

static void tun_on_eof(struct ltun *t) {
  struct lrun *w = t->c->w;
  if (t->failed || t->fin_rcvd) return;
  t->fin_rcvd = 1;
  if (!t->ok && t->state == T_OPEN) {
    if (w->o->mode == MODE_UDP) { /* the proxy ended it: what is in flight is lost */
      udp_maybe_finish(t);
      if (t->ok) goto done;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "tunnel closed before the workload was done (%llu bytes, %llu missing)",
             (unsigned long long)t->got, (unsigned long long)t->expect);
    tun_fail(t, LSTATS_ERR_EOF, 0, msg);
    return;
  }
done:
  if (!t->c->ngh) h1_check_done(t);
}

/* The proxy answered the CONNECT. */
static void tun_opened(struct ltun *t) {
  struct lrun *w = t->c->w;
  if (t->status < 200 || t->status > 299) {
    char msg[300];
    snprintf(msg, sizeof(msg), "proxy answered %d%s%s", t->status, t->pstatus ? ": " : "",
             t->pstatus ? t->pstatus : "");
    if (t->pstatus && !w->st.proxy_status[0])
      snprintf(w->st.proxy_status, sizeof(w->st.proxy_status), "%s", t->pstatus);
    tun_fail(t, LSTATS_ERR_STATUS, t->status, msg);
    return;
  }
  lstats_hist_add(&w->st.setup, now_ns() - t->t_req);
  t->state = T_OPEN;
  t->last_ms = uv_now(&w->loop);
  set_active(t, 1);
  work_begin(t);
}

/* Counts one error; past --max-errors the run stops on the next loop turn. */
static void run_error(struct lrun *w, enum lstats_err kind, int status, const char *msg) {
  lstats_error(&w->st, kind, status, msg);
  if (lstats_get(&w->st.errors) > w->o->max_errors && !w->stopping) {
    char why[300];
    snprintf(why, sizeof(why), "more than %llu error(s); first: %.200s",
             (unsigned long long)w->o->max_errors, w->st.first_error);
    w->stopping = 1;
    snprintf(w->stop_reason, sizeof(w->stop_reason), "%s", why);
    /* Cut on the next loop turn, not here: the caller may still use |t| and its connection. */
    uv_timer_start(&w->deadline, on_deadline, 0, 0);
  }
}

/* Counts the error once; the tunnel's resources go when its stream or connection ends. */
static void tun_count_error(struct ltun *t, enum lstats_err kind, int status, const char *msg) {
  if (t->failed) return;
  t->failed = 1;
  set_active(t, 0);
  run_error(t->c->w, kind, status, msg);
}

static void tun_fail(struct ltun *t, enum lstats_err kind, int status, const char *msg) {
  struct lconn *c = t->c;
  if (t->failed) return;
  tun_count_error(t, kind, status, msg);
  if (!c->ngh) {
    conn_close(c);
    return;
  }
  if (t->sid <= 0) { /* never submitted */
    tun_reset(t);
    return;
  }
  if (t->fin_rcvd) { /* half-closed by the proxy: END_STREAM closes it gently */
    t->fin_want = 1;
    tun_kick(t);
  } else {
    nghttp2_submit_rst_stream(c->ngh, NGHTTP2_FLAG_NONE, t->sid, NGHTTP2_CANCEL);
    h2_send(c);
  }
}

/* ---- transport ------------------------------------------------------------------------------ */

static struct wreq *wreq_new(struct lconn *c, size_t cap) {
  struct wreq *r = malloc(sizeof(*r) + cap);
  if (!r) abort();
  r->c = c;
  r->len = 0;
  r->cap = cap;
  return r;
}

static void on_write(uv_write_t *req, int status) {
  struct wreq *r = (struct wreq *)req;
  struct lconn *c = r->c;
  c->wq -= r->len;
  free(r);
  if (c->closing) return;
  if (status < 0) {
    conn_fail(c, LSTATS_ERR_RESET, uv_strerror(status));
    return;
  }
  if (c->wq < OUT_HIGH / 2) {
    if (c->ngh) h2_send(c);
    else {
      if (c->tun[0].state == T_OPEN) c->tun[0].last_ms = uv_now(&c->w->loop);
      h1_pump(c);
    }
  }
}

/* Queues |len| plaintext bytes (TLS encrypts them now). */
static void xp_append(struct lconn *c, const void *data, size_t len) {
  if (c->ssl) {
    while (len > 0) {
      int n = SSL_write(c->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
      if (n <= 0) {
        conn_fail(c, LSTATS_ERR_TLS, "SSL_write failed");
        return;
      }
      data = (const char *)data + n;
      len -= (size_t)n;
    }
    return;
  }
  if (!c->out) c->out = wreq_new(c, len > CHUNK ? len : CHUNK);
  if (c->out->len + len > c->out->cap) {
    size_t cap = c->out->cap * 2;
    while (cap < c->out->len + len) cap *= 2;
    struct wreq *r = realloc(c->out, sizeof(*r) + cap);
    if (!r) abort();
    r->cap = cap;
    c->out = r;
  }
  memcpy(c->out->data + c->out->len, data, len);
  c->out->len += len;
}

static size_t xp_pending(const struct lconn *c) {
  if (c->ssl) return BIO_ctrl_pending(c->wbio);
  return c->out ? c->out->len : 0;
}

/* Hands what xp_append queued to libuv. */
static void conn_flush(struct lconn *c) {
  if (c->closing) return;
  struct wreq *r;
  if (c->ssl) {
    size_t n = BIO_ctrl_pending(c->wbio);
    if (n == 0) return;
    r = wreq_new(c, n);
    r->len = (size_t)BIO_read(c->wbio, r->data, (int)n);
  } else {
    r = c->out;
    c->out = NULL;
    if (!r || r->len == 0) {
      free(r);
      return;
    }
  }
  uv_buf_t b = uv_buf_init(r->data, (unsigned)r->len);
  int e = uv_write(&r->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (e != 0) {
    free(r);
    conn_fail(c, LSTATS_ERR_RESET, uv_strerror(e));
    return;
  }
  c->wq += r->len;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct lconn *c = req->data;
  if (c->closing) return;
  struct ltun *t = &c->tun[0];
  if (status < 0) {
    tun_fail(t, LSTATS_ERR_RESET, 0, uv_strerror(status));
    return;
  }
  t->fin_sent = 1;
  h1_check_done(t);
}

/* ---- HTTP/1.1 ------------------------------------------------------------------------------- */

static void h1_pump(struct lconn *c) {
  struct ltun *t = &c->tun[0];
  struct lrun *w = c->w;
  if (c->closing || c->state != C_READY || t->state != T_OPEN || t->failed) return;
  if (t->hdr_off < t->hdr_len) {
    xp_append(c, t->hdr + t->hdr_off, (size_t)(t->hdr_len - t->hdr_off));
    t->hdr_off = t->hdr_len;
  }
  uint64_t sent = 0;
  while (t->up_left > 0 && c->wq + xp_pending(c) < OUT_HIGH && !c->closing) {
    size_t n = t->up_left < CHUNK ? (size_t)t->up_left : CHUNK;
    xp_append(c, pattern, n);
    t->up_left -= n;
    sent += n;
  }
  if (sent) lstats_add(&w->st.bytes_up, sent);
  if (t->up_left == 0 && t->fin_want && !c->shut && !c->closing) {
    if (c->ssl) SSL_shutdown(c->ssl); /* close_notify, then FIN */
    conn_flush(c);
    if (c->closing) return;
    c->shut = 1;
    c->sreq.data = c;
    int e = uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown);
    if (e != 0) tun_fail(t, LSTATS_ERR_RESET, 0, uv_strerror(e));
    return;
  }
  conn_flush(c);
}

static void h1_send_connect(struct lconn *c) {
  const struct load_opts *o = c->w->o;
  char req[1200];
  int n = snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n", o->target,
                   o->target, o->auth_header[0] ? "Proxy-Authorization: " : "", o->auth_header,
                   o->auth_header[0] ? "\r\n" : "");
  c->tun[0].state = T_OPENING;
  c->tun[0].last_ms = uv_now(&c->w->loop);
  xp_append(c, req, (size_t)n);
  conn_flush(c);
}

/* Finds header |name| in |head| (NUL-terminated) and copies its value. */
static char *find_header(const char *head, const char *name) {
  size_t nl = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
    const char *line = p + 2;
    if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ' || *v == '\t') v++;
      size_t vl = strcspn(v, "\r\n");
      char *out = malloc(vl + 1);
      if (!out) return NULL;
      memcpy(out, v, vl);
      out[vl] = '\0';
      return out;
    }
  }
  return NULL;
}

/* Bytes from the proxy on an h1 connection: the response head, then the tunnel. */
static void h1_on_bytes(struct lconn *c, const uint8_t *p, size_t len) {
  struct ltun *t = &c->tun[0];
  if (t->state == T_OPEN) {
    tun_on_data(t, p, len);
    return;
  }
  if (t->state != T_OPENING || t->failed) return;
  if (!c->head) {
    c->head = malloc(HEAD_MAX + 1);
    if (!c->head) abort();
  }
  size_t room = HEAD_MAX - c->head_len;
  size_t k = len < room ? len : room;
  size_t old = c->head_len;
  memcpy(c->head + old, p, k);
  c->head_len += k;
  c->head[c->head_len] = '\0';
  char *end = strstr(c->head + (old > 3 ? old - 3 : 0), "\r\n\r\n");
  if (!end) {
    if (c->head_len >= HEAD_MAX) tun_fail(t, LSTATS_ERR_PROTOCOL, 0, "response head too large");
    return;
  }
  size_t head_bytes = (size_t)(end + 4 - c->head);
  int major, minor, status;
  if (sscanf(c->head, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || status < 100 ||
      status > 599) {
    tun_fail(t, LSTATS_ERR_PROTOCOL, 0, "malformed response from the proxy");
    return;
  }
  end[2] = '\0';
  t->status = status;
  if (status < 200 || status > 299) t->pstatus = find_header(c->head, "proxy-status");
  free(c->head);
  c->head = NULL;
  size_t used = head_bytes - old; /* bytes of this read that belonged to the head */
  tun_opened(t);
  if (t->state == T_OPEN && !c->closing && used < len) tun_on_data(t, p + used, len - used);
}

/* ---- HTTP/2 --------------------------------------------------------------------------------- */

static void h2_send(struct lconn *c) {
  if (c->closing || !c->ngh || c->in_recv) return;
  while (c->wq + xp_pending(c) < OUT_HIGH) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(c->ngh, &data);
    if (n < 0) {
      conn_fail(c, LSTATS_ERR_PROTOCOL, nghttp2_strerror((int)n));
      return;
    }
    if (n == 0) break;
    xp_append(c, data, (size_t)n);
    if (c->closing) return;
  }
  conn_flush(c);
  if (!c->closing && !nghttp2_session_want_read(c->ngh) && !nghttp2_session_want_write(c->ngh) &&
      c->wq == 0)
    conn_fail(c, LSTATS_ERR_PROTOCOL, "HTTP/2 session ended (GOAWAY)");
}

static ssize_t on_h2_data_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                               uint32_t *flags, nghttp2_data_source *src, void *ud) {
  struct ltun *t = src->ptr;
  struct lrun *w = t->c->w;
  size_t n = 0;
  if (t->state != T_OPEN || t->failed) {
    if (t->fin_want) goto fin; /* failed after the proxy's END_STREAM: close gently */
    return NGHTTP2_ERR_DEFERRED;
  }
  if (w->o->mode == MODE_UDP) {
    size_t msg = w->o->msg;
    size_t need = capsule_datagram_size(msg);
    uint64_t sent = 0;
    while (!t->fin_want && n + need <= length && t->inflight < (uint32_t)w->o->window &&
           take_budget(w)) {
      uint8_t payload[64];
      uint64_t ts = now_ns();
      memcpy(payload, &ts, 8);
      memcpy(payload + 8, pattern, sizeof(payload) - 8);
      /* Header for a |msg|-byte payload, then the payload itself from the pattern. */
      uint8_t tmp[16];
      size_t hl = varint_encode(0, tmp);
      hl += varint_encode(msg + 1, tmp + hl);
      tmp[hl++] = 0; /* context ID 0 */
      memcpy(buf + n, tmp, hl);
      n += hl;
      size_t first = msg < sizeof(payload) ? msg : sizeof(payload);
      memcpy(buf + n, payload, first);
      if (msg > first) memcpy(buf + n + first, pattern, msg - first);
      n += msg;
      t->inflight++;
      sent++;
    }
    if (sent) {
      lstats_add(&w->st.dgram_sent, sent);
      lstats_add(&w->st.bytes_up, sent * msg);
    }
    if (n > 0) return (ssize_t)n;
    if (t->fin_want) goto fin;
    return NGHTTP2_ERR_DEFERRED;
  }
  if (t->hdr_off < t->hdr_len) {
    size_t k = (size_t)(t->hdr_len - t->hdr_off);
    if (k > length) k = length;
    memcpy(buf, t->hdr + t->hdr_off, k);
    t->hdr_off = (uint8_t)(t->hdr_off + k);
    n += k;
  }
  if (t->up_left > 0 && n < length) {
    size_t k = length - n;
    if (k > t->up_left) k = (size_t)t->up_left;
    if (k > CHUNK) k = CHUNK;
    memcpy(buf + n, pattern, k);
    t->up_left -= k;
    n += k;
    lstats_add(&w->st.bytes_up, k);
  }
  if (t->up_left > 0 || t->hdr_off < t->hdr_len || !t->fin_want) {
    return n > 0 ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
  }
fin:
  *flags |= NGHTTP2_DATA_FLAG_EOF;
  t->fin_sent = 1;
  return (ssize_t)n;
}

static struct ltun *stream_tun(nghttp2_session *s, int32_t sid) {
  return sid > 0 ? nghttp2_session_get_stream_user_data(s, sid) : NULL;
}

static int on_h2_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *ud) {
  if (f->hd.type != NGHTTP2_HEADERS) return 0;
  struct ltun *t = stream_tun(s, f->hd.stream_id);
  if (!t || t->state != T_OPENING) return 0;
  if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
    char tmp[8] = {0};
    memcpy(tmp, value, valuelen < 7 ? valuelen : 7);
    t->status = atoi(tmp);
  } else if (namelen == 12 && memcmp(name, "proxy-status", 12) == 0 && !t->pstatus) {
    t->pstatus = malloc(valuelen + 1);
    if (t->pstatus) {
      memcpy(t->pstatus, value, valuelen);
      t->pstatus[valuelen] = '\0';
    }
  }
  return 0;
}

static void h2_start_tunnels(struct lconn *c) {
  for (int i = 0; i < c->ntun && !c->closing; i++)
    if (c->tun[i].state == T_FREE || c->tun[i].state == T_WAIT) tun_start(&c->tun[i]);
}

static int on_h2_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  struct lconn *c = ud;
  struct lrun *w = c->w;
  if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
    if (!c->settings) {
      c->settings = 1;
      if (w->o->mode == MODE_UDP) h2_start_tunnels(c);
    }
    return 0;
  }
  if (f->hd.type == NGHTTP2_GOAWAY) {
    c->goaway = 1;
    return 0;
  }
  if (f->hd.type == NGHTTP2_WINDOW_UPDATE && f->hd.stream_id == 0) {
    uint64_t now = uv_now(&w->loop);
    for (int i = 0; i < c->ntun; i++)
      if (c->tun[i].state == T_OPEN && c->tun[i].up_left > 0) c->tun[i].last_ms = now;
    return 0;
  }
  struct ltun *t = stream_tun(s, f->hd.stream_id);
  if (!t) return 0;
  if (t->state == T_OPEN) t->last_ms = uv_now(&w->loop);
  if (f->hd.type == NGHTTP2_HEADERS && t->state == T_OPENING &&
      f->headers.cat == NGHTTP2_HCAT_RESPONSE && t->status >= 200) {
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) t->fin_rcvd = 1; /* no RST for a closed stream */
    tun_opened(t);
    return 0;
  }
  if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    if (t->state == T_OPENING && !t->failed)
      tun_fail(t, LSTATS_ERR_PROTOCOL, 0, "stream ended without a final status");
    else
      tun_on_eof(t);
  }
  return 0;
}

static int on_h2_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                            size_t len, void *ud) {
  struct ltun *t = stream_tun(s, sid);
  if (t) tun_on_data(t, data, len);
  return 0;
}

static int on_h2_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code, void *ud) {
  struct lconn *c = ud;
  struct ltun *t = stream_tun(s, sid);
  if (!t) return 0;
  nghttp2_session_set_stream_user_data(s, sid, NULL);
  if (!t->failed) {
    if (error_code != NGHTTP2_NO_ERROR) {
      char msg[120];
      snprintf(msg, sizeof(msg), "stream reset by the proxy: %s", nghttp2_http2_strerror(error_code));
      tun_count_error(t, LSTATS_ERR_RESET, 0, msg);
    } else if (!t->ok || !t->fin_rcvd) {
      tun_count_error(t, t->state == T_OPEN ? LSTATS_ERR_EOF : LSTATS_ERR_PROTOCOL, 0,
                      "stream closed before the workload was done");
    } else {
      tun_complete(t);
    }
  }
  tun_reset(t);
  if (c->closing) return 0;
  if (replaces(c->w) && !c->goaway) {
    tun_start(t);
  } else if (c->nactive == 0 && !(c->w->o->mode == MODE_UDP && !c->settings)) {
    conn_close(c); /* its work is done; the loop's next turn frees it */
  }
  return 0;
}

static void h2_session_start(struct lconn *c) {
  struct lrun *w = c->w;
  if (nghttp2_session_client_new2(&c->ngh, w->cbs, c, w->ngopt) != 0) abort();
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
  };
  nghttp2_submit_settings(c->ngh, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(c->ngh, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
  if (w->o->mode != MODE_UDP) h2_start_tunnels(c);
  h2_send(c);
}

static int h2_submit(struct ltun *t) {
  struct lconn *c = t->c;
  const struct load_opts *o = c->w->o;
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
  char authority[300];
  nghttp2_nv nva[8];
  size_t k = 0;
  if (o->mode == MODE_UDP) {
    if (strchr(o->proxy_host, ':'))
      snprintf(authority, sizeof(authority), "[%s]:%d", o->proxy_host, o->proxy_port);
    else
      snprintf(authority, sizeof(authority), "%s:%d", o->proxy_host, o->proxy_port);
    nghttp2_nv a[] = {NV(":method", "CONNECT"), NV(":protocol", "connect-udp"),
                      NV(":scheme", "https"), NV(":authority", authority),
                      NV(":path", o->udp_path), NV("capsule-protocol", "?1")};
    memcpy(nva, a, sizeof(a));
    k = sizeof(a) / sizeof(a[0]);
  } else {
    nghttp2_nv a[] = {NV(":method", "CONNECT"), NV(":authority", o->target)};
    memcpy(nva, a, sizeof(a));
    k = 2;
  }
  if (o->auth_header[0]) {
    nghttp2_nv a = NV("proxy-authorization", o->auth_header);
    nva[k++] = a;
  }
#undef NV
  nghttp2_data_provider prd = {.source.ptr = t, .read_callback = on_h2_data_read};
  int32_t sid = nghttp2_submit_request(c->ngh, NULL, nva, k, &prd, t);
  if (sid < 0) return sid;
  t->sid = sid;
  return 0;
}

/* ---- tunnels and connections ---------------------------------------------------------------- */

/* Starts a tunnel in the free slot |t| if there is work for it. */
static void tun_start(struct ltun *t) {
  struct lconn *c = t->c;
  struct lrun *w = c->w;
  if (c->closing) return;
  if (t->state == T_FREE) {
    int mode_takes = w->o->mode == MODE_RATE || w->o->mode == MODE_BULK;
    if (w->stopping || (mode_takes && !take_budget(w))) return;
    t->state = T_WAIT;
    t->t_start = now_ns();
    c->nactive++;
    w->st.tunnels_started++;
    if (w->o->mode == MODE_UDP) {
      t->dec = malloc(sizeof(*t->dec));
      if (!t->dec) abort();
      capsule_decoder_init(t->dec, 0);
    }
  }
  t->last_ms = uv_now(&w->loop);
  if (!c->ngh) return; /* h1: the CONNECT goes out when the connection is ready */
  if (w->o->mode == MODE_UDP && !c->settings) return;
  t->t_req = now_ns();
  t->state = T_OPENING;
  int e = h2_submit(t);
  if (e != 0) {
    char msg[120];
    snprintf(msg, sizeof(msg), "cannot submit CONNECT: %s", nghttp2_strerror(e));
    tun_fail(t, LSTATS_ERR_PROTOCOL, 0, msg);
  }
}

static void on_conn_closed(uv_handle_t *h) {
  struct lconn *c = h->data;
  struct lrun *w = c->w;
  for (int i = 0; i < c->ntun; i++) tun_reset(&c->tun[i]);
  if (c->ngh) nghttp2_session_del(c->ngh);
  SSL_free(c->ssl);
  free(c->out);
  free(c->head);
  free(c->tun);
  free(c);
  w->nconns--;
  if (replaces(w) && w->nconns < w->nconns_want) conn_new(w);
  run_check_done(w);
}

/* Closes |c|; it is freed in the close callback, so |c| stays valid in the current stack. */
static void conn_close(struct lconn *c) {
  if (c->closing) return;
  c->closing = 1;
  if (c->prev) c->prev->next = c->next;
  else c->w->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* The connection failed: every live tunnel on it is an error (one error if none was live). */
static void conn_fail(struct lconn *c, enum lstats_err kind, const char *msg) {
  if (c->closing) return;
  int counted = 0;
  for (int i = 0; i < c->ntun; i++) {
    struct ltun *t = &c->tun[i];
    if (t->state == T_FREE || t->failed) continue;
    if (t->ok && !c->ngh) { /* its work was done; only the closing handshake broke */
      tun_complete(t);
      tun_reset(t);
      continue;
    }
    if (t->ok && t->fin_rcvd) continue;
    tun_count_error(t, kind, 0, msg);
    counted = 1;
  }
  if (!counted && !c->w->stopping && (c->state != C_READY || !c->ngh)) {
    /* A setup failure with no tunnel yet (h2): still an error, and it uses up one unit of
     * work, so a dead proxy with a high --max-errors does not mean reconnecting forever. */
    take_budget(c->w);
    run_error(c->w, kind, 0, msg);
  }
  conn_close(c);
}

static void conn_ready(struct lconn *c) {
  c->state = C_READY;
  if (c->w->o->h2) {
    h2_session_start(c);
  } else {
    h1_send_connect(c);
  }
}

static void tls_fail(struct lconn *c, const char *what) {
  char msg[256];
  unsigned long e = ERR_get_error();
  long vr = SSL_get_verify_result(c->ssl);
  if (vr != X509_V_OK)
    snprintf(msg, sizeof(msg), "%s: certificate verify failed: %s", what,
             X509_verify_cert_error_string(vr));
  else if (e)
    snprintf(msg, sizeof(msg), "%s: %s", what, ERR_reason_error_string(e));
  else
    snprintf(msg, sizeof(msg), "%s", what);
  ERR_clear_error();
  conn_fail(c, LSTATS_ERR_TLS, msg);
}

static void tls_handshake(struct lconn *c) {
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    const unsigned char *alpn = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
    int is_h2 = alen == 2 && memcmp(alpn, "h2", 2) == 0;
    if (c->w->o->h2 && !is_h2) {
      conn_flush(c);
      tls_fail(c, "the proxy did not select ALPN h2");
      return;
    }
    if (!c->w->o->h2 && is_h2) {
      tls_fail(c, "the proxy selected ALPN h2 for an http/1.1 client");
      return;
    }
    conn_ready(c);
    return;
  }
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    conn_flush(c);
    return;
  }
  tls_fail(c, "TLS handshake failed");
}

static void conn_on_plain(struct lconn *c, const uint8_t *p, size_t len) {
  if (c->ngh) {
    c->in_recv = 1;
    ssize_t n = nghttp2_session_mem_recv(c->ngh, p, len);
    c->in_recv = 0;
    if (n < 0) {
      conn_fail(c, LSTATS_ERR_PROTOCOL, nghttp2_strerror((int)n));
      return;
    }
    h2_send(c);
  } else {
    h1_on_bytes(c, p, len);
  }
}

static void conn_on_eof(struct lconn *c, enum lstats_err kind, const char *why) {
  if (!c->ngh && c->state == C_READY && c->tun[0].state == T_OPEN && kind == LSTATS_ERR_EOF) {
    tun_on_eof(&c->tun[0]);
    uv_read_stop((uv_stream_t *)&c->tcp);
    return;
  }
  conn_fail(c, kind, why);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct lconn *c = h->data;
  buf->base = c->w->rbuf;
  buf->len = RBUF_SIZE;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct lconn *c = s->data;
  if (c->closing || n == 0) return;
  if (n < 0) {
    if (n == UV_EOF) conn_on_eof(c, LSTATS_ERR_EOF, "the proxy closed the connection");
    else conn_on_eof(c, LSTATS_ERR_RESET, uv_strerror((int)n));
    return;
  }
  if (!c->ssl) {
    conn_on_plain(c, (const uint8_t *)buf->base, (size_t)n);
    return;
  }
  BIO_write(c->rbio, buf->base, (int)n);
  if (c->state == C_TLS) {
    tls_handshake(c);
    if (c->closing || c->state != C_READY) return;
  }
  for (;;) {
    int r = SSL_read(c->ssl, c->w->pbuf, RBUF_SIZE);
    if (r > 0) {
      conn_on_plain(c, (const uint8_t *)c->w->pbuf, (size_t)r);
      if (c->closing) return;
      continue;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      conn_on_eof(c, LSTATS_ERR_EOF, "the proxy closed the TLS session");
      return;
    }
    tls_fail(c, "TLS read failed");
    return;
  }
  conn_flush(c);
}

static void on_connect(uv_connect_t *req, int status) {
  struct lconn *c = req->data;
  if (c->closing) return;
  if (status < 0) {
    char msg[200];
    snprintf(msg, sizeof(msg), "connect to the proxy %.120s: %s", c->w->o->proxy_url,
             uv_strerror(status));
    conn_fail(c, LSTATS_ERR_CONNECT, msg);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (!c->ssl) {
    conn_ready(c);
    return;
  }
  c->state = C_TLS;
  tls_handshake(c);
}

static void conn_new(struct lrun *w) {
  const struct load_opts *o = w->o;
  struct lconn *c = calloc(1, sizeof(*c));
  if (!c) abort();
  c->w = w;
  c->ntun = o->h2 ? o->streams : 1;
  c->tun = calloc((size_t)c->ntun, sizeof(*c->tun));
  if (!c->tun) abort();
  for (int i = 0; i < c->ntun; i++) c->tun[i].c = c;
  uv_tcp_init(&w->loop, &c->tcp);
  c->tcp.data = c;
  c->t0_ms = uv_now(&w->loop);
  c->next = w->conns;
  if (w->conns) w->conns->prev = c;
  w->conns = c;
  w->nconns++;
  w->st.conns++;
  if (!o->h2) { /* the tunnel starts with the connection: setup latency includes TCP and TLS */
    tun_start(&c->tun[0]);
    if (c->tun[0].state == T_FREE) { /* no work left */
      conn_close(c);
      return;
    }
    c->tun[0].t_req = c->tun[0].t_start;
  }
  if (w->ssl_ctx) {
    c->ssl = SSL_new(w->ssl_ctx);
    if (!c->ssl) abort();
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_connect_state(c->ssl);
    struct in6_addr a6;
    struct in_addr a4;
    int is_ip = inet_pton(AF_INET, o->proxy_host, &a4) == 1 ||
                inet_pton(AF_INET6, o->proxy_host, &a6) == 1;
    if (!is_ip) SSL_set_tlsext_host_name(c->ssl, o->proxy_host);
    if (!o->insecure) {
      X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
      if (is_ip) X509_VERIFY_PARAM_set1_ip_asc(vp, o->proxy_host);
      else X509_VERIFY_PARAM_set1_host(vp, o->proxy_host, 0);
    }
  }
  c->creq.data = c;
  int e = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&o->proxy_addr, on_connect);
  if (e != 0) conn_fail(c, LSTATS_ERR_CONNECT, uv_strerror(e));
}

/* ---- the run -------------------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {
  struct lrun *w = h->loop->data;
  w->handles--;
}

static void run_check_done(struct lrun *w) {
  if (w->finished || w->nconns > 0) return;
  if (!w->stopping && replaces(w)) return;
  w->finished = 1;
  w->t_end = now_ns();
  uv_close((uv_handle_t *)&w->deadline, on_handle_closed);
  uv_close((uv_handle_t *)&w->tick, on_handle_closed);
  uv_close((uv_handle_t *)&w->stop_async, on_handle_closed);
}

/* Ends the run now: tunnels in progress are counted as cut, not as errors. */
static void run_cut(struct lrun *w, const char *why) {
  if (why && !w->stop_reason[0]) snprintf(w->stop_reason, sizeof(w->stop_reason), "%s", why);
  w->stopping = 1;
  struct lconn *next;
  for (struct lconn *c = w->conns; c; c = next) {
    next = c->next;
    for (int i = 0; i < c->ntun; i++) {
      struct ltun *t = &c->tun[i];
      if (t->state == T_FREE || t->failed) continue;
      if (t->ok && t->fin_rcvd) continue;
      w->st.cut++;
      w->st.dgram_unknown += t->inflight;
    }
    conn_close(c);
  }
  run_check_done(w);
}

static void on_deadline(uv_timer_t *tm) {
  struct lrun *w = tm->loop->data;
  if (w->o->mode == MODE_IDLE && !w->hold_over && !w->stopping) {
    /* The hold is over: one round trip in every open tunnel, then FIN. */
    w->hold_over = 1;
    struct lconn *next;
    for (struct lconn *c = w->conns; c; c = next) {
      next = c->next;
      for (int i = 0; i < c->ntun && !c->closing; i++) {
        struct ltun *t = &c->tun[i];
        if (t->state == T_OPEN && t->hold) {
          t->hold = 0;
          t->last_ms = uv_now(&w->loop);
          start_round_trip(t);
        }
      }
    }
    return;
  }
  run_cut(w, w->stopping ? NULL : "");
}

static void on_tick(uv_timer_t *tm) {
  struct lrun *w = tm->loop->data;
  uint64_t now = uv_now(&w->loop);
  uint64_t to = w->o->timeout_ms;
  struct lconn *next;
  for (struct lconn *c = w->conns; c; c = next) {
    next = c->next;
    if (c->state != C_READY) {
      if (now - c->t0_ms >= to) {
        conn_fail(c, LSTATS_ERR_TIMEOUT, c->state == C_CONNECTING
                                             ? "timeout connecting to the proxy"
                                             : "timeout in the TLS handshake");
      }
      continue;
    }
    for (int i = 0; i < c->ntun && !c->closing; i++) {
      struct ltun *t = &c->tun[i];
      if (t->state == T_FREE || t->failed || t->hold) continue;
      if (w->o->mode == MODE_UDP && t->state == T_OPEN && t->inflight > 0 &&
          now - t->last_rx_ms >= UDP_STALL_MS) {
        w->st.dgram_lost += t->inflight; /* presumed lost: free the window */
        t->inflight = 0;
        t->last_rx_ms = now;
        t->last_ms = now;
        udp_maybe_finish(t);
        tun_kick(t);
        continue;
      }
      if (w->o->mode == MODE_UDP && t->state == T_OPEN) {
        udp_maybe_finish(t); /* another tunnel may have taken the last of the budget */
        if (c->closing || t->failed) continue;
      }
      if (now - t->last_ms >= to) {
        char msg[160];
        snprintf(msg, sizeof(msg), "no progress for %llu ms (%s)", (unsigned long long)to,
                 t->state == T_OPEN ? "tunnel open" : "waiting for the CONNECT answer");
        tun_fail(t, LSTATS_ERR_TIMEOUT, 0, msg);
      }
    }
  }
  if (w->stopping) run_cut(w, NULL);
}

static void on_stop_async(uv_async_t *a) {
  struct lrun *w = a->loop->data;
  run_cut(w, "stopped by signal");
}

static void run_main(void *arg) {
  struct lrun *w = arg;
  w->t_start = now_ns();
  uv_update_time(&w->loop);
  const struct load_opts *o = w->o;
  uint64_t tick = o->timeout_ms / 4;
  if (tick > 100) tick = 100;
  if (tick < 10) tick = 10;
  if (o->mode == MODE_UDP && tick > 50) tick = 50;
  uv_timer_start(&w->tick, on_tick, tick, tick);
  if (o->duration_ms) uv_timer_start(&w->deadline, on_deadline, o->duration_ms, 0);
  for (int i = 0; i < w->nconns_want; i++) conn_new(w);
  run_check_done(w);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  if (!w->t_end) w->t_end = now_ns();
  if (w->on_done) w->on_done(w->done_arg);
}

/* ---- public --------------------------------------------------------------------------------- */

void lrun_global_init(void) {
  for (size_t i = 0; i < sizeof(pattern); i++) pattern[i] = (char)('A' + i % 26);
}

SSL_CTX *lrun_ssl_ctx_new(const struct load_opts *o) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* every handshake is a full one */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  static const unsigned char alpn_h2[] = "\x02h2";
  static const unsigned char alpn_h1[] = "\x08http/1.1";
  if (o->h2) SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2) - 1);
  else SSL_CTX_set_alpn_protos(ctx, alpn_h1, sizeof(alpn_h1) - 1);
  if (o->insecure) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = o->cacert[0] ? SSL_CTX_load_verify_locations(ctx, o->cacert, NULL)
                          : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
      fprintf(stderr, "h2tunnel-load: cannot load CA certificates %s\n",
              o->cacert[0] ? o->cacert : "(system store)");
      SSL_CTX_free(ctx);
      return NULL;
    }
  }
  return ctx;
}

struct lrun *lrun_new(const struct load_opts *o, SSL_CTX *ctx, int index, int conns,
                      uint64_t budget, void (*on_done)(void *arg), void *arg) {
  struct lrun *w = calloc(1, sizeof(*w));
  if (!w) abort();
  w->o = o;
  w->ssl_ctx = o->tls ? ctx : NULL;
  w->index = index;
  w->nconns_want = conns;
  w->budget = budget;
  w->on_done = on_done;
  w->done_arg = arg;
  lstats_init(&w->st);
  w->rbuf = malloc(RBUF_SIZE);
  w->pbuf = malloc(RBUF_SIZE);
  if (!w->rbuf || !w->pbuf) abort();
  uv_loop_init(&w->loop);
  w->loop.data = w;
  uv_timer_init(&w->loop, &w->deadline);
  uv_timer_init(&w->loop, &w->tick);
  uv_async_init(&w->loop, &w->stop_async, on_stop_async);
  w->handles = 3;
  nghttp2_session_callbacks_new(&w->cbs);
  nghttp2_session_callbacks_set_on_header_callback(w->cbs, on_h2_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(w->cbs, on_h2_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(w->cbs, on_h2_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(w->cbs, on_h2_stream_close);
  nghttp2_option_new(&w->ngopt);
  nghttp2_option_set_peer_max_concurrent_streams(w->ngopt, 100);
  return w;
}

int lrun_start(struct lrun *w) { return uv_thread_create(&w->tid, run_main, w); }
void lrun_stop(struct lrun *w) { uv_async_send(&w->stop_async); }
void lrun_join(struct lrun *w) { uv_thread_join(&w->tid); }
struct lstats *lrun_stats(struct lrun *w) { return &w->st; }
uint64_t lrun_t_start(const struct lrun *w) { return w->t_start; }
uint64_t lrun_t_end(const struct lrun *w) { return w->t_end; }
const char *lrun_stop_reason(const struct lrun *w) { return w->stop_reason; }

void lrun_free(struct lrun *w) {
  if (!w) return;
  uv_loop_close(&w->loop);
  nghttp2_session_callbacks_del(w->cbs);
  nghttp2_option_del(w->ngopt);
  free(w->rbuf);
  free(w->pbuf);
  free(w);
}
