/* Loopback origins: see origin.h for the protocols. */
#include "load/origin.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "load/opts.h"

#define ORIGIN_RBUF (256 * 1024)
#define ORIGIN_HIGH (4u * 1024 * 1024) /* stop reading / sending above this much queued */
#define ORIGIN_LOW (1u * 1024 * 1024)

/* One thread: one loop, one listening socket. */
struct origin_thr {
  uv_loop_t loop;
  uv_thread_t tid;
  enum opts_origin kind;
  int fd;                  /* owned until the handle below opens it */
  uv_tcp_t listener;
  uv_udp_t udp;
  uv_async_t stop;
  char *rbuf;              /* owned: shared read buffer (source, sink, udp) */
  int close_first;         /* --close-first */
  uint64_t msg;            /* echo with --close-first: bytes to echo before FIN */
};

/* One accepted TCP connection. Freed in its close callback. */
struct oconn {
  uv_tcp_t tcp;
  struct origin_thr *th;   /* back-pointer */
  uint8_t hdr[8];
  size_t hdr_len;
  uint64_t want;           /* source: bytes still to send; sink: bytes still expected */
  uint64_t got;            /* sink: bytes received; echo: bytes echoed */
  unsigned eof : 1;        /* the client sent FIN */
  unsigned shut : 1;       /* our FIN is queued */
  unsigned paused : 1;     /* echo: reading stopped for backpressure */
  unsigned closing : 1;
  unsigned answered : 1;   /* sink: count sent */
  unsigned done : 1;       /* --close-first: our part is done, FIN once the writes are out */
  unsigned writes;         /* uv_write requests in flight */
};

struct owrite {
  uv_write_t req;
  struct oconn *oc;        /* back-pointer */
  char *heap;              /* owned: echo data, or NULL */
  uint8_t small[8];
};

static char pattern[ORIGIN_RBUF]; /* source payload: constant, shared by every write */

static void on_closed(uv_handle_t *h) { free(h->data); }

static void oc_close(struct oconn *oc) {
  if (oc->closing) return;
  oc->closing = 1;
  uv_close((uv_handle_t *)&oc->tcp, on_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct oconn *oc = req->data;
  free(req);
  oc_close(oc);
}

static void oc_shutdown(struct oconn *oc) {
  if (oc->shut || oc->closing) return;
  oc->shut = 1;
  uv_shutdown_t *req = malloc(sizeof(*req));
  if (!req) {
    oc_close(oc);
    return;
  }
  req->data = oc;
  if (uv_shutdown(req, (uv_stream_t *)&oc->tcp, on_shutdown) != 0) {
    free(req);
    oc_close(oc);
  }
}

static void source_pump(struct oconn *oc);
static void on_alloc_echo(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read_echo(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status) {
  struct owrite *wr = (struct owrite *)req;
  struct oconn *oc = wr->oc;
  free(wr->heap);
  free(wr);
  oc->writes--;
  if (oc->closing) return;
  if (status < 0) {
    oc_close(oc);
    return;
  }
  size_t q = uv_stream_get_write_queue_size((uv_stream_t *)&oc->tcp);
  switch (oc->th->kind) {
  case ORIGIN_ECHO:
    if (oc->paused && q < ORIGIN_LOW) {
      oc->paused = 0;
      uv_read_start((uv_stream_t *)&oc->tcp, on_alloc_echo, on_read_echo);
    }
    break;
  case ORIGIN_SOURCE: source_pump(oc); break;
  default: break;
  }
  if (oc->th->close_first && oc->th->kind == ORIGIN_SOURCE && oc->hdr_len == 8 && oc->want == 0)
    oc->done = 1;
  if ((oc->eof || oc->done) && oc->writes == 0 &&
      !(oc->th->kind == ORIGIN_SOURCE && oc->want > 0))
    oc_shutdown(oc);
}

static int oc_write(struct oconn *oc, char *heap, const char *data, size_t len) {
  struct owrite *wr = calloc(1, sizeof(*wr));
  if (!wr) {
    free(heap);
    return -ENOMEM;
  }
  wr->oc = oc;
  wr->heap = heap;
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  if (len <= sizeof(wr->small) && !heap) {
    memcpy(wr->small, data, len);
    b.base = (char *)wr->small;
  }
  int r = uv_write(&wr->req, (uv_stream_t *)&oc->tcp, &b, 1, on_write);
  if (r != 0) {
    free(heap);
    free(wr);
    return r;
  }
  oc->writes++;
  return 0;
}

static void source_pump(struct oconn *oc) {
  while (oc->want > 0 && !oc->closing &&
         uv_stream_get_write_queue_size((uv_stream_t *)&oc->tcp) < ORIGIN_HIGH) {
    size_t n = oc->want < sizeof(pattern) ? (size_t)oc->want : sizeof(pattern);
    if (oc_write(oc, NULL, pattern, n) != 0) {
      oc_close(oc);
      return;
    }
    oc->want -= n;
  }
}

static uint64_t be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static void sink_answer(struct oconn *oc) {
  if (oc->answered) return;
  oc->answered = 1;
  if (oc->th->close_first) oc->done = 1;
  uint8_t b[8];
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(oc->got >> (56 - 8 * i));
  if (oc_write(oc, NULL, (const char *)b, 8) != 0) oc_close(oc);
}

static void on_alloc_echo(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  buf->base = malloc(65536);
  buf->len = buf->base ? 65536 : 0;
}

static void on_alloc_shared(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct origin_thr *th = h->loop->data;
  buf->base = th->rbuf;
  buf->len = ORIGIN_RBUF;
}

static void on_eof(struct oconn *oc) {
  oc->eof = 1;
  uv_read_stop((uv_stream_t *)&oc->tcp);
  if (oc->th->kind == ORIGIN_SINK) sink_answer(oc);
  if (oc->writes == 0 && !(oc->th->kind == ORIGIN_SOURCE && oc->want > 0)) oc_shutdown(oc);
}

static void on_read_echo(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct oconn *oc = s->data;
  if (n <= 0) {
    free(buf->base);
    if (n == UV_EOF) on_eof(oc);
    else if (n < 0) oc_close(oc);
    return;
  }
  if (oc_write(oc, buf->base, buf->base, (size_t)n) != 0) {
    oc_close(oc);
    return;
  }
  oc->got += (uint64_t)n;
  if (oc->th->close_first && oc->got >= oc->th->msg) oc->done = 1;
  if (uv_stream_get_write_queue_size(s) > ORIGIN_HIGH) {
    oc->paused = 1;
    uv_read_stop(s);
  }
}

static void on_read_shared(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct oconn *oc = s->data;
  if (n < 0) {
    if (n == UV_EOF) on_eof(oc);
    else oc_close(oc);
    return;
  }
  const uint8_t *p = (const uint8_t *)buf->base;
  size_t len = (size_t)n;
  if (oc->hdr_len < 8) {
    size_t k = 8 - oc->hdr_len < len ? 8 - oc->hdr_len : len;
    memcpy(oc->hdr + oc->hdr_len, p, k);
    oc->hdr_len += k;
    p += k;
    len -= k;
    if (oc->hdr_len < 8) return;
    oc->want = be64(oc->hdr);
    if (oc->th->kind == ORIGIN_SOURCE) source_pump(oc);
  }
  if (oc->th->kind == ORIGIN_SINK && !oc->answered) {
    oc->got += len;
    if (oc->got >= oc->want) sink_answer(oc);
  }
}

static void on_connection(uv_stream_t *server, int status) {
  struct origin_thr *th = server->loop->data;
  if (status < 0) return;
  struct oconn *oc = calloc(1, sizeof(*oc));
  if (!oc) return;
  oc->th = th;
  uv_tcp_init(&th->loop, &oc->tcp);
  oc->tcp.data = oc;
  if (uv_accept(server, (uv_stream_t *)&oc->tcp) != 0) {
    oc_close(oc);
    return;
  }
  uv_tcp_nodelay(&oc->tcp, 1);
  if (th->kind == ORIGIN_ECHO)
    uv_read_start((uv_stream_t *)&oc->tcp, on_alloc_echo, on_read_echo);
  else
    uv_read_start((uv_stream_t *)&oc->tcp, on_alloc_shared, on_read_shared);
}

static void on_udp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct origin_thr *th = h->loop->data;
  buf->base = th->rbuf;
  buf->len = 65536;
}

static void on_udp_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *buf, const struct sockaddr *addr,
                        unsigned flags) {
  if (n <= 0 || !addr) return;
  uv_buf_t b = uv_buf_init(buf->base, (unsigned)n);
  (void)uv_udp_try_send(u, &b, 1, addr); /* a full socket buffer drops it, as UDP would */
}

/* Accepted connections carry their oconn in data; the loop's own handles carry NULL. */
static void close_any(uv_handle_t *h, void *arg) {
  if (uv_is_closing(h)) return;
  if (h->data) oc_close(h->data);
  else uv_close(h, NULL);
}

static void on_stop(uv_async_t *a) {
  struct origin_thr *th = a->loop->data;
  uv_walk(&th->loop, close_any, &th->listener);
}

/* A socket bound to |sa| with SO_REUSEPORT. Returns the fd or a negative errno. */
static int bind_socket(const struct sockaddr *sa, socklen_t salen, int udp) {
  int fd = socket(sa->sa_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (udp) {
    int sz = 4 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
  }
  if (bind(fd, sa, salen) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

static int thr_start(struct origin_thr *th) {
  uv_loop_init(&th->loop);
  th->loop.data = th;
  uv_async_init(&th->loop, &th->stop, on_stop);
  th->stop.data = NULL;
  int r;
  if (th->kind == ORIGIN_UDP_ECHO) {
    uv_udp_init(&th->loop, &th->udp);
    th->udp.data = NULL;
    r = uv_udp_open(&th->udp, th->fd);
    if (r == 0) r = uv_udp_recv_start(&th->udp, on_udp_alloc, on_udp_recv);
  } else {
    uv_tcp_init(&th->loop, &th->listener);
    th->listener.data = NULL;
    r = uv_tcp_open(&th->listener, th->fd);
    if (r == 0) r = uv_listen((uv_stream_t *)&th->listener, 4096, on_connection);
  }
  th->fd = -1;
  return r;
}

static void thr_main(void *arg) {
  struct origin_thr *th = arg;
  uv_run(&th->loop, UV_RUN_DEFAULT);
}

static struct origin_thr *g_thr;
static int g_nthr;

static void on_signal(uv_signal_t *s, int signum) {
  for (int i = 1; i < g_nthr; i++) uv_async_send(&g_thr[i].stop);
  on_stop(&g_thr[0].stop);
}

static const char *kind_name(enum opts_origin k) {
  switch (k) {
  case ORIGIN_ECHO: return "echo";
  case ORIGIN_SINK: return "sink";
  case ORIGIN_SOURCE: return "source";
  case ORIGIN_UDP_ECHO: return "udp-echo";
  default: return "?";
  }
}

int origin_run(const struct load_opts *o) {
  char host[256];
  int port;
  if (opts_hostport(o->listen, host, sizeof(host), &port) != 0) {
    fprintf(stderr, "h2tunnel-load: bad --listen %s\n", o->listen);
    return -EINVAL;
  }
  int udp = o->origin == ORIGIN_UDP_ECHO;
  struct addrinfo hints = {.ai_socktype = udp ? SOCK_DGRAM : SOCK_STREAM,
                           .ai_flags = AI_NUMERICHOST | AI_PASSIVE},
                  *res = NULL;
  char ps[8];
  snprintf(ps, sizeof(ps), "%d", port);
  if (getaddrinfo(host, ps, &hints, &res) != 0 || !res) {
    fprintf(stderr, "h2tunnel-load: --listen needs a numeric address: %s\n", o->listen);
    return -EINVAL;
  }
  struct sockaddr_storage ss;
  socklen_t sslen = res->ai_addrlen;
  memcpy(&ss, res->ai_addr, sslen);
  freeaddrinfo(res);
  for (size_t i = 0; i < sizeof(pattern); i++) pattern[i] = (char)('a' + i % 26);

  g_nthr = o->threads;
  g_thr = calloc((size_t)g_nthr, sizeof(*g_thr));
  if (!g_thr) return -ENOMEM;
  int r = 0;
  for (int i = 0; i < g_nthr; i++) {
    struct origin_thr *th = &g_thr[i];
    th->kind = o->origin;
    th->close_first = o->close_first;
    th->msg = o->msg ? o->msg : 1;
    th->rbuf = malloc(ORIGIN_RBUF);
    int fd = bind_socket((struct sockaddr *)&ss, sslen, udp);
    if (fd < 0 || !th->rbuf) {
      r = fd < 0 ? fd : -ENOMEM;
      fprintf(stderr, "h2tunnel-load: cannot bind %s: %s\n", o->listen, strerror(-r));
      free(th->rbuf);
      th->rbuf = NULL;
      if (fd >= 0) close(fd);
      g_nthr = i; /* the ones before are bound but their loops are not running */
      break;
    }
    if (i == 0) { /* port 0: the others reuse the port the kernel picked */
      getsockname(fd, (struct sockaddr *)&ss, &sslen);
    }
    th->fd = fd;
    if ((r = thr_start(th)) != 0) {
      fprintf(stderr, "h2tunnel-load: cannot listen on %s: %s\n", o->listen, uv_strerror(r));
      g_nthr = i + 1;
      break;
    }
  }
  if (r == 0) {
    char addr[64];
    int p;
    if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, addr, sizeof(addr));
      p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
      fprintf(stderr, "origin %s listening on [%s]:%d\n", kind_name(o->origin), addr, p);
    } else {
      uv_ip4_name((struct sockaddr_in *)&ss, addr, sizeof(addr));
      p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
      fprintf(stderr, "origin %s listening on %s:%d\n", kind_name(o->origin), addr, p);
    }
    fflush(stderr);
    for (int i = 1; i < g_nthr; i++) uv_thread_create(&g_thr[i].tid, thr_main, &g_thr[i]);
    uv_signal_t sig_int, sig_term;
    uv_signal_init(&g_thr[0].loop, &sig_int);
    uv_signal_init(&g_thr[0].loop, &sig_term);
    sig_int.data = sig_term.data = NULL;
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_run(&g_thr[0].loop, UV_RUN_DEFAULT);
    for (int i = 1; i < g_nthr; i++) uv_thread_join(&g_thr[i].tid);
  } else {
    for (int i = 0; i < g_nthr; i++) on_stop(&g_thr[i].stop);
    for (int i = 0; i < g_nthr; i++) uv_run(&g_thr[i].loop, UV_RUN_DEFAULT);
  }
  for (int i = 0; i < g_nthr; i++) {
    uv_loop_close(&g_thr[i].loop);
    free(g_thr[i].rbuf);
  }
  free(g_thr);
  return r;
}
