/* h2tunnel-load command line: one struct filled once in main, then only read (by every thread). */
#ifndef LOAD_OPTS_H
#define LOAD_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum opts_mode { MODE_RATE, MODE_BULK, MODE_RR, MODE_IDLE, MODE_UDP };
enum opts_dir { DIR_DOWN = 1, DIR_UP = 2, DIR_BOTH = 3 };
enum opts_origin { ORIGIN_NONE, ORIGIN_ECHO, ORIGIN_SINK, ORIGIN_SOURCE, ORIGIN_UDP_ECHO };

struct load_opts {
  /* Proxy. */
  char proxy_url[512];
  char proxy_host[256];     /* as written in the URL, without brackets */
  int proxy_port;
  int tls;                  /* https://, h2:// */
  int h2;                   /* h2://, h2c://, or https:// with --h2 */
  struct sockaddr_storage proxy_addr; /* resolved once, before the threads start */
  char auth_header[512];    /* "Basic ..." or "" */
  char cacert[512];
  int insecure;
  /* Target. */
  char target[300];         /* host:port as sent in CONNECT / :authority */
  char target_host[256];
  int target_port;
  char udp_path[600];       /* connect-udp :path, expanded from --udp-template */
  /* Workload. */
  enum opts_mode mode;
  int conns;                /* -c */
  int streams;              /* -m (h2 only; h1 is one tunnel per connection) */
  int threads;              /* -t */
  uint64_t count;           /* -n: 0 = unbounded */
  uint64_t duration_ms;     /* -d: 0 = unbounded */
  uint64_t size;            /* --size, bulk bytes per tunnel and direction */
  enum opts_dir dir;
  size_t msg;               /* --msg bytes per round trip / datagram payload */
  int window;               /* --window: udp datagrams in flight per tunnel */
  uint64_t timeout_ms;      /* --timeout: no progress in a tunnel */
  uint64_t max_errors;
  uint64_t progress_ms;     /* 0 = off */
  int json_only;
  int quiet;
  /* Origin mode. */
  enum opts_origin origin;
  char listen[300];
  int close_first;          /* --close-first: the origin sends FIN once its part is done */
};

/* Parses argv into |o|. Returns 0, 1 if --help / --version was printed (exit 0), or -EINVAL after
 * printing the reason to stderr (exit 2). Resolves the proxy address (blocking getaddrinfo). */
int opts_parse(struct load_opts *o, int argc, char **argv);

const char *opts_mode_name(enum opts_mode m);
/* Parses "1.5s", "250ms", "5m", "30" (seconds) into milliseconds. Returns 0 or -EINVAL. */
int opts_duration(const char *s, uint64_t *ms);
/* Parses "65536", "64k", "8m", "1g" (powers of 1024). Returns 0 or -EINVAL. */
int opts_size(const char *s, uint64_t *out);
/* Splits "host:port" / "[v6]:port" into |host| (no brackets) and |*port|. Returns 0 or -EINVAL. */
int opts_hostport(const char *s, char *host, size_t cap, int *port);

#endif
