#include "src/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <uv.h>

#include "src/log.h"
#include "src/policy.h"
#include "src/udp_tmpl.h"
#include "src/util.h"

void config_init(struct config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->workers = 0;
  cfg->log_level = LOG_INFO;
  cfg->handshake_timeout_ms = 10000;
  cfg->header_timeout_ms = 10000;
  cfg->connect_timeout_ms = 30000;
  cfg->happy_eyeballs_delay_ms = 250;
  cfg->idle_timeout_ms = 300000;
  cfg->udp_idle_timeout_ms = 120000;
  cfg->max_duration_ms = 3600000;
  cfg->dns_timeout_ms = 5000;
  cfg->conn_idle_timeout_ms = 120000;
  cfg->drain_timeout_ms = 30000;
  cfg->max_header_bytes = 32 * 1024;
  cfg->max_headers = 100;
  cfg->high_water = 512 * 1024;
  cfg->low_water = 128 * 1024;
  cfg->max_connections = CONFIG_AUTO;
  cfg->max_handshakes = 1000;
  cfg->read_budget = 128 * 1024;
  cfg->h2_max_concurrent_streams = 256;
  cfg->h2_stream_window = 1024 * 1024;
  cfg->h2_conn_window = 64 * 1024 * 1024;
  cfg->h2_max_header_list = 64 * 1024;
  cfg->h2_enable_connect_protocol = 1;
  cfg->h2_reset_burst = 1000;
  cfg->h2_reset_rate = 33;
  cfg->h2_max_continuations = 8;
  cfg->h2_max_settings = 32;
  cfg->h2_max_outbound_ack = 1000;
  cfg->h2_max_discard = 0; /* 0: twice h2_conn_window (h2_session.c) */
  snprintf(cfg->udp_template, sizeof(cfg->udp_template), "%s", UDP_TMPL_DEFAULT);
  cfg->policy = policy_new();
  CHECK(cfg->policy != NULL);
}

void config_dispose(struct config *cfg) {
  policy_free(cfg->policy);
  cfg->policy = NULL;
}

int config_parse_duration(const char *s, uint64_t *ms) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno || !(v >= 0)) return -EINVAL; /* !(>=) also refuses NaN */
  double mult = 1000;
  if (*end == '\0' || strcmp(end, "s") == 0)
    mult = 1000;
  else if (strcmp(end, "ms") == 0)
    mult = 1;
  else if (strcmp(end, "m") == 0)
    mult = 60000;
  else if (strcmp(end, "h") == 0)
    mult = 3600000;
  else
    return -EINVAL;
  double r = v * mult;
  if (!(r <= 1e15)) return -EINVAL;
  *ms = (uint64_t)r;
  return 0;
}

int config_parse_size(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || errno || s[0] == '-') return -EINVAL;
  unsigned long long mult = 1;
  if (*end == 'k' || *end == 'K')
    mult = 1024ULL, end++;
  else if (*end == 'm' || *end == 'M')
    mult = 1024ULL * 1024, end++;
  else if (*end == 'g' || *end == 'G')
    mult = 1024ULL * 1024 * 1024, end++;
  if (*end == 'i' || *end == 'b' || *end == 'B') end++;
  if (*end != '\0') return -EINVAL;
  if (v > (1ULL << 50) / mult) return -EINVAL;
  *out = v * mult;
  return 0;
}

int config_parse_listener(const char *s, struct config_listener *out) {
  memset(out, 0, sizeof(*out));
  snprintf(out->text, sizeof(out->text), "%s", s);
  const char *rest;
  if (strncmp(s, "tls://", 6) == 0) {
    out->tls = 1;
    rest = s + 6;
  } else if (strncmp(s, "tcp://", 6) == 0) {
    out->tls = 0;
    rest = s + 6;
  } else {
    return -EINVAL;
  }
  char host[64];
  const char *colon;
  if (rest[0] == '[') {
    const char *rb = strchr(rest, ']');
    if (!rb || rb[1] != ':' || (size_t)(rb - rest - 1) >= sizeof(host)) return -EINVAL;
    memcpy(host, rest + 1, (size_t)(rb - rest - 1));
    host[rb - rest - 1] = '\0';
    colon = rb + 1;
  } else {
    colon = strrchr(rest, ':');
    if (!colon || (size_t)(colon - rest) >= sizeof(host)) return -EINVAL;
    memcpy(host, rest, (size_t)(colon - rest));
    host[colon - rest] = '\0';
  }
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end != '\0' || colon[1] == '\0' || port < 0 || port > 65535) return -EINVAL;
  struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;
  if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
  } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
  } else {
    return -EINVAL;
  }
  return 0;
}

int config_parse_ws_route(const char *s, struct config *cfg) {
  const char *eq = strchr(s, '=');
  if (!eq || eq == s || cfg->nws_routes >= (int)ARRAY_SIZE(cfg->ws_routes)) return -EINVAL;
  struct config_ws_route *r = &cfg->ws_routes[cfg->nws_routes];
  size_t alen = (size_t)(eq - s);
  if (alen >= sizeof(r->authority)) return -EINVAL;
  for (size_t i = 0; i < alen; i++) r->authority[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
  r->authority[alen] = '\0';
  const char *url = eq + 1;
  if (strncmp(url, "ws://", 5) == 0) {
    r->tls = 0;
    url += 5;
  } else if (strncmp(url, "wss://", 6) == 0) {
    r->tls = 1;
    url += 6;
  } else {
    return -EINVAL;
  }
  size_t blen = strcspn(url, "/");
  if (blen == 0 || blen >= sizeof(r->backend)) return -EINVAL;
  memcpy(r->backend, url, blen);
  r->backend[blen] = '\0';
  cfg->nws_routes++;
  return 0;
}

void config_print_help(const char *argv0) {
  printf(
      "Usage: %s [OPTIONS]\n"
      "h2tunnel " H2T_VERSION " - a forward proxy that tunnels TCP through HTTP/1.1 and HTTP/2 CONNECT.\n"
      "\n"
      "With no options it listens on tls://127.0.0.1:8443 (ALPN h2, http/1.1) and tcp://127.0.0.1:8080,\n"
      "using a development CA and certificate generated on first run in the state directory.\n"
      "\n"
      "Listeners and TLS:\n"
      "  --listen URL             tls://ADDR:PORT or tcp://ADDR:PORT; IPv6 as [ADDR]. Repeatable.\n"
      "                           On tcp:// the HTTP/2 preface selects HTTP/2 (h2c prior knowledge)\n"
      "                           and a TLS ClientHello is served TLS, as on tls://. On tls:// a\n"
      "                           plaintext HTTP request gets a plaintext 400 saying so.\n"
      "  --cert FILE              server certificate chain (PEM); default: the dev certificate\n"
      "  --key FILE               private key (PEM) for --cert\n"
      "  --state-dir DIR          where the dev CA/certificate live (default $HOME/.local/state/h2tunnel)\n"
      "  --workers N              worker threads, each with its own loop (default: one per core)\n"
      "  --max-connections N      client connections per worker, 0 = unlimited (default:\n"
      "                           (RLIMIT_NOFILE - 100) / 2 shared by the workers, at least 16;\n"
      "                           the other half is for upstream sockets). At the limit the oldest\n"
      "                           handshake is closed to make room, or else the new one is refused.\n"
      "  --max-handshakes N       connections per worker in their TLS handshake (or, on tcp://,\n"
      "                           before their first bytes); at the limit the oldest is closed to\n"
      "                           make room for the new one; 0 = unlimited (default 1000)\n"
      "\n"
      "Target policy (checked on the resolved address):\n"
      "  --allow-ports SPEC       allowed CONNECT ports: \"443,80,8000-8100\" or \"*\" (default 443,80)\n"
      "  --allow-net SPEC         allow a CIDR or a class otherwise denied. Classes: loopback, private,\n"
      "                           link-local, cgnat, this-network, multicast, reserved, ula,\n"
      "                           v4-mapped, site-local, teredo, 6to4, global-special (IANA\n"
      "                           special-purpose blocks marked globally reachable: anycast\n"
      "                           PCP/TURN/AMT/AS112, ORCHIDv2). Repeatable. By default every\n"
      "                           non-public address is denied with 403. An IPv6 address that\n"
      "                           embeds IPv4 (v4-mapped, NAT64, 6to4, Teredo, ISATAP) also needs\n"
      "                           the embedded IPv4 address allowed.\n"
      "  --deny-net CIDR          deny a public range too. Repeatable.\n"
      "  --dns-server LIST        resolvers as \"127.0.0.1:53,[::1]:53\" (default /etc/resolv.conf)\n"
      "\n"
      "Extended CONNECT:\n"
      "  --udp-template PATH      connect-udp URI template (RFC 9298), with {target_host} and\n"
      "                           {target_port} (default " UDP_TMPL_DEFAULT ")\n"
      "  --ws-route AUTH=URL      WebSocket over HTTP/2 (RFC 8441): send streams whose :authority is\n"
      "                           AUTH to the backend URL ws://HOST:PORT or wss://HOST:PORT instead of\n"
      "                           to AUTH itself. Repeatable. Routed backends skip the target policy.\n"
      "  --ws-routes-only         WebSocket only through --ws-route; other authorities get 421\n"
      "                           (default: a WebSocket to :authority itself, under the target policy)\n"
      "  --upstream-ca FILE       trust for wss:// backends (default: the system store)\n"
      "\n"
      "Timeouts (\"30\", \"1.5s\", \"250ms\", \"5m\", \"1h\"):\n"
      "  --handshake-timeout T    TLS handshake (default 10s)\n"
      "  --header-timeout T       complete request head: HTTP/1.1 head, HTTP/2 header block, and\n"
      "                           an HTTP/2 connection's preface and SETTINGS (default 10s)\n"
      "  --dns-timeout T          name resolution, per try (default 5s)\n"
      "  --connect-timeout T      upstream TCP connect -> 504 (default 30s)\n"
      "  --happy-eyeballs-delay T start the next address of a name this long after the previous\n"
      "                           one if it has not connected yet (RFC 8305; default 250ms, min 10ms)\n"
      "  --idle-timeout T         tunnel with no bytes either way (default 300s)\n"
      "  --udp-idle-timeout T     connect-udp tunnel with no datagram either way (default 120s)\n"
      "  --max-duration T         any tunnel's lifetime (default 3600s)\n"
      "  --conn-idle-timeout T    client connection with nothing open; HTTP/2 PING, SETTINGS and\n"
      "                           WINDOW_UPDATE do not count as activity (default 120s)\n"
      "  --drain-timeout T        on SIGTERM/SIGINT, how long live tunnels may finish; HTTP/2\n"
      "                           connections end with a GOAWAY a tenth earlier, at most 1s\n"
      "                           (default 30s)\n"
      "\n"
      "Limits (sizes: \"65536\", \"64k\", \"1m\"):\n"
      "  --max-header-bytes N     HTTP/1.1 request head size -> 431 (default 32k); also the\n"
      "                           largest WebSocket backend Upgrade request (else 431) and\n"
      "                           response head (else 502)\n"
      "  --max-headers N          HTTP/1.1 header field count -> 431 (default 100)\n"
      "  --high-water N           stop reading a tunnel side when the other has N bytes queued\n"
      "                           (default 512k)\n"
      "  --low-water N            resume reading below N bytes queued (default 128k)\n"
      "  --read-budget N          bytes read from one client connection per event-loop turn before\n"
      "                           the other connections get theirs (default 128k)\n"
      "\n"
      "HTTP/2:\n"
      "  --h2-max-streams N       SETTINGS_MAX_CONCURRENT_STREAMS (default 256)\n"
      "  --h2-stream-window N     initial stream receive window (default 1m)\n"
      "  --h2-conn-window N       connection receive window (default 64m)\n"
      "  --h2-max-header-list N   SETTINGS_MAX_HEADER_LIST_SIZE (default 64k)\n"
      "  --no-extended-connect    do not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL\n"
      "  --h2-reset-burst N       rapid-reset limit: RST_STREAM burst before GOAWAY (default 1000)\n"
      "  --h2-reset-rate N        rapid-reset limit: RST_STREAMs refilled per second (default 33)\n"
      "  --h2-max-continuations N CONTINUATION frames per header block (default 8)\n"
      "  --h2-max-settings N      entries per SETTINGS frame (default 32)\n"
      "  --h2-max-outbound-ack N  queued SETTINGS/PING ACKs before GOAWAY (default 1000)\n"
      "  --h2-max-discard N       DATA bytes a client may send on streams already closed or reset\n"
      "                           (refilled at N per minute) before GOAWAY ENHANCE_YOUR_CALM\n"
      "                           (default twice --h2-conn-window)\n"
      "\n"
      "Logging:\n"
      "  --log-level LEVEL        error, warn, info, debug (default info); errors go to stderr\n"
      "  --access-log FILE        one JSON line per tunnel/request (default stdout)\n"
      "  --help, --version\n",
      "h2tunnel");
}

enum {
  OPT_LISTEN = 256, OPT_CERT, OPT_KEY, OPT_STATE_DIR, OPT_WORKERS, OPT_MAX_CONNS, OPT_ALLOW_PORTS,
  OPT_ALLOW_NET, OPT_DENY_NET, OPT_DNS_SERVER, OPT_HS_TO, OPT_HDR_TO, OPT_DNS_TO, OPT_CONN_TO,
  OPT_IDLE_TO, OPT_MAX_DUR, OPT_CIDLE_TO, OPT_DRAIN_TO, OPT_MAX_HDR_BYTES, OPT_MAX_HDRS, OPT_HIGH,
  OPT_LOW, OPT_H2_STREAMS, OPT_H2_SWIN, OPT_H2_CWIN, OPT_H2_HLIST, OPT_NO_XC, OPT_H2_RBURST,
  OPT_H2_RRATE, OPT_H2_CONT, OPT_H2_SETTINGS, OPT_H2_ACK, OPT_H2_DISCARD, OPT_LOG_LEVEL, OPT_ACCESS_LOG, OPT_HELP,
  OPT_VERSION, OPT_UDP_IDLE_TO, OPT_UDP_TMPL, OPT_UPSTREAM_CA, OPT_WS_ROUTE, OPT_WS_ROUTES_ONLY, OPT_HE_DELAY,
  OPT_MAX_HS, OPT_READ_BUDGET
};

static const struct option long_opts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNS},
    {"max-handshakes", required_argument, NULL, OPT_MAX_HS},
    {"read-budget", required_argument, NULL, OPT_READ_BUDGET},
    {"allow-ports", required_argument, NULL, OPT_ALLOW_PORTS},
    {"allow-net", required_argument, NULL, OPT_ALLOW_NET},
    {"deny-net", required_argument, NULL, OPT_DENY_NET},
    {"dns-server", required_argument, NULL, OPT_DNS_SERVER},
    {"handshake-timeout", required_argument, NULL, OPT_HS_TO},
    {"header-timeout", required_argument, NULL, OPT_HDR_TO},
    {"dns-timeout", required_argument, NULL, OPT_DNS_TO},
    {"connect-timeout", required_argument, NULL, OPT_CONN_TO},
    {"happy-eyeballs-delay", required_argument, NULL, OPT_HE_DELAY},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TO},
    {"max-duration", required_argument, NULL, OPT_MAX_DUR},
    {"conn-idle-timeout", required_argument, NULL, OPT_CIDLE_TO},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN_TO},
    {"max-header-bytes", required_argument, NULL, OPT_MAX_HDR_BYTES},
    {"max-headers", required_argument, NULL, OPT_MAX_HDRS},
    {"high-water", required_argument, NULL, OPT_HIGH},
    {"low-water", required_argument, NULL, OPT_LOW},
    {"h2-max-streams", required_argument, NULL, OPT_H2_STREAMS},
    {"h2-stream-window", required_argument, NULL, OPT_H2_SWIN},
    {"h2-conn-window", required_argument, NULL, OPT_H2_CWIN},
    {"h2-max-header-list", required_argument, NULL, OPT_H2_HLIST},
    {"no-extended-connect", no_argument, NULL, OPT_NO_XC},
    {"h2-reset-burst", required_argument, NULL, OPT_H2_RBURST},
    {"h2-reset-rate", required_argument, NULL, OPT_H2_RRATE},
    {"h2-max-continuations", required_argument, NULL, OPT_H2_CONT},
    {"h2-max-settings", required_argument, NULL, OPT_H2_SETTINGS},
    {"h2-max-outbound-ack", required_argument, NULL, OPT_H2_ACK},
    {"h2-max-discard", required_argument, NULL, OPT_H2_DISCARD},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"udp-idle-timeout", required_argument, NULL, OPT_UDP_IDLE_TO},
    {"udp-template", required_argument, NULL, OPT_UDP_TMPL},
    {"upstream-ca", required_argument, NULL, OPT_UPSTREAM_CA},
    {"ws-route", required_argument, NULL, OPT_WS_ROUTE},
    {"ws-routes-only", no_argument, NULL, OPT_WS_ROUTES_ONLY},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static int bad(const char *opt, const char *val) {
  fprintf(stderr, "h2tunnel: invalid value for --%s: '%s' (see --help)\n", opt, val);
  return -EINVAL;
}

static int copy_str(char *dst, size_t cap, const char *opt, const char *val) {
  if (strlen(val) >= cap) return bad(opt, val);
  memcpy(dst, val, strlen(val) + 1);
  return 0;
}

static int set_duration(uint64_t *dst, const char *opt, const char *val) {
  return config_parse_duration(val, dst) ? bad(opt, val) : 0;
}

static int set_size(size_t *dst, const char *opt, const char *val, uint64_t lo, uint64_t hi) {
  uint64_t v;
  if (config_parse_size(val, &v) || v < lo || v > hi) return bad(opt, val);
  *dst = (size_t)v;
  return 0;
}

static int set_u32(uint32_t *dst, const char *opt, const char *val, uint64_t lo, uint64_t hi) {
  size_t v;
  int r = set_size(&v, opt, val, lo, hi);
  if (r == 0) *dst = (uint32_t)v;
  return r;
}

static int set_u64(uint64_t *dst, const char *opt, const char *val, uint64_t lo, uint64_t hi) {
  size_t v;
  int r = set_size(&v, opt, val, lo, hi);
  if (r == 0) *dst = v;
  return r;
}

int config_parse(struct config *cfg, int argc, char **argv) {
  int opt, r = 0;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
    const char *name = NULL;
    for (const struct option *o = long_opts; o->name; o++)
      if (o->val == opt) name = o->name;
    const char *v = optarg;
    switch (opt) {
    case OPT_LISTEN:
      if (!cfg->listeners_given) cfg->nlisteners = 0;
      cfg->listeners_given = 1;
      if (cfg->nlisteners >= CONFIG_MAX_LISTENERS) return bad(name, v);
      if (config_parse_listener(v, &cfg->listeners[cfg->nlisteners])) return bad(name, v);
      cfg->nlisteners++;
      break;
    case OPT_CERT: r = copy_str(cfg->cert_file, sizeof(cfg->cert_file), name, v); break;
    case OPT_KEY: r = copy_str(cfg->key_file, sizeof(cfg->key_file), name, v); break;
    case OPT_STATE_DIR: r = copy_str(cfg->state_dir, sizeof(cfg->state_dir), name, v); break;
    case OPT_ACCESS_LOG: r = copy_str(cfg->access_log, sizeof(cfg->access_log), name, v); break;
    case OPT_DNS_SERVER: r = copy_str(cfg->dns_servers, sizeof(cfg->dns_servers), name, v); break;
    case OPT_WORKERS: {
      size_t n = 0;
      r = set_size(&n, name, v, 0, 256);
      cfg->workers = (int)n;
      break;
    }
    case OPT_MAX_CONNS: r = set_size(&cfg->max_connections, name, v, 0, 10000000); break;
    case OPT_MAX_HS: r = set_size(&cfg->max_handshakes, name, v, 0, 10000000); break;
    case OPT_READ_BUDGET: r = set_size(&cfg->read_budget, name, v, 4096, 1ULL << 30); break;
    case OPT_ALLOW_PORTS: r = policy_set_ports(cfg->policy, v) ? bad(name, v) : 0; break;
    case OPT_ALLOW_NET: r = policy_allow_net(cfg->policy, v) ? bad(name, v) : 0; break;
    case OPT_DENY_NET: r = policy_deny_net(cfg->policy, v) ? bad(name, v) : 0; break;
    case OPT_HS_TO: r = set_duration(&cfg->handshake_timeout_ms, name, v); break;
    case OPT_HDR_TO: r = set_duration(&cfg->header_timeout_ms, name, v); break;
    case OPT_DNS_TO: r = set_duration(&cfg->dns_timeout_ms, name, v); break;
    case OPT_CONN_TO: r = set_duration(&cfg->connect_timeout_ms, name, v); break;
    case OPT_HE_DELAY: /* RFC 8305 section 5: never below 10 ms */
      r = set_duration(&cfg->happy_eyeballs_delay_ms, name, v);
      if (r == 0 && cfg->happy_eyeballs_delay_ms < 10) r = bad(name, v);
      break;
    case OPT_IDLE_TO: r = set_duration(&cfg->idle_timeout_ms, name, v); break;
    case OPT_UDP_IDLE_TO: r = set_duration(&cfg->udp_idle_timeout_ms, name, v); break;
    case OPT_UDP_TMPL:
      if (udp_tmpl_validate(v) != 0) return bad(name, v);
      r = copy_str(cfg->udp_template, sizeof(cfg->udp_template), name, v);
      break;
    case OPT_UPSTREAM_CA: r = copy_str(cfg->upstream_ca, sizeof(cfg->upstream_ca), name, v); break;
    case OPT_WS_ROUTES_ONLY: cfg->ws_routes_only = 1; break;
    case OPT_WS_ROUTE:
      if (config_parse_ws_route(v, cfg)) return bad(name, v);
      break;
    case OPT_MAX_DUR: r = set_duration(&cfg->max_duration_ms, name, v); break;
    case OPT_CIDLE_TO: r = set_duration(&cfg->conn_idle_timeout_ms, name, v); break;
    case OPT_DRAIN_TO: r = set_duration(&cfg->drain_timeout_ms, name, v); break;
    case OPT_MAX_HDR_BYTES: r = set_size(&cfg->max_header_bytes, name, v, 1024, 1 << 20); break;
    case OPT_MAX_HDRS: r = set_size(&cfg->max_headers, name, v, 1, 10000); break;
    case OPT_HIGH: r = set_size(&cfg->high_water, name, v, 16384, 1ULL << 30); break;
    case OPT_LOW: r = set_size(&cfg->low_water, name, v, 0, 1ULL << 30); break;
    case OPT_H2_STREAMS: r = set_u32(&cfg->h2_max_concurrent_streams, name, v, 1, 100000); break;
    case OPT_H2_SWIN: r = set_u32(&cfg->h2_stream_window, name, v, 65535, 0x7fffffff); break;
    case OPT_H2_CWIN: r = set_u32(&cfg->h2_conn_window, name, v, 65535, 0x7fffffff); break;
    case OPT_H2_HLIST: r = set_u32(&cfg->h2_max_header_list, name, v, 1024, 1 << 24); break;
    case OPT_NO_XC: cfg->h2_enable_connect_protocol = 0; break;
    case OPT_H2_RBURST: r = set_u64(&cfg->h2_reset_burst, name, v, 1, 1000000); break;
    case OPT_H2_RRATE: r = set_u64(&cfg->h2_reset_rate, name, v, 1, 1000000); break;
    case OPT_H2_CONT: r = set_size(&cfg->h2_max_continuations, name, v, 0, 100000); break;
    case OPT_H2_SETTINGS: r = set_size(&cfg->h2_max_settings, name, v, 1, 100000); break;
    case OPT_H2_ACK: r = set_size(&cfg->h2_max_outbound_ack, name, v, 1, 1000000); break;
    case OPT_H2_DISCARD: r = set_u64(&cfg->h2_max_discard, name, v, 65536, 1ULL << 40); break;
    case OPT_LOG_LEVEL:
      if (log_set_level_name(v)) return bad(name, v);
      cfg->log_level = (int)log_get_level();
      break;
    case OPT_HELP:
    case 'h':
      config_print_help(argv[0]);
      return 1;
    case OPT_VERSION:
      printf("h2tunnel %s\n", H2T_VERSION);
      return 1;
    default:
      fprintf(stderr, "h2tunnel: see --help\n");
      return -EINVAL;
    }
    if (r) return r;
  }
  if (optind < argc) {
    fprintf(stderr, "h2tunnel: unexpected argument '%s' (see --help)\n", argv[optind]);
    return -EINVAL;
  }
  if (cfg->low_water >= cfg->high_water) {
    fprintf(stderr, "h2tunnel: --low-water must be below --high-water\n");
    return -EINVAL;
  }
  if ((cfg->cert_file[0] != '\0') != (cfg->key_file[0] != '\0')) {
    fprintf(stderr, "h2tunnel: --cert and --key go together\n");
    return -EINVAL;
  }
  return 0;
}

/* Each client connection may need a second descriptor for its upstream (more on h2), and the
 * process needs some of its own (listeners, resolver, logs): half of what is left after 100 goes
 * to client connections, so that an upstream dial does not fail with EMFILE on a full proxy --
 * refusing a new client is kinder than 502s for the ones already served. */
static size_t derived_max_connections(int workers) {
  struct rlimit rl;
  uint64_t nofile = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) nofile = rl.rlim_cur == RLIM_INFINITY ? (1u << 20) : rl.rlim_cur;
  uint64_t per_worker = nofile > 100 ? (nofile - 100) / 2 / (uint64_t)workers : 0;
  size_t n = (size_t)MAX(per_worker, 16);
  log_info("--max-connections: %zu per worker (from RLIMIT_NOFILE %llu and %d worker(s))", n,
           (unsigned long long)nofile, workers);
  return n;
}

void config_finish(struct config *cfg) {
  if (cfg->workers <= 0) cfg->workers = (int)uv_available_parallelism();
  if (cfg->workers <= 0) cfg->workers = 1;
  if (cfg->max_connections == CONFIG_AUTO) cfg->max_connections = derived_max_connections(cfg->workers);
  if (!cfg->listeners_given) {
    CHECK(config_parse_listener("tls://127.0.0.1:8443", &cfg->listeners[0]) == 0);
    CHECK(config_parse_listener("tcp://127.0.0.1:8080", &cfg->listeners[1]) == 0);
    cfg->nlisteners = 2;
  }
  if (cfg->state_dir[0] == '\0') {
    const char *home = getenv("HOME");
    if (home && home[0])
      snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s/.local/state/h2tunnel", home);
    else
      snprintf(cfg->state_dir, sizeof(cfg->state_dir), "./h2tunnel-state");
  }
}
