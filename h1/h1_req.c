/* HTTP/1.1 request heads: llhttp plus the proxy's checks, no I/O (see h1_req.h for the rules).
 *
 * One feed runs three steps over the bytes:
 *   1. the line scanner reads the head byte by byte (below) and stops at its end, or at the first
 *      byte it refuses;
 *   2. llhttp gets the bytes up to that refusal (all of them when there is none), so an error
 *      llhttp finds earlier in the stream wins and the first bad byte decides the answer;
 *   3. llhttp pauses in on_headers_complete; there the two parsers must agree on where the head
 *      ended, and check_head() decides what the request is. llhttp then reads the body of a local
 *      request (pausing at its end) or stops after a CONNECT/Upgrade head.
 * The llhttp callbacks only record; every decision is taken in plain code after a pause.
 *
 * Line scanner states (enum h1_req_line), one step per byte:
 *   LEAD      CR -> LEAD_CR; SP, HT, LF, ... -> 400; other -> METHOD   (empty lines skipped, H1S-11)
 *   LEAD_CR   LF -> LEAD; other -> 400 (bare CR)
 *   METHOD    SP -> TARGET; CR, LF, HT, VT, FF -> 400
 *   TARGET    SP -> VERSION (not when the target is empty); CR -> 400 "no HTTP version";
 *             LF, HT, VT, FF -> 400
 *   VERSION   CR -> RL_CR when it reads HTTP/1.0 or HTTP/1.1, 505 for another HTTP/d.d, 400
 *             otherwise; SP, HT, VT, FF, LF -> 400
 *   RL_CR     LF -> START; other -> 400 (bare CR)
 *   START     CR -> END_CR; SP, HT -> 400 (obs-fold, H1S-06 / H1S-08); LF, ':' -> 400;
 *             other -> NAME
 *   NAME      ':' -> VALUE; SP, HT -> 400 (H1S-05); CR, LF -> 400
 *   VALUE     CR -> FIELD_CR; LF -> 400
 *   FIELD_CR  LF -> START; other -> 400 (bare CR)
 *   END_CR    LF -> DONE; other -> 400 (bare CR)
 *   DONE      the scanner reads no more bytes until the next request begins
 * Every byte before DONE counts against max_head_bytes, and every NAME entered against
 * max_fields. */
#include "h1/h1_req.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "src/util.h"

#define VERSION_MAX 8 /* "HTTP/d.d" */

/* ---- errors ---- */

static void set_err(struct h1_req *r, enum pxerr e, const char *detail) {
  r->err = e;
  r->detail = detail;
}

/* ---- the line scanner ---- */

static int is_rl_space(unsigned char ch) { return ch == '\t' || ch == '\v' || ch == '\f'; }

/* RFC 9112 §2.3: HTTP-version is "HTTP/" DIGIT "." DIGIT, case-sensitive. */
static enum pxerr check_version(const char *v, size_t n, const char **why) {
  if (n != VERSION_MAX || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
      v[7] < '0' || v[7] > '9') {
    *why = "malformed HTTP version";
    return PXERR_BAD_REQUEST;
  }
  if (v[5] == '1' && (v[7] == '0' || v[7] == '1')) return PXERR_NONE;
  /* RFC 9110 §15.6.6: 505 refuses the version; its text says what is served instead. */
  *why = "only HTTP/1.0 and HTTP/1.1 requests are served here; HTTP/2 starts with ALPN h2 or "
         "the connection preface";
  return PXERR_VERSION;
}

/* Records the scanner's refusal of the byte at |at| and returns |at|. */
static size_t scan_fail(struct h1_req *r, size_t at, enum pxerr e, const char *why) {
  r->scan_err = e;
  r->scan_detail = why;
  return at;
}

/* Runs the scanner over |len| bytes of the current head. Returns how many it read: all of them,
 * up to and including the LF that ends the head (|line| is then DONE), or up to the byte it
 * refused (|scan_err| is then set). */
static size_t scan(struct h1_req *r, const char *data, size_t len) {
  size_t i;
  for (i = 0; i < len && r->line != H1_LINE_DONE; i++) {
    unsigned char ch = (unsigned char)data[i];
    if (++r->head_bytes > r->limits.max_head_bytes) {
      if (r->line == H1_LINE_TARGET || r->line == H1_LINE_METHOD)
        return scan_fail(r, i, PXERR_URI_TOO_LONG, "request target too long");
      return scan_fail(r, i, PXERR_HEAD_TOO_LARGE, "request head too large");
    }
    switch (r->line) {
    case H1_LINE_LEAD:
      if (ch == '\r') {
        r->line = H1_LINE_LEAD_CR;
      } else if (ch == '\n') {
        return scan_fail(r, i, PXERR_BAD_REQUEST, "bare LF in the request head");
      } else if (ch == ' ' || is_rl_space(ch)) {
        return scan_fail(r, i, PXERR_BAD_REQUEST, "whitespace before the request line");
      } else {
        r->line = H1_LINE_METHOD;
      }
      break;
    case H1_LINE_LEAD_CR:
    case H1_LINE_RL_CR:
    case H1_LINE_FIELD_CR:
    case H1_LINE_END_CR:
      if (ch != '\n') return scan_fail(r, i, PXERR_BAD_REQUEST, "bare CR in the request head");
      r->line = r->line == H1_LINE_LEAD_CR  ? H1_LINE_LEAD
                : r->line == H1_LINE_END_CR ? H1_LINE_DONE
                                            : H1_LINE_START;
      break;
    case H1_LINE_METHOD:
    case H1_LINE_TARGET:
    case H1_LINE_VERSION:
      if (ch == '\n') return scan_fail(r, i, PXERR_BAD_REQUEST, "bare LF in the request head");
      if (is_rl_space(ch)) return scan_fail(r, i, PXERR_BAD_REQUEST, "whitespace in the request line");
      if (ch == ' ') {
        /* Exactly one SP between method and target and between target and version (H1S-09). */
        if (r->line == H1_LINE_VERSION || r->part_len == 0)
          return scan_fail(r, i, PXERR_BAD_REQUEST, "whitespace in the request line");
        r->line = r->line == H1_LINE_METHOD ? H1_LINE_TARGET : H1_LINE_VERSION;
        r->part_len = 0;
      } else if (ch == '\r') {
        const char *why = NULL;
        enum pxerr e;
        if (r->line == H1_LINE_METHOD || r->part_len == 0)
          return scan_fail(r, i, PXERR_BAD_REQUEST, "incomplete request line");
        if (r->line == H1_LINE_TARGET)
          return scan_fail(r, i, PXERR_BAD_REQUEST, "request line without HTTP version");
        e = check_version(r->version, r->part_len, &why);
        if (e != PXERR_NONE) return scan_fail(r, i, e, why);
        r->line = H1_LINE_RL_CR;
      } else {
        /* The version text is kept; one byte more than "HTTP/d.d" is enough to know it is not
         * one, so the count stops there. */
        if (r->line == H1_LINE_VERSION && r->part_len < sizeof(r->version)) r->version[r->part_len] = (char)ch;
        if (r->part_len < sizeof(r->version)) r->part_len++;
      }
      break;
    case H1_LINE_START:
      if (ch == '\r') {
        r->line = H1_LINE_END_CR;
      } else if (ch == '\n') {
        return scan_fail(r, i, PXERR_BAD_REQUEST, "bare LF in the request head");
      } else if (ch == ' ' || ch == '\t') {
        /* RFC 9112 §5.2 (obs-fold) and §2.2 (a whitespace-led line after the request line). */
        return scan_fail(r, i, PXERR_BAD_REQUEST,
                         r->nfields ? "obs-fold (line folding) is not allowed"
                                    : "whitespace before the first field line");
      } else if (ch == ':') {
        return scan_fail(r, i, PXERR_BAD_REQUEST, "empty field name");
      } else {
        if (++r->nfields > r->limits.max_fields)
          return scan_fail(r, i, PXERR_HEAD_TOO_LARGE, "too many header fields");
        r->line = H1_LINE_NAME;
      }
      break;
    case H1_LINE_NAME:
      /* RFC 9112 §5.1: whitespace before the colon MUST be refused (llhttp 8.1 keeps it in the
       * name, so "Host : x" would be a field llhttp does not call Host). */
      if (ch == ':') r->line = H1_LINE_VALUE;
      else if (ch == ' ' || ch == '\t')
        return scan_fail(r, i, PXERR_BAD_REQUEST, "whitespace between a field name and its colon");
      else if (ch == '\r' || ch == '\n')
        return scan_fail(r, i, PXERR_BAD_REQUEST, "field line without a colon");
      break;
    case H1_LINE_VALUE:
      if (ch == '\r') r->line = H1_LINE_FIELD_CR;
      else if (ch == '\n') return scan_fail(r, i, PXERR_BAD_REQUEST, "bare LF in the request head");
      break;
    case H1_LINE_DONE:
      break;
    }
  }
  return i;
}

/* ---- llhttp callbacks: they only record ---- */

static struct h1_req *req_of(llhttp_t *p) { return container_of(p, struct h1_req, parser); }

/* Appends |len| bytes to the fixed buffer |buf| of |cap| bytes, lowercased when |lower|. Once a
 * value does not fit, *|n| becomes |cap| and stays there: "too long to be what we look for". */
static void append(char *buf, size_t cap, size_t *n, const char *at, size_t len, int lower) {
  if (*n + len > cap - 1) {
    *n = cap;
    return;
  }
  for (size_t i = 0; i < len; i++) {
    char c = at[i];
    buf[(*n)++] = (lower && c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  struct h1_req *r = req_of(p);
  /* Bounded by the scanner: the target is part of a head of at most max_head_bytes. */
  if (r->target_len + len + 1 > r->target_cap) {
    size_t cap = MAX(MAX(r->target_cap * 2, r->target_len + len + 1), (size_t)256);
    char *n = realloc(r->target, cap);
    CHECK(n != NULL);
    r->target = n;
    r->target_cap = cap;
  }
  memcpy(r->target + r->target_len, at, len);
  r->target_len += len;
  r->target[r->target_len] = '\0';
  return 0;
}

/* Appends a piece of a field name (|value| 0) or value to the field store. Returns 0, or -1 when
 * the store would pass its bound (only trailers can: the head is bounded by the scanner). */
static int store_piece(struct h1_req *r, const char *at, size_t len, int value) {
  if (r->fstore_len + len > 2 * r->limits.max_head_bytes + 1024) return -1;
  if (!value && (r->nfl == 0 || r->fl_in_value)) {
    if (r->nfl >= r->limits.max_fields + 64) return -1;
    if (r->nfl == r->fl_cap) {
      r->fl_cap = r->fl_cap ? r->fl_cap * 2 : 32;
      r->fl = realloc(r->fl, r->fl_cap * sizeof(*r->fl));
      CHECK(r->fl != NULL);
    }
    r->fl[r->nfl++] = (struct h1_req_fl){(uint32_t)r->fstore_len, 0, (uint32_t)r->fstore_len, 0};
    r->fl_in_value = 0;
  }
  if (r->nfl == 0) return -1;
  if (value && !r->fl_in_value) {
    r->fl[r->nfl - 1].value = (uint32_t)r->fstore_len;
    r->fl_in_value = 1;
  }
  if (r->fstore_len + len > r->fstore_cap) {
    r->fstore_cap = MAX(r->fstore_cap * 2, r->fstore_len + len + 256);
    r->fstore = realloc(r->fstore, r->fstore_cap);
    CHECK(r->fstore != NULL);
  }
  memcpy(r->fstore + r->fstore_len, at, len);
  r->fstore_len += len;
  if (value)
    r->fl[r->nfl - 1].value_len += (uint32_t)len;
  else
    r->fl[r->nfl - 1].name_len += (uint32_t)len;
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  struct h1_req *r = req_of(p);
  append(r->field, sizeof(r->field), &r->field_len, at, len, 1);
  if (p->method != HTTP_CONNECT && store_piece(r, at, len, 0) != 0) return HPE_USER;
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  struct h1_req *r = req_of(p);
  if (r->head.kind == H1_REQ_ABSOLUTE && r->on_body) r->on_body(r->body_arg, at, len);
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  struct h1_req *r = req_of(p);
  r->field_kind = H1_FIELD_OTHER;
  if (r->field_len == 4 && memcmp(r->field, "host", 4) == 0) {
    /* Only the first value is kept: a second Host is refused anyway. */
    if (r->host_count++ == 0) r->field_kind = H1_FIELD_HOST;
  } else if (r->field_len == 7 && memcmp(r->field, "upgrade", 7) == 0) {
    if (r->upgrade_count++ == 0) r->field_kind = H1_FIELD_UPGRADE;
  } else if (r->field_len == 19 && memcmp(r->field, "proxy-authorization", 19) == 0) {
    if (r->auth_count++ == 0) r->field_kind = H1_FIELD_PROXY_AUTH;
  }
  r->field_len = 0;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  struct h1_req *r = req_of(p);
  if (p->method != HTTP_CONNECT && store_piece(r, at, len, 1) != 0) return HPE_USER;
  if (r->field_kind == H1_FIELD_HOST)
    append(r->host, sizeof(r->host), &r->host_len, at, len, 0);
  else if (r->field_kind == H1_FIELD_UPGRADE)
    append(r->upgrade, sizeof(r->upgrade), &r->upgrade_len, at, len, 1);
  else if (r->field_kind == H1_FIELD_PROXY_AUTH) {
    /* Bounded by the scanner: the value is part of a head of at most max_head_bytes. */
    char *n = realloc(r->credentials, r->credentials_len + len + 1);
    CHECK(n != NULL);
    memcpy(n + r->credentials_len, at, len);
    r->credentials = n;
    r->credentials_len += len;
    n[r->credentials_len] = '\0';
  }
  return 0;
}

/* llhttp keeps trailing whitespace in a value; the field value itself ends before it (RFC 9110
 * §5.5). A value that did not fit stays marked as such. */
static void trim(const char *buf, size_t cap, size_t *n) {
  while (*n > 0 && *n < cap && (buf[*n - 1] == ' ' || buf[*n - 1] == '\t')) (*n)--;
}

static int on_header_value_complete(llhttp_t *p) {
  struct h1_req *r = req_of(p);
  if (r->field_kind == H1_FIELD_HOST) trim(r->host, sizeof(r->host), &r->host_len);
  if (r->field_kind == H1_FIELD_UPGRADE) trim(r->upgrade, sizeof(r->upgrade), &r->upgrade_len);
  if (r->nfl > 0 && r->fl_in_value) {
    struct h1_req_fl *fl = &r->fl[r->nfl - 1];
    while (fl->value_len > 0 && (r->fstore[fl->value + fl->value_len - 1] == ' ' ||
                                 r->fstore[fl->value + fl->value_len - 1] == '\t'))
      fl->value_len--;
  }
  if (r->field_kind == H1_FIELD_PROXY_AUTH && r->credentials) {
    trim(r->credentials, SIZE_MAX, &r->credentials_len);
    r->credentials[r->credentials_len] = '\0';
  }
  r->field_kind = H1_FIELD_OTHER;
  return 0;
}

/* Pause so that feed() can compare head ends and check the head in plain code. */
static int on_headers_complete(llhttp_t *p) { return HPE_PAUSED; }

static int on_message_complete(llhttp_t *p) {
  /* After a CONNECT or an upgrade llhttp stops by itself (HPE_PAUSED_UPGRADE); stop after any
   * other message too, so one request is answered before the next is read (H1S-14). */
  return (p->method == HTTP_CONNECT || p->upgrade) ? 0 : HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
    .on_body = on_body,
};

/* ---- the checks on a complete head ---- */

/* Host = uri-host [ ":" port ] (RFC 9110 §7.2), held to authority_parse's rules. An absent port
 * is 0; an empty value (allowed when the target has no authority, RFC 9112 §3.2) is host "". */
static int parse_host(const char *v, size_t len, struct authority *out, const char **why) {
  char buf[AUTHORITY_FORMAT_MAX + 3];
  const char *close = (len > 0 && v[0] == '[') ? memchr(v, ']', len) : NULL;
  int has_port = close ? (size_t)(close - v) + 1 < len : memchr(v, ':', len) != NULL;

  memset(out, 0, sizeof(*out));
  if (len == 0) return 0;
  if (has_port) return authority_parse(v, len, out, why);
  /* No port: check the host with a stand-in port, then mark the port absent. */
  if (len + 2 > sizeof(buf)) {
    *why = "host too long";
    return -1;
  }
  memcpy(buf, v, len);
  memcpy(buf + len, ":1", 2);
  if (authority_parse(buf, len + 2, out, why) != 0) return -1;
  out->port = 0;
  return 0;
}

/* Does Host name the CONNECT target? Hosts compare in authority_parse's canonical form (names
 * lowercased, IPv6 as inet_ntop writes it). CONNECT has no scheme, so a Host without a port
 * stands for either default port, 80 (http) or 443 (https): RFC 9110 §9.3.6's own example is
 * "CONNECT server.example.com:80" with "Host: server.example.com". */
static int host_names_target(const struct authority *host, const struct authority *target) {
  if (strcmp(host->host, target->host) != 0) return 0;
  if (host->port == 0) return target->port == 80 || target->port == 443;
  return host->port == target->port;
}

/* The length of the scheme prefix of an absolute-form target: "http://", "https://", and the
 * WebSocket URIs "ws://", "wss://" (RFC 6455 §3, which curl sends to a proxy for a WebSocket);
 * |tls| says whether the scheme is a secure one, |ws| whether it is a WebSocket one. 0: none. */
static size_t scheme_len(const char *t, int *tls, int *ws) {
  static const struct { const char *p; int tls, ws; } schemes[] = {
      {"http://", 0, 0}, {"https://", 1, 0}, {"ws://", 0, 1}, {"wss://", 1, 1}};
  for (size_t i = 0; i < ARRAY_SIZE(schemes); i++) {
    size_t n = strlen(schemes[i].p);
    if (strncasecmp(t, schemes[i].p, n) == 0) {
      if (tls) *tls = schemes[i].tls;
      if (ws) *ws = schemes[i].ws;
      return n;
    }
  }
  return 0;
}

/* The path of an origin-form or absolute-form ("http://a/p", "https://a/p", "ws://a/p") target:
 * "/..." or "" for an absolute-form target without one. NULL for any other form. */
static const char *target_path(const char *t) {
  const char *rest = NULL;
  if (t[0] == '/') return t;
  size_t n = scheme_len(t, NULL, NULL);
  if (n) rest = t + n;
  if (rest == NULL) return NULL;
  const char *slash = strchr(rest, '/');
  return slash ? slash : rest + strlen(rest);
}

/* Decides what the head that llhttp just completed is; 0, or -1 with |err| set. */
static int check_head(struct h1_req *r) {
  llhttp_t *p = &r->parser;
  struct h1_req_head *h = &r->head;
  struct authority host;
  const char *why = NULL;
  const char *t = r->target ? r->target : "";
  int has_body = (p->flags & (F_CHUNKED | F_TRANSFER_ENCODING)) ||
                 ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);

  h->method = llhttp_method_name((llhttp_method_t)p->method);
  h->minor = p->http_minor;
  /* The scanner admits only 1.0 and 1.1; llhttp must have read the same. */
  if (p->http_major != 1 || p->http_minor > 1) {
    set_err(r, PXERR_BAD_REQUEST, "malformed HTTP version");
    return -1;
  }
  /* RFC 9112 §3.2: exactly one Host on HTTP/1.1, at most one on HTTP/1.0, and a valid one (H1C-04). */
  if (r->host_count > 1 || (r->host_count == 0 && h->minor == 1)) {
    set_err(r, PXERR_BAD_REQUEST, r->host_count ? "more than one Host field" : "missing Host field");
    return -1;
  }
  /* Two identities in one request: which one a hop uses would be a matter of opinion (h2 resets
   * such a stream as malformed). */
  if (r->auth_count > 1) {
    set_err(r, PXERR_BAD_REQUEST, "more than one Proxy-Authorization field");
    return -1;
  }
  if (r->host_count == 1 && (r->host_len >= sizeof(r->host) || parse_host(r->host, r->host_len, &host, &why) != 0)) {
    snprintf(r->detail_buf, sizeof(r->detail_buf), "invalid Host field: %s", why ? why : "too long");
    set_err(r, PXERR_BAD_REQUEST, r->detail_buf);
    return -1;
  }

  if (p->method == HTTP_CONNECT) {
    if (authority_parse(t, r->target_len, &h->authority, &why) != 0) {
      set_err(r, PXERR_BAD_REQUEST, why ? why : "bad CONNECT target");
      return -1;
    }
    /* A CONNECT has no content (H1C-10). */
    if (has_body) {
      set_err(r, PXERR_BAD_REQUEST, "CONNECT with a body");
      return -1;
    }
    /* As on h2, where a Host other than :authority makes the request malformed (H2C-03). */
    if (r->host_count == 1 && !host_names_target(&host, &h->authority)) {
      set_err(r, PXERR_BAD_REQUEST, "Host differs from the CONNECT target");
      return -1;
    }
    h->kind = H1_REQ_CONNECT;
    return 0;
  }

  /* RFC 9110 §7.8: a server MUST ignore Upgrade in an HTTP/1.0 request. */
  int connect_udp = r->upgrade_count == 1 && r->upgrade_len == 11 && memcmp(r->upgrade, "connect-udp", 11) == 0;
  if (p->upgrade && h->minor == 1 && !connect_udp && t[0] != '/' && target_path(t) != NULL) {
    /* Another protocol asked of an origin through forward mode: relayed (FWD-14). */
    h->upgrade = 1;
  } else if (p->upgrade && h->minor == 1) {
    if (!connect_udp) {
      set_err(r, PXERR_NOT_IMPLEMENTED, "protocol upgrade not supported");
      return -1;
    }
    h->kind = H1_REQ_CONNECT_UDP; /* also for a refusal below: the log names the protocol */
    /* RFC 9298 §3.2: a GET; after the head come capsules, so content would be read as them. */
    if (p->method != HTTP_GET) {
      set_err(r, PXERR_BAD_REQUEST, "connect-udp needs GET");
      return -1;
    }
    if (has_body) {
      set_err(r, PXERR_BAD_REQUEST, "connect-udp request with a body");
      return -1;
    }
    h->path = target_path(t);
    if (h->path == NULL) {
      set_err(r, PXERR_BAD_REQUEST, "bad request target");
      return -1;
    }
    return 0;
  }

  if (t[0] == '/') {
    h->kind = H1_REQ_LOCAL;
    h->path = t;
  } else if ((h->path = target_path(t)) != NULL) {
    int ws = 0;
    h->kind = H1_REQ_ABSOLUTE;
    h->scheme_auth = t + scheme_len(t, &h->https, &ws);
    if (ws && !h->upgrade) {
      set_err(r, PXERR_BAD_REQUEST, "a ws:// or wss:// target without an Upgrade");
      return -1;
    }
    h->scheme_auth_len = (size_t)(h->path - h->scheme_auth);
    /* The authority ends at the path, or at a query with no path ("http://a?q"). */
    const char *q = memchr(h->scheme_auth, '?', h->scheme_auth_len);
    if (q) h->scheme_auth_len = (size_t)(q - h->scheme_auth);
    h->path = h->scheme_auth + h->scheme_auth_len; /* "/...", "?..." or "" */
    /* RFC 9110 §4.2.4: userinfo in an http(s) URI is an error (FWD-02). */
    if (memchr(h->scheme_auth, '@', h->scheme_auth_len)) {
      set_err(r, PXERR_BAD_REQUEST, "userinfo in the request target");
      return -1;
    }
    if (h->scheme_auth_len == 0) {
      set_err(r, PXERR_BAD_REQUEST, "no authority in the request target");
      return -1;
    }
    if (p->upgrade && has_body) {
      /* llhttp stops at an upgrade, so a body would never be read: refuse it. */
      set_err(r, PXERR_BAD_REQUEST, h->upgrade ? "a body with an Upgrade" : "a body with an ignored Upgrade");
      return -1;
    }
    h->length = (p->flags & (F_CHUNKED | F_TRANSFER_ENCODING)) ? -1
                : (p->flags & F_CONTENT_LENGTH)                 ? (int64_t)p->content_length
                                                                : 0;
    for (size_t i = 0; i < r->nfl; i++)
      if (r->fl[i].name_len == 6 && strncasecmp(h1_req_fl_name(r, i), "expect", 6) == 0 &&
          r->fl[i].value_len == 12 && strncasecmp(h1_req_fl_value(r, i), "100-continue", 12) == 0)
        h->expect_continue = 1;
  } else {
    set_err(r, PXERR_BAD_REQUEST, "bad request target");
    return -1;
  }
  return 0;
}

/* ---- feeding ---- */

/* Clears the per-request record for the next head. */
static void begin_head(struct h1_req *r) {
  memset(&r->head, 0, sizeof(r->head));
  r->target_len = 0;
  if (r->target) r->target[0] = '\0';
  r->line = H1_LINE_LEAD;
  r->head_bytes = 0;
  r->nfields = 0;
  r->part_len = 0;
  r->scan_err = PXERR_NONE;
  r->scan_detail = NULL;
  r->field_len = 0;
  r->field_kind = H1_FIELD_OTHER;
  r->host_count = r->upgrade_count = r->auth_count = 0;
  r->host_len = r->upgrade_len = 0;
  free(r->credentials);
  r->credentials = NULL;
  r->credentials_len = 0;
  r->nfl = r->nhead_fields = 0;
  r->fstore_len = 0;
  r->fl_in_value = 0;
  r->state = H1_REQ_S_HEAD;
}

void h1_req_init(struct h1_req *r, const struct h1_req_limits *limits) {
  memset(r, 0, sizeof(*r));
  r->limits = *limits;
  llhttp_init(&r->parser, HTTP_REQUEST, &parser_settings);
  begin_head(r);
}

void h1_req_dispose(struct h1_req *r) {
  free(r->fstore);
  r->fstore = NULL;
  r->fstore_len = r->fstore_cap = 0;
  free(r->fl);
  r->fl = NULL;
  r->nfl = r->fl_cap = r->nhead_fields = 0;
  free(r->target);
  r->target = NULL;
  r->target_len = r->target_cap = 0;
  free(r->credentials);
  r->credentials = NULL;
  r->credentials_len = 0;
}

char *h1_req_take_credentials(struct h1_req *r) {
  char *c = r->credentials;
  r->credentials = NULL;
  r->credentials_len = 0;
  return c;
}

int h1_req_started(const struct h1_req *r) {
  return (r->state == H1_REQ_S_HEAD && r->head_bytes > 0) || r->state == H1_REQ_S_BODY;
}

static enum h1_req_status fail(struct h1_req *r, enum pxerr e, const char *detail, size_t at, size_t *used) {
  set_err(r, e, detail);
  r->state = H1_REQ_S_FAILED;
  *used = at;
  return H1_REQ_ERROR;
}

enum h1_req_status h1_req_feed(struct h1_req *r, const char *data, size_t len, size_t *used) {
  size_t feed_len = len;  /* what llhttp may read: up to the scanner's refusal */
  size_t head_end = 0;    /* where the scanner saw the head end, if it did in this call */
  int head_ends_here = 0;
  size_t off = 0;

  *used = 0;
  if (data == NULL) data = ""; /* |len| is 0: llhttp still gets a valid pointer */
  if (r->state == H1_REQ_S_NEXT) {
    begin_head(r);
    llhttp_resume(&r->parser);
  }
  if (r->state == H1_REQ_S_BODY) llhttp_resume(&r->parser); /* after an ABSOLUTE head */
  if (r->state != H1_REQ_S_HEAD && r->state != H1_REQ_S_BODY) {
    /* Our caller's bug: nothing may follow an upgrade or an error. */
    return fail(r, PXERR_INTERNAL, "request parser fed after its last request", 0, used);
  }
  if (r->state == H1_REQ_S_HEAD && r->line != H1_LINE_DONE) {
    size_t n = scan(r, data, len);
    if (r->scan_err != PXERR_NONE) {
      feed_len = n;
    } else if (r->line == H1_LINE_DONE) {
      head_end = n;
      head_ends_here = 1;
    }
  }

  for (;;) {
    llhttp_errno_t e = llhttp_execute(&r->parser, data + off, feed_len - off);
    size_t at = e == HPE_OK ? feed_len : (size_t)(llhttp_get_error_pos(&r->parser) - data);

    if (e == HPE_OK) {
      if (r->scan_err != PXERR_NONE) return fail(r, r->scan_err, r->scan_detail, at, used);
      *used = len;
      return H1_REQ_MORE;
    }
    if (e == HPE_PAUSED && r->state == H1_REQ_S_HEAD) {
      /* on_headers_complete. Two readings of where the head ends would let bytes be both head
       * and tunnel payload (or body): refuse the request rather than pick one. */
      if (!head_ends_here || at != head_end)
        return fail(r, PXERR_BAD_REQUEST, "ambiguous end of the request head", at, used);
      if (check_head(r) != 0) return fail(r, r->err, r->detail, at, used);
      r->state = H1_REQ_S_BODY;
      r->nhead_fields = r->nfl;
      if (r->head.kind == H1_REQ_ABSOLUTE) {
        /* The head goes out now; the body streams through |on_body| in the next feeds. */
        r->head.keep_alive = llhttp_should_keep_alive(&r->parser);
        *used = at;
        return H1_REQ_DONE;
      }
      llhttp_resume(&r->parser);
      off = at;
      continue;
    }
    if (e == HPE_PAUSED && r->head.kind == H1_REQ_ABSOLUTE) {
      r->head.keep_alive = llhttp_should_keep_alive(&r->parser);
      r->state = H1_REQ_S_NEXT;
      *used = at;
      return H1_REQ_BODY_END;
    }
    if (e == HPE_PAUSED && r->head.kind == H1_REQ_LOCAL) {
      /* on_message_complete of a request the caller answers: the next one may follow. */
      r->head.keep_alive = llhttp_should_keep_alive(&r->parser);
      r->state = H1_REQ_S_NEXT;
      *used = at;
      return H1_REQ_DONE;
    }
    if (e == HPE_PAUSED_UPGRADE && r->state == H1_REQ_S_BODY && r->head.kind == H1_REQ_ABSOLUTE) {
      /* An HTTP/1.0 request whose Upgrade was ignored (it has no body, see check_head): the
       * message ends here, and so does the connection after the answer. */
      r->head.keep_alive = 0;
      r->state = H1_REQ_S_UPGRADED;
      *used = at;
      return H1_REQ_BODY_END;
    }
    if (e == HPE_PAUSED_UPGRADE && r->state == H1_REQ_S_BODY) {
      /* After CONNECT or connect-udp the bytes are the tunnel's (H1C-08). An HTTP/1.0 request
       * whose Upgrade was ignored also ends the parsing here: it is answered, then closed. */
      r->head.keep_alive = 0;
      r->state = H1_REQ_S_UPGRADED;
      *used = at;
      return H1_REQ_DONE;
    }
    /* llhttp 8.1 refuses a version other than 0.9, 1.0, 1.1 and 2.0 as soon as it has read
     * "HTTP/d.d", before the scanner reaches the CR: the answer is still 505. */
    if (e == HPE_INVALID_VERSION) {
      const char *why = NULL;
      if (check_version(r->version, MIN(r->part_len, (size_t)VERSION_MAX), &why) == PXERR_VERSION)
        return fail(r, PXERR_VERSION, why, at, used);
    }
    snprintf(r->detail_buf, sizeof(r->detail_buf), "malformed request: %s",
             llhttp_get_error_reason(&r->parser) ? llhttp_get_error_reason(&r->parser) : llhttp_errno_name(e));
    return fail(r, PXERR_BAD_REQUEST, r->detail_buf, at, used);
  }
}
