/* Who may tunnel where, and how much: the `auth`, `groups`, `rules` and `limits` sections of the
 * configuration file, parsed, validated and stored in a shape that is cheap to match (CIDRs
 * pre-parsed, host patterns lowercased, ports as sorted merged ranges, groups resolved to
 * indexes, users sorted). The request path enforces them: proxy/auth.c (auth), proxy/rules.c
 * (rules, groups) and src/limits.c (limits).
 *
 * Lifecycle: access_new() at config_init; access_parse_section() per section of the file (pure,
 * positions kept for later messages); access_load_files() reads the htpasswd file and checks the
 * client CA is readable; access_link() then resolves names (groups in rules, users everywhere)
 * and reports unknown ones at their position. The result belongs to one config snapshot and is
 * read-only afterwards, shared by every worker.
 *
 * Matching semantics, written down for the request path that will use them:
 * - Rules are tried in order; the first rule whose every given field matches decides (allow or
 *   deny). A field left out matches everything. No rule matching: the request goes on to the
 *   built-in target policy (ports, address classes) as today.
 * - users: "*" matches any authenticated user; a list matches those users; with `groups` as
 *   well, either may match. Neither given: any client, authenticated or not.
 * - dest: "exact.host" and "*.suffix" are compared with the requested name (lowercased; "*.x.y"
 *   matches "a.x.y" and "a.b.x.y", not "x.y"); CIDRs with the resolved address.
 * - ports: any of the ranges; protocols: any of the bits.
 * - Client networks (clients, allowed-client-nets, no-auth-nets) hold CIDRs and the address
 *   class names of policy.h ("loopback", "private", ...); access_nets_contain matches them. */
#ifndef H2T_ACCESS_H
#define H2T_ACCESS_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "src/cfgfile.h"

struct users;

/* Where a name was written, for messages given after the whole file was read. */
struct access_pos {
  unsigned line, col;
};

/* A name with its position (a user or a group in a rule, a member of a group). */
struct access_name {
  char *s;                    /* owned */
  struct access_pos pos;
};

struct access_cidr {
  int family;                 /* AF_INET or AF_INET6 */
  uint8_t addr[16];           /* network order; host bits past |prefix| are zero */
  unsigned prefix;
};

/* A set of networks: CIDRs plus whole address classes (bit c: enum addr_class c). */
struct access_nets {
  struct access_cidr *v;      /* owned array */
  size_t n;
  uint32_t classes;
  char **text;                /* owned: the items as written, for printing */
  size_t ntext;
};

enum access_client_cert { ACCESS_CERT_NONE, ACCESS_CERT_OPTIONAL, ACCESS_CERT_REQUIRED };

struct access_auth {
  char *htpasswd;             /* owned path (relative ones resolved against the file), or NULL */
  struct access_pos htpasswd_pos;
  char *realm;                /* owned; default "h2tunnel" */
  char *client_ca;            /* owned path or NULL */
  struct access_pos client_ca_pos;
  enum access_client_cert client_cert; /* NONE without client_ca; default REQUIRED with it */
  struct access_nets no_auth_nets;     /* clients here need no credentials */
  struct access_nets allowed_client_nets; /* who may use the proxy at all; empty: everyone */
  uint64_t max_failures;      /* failed attempts from one address within the window before a
                                 ban; 0: never banned ("unlimited") */
  uint64_t failure_window_ms;
  uint64_t ban_ms;
  uint64_t cache_ttl_ms;      /* how long a verified credential is trusted without a hash */
  uint64_t cache_size;        /* verified credentials kept per worker */
  uint64_t max_pending;       /* password checks queued or running per worker; more: 503 */
  struct users *users;        /* owned; from htpasswd, NULL until access_load_files */
};

struct access_group {
  char *name;                 /* owned */
  struct access_pos pos;
  struct access_name *members; /* owned; sorted by name after access_link */
  size_t n;
};

struct access_host {
  char *pattern;              /* owned, lowercased; for "*.x.y" this is ".x.y" */
  size_t len;
  int suffix;                 /* 1 for a "*." pattern */
};

struct access_port_range {
  uint16_t lo, hi;            /* inclusive, 1..65535 */
};

enum access_action { ACCESS_ALLOW, ACCESS_DENY };

#define ACCESS_PROTO_CONNECT 1u
#define ACCESS_PROTO_WEBSOCKET 2u
#define ACCESS_PROTO_CONNECT_UDP 4u

struct access_rule {
  char *name;                 /* owned: as given, or "#N" (N = 1-based position) */
  struct access_pos pos;
  enum access_action action;
  int any_user;               /* users: "*" */
  struct access_name *users;  /* owned; sorted by name after access_link */
  size_t nusers;
  struct access_name *groups; /* owned, as written */
  size_t ngroups;
  size_t *group_idx;          /* owned, after access_link: indexes into access.groups */
  struct access_nets clients; /* empty: any client */
  struct access_host *hosts;  /* owned: name patterns */
  size_t nhosts;
  struct access_nets dests;   /* CIDRs on the resolved address */
  int any_dest;               /* dest: ["*"] */
  struct access_port_range *ports; /* owned, sorted and merged; none: any port */
  size_t nports;
  unsigned protocols;         /* ACCESS_PROTO_* bits; 0: any */
  int keep_on_reload;         /* `keep-on-reload: true`: tunnels this rule allowed are not
                                 closed by a reload's re-check (src/reload.h) */
};

/* Which fields of a limit block were written (the others inherit, then mean "no limit"). */
#define ACCESS_LIM_TUNNELS 1u
#define ACCESS_LIM_RATE 2u
#define ACCESS_LIM_BURST 4u
#define ACCESS_LIM_BW_UP 8u
#define ACCESS_LIM_BW_DOWN 16u
#define ACCESS_LIM_TBW_UP 32u
#define ACCESS_LIM_TBW_DOWN 64u

/* One block of limits. Every value 0 means "no limit" (written `unlimited`). Up is client to
 * target, down is target to client; bandwidth is in bytes per second. */
struct access_limits {
  unsigned set;               /* ACCESS_LIM_* */
  uint64_t tunnels;           /* concurrent tunnels in this scope */
  uint64_t rate_count;        /* new tunnels: rate_count per rate_period_ms (token bucket) */
  uint64_t rate_period_ms;
  uint64_t burst;             /* bucket size; default rate_count */
  uint64_t bw_up, bw_down;    /* the whole scope together */
  uint64_t tunnel_bw_up, tunnel_bw_down; /* each tunnel in the scope */
};

struct access_user_limits {
  char *user;                 /* owned */
  struct access_pos pos;
  struct access_limits lim;   /* effective: the user's own fields over limits.default */
};

struct access_limit_set {
  struct access_limits user_default;  /* limits.default: each user on their own */
  struct access_user_limits *users;   /* owned; sorted by user after access_link */
  size_t nusers;
  struct access_limits per_client;    /* each client address */
  struct access_limits instance;      /* the whole process */
};

/* Process-wide knobs of auth and limits. Defaults from access_new; the option table (config.c:
 * client-ipv4-prefix, auth-ban-slots, ...) sets them in config_check. */
struct access_tuning {
  unsigned client_v4_prefix;  /* a client for per-client limits and bans: its /N network */
  unsigned client_v6_prefix;
  size_t ban_slots;           /* client networks the failed-login table holds */
  size_t hash_concurrency;    /* password hashes one worker runs at once; the rest queue */
  int hash_idle;              /* hashing threads under SCHED_IDLE instead of nice 10 */
  uint64_t bw_burst_ms;       /* a bandwidth bucket may run this far ahead of its rate ... */
  uint64_t bw_burst_min;      /* ... and at least this many bytes */
};

struct access {
  char *file;                 /* owned: the configuration file, for messages; NULL: none */
  struct access_auth auth;
  struct access_group *groups; /* owned; sorted by name after access_link */
  size_t ngroups;
  struct access_rule *rules;  /* owned, in file order */
  size_t nrules;
  struct access_limit_set limits;
  struct access_tuning tune;
};

struct access *access_new(void);
void access_free(struct access *a);

/* Parses the top-level section |key| ("auth", "groups", "rules" or "limits") from |val| in the
 * file |a->file|; relative paths are resolved against |base_dir| ("" for none). Returns 0 or
 * -EINVAL with |err| set to "FILE:LINE:COL: what is wrong". Pure. */
int access_parse_section(struct access *a, const char *key, const struct cfgfile_node *val,
                         const char *base_dir, struct cfgfile_err *err);
/* 1 when |key| names one of the sections above. */
int access_is_section(const char *key);

/* Loads the htpasswd file and checks that the client CA can be read. Returns 0 or -EINVAL. */
int access_load_files(struct access *a, struct cfgfile_err *err);
/* Resolves and checks names: groups named by rules must exist; with an htpasswd file, every user
 * named in groups, rules and limits must be in it. Sorts what access_find_* search. Returns 0 or
 * -EINVAL with |err| set at the offending name. */
int access_link(struct access *a, struct cfgfile_err *err);

/* Prints section |key| as YAML that parses back to the same values, with |comment| (may be NULL)
 * after the key. */
void access_print_section(const struct access *a, const char *key, const char *comment, FILE *out);

/* Parses one network item (CIDR, bare address or class name) into |nets|. Returns 0 or -EINVAL
 * with *|why| set. A CIDR with host bits set past its prefix is refused, as in policy.h. */
int access_nets_add(struct access_nets *nets, const char *spec, int classes_ok, const char **why);
void access_nets_dispose(struct access_nets *nets);

/* The address of |sa| in |out| (4 or 16 bytes, network order), an IPv4-mapped IPv6 address taken
 * as IPv4 (then also as a sockaddr in |v4|, which may be NULL). Returns AF_INET, AF_INET6, or 0
 * for NULL or another family. */
int access_addr_bytes(const struct sockaddr *sa, uint8_t out[16], struct sockaddr_in *v4);
/* 1 when |sa| is in |nets| (a CIDR or an address class); an IPv4-mapped client is its IPv4
 * address. NULL: 0. The one matcher of auth's client networks and of rules' clients and dests. */
int access_nets_contain(const struct access_nets *nets, const struct sockaddr *sa);
int access_nets_empty(const struct access_nets *nets);

/* The unit a client is counted in (per-client limits, failed-login bans): its address cut to
 * |prefix| bits, so that one IPv6 host rotating addresses inside its /64 is one client. */
struct access_client {
  int family;                 /* AF_INET or AF_INET6 (IPv4-mapped counted as IPv4) */
  uint8_t addr[16];           /* network order; bits past |prefix| cleared */
  unsigned prefix;
};
/* |sa|'s key under the prefixes (0 or more than the family's width: the whole address). Returns 0,
 * or -1 (|out| zeroed) for NULL or a family we do not count. */
int access_client_key(const struct sockaddr *sa, unsigned v4_prefix, unsigned v6_prefix, struct access_client *out);
/* "192.0.2.1", "2001:db8:1:2::/64": the text of a key, for the per-client table and log lines
 * (|cap| >= ACCESS_CLIENT_TEXT_MAX). Empty for a zeroed key. */
#define ACCESS_CLIENT_TEXT_MAX 56
void access_client_text(const struct access_client *k, char *out, size_t cap);

/* The group |name| or NULL (after access_link). */
const struct access_group *access_find_group(const struct access *a, const char *name);
/* The effective limits for |user|: its own block, or limits.default. */
const struct access_limits *access_user_limits(const struct access *a, const char *user);

#endif
