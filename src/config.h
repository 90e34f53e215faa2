/* The process configuration: every option and limit, its default, its flag, its key in the
 * configuration file, its --help text and its --check-config line, all from one option table in
 * config.c (adding an option is one field here and one entry there).
 *
 * Sources, later ones winning: the defaults, the YAML file named by --config (keys are the long
 * option names; see cfgfile.h and etc/h2tunnel.yaml), then the flags. A repeatable flag (--listen,
 * --allow-net, --deny-net, --ws-route) replaces the file's whole list rather than adding to it.
 *
 * A loaded configuration is an immutable snapshot: config_load builds it on the heap with one
 * reference; workers borrow it read-only (w->cfg). A reload builds a new snapshot with the next
 * |version| and swaps it per worker, each dropping its reference to the old one with config_unref;
 * the last reference frees it. Nothing in a snapshot changes after config_load returns. */
#ifndef H2T_CONFIG_H
#define H2T_CONFIG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "src/cfgfile.h"

#define CONFIG_MAX_LISTENERS 16
/* A limit whose default config_finish derives from the machine (see there). */
#define CONFIG_AUTO SIZE_MAX
/* Entries in config.c's option table, at most (origins are kept per entry). */
#define CONFIG_MAX_OPTS 96

struct policy;
struct access;
struct access_nets;

struct config_listener {
  int tls;                      /* 1 for tls://, 0 for tcp:// */
  int proxy_protocol;           /* "?proxy-protocol": a PROXY v1/v2 header comes first from
                                   the sources in proxy-protocol-from (src/proxyproto.h) */
  int admin;                    /* "?admin": serves /healthz, /metrics and /status only, no tunnels */
  struct sockaddr_storage addr; /* where to bind */
  char text[128];               /* as given, for logs */
};

/* A list of strings as given (--allow-net, --deny-net). */
struct config_strlist {
  char **v;                     /* owned array of owned strings */
  size_t n;
};

/* Where an option's value came from, for --check-config. */
enum config_src { CONFIG_SRC_DEFAULT, CONFIG_SRC_FILE, CONFIG_SRC_FLAG };

struct config_origin {
  enum config_src src;
  unsigned line, col;           /* in the file, for CONFIG_SRC_FILE */
};

struct config {
  struct config_listener listeners[CONFIG_MAX_LISTENERS];
  int nlisteners;
  int listeners_given;       /* 1 when --listen was used (else the embedded default) */
  char cert_file[512];       /* empty: use the dev certificate from state_dir */
  char key_file[512];
  char state_dir[512];
  char access_log[512];      /* empty: stdout */
  int workers;               /* 0: one per core */
  int log_level;             /* enum log_level; main applies it with log_set_level */

  /* Timeouts, milliseconds. */
  uint64_t handshake_timeout_ms;
  uint64_t header_timeout_ms;
  uint64_t connect_timeout_ms;
  uint64_t happy_eyeballs_delay_ms; /* RFC 8305 connection attempt delay */
  uint64_t idle_timeout_ms;
  uint64_t udp_idle_timeout_ms;  /* connect-udp tunnels */
  uint64_t max_duration_ms;
  uint64_t dns_timeout_ms;
  uint64_t conn_idle_timeout_ms; /* h2 connection with no streams / h1 keep-alive between requests */
  uint64_t drain_timeout_ms;     /* graceful stop: how long live tunnels may finish */

  /* Limits. */
  size_t max_header_bytes;   /* HTTP/1.1 request head */
  size_t max_headers;        /* HTTP/1.1 header field count */
  size_t high_water;         /* tunnel backpressure, bytes queued on the writer */
  size_t low_water;
  size_t max_connections;    /* per worker; 0 = unlimited; CONFIG_AUTO until config_finish */
  size_t max_handshakes;     /* per worker: conns with no front end yet; 0 = unlimited */
  size_t read_budget;        /* bytes one client conn may read per loop turn (fairness) */
  /* The memory budget (src/membudget.h). */
  uint64_t memory_limit;     /* bytes; 0: half the physical (or cgroup) memory */
  size_t memory_per_tunnel;  /* bytes committed per admitted tunnel */
  uint32_t h2_stream_window_max; /* stream windows grow up to this by auto-tuning */

  /* HTTP/2. */
  uint32_t h2_max_concurrent_streams;
  uint32_t h2_stream_window;     /* initial stream receive window, bytes */
  uint32_t h2_conn_window;       /* connection receive window, bytes */
  uint32_t h2_max_header_list;   /* SETTINGS_MAX_HEADER_LIST_SIZE */
  int h2_enable_connect_protocol;
  uint64_t h2_reset_burst;       /* rapid-reset limit: burst and per-second rate */
  uint64_t h2_reset_rate;
  size_t h2_max_continuations;
  size_t h2_max_settings;
  size_t h2_max_outbound_ack;
  uint64_t h2_max_discard;       /* DATA bytes on closed or reset streams, refilled per minute;
                                    0: twice h2_conn_window */

  char dns_servers[256];     /* empty: /etc/resolv.conf */
  char udp_template[256];    /* connect-udp URI template path */
  char upstream_ca[512];     /* trust for TLS to upstreams; empty: system store */
  /* WebSocket routes (RFC 8441 reverse-proxy use): :authority -> backend. */
  struct config_ws_route {
    char authority[256];     /* as the client sends it, lowercased */
    char backend[300];       /* host:port */
    int tls;                 /* wss: TLS with verification to the backend */
  } ws_routes[32];
  int nws_routes;
  int ws_routes_only;        /* refuse WebSocket streams whose :authority has no route */

  /* Target policy as given; config_parse builds |policy| from them. */
  char allow_ports[1024];    /* "443,80", "22,8000-8100" or "*" */
  struct config_strlist allow_nets, deny_nets;
  struct policy *policy;     /* owned */

  struct access *access;     /* owned: auth, groups, rules, limits (file only); never NULL */
  /* Auth and limits tuning, as given; config_check copies them into access->tune. */
  size_t client_ipv4_prefix;  /* per-client limits and bans count clients by network */
  size_t client_ipv6_prefix;
  size_t auth_ban_slots;      /* client networks the failed-login table holds */
  size_t auth_hash_concurrency; /* password hashes per worker at once; the rest queue */
  int auth_hash_idle;         /* hash under SCHED_IDLE instead of nice 10 */
  uint64_t bw_burst_ms;       /* a bandwidth bucket's advance: this long of its rate ... */
  size_t bw_burst_min;        /* ... and at least this many bytes */

  /* PROXY protocol (listeners marked ?proxy-protocol). */
  struct config_strlist pp_from;     /* trusted sources as given */
  struct access_nets *pp_trusted;    /* owned: built from |pp_from| by config_check; never NULL */
  uint64_t pp_timeout_ms;            /* the header must be complete within this */
  uint64_t drain_delay_ms;           /* on SIGTERM: /healthz says 503 this long before the stop */
  char upgrade_socket[512];          /* binary upgrade (src/upgrade.h): unix socket path; empty: off */

  /* Status page and PAC (src/status.h). */
  uint64_t status_interval_ms;  /* each worker's snapshot refresh */
  size_t status_max_tunnels;    /* tunnels listed per worker */
  size_t status_rejections;     /* recent refusals kept per worker */
  char pac_proxy_host[256];     /* empty: the PAC request's Host */
  /* Forwarding of ordinary requests (absolute-form, h2 :authority not the proxy). */
  char proxy_names[512];     /* comma list: extra names of the proxy itself (local pages) */
  char via_name[64];         /* pseudonym in Via (RFC 9110 §7.6.3) and for loop detection */
  int forwarded_for;         /* add Forwarded / X-Forwarded-For with the client address */
  int log_query;             /* the access log keeps a forwarded request's query */
  size_t fwd_pool_per_origin;  /* idle upstream connections kept per (host, port, TLS) */
  size_t fwd_pool_max;         /* upstream connections (idle and busy) per worker; 0: no bound */
  uint64_t fwd_pool_idle_ms;   /* an idle upstream connection is closed after this */
  uint64_t fwd_response_timeout_ms; /* request sent -> response head complete */
  uint64_t fwd_body_timeout_ms;     /* no body byte either way for this long */

  int reload_keep_tunnels;   /* a reload keeps live tunnels its rules would refuse */
  char config_file[512];     /* --config / --check-config FILE; empty: none */
  int check_only;            /* --check-config: validate, print, exit */
  uint64_t version;          /* snapshot number: 1 for the first load, +1 per reload */
  atomic_uint refs;          /* config_load's snapshots only */
  int counted;               /* 1: a config_load snapshot (refcounted); 0: one a caller owns
                                (a unit test's): config_ref and config_unref leave it alone */
  struct config_origin origin[CONFIG_MAX_OPTS]; /* per option-table entry */
};

/* Sets every default (from the option table). Pair with config_dispose. */
void config_init(struct config *cfg);
void config_dispose(struct config *cfg);
/* Reads argv into |cfg| (after config_init): collects the flags, reads the --config or
 * --check-config file, applies the flags over it, loads the files the configuration names
 * (htpasswd) and runs the cross-checks. Returns 0 to go on, 1 when --help/--version printed
 * something and the process should exit 0, or -EINVAL after printing one line saying what is
 * wrong to stderr ("FILE:LINE:COL: ..." for the file, "h2tunnel: ..." for a flag). */
int config_parse(struct config *cfg, int argc, char **argv);
/* Fills in the embedded default listeners when none were given, and the state dir. */
void config_finish(struct config *cfg);

/* config_init + config_parse + config_finish into a new heap snapshot with one reference and
 * version 1. Returns as config_parse; *|out| is set only on 0. */
int config_load(int argc, char **argv, struct config **out);
/* SIGHUP: the same command line (|argc|, |argv|: flags still override the file) read again into
 * a new snapshot with |old|'s version + 1. Returns 0, or -EINVAL after printing what is wrong
 * ("FILE:LINE:COL: ...") to stderr; |old| is untouched either way. */
int config_reload(const struct config *old, int argc, char **argv, struct config **out);
struct config *config_ref(struct config *cfg);
/* Drops a reference; the last one disposes and frees the snapshot. Thread-safe. Both accept
 * NULL and leave a snapshot not made by config_load alone. */
void config_unref(struct config *cfg);

/* Applies the YAML text |text| (|len| bytes) named |file| over |cfg|. Pure: reads no file
 * (paths are stored, resolved against the file's directory). Returns 0 or -EINVAL with |err|. */
int config_apply_yaml(struct config *cfg, const char *file, const char *text, size_t len,
                      struct cfgfile_err *err);
/* Cross-checks (low-water below high-water, cert with key, names in rules and groups) and builds
 * the policy. Pure, once the files are loaded. Returns 0 or -EINVAL with |err|. */
int config_check(struct config *cfg, struct cfgfile_err *err);
/* Prints every option with its value as YAML that config_apply_yaml reads back to the same
 * configuration; with |origins|, each line says where its value came from. */
void config_print(const struct config *cfg, FILE *out, int origins);
void config_print_help(const char *argv0);
/* Where option |name|'s value came from, or NULL for a name not in the table. */
const struct config_origin *config_origin_of(const struct config *cfg, const char *name);

/* Adds a --ws-route "AUTHORITY=ws://HOST:PORT" or "=wss://HOST:PORT". Returns 0 or -EINVAL. */
int config_parse_ws_route(const char *s, struct config *cfg);
/* Parses "tls://ADDR:PORT" / "tcp://ADDR:PORT" (ADDR may be [v6]), optionally followed by
 * "?proxy-protocol". Returns 0 or -EINVAL. */
int config_parse_listener(const char *s, struct config_listener *out);

#endif
