/* h2tunnel-load command line parsing and --help. */
#include "load/opts.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static const char usage_text[] =
    "Usage: h2tunnel-load [OPTIONS]                     (load generator)\n"
    "       h2tunnel-load --origin KIND --listen ADDR:PORT [-t N]   (loopback origin)\n"
    "\n"
    "Opens tunnels through a CONNECT proxy and measures them. Prints a progress line to stderr\n"
    "every --progress seconds, a human summary to stderr and exactly one JSON line to stdout.\n"
    "Exit status: 0 success, 1 more errors than --max-errors (default 0), 2 usage error.\n"
    "\n"
    "Proxy:\n"
    "  --proxy URL          http://H:P   HTTP/1.1 CONNECT in cleartext (default http://127.0.0.1:8080)\n"
    "                       https://H:P  TLS, ALPN http/1.1 (with --h2: ALPN h2)\n"
    "                       h2://H:P     TLS, ALPN h2\n"
    "                       h2c://H:P    cleartext HTTP/2 with prior knowledge\n"
    "                       user:pass@ in the URL is the same as --proxy-user\n"
    "  --h2                 use HTTP/2 on an https:// proxy\n"
    "  --proxy-user U:P     send Proxy-Authorization: Basic\n"
    "  --cacert FILE        CA bundle to verify the proxy certificate (default: system store)\n"
    "  --insecure           do not verify the proxy certificate\n"
    "\n"
    "Workload:\n"
    "  --target HOST:PORT   the tunnel target, normally a loopback origin (default 127.0.0.1:9000)\n"
    "  --mode MODE          rate  open a tunnel, one --msg echo round trip, FIN, wait for the\n"
    "                             origin's FIN; tunnels/s and setup latency (target: echo)\n"
    "                       bulk  move --size bytes per tunnel: down (target: source origin),\n"
    "                             up (target: sink origin), both (target: echo origin); MB/s\n"
    "                       rr    -c x -m long-lived tunnels doing --msg echo round trips back\n"
    "                             to back; round trips/s and latency (target: echo)\n"
    "                       idle  open -c x -m tunnels, hold them for -d, then one echo round\n"
    "                             trip each and close (target: echo)\n"
    "                       udp   connect-udp over h2 (RFC 9298): datagrams of --msg bytes,\n"
    "                             --window in flight per tunnel; datagrams/s, loss, RTT\n"
    "                             (target: udp-echo origin)\n"
    "                       (default rate)\n"
    "  -c N                 connections (h1: concurrent tunnels) (default 1)\n"
    "  -m N                 concurrent CONNECT streams per h2 connection (default 1)\n"
    "  -t N                 threads, each with its own event loop (default 1)\n"
    "  -n COUNT             stop after COUNT tunnels (rate, bulk), round trips (rr) or\n"
    "                       datagrams (udp); idle ignores it\n"
    "  -d DURATION          stop after DURATION (\"10\", \"1.5s\", \"250ms\", \"2m\"); idle: hold time.\n"
    "                       Whichever of -n and -d comes first ends the run; with neither, -d 10s\n"
    "  --size BYTES         bulk bytes per tunnel and direction (\"64k\", \"8m\", \"1g\") (default 64m)\n"
    "  --direction DIR      bulk: down, up or both (default down)\n"
    "  --msg BYTES          bytes per echo round trip / UDP payload (default 64; udp: >= 16)\n"
    "  --window N           udp: datagrams in flight per tunnel (default 32)\n"
    "  --udp-template T     connect-udp path template\n"
    "                       (default /.well-known/masque/udp/{target_host}/{target_port}/)\n"
    "  --timeout DURATION   a tunnel (or connection setup) with no progress for this long is a\n"
    "                       timeout error (default 10s)\n"
    "  --max-errors N       errors tolerated; one more ends the run and exits 1 (default 0)\n"
    "\n"
    "Output:\n"
    "  --progress SECS      progress line interval, 0 = off (default 1)\n"
    "  --json               only the JSON line (no progress, no summary)\n"
    "  --quiet              no progress line\n"
    "\n"
    "Origins (run until SIGINT/SIGTERM; print \"listening on ADDR:PORT\" to stderr when ready):\n"
    "  --origin KIND        echo      reflect bytes; on EOF, FIN after the last byte\n"
    "                       source    read an 8-byte big-endian N, send N bytes, then wait for\n"
    "                                 the client's FIN and close\n"
    "                       sink      read an 8-byte big-endian N, read N bytes, answer with the\n"
    "                                 8-byte count received, then close after the client's FIN\n"
    "                       udp-echo  reflect each datagram\n"
    "  --listen ADDR:PORT   where the origin listens (port 0: any; the line tells which)\n"
    "  --close-first        the origin sends FIN as soon as its part is done instead of after\n"
    "                       the client's: echo after --msg bytes, source after N bytes, sink\n"
    "                       after its answer (for proxies that do not forward a half-close)\n"
    "\n"
    "  --help, --version\n";

const char *opts_mode_name(enum opts_mode m) {
  switch (m) {
  case MODE_RATE: return "rate";
  case MODE_BULK: return "bulk";
  case MODE_RR: return "rr";
  case MODE_IDLE: return "idle";
  case MODE_UDP: return "udp";
  }
  return "?";
}

int opts_duration(const char *s, uint64_t *ms) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v < 0) return -EINVAL;
  double mult = 1000.0;
  if (*end == '\0' || strcmp(end, "s") == 0) mult = 1000.0;
  else if (strcmp(end, "ms") == 0) mult = 1.0;
  else if (strcmp(end, "m") == 0) mult = 60000.0;
  else if (strcmp(end, "h") == 0) mult = 3600000.0;
  else return -EINVAL;
  *ms = (uint64_t)(v * mult + 0.5);
  return 0;
}

int opts_size(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || s[0] == '-') return -EINVAL;
  uint64_t mult = 1;
  switch (tolower((unsigned char)*end)) {
  case '\0': break;
  case 'k': mult = 1024; end++; break;
  case 'm': mult = 1024 * 1024; end++; break;
  case 'g': mult = 1024ULL * 1024 * 1024; end++; break;
  default: return -EINVAL;
  }
  if (*end == 'b' || *end == 'B') end++;
  if (*end != '\0') return -EINVAL;
  *out = (uint64_t)v * mult;
  return 0;
}

int opts_hostport(const char *s, char *host, size_t cap, int *port) {
  const char *colon;
  size_t hlen;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (!rb || rb[1] != ':') return -EINVAL;
    hlen = (size_t)(rb - s - 1);
    if (hlen == 0 || hlen >= cap) return -EINVAL;
    memcpy(host, s + 1, hlen);
    colon = rb + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon) return -EINVAL;
    hlen = (size_t)(colon - s);
    if (hlen == 0 || hlen >= cap || memchr(s, ':', hlen)) return -EINVAL;
    memcpy(host, s, hlen);
  }
  host[hlen] = '\0';
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (end == colon + 1 || *end != '\0' || p < 0 || p > 65535) return -EINVAL;
  *port = (int)p;
  return 0;
}

static int bad(const char *what, const char *v) {
  fprintf(stderr, "h2tunnel-load: invalid %s: %s (see --help)\n", what, v ? v : "");
  return -EINVAL;
}

static int set_auth(struct load_opts *o, const char *userpass) {
  unsigned char b64[400];
  size_t n = strlen(userpass);
  if (n > 280) return bad("--proxy-user", "too long");
  EVP_EncodeBlock(b64, (const unsigned char *)userpass, (int)n);
  snprintf(o->auth_header, sizeof(o->auth_header), "Basic %s", (const char *)b64);
  return 0;
}

/* Percent-decodes |s| in place (userinfo in a URL). */
static void pct_decode(char *s) {
  char *o = s;
  for (; *s; s++) {
    if (s[0] == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
      char hex[3] = {s[1], s[2], 0};
      *o++ = (char)strtol(hex, NULL, 16);
      s += 2;
    } else {
      *o++ = *s;
    }
  }
  *o = '\0';
}

static int parse_proxy_url(struct load_opts *o, int force_h2) {
  const char *u = o->proxy_url;
  const char *rest;
  int defport;
  if (strncmp(u, "http://", 7) == 0) rest = u + 7, o->tls = 0, o->h2 = 0, defport = 80;
  else if (strncmp(u, "https://", 8) == 0) rest = u + 8, o->tls = 1, o->h2 = force_h2, defport = 443;
  else if (strncmp(u, "h2://", 5) == 0) rest = u + 5, o->tls = 1, o->h2 = 1, defport = 443;
  else if (strncmp(u, "h2c://", 6) == 0) rest = u + 6, o->tls = 0, o->h2 = 1, defport = 80;
  else return bad("--proxy (scheme must be http, https, h2 or h2c)", u);
  if (force_h2 && !o->tls && strncmp(u, "http://", 7) == 0) o->h2 = 1; /* --h2 on http:// = h2c */
  char hp[400];
  size_t n = strcspn(rest, "/");
  if (n >= sizeof(hp)) return bad("--proxy", u);
  memcpy(hp, rest, n);
  hp[n] = '\0';
  char *at = strrchr(hp, '@');
  char *hostpart = hp;
  if (at) {
    *at = '\0';
    pct_decode(hp);
    if (set_auth(o, hp) != 0) return -EINVAL;
    hostpart = at + 1;
  }
  if (strchr(hostpart, ':') && (hostpart[0] != '[' || strstr(hostpart, "]:"))) {
    if (opts_hostport(hostpart, o->proxy_host, sizeof(o->proxy_host), &o->proxy_port) != 0)
      return bad("--proxy", u);
  } else {
    size_t hl = strlen(hostpart);
    if (hostpart[0] == '[' && hl > 2) hostpart++, hl -= 2;
    if (hl == 0 || hl >= sizeof(o->proxy_host)) return bad("--proxy", u);
    memcpy(o->proxy_host, hostpart, hl);
    o->proxy_host[hl] = '\0';
    o->proxy_port = defport;
  }
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
  char port[8];
  snprintf(port, sizeof(port), "%d", o->proxy_port);
  int r = getaddrinfo(o->proxy_host, port, &hints, &res);
  if (r != 0 || !res) {
    fprintf(stderr, "h2tunnel-load: cannot resolve proxy %s: %s\n", o->proxy_host, gai_strerror(r));
    return -EINVAL;
  }
  memcpy(&o->proxy_addr, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return 0;
}

/* Expands {target_host} and {target_port} (RFC 9298 default template variables). IPv6 colons are
 * percent-encoded as the template's level-1 expansion requires. */
static int expand_template(struct load_opts *o, const char *tmpl) {
  size_t len = 0, cap = sizeof(o->udp_path);
  for (const char *p = tmpl; *p;) {
    char piece[300];
    if (strncmp(p, "{target_host}", 13) == 0) {
      size_t k = 0;
      for (const char *h = o->target_host; *h && k + 4 < sizeof(piece); h++) {
        if (*h == ':') memcpy(piece + k, "%3A", 3), k += 3;
        else piece[k++] = *h;
      }
      piece[k] = '\0';
      p += 13;
    } else if (strncmp(p, "{target_port}", 13) == 0) {
      snprintf(piece, sizeof(piece), "%d", o->target_port);
      p += 13;
    } else {
      piece[0] = *p++;
      piece[1] = '\0';
    }
    size_t pl = strlen(piece);
    if (len + pl + 1 > cap) return bad("--udp-template", tmpl);
    memcpy(o->udp_path + len, piece, pl);
    len += pl;
  }
  o->udp_path[len] = '\0';
  return 0;
}

enum {
  OPT_PROXY = 256, OPT_TARGET, OPT_MODE, OPT_SIZE, OPT_DIR, OPT_MSG, OPT_CACERT, OPT_INSECURE,
  OPT_USER, OPT_JSON, OPT_PROGRESS, OPT_ORIGIN, OPT_LISTEN, OPT_H2, OPT_TIMEOUT, OPT_MAXERR, OPT_CLOSE_FIRST,
  OPT_WINDOW, OPT_TMPL, OPT_QUIET, OPT_HELP, OPT_VERSION,
};

int opts_parse(struct load_opts *o, int argc, char **argv) {
  static const struct option longopts[] = {
      {"proxy", required_argument, NULL, OPT_PROXY},
      {"target", required_argument, NULL, OPT_TARGET},
      {"mode", required_argument, NULL, OPT_MODE},
      {"size", required_argument, NULL, OPT_SIZE},
      {"direction", required_argument, NULL, OPT_DIR},
      {"msg", required_argument, NULL, OPT_MSG},
      {"cacert", required_argument, NULL, OPT_CACERT},
      {"insecure", no_argument, NULL, OPT_INSECURE},
      {"proxy-user", required_argument, NULL, OPT_USER},
      {"json", no_argument, NULL, OPT_JSON},
      {"quiet", no_argument, NULL, OPT_QUIET},
      {"progress", required_argument, NULL, OPT_PROGRESS},
      {"origin", required_argument, NULL, OPT_ORIGIN},
      {"listen", required_argument, NULL, OPT_LISTEN},
      {"close-first", no_argument, NULL, OPT_CLOSE_FIRST},
      {"h2", no_argument, NULL, OPT_H2},
      {"timeout", required_argument, NULL, OPT_TIMEOUT},
      {"max-errors", required_argument, NULL, OPT_MAXERR},
      {"window", required_argument, NULL, OPT_WINDOW},
      {"udp-template", required_argument, NULL, OPT_TMPL},
      {"help", no_argument, NULL, OPT_HELP},
      {"version", no_argument, NULL, OPT_VERSION},
      {NULL, 0, NULL, 0},
  };
  memset(o, 0, sizeof(*o));
  snprintf(o->proxy_url, sizeof(o->proxy_url), "http://127.0.0.1:8080");
  snprintf(o->target, sizeof(o->target), "127.0.0.1:9000");
  o->mode = MODE_RATE;
  o->conns = 1;
  o->streams = 1;
  o->threads = 1;
  o->size = 64ULL * 1024 * 1024;
  o->dir = DIR_DOWN;
  o->msg = 64;
  o->window = 32;
  o->timeout_ms = 10000;
  o->progress_ms = 1000;
  const char *tmpl = "/.well-known/masque/udp/{target_host}/{target_port}/";
  const char *user = NULL;
  int force_h2 = 0, have_n = 0, have_d = 0;
  uint64_t v;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "c:m:t:n:d:", longopts, NULL)) != -1) {
    const char *a = optarg;
    char *end;
    switch (c) {
    case OPT_PROXY:
      if (strlen(a) >= sizeof(o->proxy_url)) return bad("--proxy", a);
      snprintf(o->proxy_url, sizeof(o->proxy_url), "%s", a);
      break;
    case OPT_TARGET:
      if (strlen(a) >= sizeof(o->target)) return bad("--target", a);
      snprintf(o->target, sizeof(o->target), "%s", a);
      break;
    case OPT_MODE:
      if (strcmp(a, "rate") == 0) o->mode = MODE_RATE;
      else if (strcmp(a, "bulk") == 0) o->mode = MODE_BULK;
      else if (strcmp(a, "rr") == 0) o->mode = MODE_RR;
      else if (strcmp(a, "idle") == 0) o->mode = MODE_IDLE;
      else if (strcmp(a, "udp") == 0) o->mode = MODE_UDP;
      else return bad("--mode", a);
      break;
    case OPT_SIZE:
      if (opts_size(a, &o->size) != 0) return bad("--size", a);
      break;
    case OPT_DIR:
      if (strcmp(a, "down") == 0) o->dir = DIR_DOWN;
      else if (strcmp(a, "up") == 0) o->dir = DIR_UP;
      else if (strcmp(a, "both") == 0) o->dir = DIR_BOTH;
      else return bad("--direction", a);
      break;
    case OPT_MSG:
      if (opts_size(a, &v) != 0 || v == 0 || v > 65536) return bad("--msg (1..65536)", a);
      o->msg = (size_t)v;
      break;
    case OPT_CACERT: snprintf(o->cacert, sizeof(o->cacert), "%s", a); break;
    case OPT_INSECURE: o->insecure = 1; break;
    case OPT_USER: user = a; break;
    case OPT_JSON: o->json_only = 1; o->quiet = 1; break;
    case OPT_QUIET: o->quiet = 1; break;
    case OPT_PROGRESS:
      if (opts_duration(a, &o->progress_ms) != 0) return bad("--progress", a);
      break;
    case OPT_ORIGIN:
      if (strcmp(a, "echo") == 0) o->origin = ORIGIN_ECHO;
      else if (strcmp(a, "sink") == 0) o->origin = ORIGIN_SINK;
      else if (strcmp(a, "source") == 0) o->origin = ORIGIN_SOURCE;
      else if (strcmp(a, "udp-echo") == 0) o->origin = ORIGIN_UDP_ECHO;
      else return bad("--origin", a);
      break;
    case OPT_LISTEN: snprintf(o->listen, sizeof(o->listen), "%s", a); break;
    case OPT_CLOSE_FIRST: o->close_first = 1; break;
    case OPT_H2: force_h2 = 1; break;
    case OPT_TIMEOUT:
      if (opts_duration(a, &o->timeout_ms) != 0 || o->timeout_ms == 0) return bad("--timeout", a);
      break;
    case OPT_MAXERR:
      o->max_errors = strtoull(a, &end, 10);
      if (end == a || *end || a[0] == '-') return bad("--max-errors", a);
      break;
    case OPT_WINDOW:
      o->window = (int)strtol(a, &end, 10);
      if (end == a || *end || o->window < 1 || o->window > 65536) return bad("--window", a);
      break;
    case OPT_TMPL: tmpl = a; break;
    case 'c':
      o->conns = (int)strtol(a, &end, 10);
      if (end == a || *end || o->conns < 1 || o->conns > 1000000) return bad("-c", a);
      break;
    case 'm':
      o->streams = (int)strtol(a, &end, 10);
      if (end == a || *end || o->streams < 1 || o->streams > 100000) return bad("-m", a);
      break;
    case 't':
      o->threads = (int)strtol(a, &end, 10);
      if (end == a || *end || o->threads < 1 || o->threads > 256) return bad("-t", a);
      break;
    case 'n':
      o->count = strtoull(a, &end, 10);
      if (end == a || *end || a[0] == '-' || o->count == 0) return bad("-n", a);
      have_n = 1;
      break;
    case 'd':
      if (opts_duration(a, &o->duration_ms) != 0 || o->duration_ms == 0) return bad("-d", a);
      have_d = 1;
      break;
    case OPT_HELP: fputs(usage_text, stdout); return 1;
    case OPT_VERSION: puts("h2tunnel-load " H2T_VERSION); return 1;
    default: fprintf(stderr, "see h2tunnel-load --help\n"); return -EINVAL;
    }
  }
  if (optind < argc) return bad("argument", argv[optind]);
  if (o->origin != ORIGIN_NONE) {
    if (!o->listen[0]) return bad("--origin without --listen", "");
    return 0;
  }
  if (!have_n && !have_d) o->duration_ms = 10000;
  if (o->mode == MODE_IDLE && !have_d) o->duration_ms = 10000;
  if (opts_hostport(o->target, o->target_host, sizeof(o->target_host), &o->target_port) != 0 ||
      o->target_port == 0)
    return bad("--target", o->target);
  if (parse_proxy_url(o, force_h2) != 0) return -EINVAL;
  if (user && set_auth(o, user) != 0) return -EINVAL;
  if (o->mode == MODE_UDP) {
    if (!o->h2) return bad("--mode udp (needs an h2 proxy: h2:// or h2c://)", o->proxy_url);
    if (o->msg < 16 || o->msg > 16000) return bad("--msg (udp: 16..16000)", "");
    if (expand_template(o, tmpl) != 0) return -EINVAL;
  }
  if (o->mode == MODE_BULK && o->size == 0) return bad("--size", "0");
  if (!o->h2) o->streams = 1;
  if (o->threads > o->conns) o->threads = o->conns;
  return 0;
}
