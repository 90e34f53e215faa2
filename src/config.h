/* The process configuration: every option and limit, its default, and the --help text.
 * Filled once by config_parse in main before workers start; read-only afterwards and shared by
 * all workers. */
#ifndef H2T_CONFIG_H
#define H2T_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONFIG_MAX_LISTENERS 16
/* A limit whose default config_finish derives from the machine (see there). */
#define CONFIG_AUTO SIZE_MAX

struct policy;

struct config_listener {
  int tls;                      /* 1 for tls://, 0 for tcp:// */
  struct sockaddr_storage addr; /* where to bind */
  char text[128];               /* as given, for logs */
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
  int log_level;             /* enum log_level */

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

  struct policy *policy;     /* owned */
};

/* Sets every default. */
void config_init(struct config *cfg);
/* Parses argv into |cfg| (after config_init). Returns 0 to run, 1 when --help/--version printed
 * something and the process should exit 0, or -EINVAL after printing the reason to stderr. */
int config_parse(struct config *cfg, int argc, char **argv);
/* Fills in the embedded default listeners when none were given, the state dir, the worker count
 * (one per core when 0) and the --max-connections default (derived from RLIMIT_NOFILE). */
void config_finish(struct config *cfg);
void config_dispose(struct config *cfg);
void config_print_help(const char *argv0);

/* Parses a duration: "30" (seconds), "1.5s", "250ms", "5m", "1h". Returns 0 or -EINVAL. */
int config_parse_duration(const char *s, uint64_t *ms);
/* Parses a size: "65536", "64k", "1m", "1g" (binary units). Returns 0 or -EINVAL. */
int config_parse_size(const char *s, uint64_t *out);
/* Adds a --ws-route "AUTHORITY=ws://HOST:PORT" or "=wss://HOST:PORT". Returns 0 or -EINVAL. */
int config_parse_ws_route(const char *s, struct config *cfg);
/* Parses "tls://ADDR:PORT" / "tcp://ADDR:PORT" (ADDR may be [v6]). Returns 0 or -EINVAL. */
int config_parse_listener(const char *s, struct config_listener *out);

#endif
