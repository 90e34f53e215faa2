/* The option table and everything it drives: defaults, getopt_long flags, configuration-file
 * keys, --help and --check-config (see config.h).
 *
 * One entry per option says its name (flag and file key alike), its type, where its value lives
 * in struct config, its default written as a flag would write it, its range, and its help text.
 * Each type is handled in three switches: apply_text (a flag's value or a scalar from the file),
 * apply_node (a file value, which may be a list) and print_value. Defaults go through apply_text
 * too, so a default can never be a value that the flag would refuse. */
#include "src/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <uv.h>

#include "src/access.h"
#include "src/log.h"
#include "src/policy.h"
#include "src/udp_tmpl.h"
#include "src/units.h"
#include "src/util.h"

/* ---- value parsers ------------------------------------------------------------------------- */

int config_parse_listener(const char *s, struct config_listener *out) {
  memset(out, 0, sizeof(*out));
  if (strlen(s) >= sizeof(out->text)) return -EINVAL; /* the text is kept whole, for logs */
  memcpy(out->text, s, strlen(s) + 1);
  /* Per-listener flags follow the address like a URL query: "?proxy-protocol", "?admin", or both
   * joined by '&'. */
  char url[sizeof(out->text)];
  memcpy(url, s, strlen(s) + 1);
  char *q = strchr(url, '?');
  if (q) {
    *q++ = '\0';
    for (char *flag = q; flag;) {
      char *next = strchr(flag, '&');
      if (next) *next++ = '\0';
      if (strcmp(flag, "proxy-protocol") == 0 && !out->proxy_protocol)
        out->proxy_protocol = 1;
      else if (strcmp(flag, "admin") == 0 && !out->admin)
        out->admin = 1; /* the admin-only listener (/metrics when authentication is on) */
      else
        return -EINVAL; /* unknown, empty or repeated */
      flag = next;
    }
  }
  s = url;
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

/* ---- the option table ---------------------------------------------------------------------- */

enum opt_type {
  T_DURATION,   /* uint64_t milliseconds */
  T_SIZE,       /* integer field; units k/m/g; printed with units */
  T_COUNT,      /* integer field; same syntax as T_SIZE (as the flags always were); printed plain */
  T_FLAG,       /* no argument; the file takes true/false */
  T_STRING,     /* char array */
  T_PATH,       /* char array; relative paths in the file are resolved against its directory */
  T_LOG_LEVEL,  /* int: enum log_level by name */
  T_LISTENERS,  /* listeners[] */
  T_NETS,       /* struct config_strlist of CIDRs and class names */
  T_PORTS,      /* allow_ports */
  T_WS_ROUTES,  /* ws_routes[] */
  T_SECTION,    /* a file section parsed by access.c */
  T_CLI,        /* --config, --check-config, --help, --version: flags only */
};

enum opt_section { S_FILE, S_LISTEN, S_POLICY, S_XC, S_FWD, S_TIMEOUTS, S_LIMITS, S_H2, S_LOG, S_ACCESS };

static const char *const section_titles[] = {
    [S_FILE] = "Configuration file (YAML; an annotated example is etc/h2tunnel.yaml):",
    [S_LISTEN] = "Listeners and TLS:",
    [S_POLICY] = "Target policy (checked on the resolved address):",
    [S_XC] = "Extended CONNECT:",
    [S_FWD] = "Forwarding (absolute-form requests, HTTP/2 requests for another authority):",
    [S_TIMEOUTS] = "Timeouts (\"30\", \"1.5s\", \"250ms\", \"5m\", \"1h\"):",
    [S_LIMITS] = "Limits (sizes: \"65536\", \"64k\", \"1m\"):",
    [S_H2] = "HTTP/2:",
    [S_LOG] = "Logging:",
    [S_ACCESS] = NULL, /* file-only sections: described under --config */
};

#define F_REPEAT 1u  /* a list: the flag may be repeated; the file gives a list */
#define F_JOIN 2u    /* a comma list: the file may give a YAML list, joined with ',' */
#define F_INVERT 4u  /* T_FLAG: the flag sets the field to 0 */
#define F_HIDDEN 8u  /* not in --help */
#define F_AUTO 16u   /* T_COUNT: also takes "auto" (CONFIG_AUTO), resolved by config_finish */

struct opt {
  const char *name;         /* the long flag without "--", and the file key */
  enum opt_type type;
  enum opt_section section;
  size_t off, width;        /* the field in struct config; 0, 0 for list, section and CLI types */
  const char *def;          /* default, written as the flag would be; NULL: zero / empty */
  uint64_t min, max;        /* T_SIZE, T_COUNT; T_DURATION: min only (ms) */
  unsigned flags;           /* F_* */
  const char *arg;          /* the value's name in --help ("T", "N", "FILE"); NULL: no value */
  const char *help;         /* --help text; '\n' starts an indented continuation line */
  int (*check)(const char *value); /* T_STRING: extra validation, 0 or -EINVAL */
};

#define FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define NOFIELD 0, 0

static const struct opt opts[] = {
    {"config", T_CLI, S_FILE, NOFIELD, NULL, 0, 0, 0, "FILE",
     "read options from a YAML file: each key is a long option name\n"
     "(connect-timeout: 30s, listen: [tcp://127.0.0.1:8080]), plus the sections\n"
     "auth, groups, rules and limits. Flags override the file; a repeatable\n"
     "flag replaces the file's whole list. Relative paths in the file are\n"
     "relative to the file's directory.",
     NULL},
    {"check-config", T_CLI, S_FILE, NOFIELD, NULL, 0, 0, 0, "FILE",
     "validate FILE (and any flags), print the effective configuration with\n"
     "where each value came from (default, file, flag); exit 0, or 2 with\n"
     "FILE:LINE:COL: what is wrong",
     NULL},
    /* Reloading (src/reload.h) */
    {"reload-keep-tunnels", T_FLAG, S_FILE, FIELD(reload_keep_tunnels), "false", 0, 0, 0, NULL,
     "on SIGHUP (reload), keep the live tunnels the new configuration\n"
     "would refuse (default: close them, close reason policy_changed;\n"
     "a rule's keep-on-reload: true keeps the tunnels it allowed)",
     NULL},

    {"listen", T_LISTENERS, S_LISTEN, NOFIELD, NULL, 0, 0, F_REPEAT, "URL",
     "tls://ADDR:PORT or tcp://ADDR:PORT; IPv6 as [ADDR]. Repeatable.\n"
     "Flags after '?', joined by '&': ?admin, a listener for /healthz,\n"
     "/metrics and /status only (no tunnels; with auth configured, /metrics\n"
     "is served only there; /status only there, or on loopback listeners\n"
     "when none is ?admin); ?proxy-protocol (see --proxy-protocol-from).\n"
     "On tcp:// the HTTP/2 preface selects HTTP/2 (h2c prior knowledge)\n"
     "and a TLS ClientHello is served TLS, as on tls://. On tls:// a\n"
     "plaintext HTTP request gets a plaintext 400 saying so.",
     NULL},
    {"cert", T_PATH, S_LISTEN, FIELD(cert_file), NULL, 0, 0, 0, "FILE",
     "server certificate chain (PEM); default: the dev certificate", NULL},
    {"key", T_PATH, S_LISTEN, FIELD(key_file), NULL, 0, 0, 0, "FILE", "private key (PEM) for --cert", NULL},
    {"state-dir", T_PATH, S_LISTEN, FIELD(state_dir), NULL, 0, 0, 0, "DIR",
     "where the dev CA/certificate live (default $HOME/.local/state/h2tunnel)", NULL},
    {"workers", T_COUNT, S_LISTEN, FIELD(workers), "0", 0, 256, 0, "N",
     "worker threads, each with its own loop (default: one per core)", NULL},
    {"max-connections", T_COUNT, S_LISTEN, FIELD(max_connections), "auto", 0, 10000000, F_AUTO, "N",
     "client connections per worker, 0 = unlimited (default auto:\n"
     "(RLIMIT_NOFILE - 100) / 2 shared by the workers, at least 16;\n"
     "the other half is for upstream sockets). At the limit the oldest\n"
     "handshake is closed to make room, or else the new one is refused.",
     NULL},
    {"max-handshakes", T_COUNT, S_LISTEN, FIELD(max_handshakes), "1000", 0, 10000000, 0, "N",
     "connections per worker in their TLS handshake (or, on tcp://,\n"
     "before their first bytes); at the limit the oldest is closed to\n"
     "make room for the new one; 0 = unlimited (default 1000)",
     NULL},

    {"allow-ports", T_PORTS, S_POLICY, NOFIELD, "443,80", 0, 0, F_JOIN, "SPEC",
     "allowed CONNECT ports: \"443,80,8000-8100\" or \"*\" (default 443,80)", NULL},
    {"allow-net", T_NETS, S_POLICY, NOFIELD, NULL, 0, 0, F_REPEAT, "SPEC",
     "allow a CIDR or a class otherwise denied. Classes: loopback, private,\n"
     "link-local, cgnat, this-network, multicast, reserved, ula,\n"
     "v4-mapped, site-local, teredo, 6to4, global-special (IANA\n"
     "special-purpose blocks marked globally reachable: anycast\n"
     "PCP/TURN/AMT/AS112, ORCHIDv2). Repeatable. By default every\n"
     "non-public address is denied with 403. An IPv6 address that\n"
     "embeds IPv4 (v4-mapped, NAT64, 6to4, Teredo, ISATAP) also needs\n"
     "the embedded IPv4 address allowed.",
     NULL},
    {"deny-net", T_NETS, S_POLICY, NOFIELD, NULL, 0, 0, F_REPEAT, "CIDR", "deny a public range too. Repeatable.",
     NULL},
    {"dns-server", T_STRING, S_POLICY, FIELD(dns_servers), NULL, 0, 0, F_JOIN, "LIST",
     "resolvers as \"127.0.0.1:53,[::1]:53\" (default /etc/resolv.conf)", NULL},

    {"udp-template", T_STRING, S_XC, FIELD(udp_template), UDP_TMPL_DEFAULT, 0, 0, 0, "PATH",
     "connect-udp URI template (RFC 9298), with {target_host} and\n"
     "{target_port} (default " UDP_TMPL_DEFAULT ")",
     udp_tmpl_validate},
    {"ws-route", T_WS_ROUTES, S_XC, NOFIELD, NULL, 0, 0, F_REPEAT, "AUTH=URL",
     "WebSocket over HTTP/2 (RFC 8441): send streams whose :authority is\n"
     "AUTH to the backend URL ws://HOST:PORT or wss://HOST:PORT instead of\n"
     "to AUTH itself. Repeatable. Routed backends skip the target policy.",
     NULL},
    {"ws-routes-only", T_FLAG, S_XC, FIELD(ws_routes_only), "false", 0, 0, 0, NULL,
     "WebSocket only through --ws-route; other authorities get 421\n"
     "(default: a WebSocket to :authority itself, under the target policy)",
     NULL},
    {"upstream-ca", T_PATH, S_XC, FIELD(upstream_ca), NULL, 0, 0, 0, "FILE",
     "trust for wss:// backends (default: the system store)", NULL},

    {"proxy-name", T_STRING, S_FWD, FIELD(proxy_names), NULL, 0, 0, F_JOIN, "LIST",
     "names of the proxy itself besides localhost and the address a\n"
     "client connected to: a request for one of them (port absent or\n"
     "the listener's) gets the local pages /healthz and /metrics;\n"
     "any other authority is forwarded",
     NULL},
    {"via-name", T_STRING, S_FWD, FIELD(via_name), "h2tunnel", 0, 0, 0, "NAME",
     "pseudonym in the Via field of forwarded messages; a request whose\n"
     "Via already names it is a loop (508) (default h2tunnel)",
     NULL},
    {"forwarded-for", T_FLAG, S_FWD, FIELD(forwarded_for), "false", 0, 0, 0, NULL,
     "tell origins the client address (Forwarded, X-Forwarded-For);\n"
     "off by default: a forward proxy does not leak its clients",
     NULL},
    {"log-query", T_FLAG, S_FWD, FIELD(log_query), "false", 0, 0, 0, NULL,
     "keep the query of forwarded requests in the access log", NULL},
    {"fwd-pool-per-origin", T_COUNT, S_FWD, FIELD(fwd_pool_per_origin), "8", 0, 100000, 0, "N",
     "idle upstream connections kept per origin (host, port, TLS);\n0 keeps none (default 8)", NULL},
    {"fwd-pool-max", T_COUNT, S_FWD, FIELD(fwd_pool_max), "1024", 0, 10000000, 0, "N",
     "upstream connections of forwarded requests per worker, idle or\n"
     "busy, past it a request gets 503; 0 means no bound (default 1024)",
     NULL},
    {"fwd-pool-idle", T_DURATION, S_FWD, FIELD(fwd_pool_idle_ms), "30s", 0, 0, 0, "T",
     "an idle upstream connection is closed after T (default 30s)", NULL},
    {"fwd-response-timeout", T_DURATION, S_FWD, FIELD(fwd_response_timeout_ms), "60s", 0, 0, 0, "T",
     "request sent -> origin's response head, else 504 (default 60s)", NULL},
    {"fwd-body-timeout", T_DURATION, S_FWD, FIELD(fwd_body_timeout_ms), "60s", 0, 0, 0, "T",
     "a forwarded body with no byte moving either way for T ends\n(default 60s)", NULL},

    {"handshake-timeout", T_DURATION, S_TIMEOUTS, FIELD(handshake_timeout_ms), "10s", 0, 0, 0, "T",
     "TLS handshake (default 10s)", NULL},
    {"header-timeout", T_DURATION, S_TIMEOUTS, FIELD(header_timeout_ms), "10s", 0, 0, 0, "T",
     "complete request head: HTTP/1.1 head, HTTP/2 header block, and\n"
     "an HTTP/2 connection's preface and SETTINGS (default 10s)",
     NULL},
    {"dns-timeout", T_DURATION, S_TIMEOUTS, FIELD(dns_timeout_ms), "5s", 0, 0, 0, "T",
     "name resolution, per try (default 5s)", NULL},
    {"connect-timeout", T_DURATION, S_TIMEOUTS, FIELD(connect_timeout_ms), "30s", 0, 0, 0, "T",
     "upstream TCP connect -> 504 (default 30s)", NULL},
    {"happy-eyeballs-delay", T_DURATION, S_TIMEOUTS, FIELD(happy_eyeballs_delay_ms), "250ms", 10, 0, 0, "T",
     "start the next address of a name this long after the previous\n"
     "one if it has not connected yet (RFC 8305; default 250ms, min 10ms)",
     NULL},
    {"idle-timeout", T_DURATION, S_TIMEOUTS, FIELD(idle_timeout_ms), "300s", 0, 0, 0, "T",
     "tunnel with no bytes either way (default 300s)", NULL},
    {"udp-idle-timeout", T_DURATION, S_TIMEOUTS, FIELD(udp_idle_timeout_ms), "120s", 0, 0, 0, "T",
     "connect-udp tunnel with no datagram either way (default 120s)", NULL},
    {"max-duration", T_DURATION, S_TIMEOUTS, FIELD(max_duration_ms), "3600s", 0, 0, 0, "T",
     "any tunnel's lifetime (default 3600s)", NULL},
    {"conn-idle-timeout", T_DURATION, S_TIMEOUTS, FIELD(conn_idle_timeout_ms), "120s", 0, 0, 0, "T",
     "client connection with nothing open; HTTP/2 PING, SETTINGS and\n"
     "WINDOW_UPDATE do not count as activity (default 120s)",
     NULL},
    {"drain-timeout", T_DURATION, S_TIMEOUTS, FIELD(drain_timeout_ms), "30s", 0, 0, 0, "T",
     "on SIGTERM/SIGINT, how long live tunnels may finish; HTTP/2\n"
     "connections end with a GOAWAY a tenth earlier, at most 1s\n"
     "(default 30s)",
     NULL},

    /* PROXY protocol (src/proxyproto.h; listeners marked ?proxy-protocol) */
    {"proxy-protocol-from", T_NETS, S_LISTEN, NOFIELD, NULL, 0, 0, F_REPEAT, "SPEC",
     "sources trusted to send a PROXY protocol v1/v2 header on listeners\n"
     "marked ?proxy-protocol (tcp://0.0.0.0:8080?proxy-protocol): a CIDR,\n"
     "an address or a class name. Repeatable. From them the header is\n"
     "required and its client address is the one rules, limits, logs and\n"
     "metrics see; from anyone else a header is refused and logged, and\n"
     "a connection without one is served as usual.",
     NULL},
    {"proxy-protocol-timeout", T_DURATION, S_LISTEN, FIELD(pp_timeout_ms), "5s", 1, 0, 0, "T",
     "a trusted source's PROXY header must be complete within T (default 5s)", NULL},
    {"drain-delay", T_DURATION, S_TIMEOUTS, FIELD(drain_delay_ms), "0", 0, 0, 0, "T",
     "on SIGTERM/SIGINT, first answer /healthz with 503 for T while serving\n"
     "everything as before, so that load balancers stop sending new\n"
     "connections; then stop as --drain-timeout says (default 0)",
     NULL},
    /* Binary upgrade (src/upgrade.h) */
    {"upgrade-socket", T_PATH, S_LISTEN, FIELD(upgrade_socket), NULL, 0, 0, 0, "FILE",
     "unix socket (mode 0600) on which this process hands its listening\n"
     "sockets to a new process started with the same option, then stops\n"
     "as on SIGTERM without --drain-delay: a binary upgrade that refuses no\n"
     "connection (README \"Upgrading without downtime\"). At start, a\n"
     "process found there is replaced. Default: none",
     NULL},

    /* Auth and limits tuning: config_check copies these into access->tune. */
    {"client-ipv4-prefix", T_COUNT, S_LIMITS, FIELD(client_ipv4_prefix), "32", 1, 32, 0, "N",
     "per-client limits and failed-login bans count IPv4 clients by\n"
     "their /N network (default 32: each address)",
     NULL},
    {"client-ipv6-prefix", T_COUNT, S_LIMITS, FIELD(client_ipv6_prefix), "64", 1, 128, 0, "N",
     "the same for IPv6 clients (default 64: a host rotating addresses\n"
     "inside its /64 is one client; 128: each address)",
     NULL},
    {"auth-ban-slots", T_COUNT, S_LIMITS, FIELD(auth_ban_slots), "16384", 8, 1 << 24, 0, "N",
     "client networks the failed-login table tracks; a full set\n"
     "forgets one that is not banned first (default 16384)",
     NULL},
    {"auth-hash-concurrency", T_COUNT, S_LIMITS, FIELD(auth_hash_concurrency), "1", 1, 1024, 0, "N",
     "password hashes a worker runs at once on the thread pool; the\n"
     "other checks wait their turn (default 1: with a worker per core,\n"
     "at most one hash per core)",
     NULL},
    {"auth-hash-idle", T_FLAG, S_LIMITS, FIELD(auth_hash_idle), "false", 0, 0, 0, NULL,
     "hash passwords under SCHED_IDLE instead of nice 10: logins wait\n"
     "for idle CPU (and starve on a machine other processes keep busy)",
     NULL},
    {"bandwidth-burst", T_DURATION, S_LIMITS, FIELD(bw_burst_ms), "50ms", 1, 0, 0, "T",
     "how far a bandwidth bucket may run ahead of its rate before the\n"
     "reader pauses (default 50ms) ...",
     NULL},
    {"bandwidth-burst-min", T_SIZE, S_LIMITS, FIELD(bw_burst_min), "128k", 1024, 1ULL << 30, 0, "N",
     "... and at least this many bytes (default 128k)", NULL},

    {"max-header-bytes", T_SIZE, S_LIMITS, FIELD(max_header_bytes), "32k", 1024, 1 << 20, 0, "N",
     "HTTP/1.1 request head size -> 431 (default 32k); also the\n"
     "largest WebSocket backend Upgrade request (else 431) and\n"
     "response head (else 502)",
     NULL},
    {"max-headers", T_COUNT, S_LIMITS, FIELD(max_headers), "100", 1, 10000, 0, "N",
     "HTTP/1.1 header field count -> 431 (default 100)", NULL},
    {"high-water", T_SIZE, S_LIMITS, FIELD(high_water), "512k", 16384, 1ULL << 30, 0, "N",
     "stop reading a tunnel side when the other has N bytes queued\n(default 512k)", NULL},
    {"low-water", T_SIZE, S_LIMITS, FIELD(low_water), "128k", 0, 1ULL << 30, 0, "N",
     "resume reading below N bytes queued (default 128k)", NULL},
    {"read-budget", T_SIZE, S_LIMITS, FIELD(read_budget), "128k", 4096, 1ULL << 30, 0, "N",
     "bytes read from one socket (client connection, upstream TCP or UDP)\n"
     "per event-loop turn before the others get theirs (default 128k)",
     NULL},
    /* The memory budget (src/membudget.h) */
    {"memory-limit", T_SIZE, S_LIMITS, FIELD(memory_limit), "0", 0, 1ULL << 50, 0, "N",
     "memory budget for tunnel buffers: water marks and HTTP/2 windows\n"
     "shrink as it fills, new tunnels get 429 when it is tight\n"
     "(default 0: half the physical memory, or of the cgroup's limit)",
     NULL},
    {"memory-per-tunnel", T_SIZE, S_LIMITS, FIELD(memory_per_tunnel), "64k", 0, 1ULL << 30, 0, "N",
     "budget committed per open tunnel besides the buffers it holds\n(default 64k: one read chunk)",
     NULL},
    {"h2-stream-window-max", T_SIZE, S_LIMITS, FIELD(h2_stream_window_max), "16m", 65535, 0x7fffffff, 0, "N",
     "largest HTTP/2 stream window auto-tuning grows to (default 16m)", NULL},

    {"h2-max-streams", T_COUNT, S_H2, FIELD(h2_max_concurrent_streams), "256", 1, 100000, 0, "N",
     "SETTINGS_MAX_CONCURRENT_STREAMS (default 256)", NULL},
    {"h2-stream-window", T_SIZE, S_H2, FIELD(h2_stream_window), "1m", 65535, 0x7fffffff, 0, "N",
     "initial stream receive window (default 1m)", NULL},
    {"h2-conn-window", T_SIZE, S_H2, FIELD(h2_conn_window), "64m", 65535, 0x7fffffff, 0, "N",
     "connection receive window (default 64m)", NULL},
    {"h2-max-header-list", T_SIZE, S_H2, FIELD(h2_max_header_list), "64k", 1024, 1 << 24, 0, "N",
     "SETTINGS_MAX_HEADER_LIST_SIZE (default 64k)", NULL},
    {"no-extended-connect", T_FLAG, S_H2, FIELD(h2_enable_connect_protocol), "false", 0, 0, F_INVERT, NULL,
     "do not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL", NULL},
    {"h2-reset-burst", T_COUNT, S_H2, FIELD(h2_reset_burst), "1000", 1, 1000000, 0, "N",
     "rapid-reset limit: RST_STREAM burst before GOAWAY (default 1000)", NULL},
    {"h2-reset-rate", T_COUNT, S_H2, FIELD(h2_reset_rate), "33", 1, 1000000, 0, "N",
     "rapid-reset limit: RST_STREAMs refilled per second (default 33)", NULL},
    {"h2-max-continuations", T_COUNT, S_H2, FIELD(h2_max_continuations), "8", 0, 100000, 0, "N",
     "CONTINUATION frames per header block (default 8)", NULL},
    {"h2-max-settings", T_COUNT, S_H2, FIELD(h2_max_settings), "32", 1, 100000, 0, "N",
     "entries per SETTINGS frame (default 32)", NULL},
    {"h2-max-outbound-ack", T_COUNT, S_H2, FIELD(h2_max_outbound_ack), "1000", 1, 1000000, 0, "N",
     "queued SETTINGS/PING ACKs before GOAWAY (default 1000)", NULL},
    {"h2-max-discard", T_SIZE, S_H2, FIELD(h2_max_discard), "0", 0, 1ULL << 40, 0, "N",
     "DATA bytes a client may send on streams already closed or reset\n"
     "(refilled at N per minute) before GOAWAY ENHANCE_YOUR_CALM\n"
     "(default 0: twice --h2-conn-window)",
     NULL},

    {"log-level", T_LOG_LEVEL, S_LOG, FIELD(log_level), "info", 0, 0, 0, "LEVEL",
     "error, warn, info, debug (default info); errors go to stderr", NULL},
    {"access-log", T_PATH, S_LOG, FIELD(access_log), NULL, 0, 0, 0, "FILE",
     "one JSON line per tunnel/request (default stdout)", NULL},
    /* Status page and PAC (src/status.h) */
    {"status-interval", T_DURATION, S_LOG, FIELD(status_interval_ms), "1s", 100, 0, 0, "T",
     "how often each worker refreshes what /status and /status.json show\n"
     "(at least 100ms; default 1s)",
     NULL},
    {"status-max-tunnels", T_COUNT, S_LOG, FIELD(status_max_tunnels), "1000", 0, 100000, 0, "N",
     "tunnels each worker lists on /status.json; beyond, \"truncated\"\n"
     "says so (default 1000)",
     NULL},
    {"status-rejections", T_COUNT, S_LOG, FIELD(status_rejections), "16", 0, 1024, 0, "N",
     "recent refusals each worker keeps for /status (default 16)", NULL},
    {"pac-proxy-host", T_STRING, S_LOG, FIELD(pac_proxy_host), NULL, 0, 0, 0, "HOST",
     "the proxy's name in /proxy.pac (default: the Host the browser\n"
     "asked for the PAC file with)",
     NULL},
    {"help", T_CLI, S_LOG, NOFIELD, NULL, 0, 0, 0, NULL, NULL, NULL},
    {"version", T_CLI, S_LOG, NOFIELD, NULL, 0, 0, F_HIDDEN, NULL, NULL, NULL},

    {"auth", T_SECTION, S_ACCESS, NOFIELD, NULL, 0, 0, 0, NULL, NULL, NULL},
    {"groups", T_SECTION, S_ACCESS, NOFIELD, NULL, 0, 0, 0, NULL, NULL, NULL},
    {"rules", T_SECTION, S_ACCESS, NOFIELD, NULL, 0, 0, 0, NULL, NULL, NULL},
    {"limits", T_SECTION, S_ACCESS, NOFIELD, NULL, 0, 0, 0, NULL, NULL, NULL},
};

_Static_assert(ARRAY_SIZE(opts) <= CONFIG_MAX_OPTS, "raise CONFIG_MAX_OPTS");

static const char *const log_levels[] = {"error", "warn", "info", "debug"};

static const struct opt *find_opt(const char *name) {
  for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
    if (strcmp(opts[i].name, name) == 0) return &opts[i];
  return NULL;
}

static size_t opt_index(const struct opt *o) { return (size_t)(o - opts); }

const struct config_origin *config_origin_of(const struct config *cfg, const char *name) {
  const struct opt *o = find_opt(name);
  return o ? &cfg->origin[opt_index(o)] : NULL;
}

/* ---- storing values ------------------------------------------------------------------------ */

static void store_uint(void *field, size_t width, uint64_t v) {
  if (width == sizeof(uint32_t)) {
    uint32_t x = (uint32_t)v;
    memcpy(field, &x, sizeof(x));
  } else {
    CHECK(width == sizeof(uint64_t));
    memcpy(field, &v, sizeof(v));
  }
}

static uint64_t load_uint(const void *field, size_t width) {
  if (width == sizeof(uint32_t)) {
    uint32_t x;
    memcpy(&x, field, sizeof(x));
    return x;
  }
  uint64_t v;
  memcpy(&v, field, sizeof(v));
  return v;
}

static void strlist_add(struct config_strlist *l, const char *s) {
  l->v = xgrow(l->v, l->n, sizeof(*l->v));
  l->v[l->n++] = xstrndup(s, strlen(s));
}

static void strlist_clear(struct config_strlist *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static const struct config_strlist *nets_list_c(const struct config *cfg, const struct opt *o) {
  if (strcmp(o->name, "proxy-protocol-from") == 0) return &cfg->pp_from;
  return strcmp(o->name, "allow-net") == 0 ? &cfg->allow_nets : &cfg->deny_nets;
}

static struct config_strlist *nets_list(struct config *cfg, const struct opt *o) {
  return (struct config_strlist *)nets_list_c(cfg, o);
}

/* Empties a list option before a new source gives the whole list. */
static void clear_list(struct config *cfg, const struct opt *o) {
  if (o->type == T_LISTENERS) cfg->nlisteners = 0;
  if (o->type == T_NETS) strlist_clear(nets_list(cfg, o));
  if (o->type == T_WS_ROUTES) cfg->nws_routes = 0;
}

/* Applies one value written as text (a flag's argument, a file scalar, a default). Returns 0, or
 * -EINVAL with a short reason in |why|. A list type appends one item. */
static int apply_text(struct config *cfg, const struct opt *o, const char *v, char *why, size_t whycap) {
  char *field = (char *)cfg + o->off;
  uint64_t n;
  switch (o->type) {
  case T_DURATION:
    if (units_parse_duration(v, &n)) {
      snprintf(why, whycap, "not a duration (\"30\", \"1.5s\", \"250ms\", \"5m\", \"1h\")");
      return -EINVAL;
    }
    if (n < o->min) {
      char lo[32];
      units_format_duration(o->min, lo, sizeof(lo));
      snprintf(why, whycap, "below the minimum %s", lo);
      return -EINVAL;
    }
    store_uint(field, o->width, n);
    return 0;
  case T_SIZE:
  case T_COUNT:
    if ((o->flags & F_AUTO) && strcmp(v, "auto") == 0) {
      store_uint(field, o->width, CONFIG_AUTO);
      return 0;
    }
    if (units_parse_size(v, &n)) {
      snprintf(why, whycap, "not a %s", o->type == T_SIZE ? "size (\"65536\", \"64k\", \"1m\")" : "number");
      return -EINVAL;
    }
    if (n < o->min || n > o->max) {
      char lo[32], hi[32];
      if (o->type == T_SIZE) {
        units_format_size(o->min, lo, sizeof(lo));
        units_format_size(o->max, hi, sizeof(hi));
      } else {
        snprintf(lo, sizeof(lo), "%llu", (unsigned long long)o->min);
        snprintf(hi, sizeof(hi), "%llu", (unsigned long long)o->max);
      }
      snprintf(why, whycap, "out of range %s..%s", lo, hi);
      return -EINVAL;
    }
    store_uint(field, o->width, n);
    return 0;
  case T_FLAG:
    if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
      snprintf(why, whycap, "not true or false");
      return -EINVAL;
    }
    store_uint(field, o->width, (strcmp(v, "true") == 0) != !!(o->flags & F_INVERT));
    return 0;
  case T_STRING:
  case T_PATH:
    if (strlen(v) >= o->width) {
      snprintf(why, whycap, "longer than %zu bytes", o->width - 1);
      return -EINVAL;
    }
    if (o->check && o->check(v) != 0) {
      snprintf(why, whycap, "not valid (see --help)");
      return -EINVAL;
    }
    memcpy(field, v, strlen(v) + 1);
    return 0;
  case T_LOG_LEVEL:
    for (size_t i = 0; i < ARRAY_SIZE(log_levels); i++) {
      if (strcmp(v, log_levels[i]) == 0) {
        store_uint(field, o->width, i);
        return 0;
      }
    }
    snprintf(why, whycap, "not one of error, warn, info, debug");
    return -EINVAL;
  case T_LISTENERS:
    if (cfg->nlisteners >= CONFIG_MAX_LISTENERS) {
      snprintf(why, whycap, "more than %d listeners", CONFIG_MAX_LISTENERS);
      return -EINVAL;
    }
    if (config_parse_listener(v, &cfg->listeners[cfg->nlisteners])) {
      snprintf(why, whycap, "not tls://ADDR:PORT or tcp://ADDR:PORT (optionally ?proxy-protocol, ?admin, or both joined by &)");
      return -EINVAL;
    }
    cfg->nlisteners++;
    cfg->listeners_given = 1;
    return 0;
  case T_NETS: {
    /* Checked on a scratch policy with the list so far, so the CIDR cap is reported here. */
    struct config_strlist *l = nets_list(cfg, o);
    if (l->n >= POLICY_NETS_MAX + ADDR_CLASS_COUNT) { /* more must repeat a class or overflow */
      snprintf(why, whycap, "more than %d items in the list", POLICY_NETS_MAX + ADDR_CLASS_COUNT);
      return -EINVAL;
    }
    struct policy *p = policy_new();
    int r = 0;
    for (size_t i = 0; i <= l->n && r == 0; i++) r = policy_allow_net(p, i < l->n ? l->v[i] : v);
    policy_free(p);
    if (r == -ENOSPC) snprintf(why, whycap, "more than %d CIDRs in the list", POLICY_NETS_MAX);
    if (r == -EINVAL) snprintf(why, whycap, "not a CIDR or an address class (see --help)");
    if (r) return -EINVAL;
    strlist_add(l, v);
    return 0;
  }
  case T_PORTS: {
    struct policy *p = policy_new();
    int r = policy_set_ports(p, v);
    policy_free(p);
    if (r || strlen(v) >= sizeof(cfg->allow_ports)) {
      snprintf(why, whycap, "not a port list (\"443,80,8000-8100\" or \"*\")");
      return -EINVAL;
    }
    memcpy(cfg->allow_ports, v, strlen(v) + 1);
    return 0;
  }
  case T_WS_ROUTES:
    if (config_parse_ws_route(v, cfg)) {
      snprintf(why, whycap, "not AUTHORITY=ws://HOST:PORT or AUTHORITY=wss://HOST:PORT (at most %zu)",
               ARRAY_SIZE(cfg->ws_routes));
      return -EINVAL;
    }
    return 0;
  case T_SECTION:
  case T_CLI:
    break;
  }
  snprintf(why, whycap, "not an option value");
  return -EINVAL;
}

void config_init(struct config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->policy = policy_new();
  cfg->access = access_new();
  cfg->pp_trusted = xcalloc(1, sizeof(*cfg->pp_trusted));
  for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
    char why[160];
    if (opts[i].def) CHECK(apply_text(cfg, &opts[i], opts[i].def, why, sizeof(why)) == 0);
  }
}

void config_dispose(struct config *cfg) {
  policy_free(cfg->policy);
  cfg->policy = NULL;
  access_free(cfg->access);
  cfg->access = NULL;
  strlist_clear(&cfg->allow_nets);
  strlist_clear(&cfg->deny_nets);
  strlist_clear(&cfg->pp_from);
  if (cfg->pp_trusted) access_nets_dispose(cfg->pp_trusted);
  free(cfg->pp_trusted);
  cfg->pp_trusted = NULL;
}

/* ---- the file ------------------------------------------------------------------------------ */

/* Applies the file's value |v| for |o|. */
static int apply_node(struct config *cfg, const struct opt *o, const struct cfgfile_node *v, const char *file,
                      const char *base, struct cfgfile_err *err) {
  char why[200];
  if (o->type == T_SECTION) return access_parse_section(cfg->access, o->name, v, base, err);

  if (o->flags & F_REPEAT) {
    if (cfgfile_want_list(file, v, o->name, err)) return -EINVAL;
    clear_list(cfg, o);
    for (size_t i = 0; i < cfgfile_nitems(v); i++) {
      const struct cfgfile_node *it = cfgfile_item(v, i);
      if (apply_text(cfg, o, it->str, why, sizeof(why))) {
        cfgfile_errf(err, file, it, "%s: '%s': %s", o->name, it->str, why);
        return -EINVAL;
      }
    }
    return 0;
  }

  char *text = NULL;
  if ((o->flags & F_JOIN) && v->kind == CFGFILE_SEQ) {
    if (cfgfile_want_list(file, v, o->name, err)) return -EINVAL;
    size_t len = 1;
    for (size_t i = 0; i < v->n; i++) len += v->kids[i]->len + 1;
    text = xcalloc(1, len);
    for (size_t i = 0; i < v->n; i++) {
      if (i) strcat(text, ",");
      strcat(text, v->kids[i]->str);
    }
  } else {
    const char *what = o->type == T_FLAG ? "true or false" : o->arg ? o->arg : "a value";
    const char *s = cfgfile_scalar(file, v, o->name, what, err);
    if (!s) return -EINVAL;
    text = o->type == T_PATH ? cfgfile_path(base, s) : xstrndup(s, v->len);
  }
  int r = apply_text(cfg, o, text, why, sizeof(why));
  if (r) cfgfile_errf(err, file, v, "%s: '%s': %s", o->name, text, why);
  free(text);
  return r;
}

int config_apply_yaml(struct config *cfg, const char *file, const char *text, size_t len,
                      struct cfgfile_err *err) {
  struct cfgfile_doc *doc = cfgfile_parse(file, text, len, err);
  if (!doc) return -EINVAL;
  char *base = cfgfile_dir(file);
  free(cfg->access->file);
  cfg->access->file = xstrndup(file, strlen(file));
  int r = 0;
  const struct cfgfile_node *root = doc->root;
  for (size_t i = 0; i + 1 < root->n && r == 0; i += 2) {
    const struct cfgfile_node *k = root->kids[i], *v = root->kids[i + 1];
    const struct opt *o = find_opt(k->str);
    if (!o || o->type == T_CLI) {
      cfgfile_errf(err, file, k, "unknown key '%s'%s", k->str,
                   o ? " (only as a flag on the command line)" : " (see h2tunnel --help for the names)");
      r = -EINVAL;
      break;
    }
    r = apply_node(cfg, o, v, file, base, err);
    cfg->origin[opt_index(o)] = (struct config_origin){CONFIG_SRC_FILE, k->line, k->col};
  }
  free(base);
  cfgfile_free(doc);
  return r;
}

/* ---- checks -------------------------------------------------------------------------------- */

/* A cross-check failed: point at |name|'s line when the file set it, else word it for flags. */
static int check_fail(const struct config *cfg, struct cfgfile_err *err, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int check_fail(const struct config *cfg, struct cfgfile_err *err, const char *name, const char *fmt, ...) {
  const struct config_origin *og = &cfg->origin[opt_index(find_opt(name))];
  char text[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  if (og->src == CONFIG_SRC_FILE) {
    struct cfgfile_node at = {.line = og->line, .col = og->col};
    cfgfile_errf(err, cfg->config_file, &at, "%s", text);
  } else {
    snprintf(err->text, sizeof(err->text), "h2tunnel: %s", text);
  }
  return -EINVAL;
}

int config_check(struct config *cfg, struct cfgfile_err *err) {
  if (cfg->h2_stream_window_max < cfg->h2_stream_window)
    return check_fail(cfg, err, "h2-stream-window-max", "h2-stream-window-max (%u) is below h2-stream-window (%u)",
                      (unsigned)cfg->h2_stream_window_max, (unsigned)cfg->h2_stream_window);
  if (cfg->low_water >= cfg->high_water) {
    const char *at = cfg->origin[opt_index(find_opt("low-water"))].src == CONFIG_SRC_FILE ? "low-water" : "high-water";
    return check_fail(cfg, err, at, "--low-water must be below --high-water");
  }
  if ((cfg->cert_file[0] != '\0') != (cfg->key_file[0] != '\0'))
    return check_fail(cfg, err, cfg->cert_file[0] ? "cert" : "key", "--cert and --key go together");
  if (access_link(cfg->access, err)) return -EINVAL;
  struct access_tuning *t = &cfg->access->tune;
  t->client_v4_prefix = (unsigned)cfg->client_ipv4_prefix;
  t->client_v6_prefix = (unsigned)cfg->client_ipv6_prefix;
  t->ban_slots = cfg->auth_ban_slots;
  t->hash_concurrency = cfg->auth_hash_concurrency;
  t->hash_idle = cfg->auth_hash_idle;
  t->bw_burst_ms = cfg->bw_burst_ms;
  t->bw_burst_min = cfg->bw_burst_min;

  /* The lists were checked item by item; building cannot fail now. */
  struct policy *p = policy_new();
  CHECK(policy_set_ports(p, cfg->allow_ports) == 0);
  for (size_t i = 0; i < cfg->allow_nets.n; i++) CHECK(policy_allow_net(p, cfg->allow_nets.v[i]) == 0);
  for (size_t i = 0; i < cfg->deny_nets.n; i++) CHECK(policy_deny_net(p, cfg->deny_nets.v[i]) == 0);
  policy_free(cfg->policy);
  cfg->policy = p;

  access_nets_dispose(cfg->pp_trusted);
  for (size_t i = 0; i < cfg->pp_from.n; i++) {
    const char *why;
    if (access_nets_add(cfg->pp_trusted, cfg->pp_from.v[i], 1, &why))
      return check_fail(cfg, err, "proxy-protocol-from", "proxy-protocol-from: '%s': %s", cfg->pp_from.v[i], why);
  }
  for (int i = 0; i < cfg->nlisteners; i++)
    if (cfg->listeners[i].proxy_protocol && cfg->pp_from.n == 0)
      return check_fail(cfg, err, "listen", "listener %s: ?proxy-protocol needs proxy-protocol-from (the load "
                        "balancers trusted to send the header)", cfg->listeners[i].text);
  if (strlen(cfg->upgrade_socket) + 12 >= sizeof(((struct sockaddr_un *)0)->sun_path))
    return check_fail(cfg, err, "upgrade-socket", "upgrade-socket: '%s': longer than a unix socket path may be "
                      "(%zu bytes with room for a suffix)", cfg->upgrade_socket,
                      sizeof(((struct sockaddr_un *)0)->sun_path) - 13);
  return 0;
}

/* ---- flags --------------------------------------------------------------------------------- */

struct flag_arg {
  const struct opt *o;
  const char *val;
};

static int read_file(struct config *cfg, struct cfgfile_err *err) {
  size_t len;
  char *text = cfgfile_read(cfg->config_file, CFGFILE_MAX_BYTES, &len, err);
  if (!text) return -EINVAL;
  int r = config_apply_yaml(cfg, cfg->config_file, text, len, err);
  free(text);
  return r;
}

static int set_config_file(struct config *cfg, const char *name, const char *path) {
  if (cfg->config_file[0]) {
    fprintf(stderr, "h2tunnel: --%s: only one of --config and --check-config, once\n", name);
    return -EINVAL;
  }
  if (path[0] == '\0' || strlen(path) >= sizeof(cfg->config_file)) {
    fprintf(stderr, "h2tunnel: invalid value for --%s: '%s' (see --help)\n", name, path);
    return -EINVAL;
  }
  memcpy(cfg->config_file, path, strlen(path) + 1);
  cfg->check_only = strcmp(name, "check-config") == 0;
  return 0;
}

int config_parse(struct config *cfg, int argc, char **argv) {
  struct option long_opts[ARRAY_SIZE(opts) + 1];
  struct flag_arg *args = xcalloc((size_t)argc + 1, sizeof(*args));
  struct cfgfile_err err = {{0}};
  size_t nlong = 0, nargs = 0;
  int opt, r = 0;

  for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
    if (opts[i].type == T_SECTION) continue;
    int has_arg = opts[i].arg ? required_argument : no_argument;
    long_opts[nlong++] = (struct option){opts[i].name, has_arg, NULL, 256 + (int)i};
  }
  long_opts[nlong] = (struct option){NULL, 0, NULL, 0};

  /* First every flag is collected, so the file (wherever --config stands) comes under them all. */
  optind = 1;
  while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
    if (opt == 'h' || (opt >= 256 && strcmp(opts[opt - 256].name, "help") == 0)) {
      config_print_help(argv[0]);
      r = 1;
      goto out;
    }
    if (opt < 256) {
      fprintf(stderr, "h2tunnel: see --help\n");
      r = -EINVAL;
      goto out;
    }
    const struct opt *o = &opts[opt - 256];
    if (strcmp(o->name, "version") == 0) {
      printf("h2tunnel %s\n", H2T_VERSION);
      r = 1;
      goto out;
    }
    if (o->type == T_CLI) {
      if ((r = set_config_file(cfg, o->name, optarg))) goto out;
      continue;
    }
    args[nargs++] = (struct flag_arg){o, optarg};
  }
  if (optind < argc) {
    fprintf(stderr, "h2tunnel: unexpected argument '%s' (see --help)\n", argv[optind]);
    r = -EINVAL;
    goto out;
  }

  if (cfg->config_file[0] && (r = read_file(cfg, &err))) goto fail;

  for (size_t i = 0; i < nargs; i++) {
    const struct opt *o = args[i].o;
    struct config_origin *og = &cfg->origin[opt_index(o)];
    char why[200];
    if ((o->flags & F_REPEAT) && og->src != CONFIG_SRC_FLAG) clear_list(cfg, o);
    og->src = CONFIG_SRC_FLAG;
    if (apply_text(cfg, o, args[i].val ? args[i].val : "true", why, sizeof(why))) {
      fprintf(stderr, "h2tunnel: invalid value for --%s: '%s': %s (see --help)\n", o->name, args[i].val, why);
      r = -EINVAL;
      goto out;
    }
  }
  if ((r = access_load_files(cfg->access, &err))) goto fail;
  if ((r = config_check(cfg, &err))) goto fail;
  goto out;
fail:
  fprintf(stderr, "%s\n", err.text);
out:
  free(args);
  return r;
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

/* ---- snapshots ----------------------------------------------------------------------------- */

int config_load(int argc, char **argv, struct config **out) {
  struct config *cfg = xmalloc(sizeof(*cfg));
  config_init(cfg);
  int r = config_parse(cfg, argc, argv);
  if (r != 0) {
    config_dispose(cfg);
    free(cfg);
    return r;
  }
  config_finish(cfg);
  cfg->version = 1;
  cfg->counted = 1;
  atomic_init(&cfg->refs, 1);
  *out = cfg;
  return 0;
}

int config_reload(const struct config *old, int argc, char **argv, struct config **out) {
  struct config *cfg;
  int r = config_load(argc, argv, &cfg);
  if (r != 0) return r < 0 ? r : -EINVAL; /* --help cannot come back, but a 1 is no snapshot */
  cfg->version = old->version + 1;
  *out = cfg;
  return 0;
}

struct config *config_ref(struct config *cfg) {
  if (cfg && cfg->counted) atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
  return cfg;
}

void config_unref(struct config *cfg) {
  if (!cfg || !cfg->counted || atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) != 1) return;
  config_dispose(cfg);
  free(cfg);
}

/* ---- printing ------------------------------------------------------------------------------ */

static void print_value(const struct config *cfg, const struct opt *o, FILE *out) {
  const char *field = (const char *)cfg + o->off;
  char text[64];
  switch (o->type) {
  case T_DURATION:
    units_format_duration(load_uint(field, o->width), text, sizeof(text));
    fputs(text, out);
    break;
  case T_SIZE:
    units_format_size(load_uint(field, o->width), text, sizeof(text));
    fputs(text, out);
    break;
  case T_COUNT:
    if ((o->flags & F_AUTO) && load_uint(field, o->width) == CONFIG_AUTO)
      fputs("auto", out);
    else
      fprintf(out, "%llu", (unsigned long long)load_uint(field, o->width));
    break;
  case T_FLAG:
    fputs((load_uint(field, o->width) != 0) != !!(o->flags & F_INVERT) ? "true" : "false", out);
    break;
  case T_STRING:
  case T_PATH:
    cfgfile_print_str(out, field);
    break;
  case T_LOG_LEVEL:
    fputs(log_levels[load_uint(field, o->width) % ARRAY_SIZE(log_levels)], out);
    break;
  case T_PORTS:
    cfgfile_print_str(out, cfg->allow_ports);
    break;
  case T_LISTENERS:
  case T_NETS:
  case T_WS_ROUTES: {
    const struct config_strlist *l = nets_list_c(cfg, o);
    int n = o->type == T_LISTENERS ? cfg->nlisteners : o->type == T_NETS ? (int)l->n : cfg->nws_routes;
    fputc('[', out);
    for (int i = 0; i < n; i++) {
      if (i) fputs(", ", out);
      if (o->type == T_LISTENERS) {
        cfgfile_print_str(out, cfg->listeners[i].text);
      } else if (o->type == T_NETS) {
        cfgfile_print_str(out, l->v[i]);
      } else {
        const struct config_ws_route *w = &cfg->ws_routes[i];
        char route[600];
        snprintf(route, sizeof(route), "%s=%s://%s", w->authority, w->tls ? "wss" : "ws", w->backend);
        cfgfile_print_str(out, route);
      }
    }
    fputc(']', out);
    break;
  }
  case T_SECTION:
  case T_CLI:
    break;
  }
}

static void origin_text(const struct config *cfg, const struct opt *o, char *buf, size_t cap) {
  const struct config_origin *og = &cfg->origin[opt_index(o)];
  if (og->src == CONFIG_SRC_FILE)
    snprintf(buf, cap, "file %s:%u", cfg->config_file, og->line);
  else
    snprintf(buf, cap, "%s", og->src == CONFIG_SRC_FLAG ? "flag" : "default");
}

void config_print(const struct config *cfg, FILE *out, int origins) {
  char og[600];
  fprintf(out, "# h2tunnel %s: the effective configuration%s%s\n", H2T_VERSION,
          cfg->config_file[0] ? " from " : "", cfg->config_file);
  if (origins) fputs("# After each value: where it came from (default, file FILE:LINE, or flag).\n", out);
  for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
    const struct opt *o = &opts[i];
    if (o->type == T_CLI) continue;
    origin_text(cfg, o, og, sizeof(og));
    if (o->type == T_SECTION) {
      if (cfg->origin[i].src == CONFIG_SRC_DEFAULT) {
        fprintf(out, "# %s: not configured\n", o->name);
        continue;
      }
      access_print_section(cfg->access, o->name, origins ? og : NULL, out);
      continue;
    }
    fprintf(out, "%s: ", o->name);
    print_value(cfg, o, out);
    if (origins) fprintf(out, "  # %s", og);
    fputc('\n', out);
  }
}

/* The left column is "  --name ARG" padded to 27 characters; continuation lines are indented. */
static void print_opt_help(const struct opt *o) {
  char left[64];
  if (strcmp(o->name, "help") == 0) {
    printf("  --help, --version\n");
    return;
  }
  snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
  printf("  %-24s ", left);
  for (const char *p = o->help; *p; p++) {
    putchar(*p);
    if (*p == '\n') printf("%27s", "");
  }
  putchar('\n');
}

void config_print_help(const char *argv0) {
  (void)argv0; /* the name is fixed, so the README can hold the exact text */
  printf("Usage: h2tunnel [OPTIONS]\n"
         "h2tunnel " H2T_VERSION " - a forward proxy that tunnels TCP through HTTP/1.1 and HTTP/2 CONNECT.\n"
         "\n"
         "With no options it listens on tls://127.0.0.1:8443 (ALPN h2, http/1.1) and tcp://127.0.0.1:8080,\n"
         "using a development CA and certificate generated on first run in the state directory.\n");
  for (size_t s = 0; s < ARRAY_SIZE(section_titles); s++) {
    if (!section_titles[s]) continue;
    printf("\n%s\n", section_titles[s]);
    for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
      if (opts[i].section == s && !(opts[i].flags & F_HIDDEN)) print_opt_help(&opts[i]);
  }
}
