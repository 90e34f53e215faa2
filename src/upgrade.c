/* accept4(2), struct ucred */
#define _GNU_SOURCE
#include "src/upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "src/log.h"
#include "src/net.h"
#include "src/util.h"

#define UPGRADE_MAGIC 0x55543248u /* "H2TU" */
#define UPGRADE_VERSION 1u
#define UPGRADE_FDS_PER_MSG 64
/* A peer that stops answering mid-exchange (stopped, swapping) must not hang the other: the new
 * process gives up and exits, the old one keeps serving. */
#define UPGRADE_IO_TIMEOUT_S 10

enum upgrade_kind {
  UPGRADE_FDS = 1,   /* old -> new: listening sockets in SCM_RIGHTS; |last| on the final one */
  UPGRADE_READY = 2, /* new -> old: serving; stop */
};

struct upgrade_msg {
  uint32_t magic, version, kind, nfds, last;
  int32_t pid;
};

static int set_timeouts(int fd) {
  struct timeval tv = {.tv_sec = UPGRADE_IO_TIMEOUT_S};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) return -errno;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) return -errno;
  return 0;
}

/* Only this user (or root) may take our sockets or hand us theirs. */
static int peer_allowed(int fd, pid_t *pid) {
  struct ucred cr;
  socklen_t len = sizeof(cr);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) return 0;
  *pid = cr.pid;
  return cr.uid == geteuid() || cr.uid == 0;
}

static int path_fits(const char *path) {
  struct sockaddr_un un;
  return strlen(path) + 12 < sizeof(un.sun_path); /* room for the ".PID" of the bind beside it */
}

/* ---- the new process ------------------------------------------------------------------------- */

int upgrade_take(const char *path, struct upgrade_take *t) {
  memset(t, 0, sizeof(*t));
  t->conn = -1;
  if (!path_fits(path)) {
    log_error("upgrade-socket %s: path too long for a unix socket", path);
    return -ENAMETOOLONG;
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
  if (connect(fd, (struct sockaddr *)&un, sizeof(un)) != 0) {
    int e = errno;
    close(fd);
    if (e == ENOENT || e == ECONNREFUSED) return 0; /* no process running there: bind our own */
    log_error("upgrade-socket %s: %s", path, strerror(e));
    return -e;
  }
  int r = set_timeouts(fd);
  if (r == 0 && !peer_allowed(fd, &t->peer)) r = -EPERM;
  t->conn = fd;
  int cap = 0;
  for (int last = 0; r == 0 && !last;) {
    struct upgrade_msg m;
    memset(&m, 0, sizeof(m));
    union {
      char buf[CMSG_SPACE(UPGRADE_FDS_PER_MSG * sizeof(int))];
      struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
    ssize_t got = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    if (got < 0) {
      r = errno == EAGAIN ? -ETIMEDOUT : -errno;
      break;
    }
    /* Whatever arrived is ours to close, also in a message we then refuse. */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      if (t->n + k > cap) {
        cap = (t->n + k) * 2;
        t->fds = xrealloc(t->fds, (size_t)cap * sizeof(int));
      }
      memcpy(t->fds + t->n, CMSG_DATA(c), (size_t)k * sizeof(int));
      t->n += k;
    }
    if (got != (ssize_t)sizeof(m) || m.magic != UPGRADE_MAGIC || m.version != UPGRADE_VERSION ||
        m.kind != UPGRADE_FDS || (mh.msg_flags & MSG_CTRUNC))
      r = -EPROTO; /* also EOF: the old process refused us or went away */
    last = (int)m.last;
  }
  if (r) {
    log_error("upgrade-socket %s: taking the listening sockets from pid %d failed: %s (it keeps serving)", path,
              (int)t->peer, r == -EPERM ? "it runs as another user" : strerror(-r));
    upgrade_release(t);
    return r;
  }
  log_info("upgrade-socket %s: took %d listening socket(s) from pid %d", path, t->n, (int)t->peer);
  return 0;
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family) return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
  }
  return 0;
}

/* The config listener |fd| listens for, or -1 (not a listening TCP socket, or no such address). */
static int listener_of(int fd, const struct config *cfg) {
  int v = 0;
  socklen_t vl = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) != 0 || !v) return -1;
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
  for (int i = 0; i < cfg->nlisteners; i++)
    if (same_addr(&ss, &cfg->listeners[i].addr)) return i;
  return -1;
}

int upgrade_assign(struct upgrade_take *t, const struct config *cfg, int nworkers, struct worker_adopt *adopt) {
  int nl = cfg->nlisteners;
  memset(adopt, 0, (size_t)nworkers * (size_t)nl * sizeof(*adopt));
  int *owner = xcalloc((size_t)(t->n ? t->n : 1), sizeof(int));
  int count[CONFIG_MAX_LISTENERS] = {0};
  for (int k = 0; k < t->n; k++) {
    owner[k] = listener_of(t->fds[k], cfg);
    if (owner[k] >= 0) count[owner[k]]++;
  }
  /* Worker w gets every nworkers-th socket of each address; one without any binds its own. */
  for (int w = 0; w < nworkers; w++) {
    int slots = 0;
    for (int i = 0; i < nl; i++) {
      int share = count[i] / nworkers + (w < count[i] % nworkers);
      slots += share ? share : 1;
    }
    if (slots > WORKER_MAX_LISTENERS) {
      log_error("upgrade: the old process has more listening sockets than %d worker(s) can hold (%d each); start "
                "this one with more --workers", nworkers, WORKER_MAX_LISTENERS);
      free(owner);
      return -ENOSPC;
    }
  }
  int seen[CONFIG_MAX_LISTENERS] = {0};
  for (int k = 0; k < t->n; k++) {
    int i = owner[k];
    if (i < 0) {
      struct sockaddr_storage ss;
      socklen_t len = sizeof(ss);
      char name[80] = "?";
      memset(&ss, 0, sizeof(ss));
      if (getsockname(t->fds[k], (struct sockaddr *)&ss, &len) == 0) net_format_addr((struct sockaddr *)&ss, name, sizeof(name));
      log_info("upgrade: no listener on %s any more: its socket is closed", name);
      close(t->fds[k]);
    } else {
      struct worker_adopt *a = &adopt[(seen[i] % nworkers) * nl + i];
      seen[i]++;
      a->fds[a->n++] = t->fds[k];
    }
    t->fds[k] = -1;
  }
  free(owner);
  return 0;
}

void upgrade_adopt_close(struct worker_adopt *adopt, int from, int nworkers, int nlisteners) {
  for (int w = from; w < nworkers; w++)
    for (int i = 0; i < nlisteners; i++) {
      struct worker_adopt *a = &adopt[w * nlisteners + i];
      for (int k = 0; k < a->n; k++) close(a->fds[k]);
      a->n = 0;
    }
}

void upgrade_ready(struct upgrade_take *t) {
  if (t->conn < 0) return;
  struct upgrade_msg m = {.magic = UPGRADE_MAGIC, .version = UPGRADE_VERSION, .kind = UPGRADE_READY, .pid = getpid()};
  if (send(t->conn, &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m))
    log_error("upgrade: telling pid %d to stop failed: %s (stop it with SIGTERM)", (int)t->peer, strerror(errno));
  else
    log_info("upgrade: serving; pid %d told to stop", (int)t->peer);
}

void upgrade_release(struct upgrade_take *t) {
  if (t->conn >= 0) close(t->conn);
  t->conn = -1;
  for (int k = 0; k < t->n; k++)
    if (t->fds[k] >= 0) close(t->fds[k]);
  free(t->fds);
  t->fds = NULL;
  t->n = 0;
}

/* ---- the old process --------------------------------------------------------------------------- */

struct upgrade_server {
  uv_loop_t *loop;
  uv_poll_t lpoll;                   /* the listening unix socket */
  int lfd;                           /* owned */
  uv_poll_t cpoll;                   /* a successor's connection, waiting for READY */
  int cfd;                           /* owned; -1: none */
  pid_t cpid;
  int handles;                       /* open libuv handles; |s| is freed when closing and 0 */
  int closing;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  dev_t dev;                         /* the file bound at |path|: removed at the end only if */
  ino_t ino;                         /* a successor has not put its own there */
  const struct worker *workers;      /* borrowed */
  int nworkers;
  void (*on_ready)(void *arg, pid_t pid);
  void *arg;
};

static void on_handle_closed(uv_handle_t *h) {
  struct upgrade_server *s = h->data;
  if (--s->handles == 0 && s->closing) free(s);
}

static void client_close(struct upgrade_server *s) {
  if (s->cfd < 0) return;
  uv_close((uv_handle_t *)&s->cpoll, on_handle_closed); /* stops the poll at once */
  close(s->cfd);
  s->cfd = -1;
}

static void on_client_readable(uv_poll_t *h, int status, int events) {
  struct upgrade_server *s = h->data;
  (void)events;
  struct upgrade_msg m;
  ssize_t got = status < 0 ? -1 : recv(s->cfd, &m, sizeof(m), MSG_DONTWAIT);
  if (got < 0 && (errno == EAGAIN || errno == EINTR) && status >= 0) return;
  pid_t pid = s->cpid;
  client_close(s);
  if (got == (ssize_t)sizeof(m) && m.magic == UPGRADE_MAGIC && m.version == UPGRADE_VERSION && m.kind == UPGRADE_READY) {
    log_info("upgrade: pid %d serves on our listening sockets now", (int)pid);
    s->on_ready(s->arg, pid); /* may close |s|: nothing after this */
    return;
  }
  log_warn("upgrade: pid %d took our listening sockets but ended without starting: still serving", (int)pid);
}

/* Sends every listening socket of every worker, |last| on the final message. Returns how many. */
static int send_listeners(struct upgrade_server *s, int fd) {
  int total = 0;
  for (int w = 0; w < s->nworkers; w++) total += s->workers[w].nlisteners;
  int *all = xcalloc((size_t)(total ? total : 1), sizeof(int));
  int n = 0;
  for (int w = 0; w < s->nworkers; w++)
    for (int k = 0; k < s->workers[w].nlisteners; k++)
      if (s->workers[w].listeners[k].fd >= 0) all[n++] = s->workers[w].listeners[k].fd;
  int r = n;
  for (int off = 0; off < n || off == 0; off += UPGRADE_FDS_PER_MSG) {
    int k = n - off < UPGRADE_FDS_PER_MSG ? n - off : UPGRADE_FDS_PER_MSG;
    struct upgrade_msg m = {.magic = UPGRADE_MAGIC,
                            .version = UPGRADE_VERSION,
                            .kind = UPGRADE_FDS,
                            .nfds = (uint32_t)k,
                            .last = off + k == n,
                            .pid = getpid()};
    union {
      char buf[CMSG_SPACE(UPGRADE_FDS_PER_MSG * sizeof(int))];
      struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (k) {
      mh.msg_control = ctl.buf;
      mh.msg_controllen = CMSG_SPACE((size_t)k * sizeof(int));
      struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN((size_t)k * sizeof(int));
      memcpy(CMSG_DATA(c), all + off, (size_t)k * sizeof(int));
    }
    if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(m)) {
      r = errno == EAGAIN ? -ETIMEDOUT : -errno;
      break;
    }
    if (m.last) break;
  }
  free(all);
  return r;
}

static void on_server_readable(uv_poll_t *h, int status, int events) {
  struct upgrade_server *s = h->data;
  (void)events;
  if (status < 0) return;
  int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC); /* blocking, with timeouts: a short exchange */
  if (fd < 0) return;
  pid_t pid = 0;
  if (!peer_allowed(fd, &pid)) {
    log_warn("upgrade-socket %s: pid %d runs as another user: refused", s->path, (int)pid);
    close(fd);
    return;
  }
  if (s->cfd >= 0) {
    log_warn("upgrade-socket %s: pid %d refused: pid %d is taking over already", s->path, (int)pid, (int)s->cpid);
    close(fd);
    return;
  }
  int r = set_timeouts(fd);
  if (r == 0) r = send_listeners(s, fd);
  if (r < 0) {
    log_warn("upgrade-socket %s: handing the listening sockets to pid %d failed: %s (still serving)", s->path,
             (int)pid, strerror(-r));
    close(fd);
    return;
  }
  log_info("upgrade-socket %s: %d listening socket(s) handed to pid %d; serving until it is ready", s->path, r,
           (int)pid);
  s->cfd = fd;
  s->cpid = pid;
  uv_poll_init_socket(s->loop, &s->cpoll, fd);
  s->cpoll.data = s;
  s->handles++;
  uv_poll_start(&s->cpoll, UV_READABLE | UV_DISCONNECT, on_client_readable);
}

struct upgrade_server *upgrade_server_start(uv_loop_t *loop, const char *path, const struct worker *workers,
                                            int nworkers, void (*on_ready)(void *arg, pid_t pid), void *arg) {
  if (!path_fits(path)) {
    log_error("upgrade-socket %s: path too long for a unix socket", path);
    return NULL;
  }
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  snprintf(un.sun_path, sizeof(un.sun_path), "%s.%d", path, (int)getpid());
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    log_error("upgrade-socket %s: %s", path, strerror(errno));
    return NULL;
  }
  unlink(un.sun_path);
  struct stat st;
  /* Bound beside the path and renamed over it: a process serving there now keeps its own socket
   * until it stops, and nobody ever finds no file. The peer's uid is checked as well. */
  if (bind(fd, (struct sockaddr *)&un, sizeof(un)) != 0 || chmod(un.sun_path, 0600) != 0 || listen(fd, 4) != 0 ||
      rename(un.sun_path, path) != 0 || stat(path, &st) != 0) {
    log_error("upgrade-socket %s: %s", path, strerror(errno));
    unlink(un.sun_path);
    close(fd);
    return NULL;
  }
  struct upgrade_server *s = xcalloc(1, sizeof(*s));
  s->loop = loop;
  s->lfd = fd;
  s->cfd = -1;
  snprintf(s->path, sizeof(s->path), "%s", path);
  s->dev = st.st_dev;
  s->ino = st.st_ino;
  s->workers = workers;
  s->nworkers = nworkers;
  s->on_ready = on_ready;
  s->arg = arg;
  CHECK(uv_poll_init_socket(loop, &s->lpoll, fd) == 0);
  s->lpoll.data = s;
  s->handles = 1;
  CHECK(uv_poll_start(&s->lpoll, UV_READABLE, on_server_readable) == 0);
  return s;
}

void upgrade_server_close(struct upgrade_server *s) {
  if (!s || s->closing) return;
  s->closing = 1;
  struct stat st;
  if (stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino) unlink(s->path);
  client_close(s);
  uv_close((uv_handle_t *)&s->lpoll, on_handle_closed);
  close(s->lfd);
  s->lfd = -1;
}
