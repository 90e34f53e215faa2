/* Unit tests for h1/h1_req.c, the HTTP/1.1 request-head parser: every accept and every reject
 * path (checklist H1C-01..05, H1C-08, H1C-10, H1S-01..03, H1S-05..11, H1S-14; RFC 9112, RFC 9298
 * §3.2, RFC 9110 §7.8 and §15.6.6).
 *
 * Each table row is a byte stream a client could send on one connection, and the log of what the
 * parser made of it: every request it returned (kind, method, target, keep-alive, where it
 * ended) and its final verdict. Every row is also fed cut in two at every offset and in pieces of
 * 1..7 bytes: the log must not change (the parser must not depend on how TCP segments arrive). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h1/h1_req.h"

#define S(lit) lit, sizeof(lit) - 1

static const struct h1_req_limits default_limits = {.max_head_bytes = 4096, .max_fields = 20};

/* Appends printf-style text to |log|. */
static void logf_(char *log, size_t cap, const char *fmt, ...) {
  size_t n = strlen(log);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(log + n, cap - n, fmt, ap);
  va_end(ap);
}

/* Feeds |in| to a fresh parser in pieces: cut at |cut| (when non-zero) or, when |piece| is
 * non-zero, in pieces of that size. Writes the log of results to |log|; "@n" is the offset in
 * |in| where a returned request ended. */
static void run(const char *in, size_t len, const struct h1_req_limits *lim, size_t cut, size_t piece,
                char *log, size_t cap) {
  struct h1_req r;
  size_t off = 0;
  int stop = 0;

  log[0] = '\0';
  h1_req_init(&r, lim);
  while (!stop && off < len) {
    size_t n = len - off;
    if (cut != 0 && off < cut) n = cut - off;
    if (piece != 0 && n > piece) n = piece;
    const char *p = in + off;
    size_t left = n;
    while (!stop && left > 0) {
      size_t used = 99999;
      enum h1_req_status st = h1_req_feed(&r, p, left, &used);
      assert_true(used <= left);
      if (st == H1_REQ_MORE) {
        assert_int_equal(used, left);
      } else if (st == H1_REQ_BODY_END) {
        logf_(log, cap, "END @%zu; ", (size_t)(p - in) + used);
      } else if (st == H1_REQ_ERROR) {
        assert_true(r.err != PXERR_NONE);
        assert_non_null(r.detail);
        logf_(log, cap, "%d %s", pxerr_status(r.err), r.detail);
        stop = 1;
      } else {
        const struct h1_req_head *h = &r.head;
        size_t end = (size_t)(p - in) + used;
        char a[AUTHORITY_FORMAT_MAX];
        if (h->kind == H1_REQ_CONNECT) {
          authority_format(&h->authority, a, sizeof(a));
          logf_(log, cap, "CONNECT %s 1.%d @%zu", a, h->minor, end);
          stop = 1;
        } else if (h->kind == H1_REQ_CONNECT_UDP) {
          logf_(log, cap, "UDP %s @%zu", h->path, end);
          stop = 1;
        } else {
          logf_(log, cap, "%s %s %s ka=%d @%zu; ", h->kind == H1_REQ_LOCAL ? "LOCAL" : "ABS", h->method,
                r.target, h->keep_alive, end);
          /* A forwarded request without a body ends without another byte (a zero-length feed,
           * as h1_conn makes with what follows the head). */
          size_t none;
          if (h->kind == H1_REQ_ABSOLUTE && used == left && h1_req_feed(&r, "", 0, &none) == H1_REQ_BODY_END)
            logf_(log, cap, "END @%zu; ", end);
          /* After an ignored HTTP/1.0 Upgrade the parser reads nothing more (the caller closes). */
          if (!h->keep_alive && h1_req_feed(&r, "", 0, &none) == H1_REQ_ERROR) {
            assert_int_equal(r.err, PXERR_INTERNAL);
            logf_(log, cap, "closed");
            stop = 1;
          }
        }
      }
      p += used;
      left -= used;
    }
    off += n;
  }
  if (!stop) logf_(log, cap, h1_req_started(&r) ? "more" : "idle");
  h1_req_dispose(&r);
  h1_req_dispose(&r); /* twice is fine */
}

struct row {
  const char *in;
  size_t len;
  const char *log;
};

static void check_rows(const struct row *rows, size_t n, const struct h1_req_limits *lim) {
  char whole[1024], other[1024];
  for (size_t i = 0; i < n; i++) {
    const struct row *c = &rows[i];
    run(c->in, c->len, lim, 0, 0, whole, sizeof(whole));
    if (strcmp(whole, c->log) != 0) fail_msg("row %zu: %s\n  got  %s\n  want %s", i, c->in, whole, c->log);
    for (size_t cut = 1; cut < c->len; cut++) {
      run(c->in, c->len, lim, cut, 0, other, sizeof(other));
      if (strcmp(whole, other) != 0) fail_msg("row %zu cut at %zu: %s\n  got  %s\n  want %s", i, cut, c->in, other, whole);
    }
    for (size_t piece = 1; piece < 8; piece++) {
      run(c->in, c->len, lim, 0, piece, other, sizeof(other));
      if (strcmp(whole, other) != 0) fail_msg("row %zu pieces of %zu: %s\n  got  %s\n  want %s", i, piece, c->in, other, whole);
    }
  }
}

/* ---- accepted ---- */

static const struct row accept_rows[] = {
    /* Upgrade through forward mode (FWD-14): absolute-form, ws:// too (what curl sends). */
    {S("GET ws://h:1/chat HTTP/1.1\r\nHost: h:1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"), "ABS GET ws://h:1/chat ka=1 @82; END @82; closed"},
    {S("GET http://h:1/chat HTTP/1.1\r\nHost: h:1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
     "ABS GET http://h:1/chat ka=1 @84; END @84; closed"},
    /* CONNECT; the bytes after the head are not the parser's (H1C-08). */
    {S("CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\n"), "CONNECT h.example:443 1.1 @55"},
    {S("CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
     "CONNECT h.example:443 1.1 @55"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n\x16\x03\x01garbage \r\n\n"), "CONNECT h:1 1.1 @35"},
    /* H1C-04: HTTP/1.0 may omit Host. */
    {S("CONNECT 127.0.0.1:9 HTTP/1.0\r\n\r\n"), "CONNECT 127.0.0.1:9 1.0 @32"},
    {S("CONNECT 127.0.0.1:9 HTTP/1.0\r\nHost: 127.0.0.1:9\r\n\r\n"), "CONNECT 127.0.0.1:9 1.0 @51"},
    /* Host names the target: names compare case-insensitively, IPv6 canonically, ports by value,
     * trailing OWS is not part of the value, and no port stands for 80 or 443. */
    {S("CONNECT Good.Test:8443 HTTP/1.1\r\nHost: GOOD.test:8443\r\n\r\n"), "CONNECT good.test:8443 1.1 @57"},
    {S("CONNECT [::1]:443 HTTP/1.1\r\nHost: [0:0::1]:443\r\n\r\n"), "CONNECT [::1]:443 1.1 @50"},
    {S("CONNECT h:443 HTTP/1.1\r\nHost: h:00443 \t\r\n\r\n"), "CONNECT h:443 1.1 @43"},
    {S("CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n"), "CONNECT h:443 1.1 @35"},
    {S("CONNECT h:80 HTTP/1.1\r\nHost: h\r\n\r\n"), "CONNECT h:80 1.1 @34"},
    {S("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]\r\n\r\n"), "CONNECT [::1]:443 1.1 @43"},
    /* H1C-10: Content-Length 0 is no content. */
    {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nContent-Length: 0\r\n\r\n"), "CONNECT h:1 1.1 @54"},
    /* Other fields, and the Upgrade field, do not matter to CONNECT. */
    {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nUser-Agent: x/1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"),
     "CONNECT h:1 1.1 @87"},
    /* H1S-11: empty lines before a request are skipped (and counted against the head size). */
    {S("\r\n\r\nCONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n"), "CONNECT h:1 1.1 @39"},
    /* connect-udp (RFC 9298 §3.2): origin-form and absolute-form, Content-Length 0. */
    {S("GET /.well-known/masque/udp/h/53/ HTTP/1.1\r\nHost: p:1\r\nConnection: Upgrade\r\nUpgrade: connect-udp\r\n"
       "Capsule-Protocol: ?1\r\n\r\n\x00\x02\x00\x41"),
     "UDP /.well-known/masque/udp/h/53/ @122"},
    {S("GET https://p:1/.well-known/masque/udp/h/53/ HTTP/1.1\r\nHost: p:1\r\nConnection: upgrade\r\n"
       "Upgrade: CONNECT-UDP  \r\nContent-Length: 0\r\n\r\n"),
     "UDP /.well-known/masque/udp/h/53/ @132"},
    {S("GET http://p HTTP/1.1\r\nHost: p\r\nConnection: upgrade\r\nUpgrade: connect-udp\r\n\r\n"), "UDP  @77"},
    /* Local requests: keep-alive, pipelining (H1S-14), bodies read and dropped. */
    {S("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), "LOCAL GET /healthz ka=1 @34; idle"},
    {S("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
     "LOCAL GET /healthz ka=1 @34; LOCAL GET /metrics ka=0 @87; idle"},
    {S("GET / HTTP/1.0\r\n\r\n"), "LOCAL GET / ka=0 @18; idle"},
    {S("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), "LOCAL GET / ka=1 @42; idle"},
    {S("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: \r\n\r\n"),
     "LOCAL POST /x ka=1 @53; LOCAL GET / ka=1 @79; idle"},
    {S("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
     "LOCAL POST /x ka=1 @72; idle"},
    {S("GET /a HTTP/1.1\r\nHost: x\r\n\r\nCONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\nPING"),
     "LOCAL GET /a ka=1 @28; CONNECT h:1 1.1 @63"},
    {S("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HT"), "LOCAL GET /a ka=1 @28; more"},
    {S("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nhel"), "more"},
    /* Absolute-form is forwarding, answered by the caller. */
    {S("GET http://o.example/x HTTP/1.1\r\nHost: o.example\r\n\r\n"), "ABS GET http://o.example/x ka=1 @52; END @52; idle"},
    /* Forwarding: the head returns at its end, the body streams, its end is reported (FWD-07). */
    {S("POST http://o.example/x HTTP/1.1\r\nHost: o\r\nContent-Length: 3\r\n\r\nabcGET /"),
     "ABS POST http://o.example/x ka=1 @64; END @67; more"},
    {S("POST http://o.example/x HTTP/1.1\r\nHost: o\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n"),
     "ABS POST http://o.example/x ka=1 @73; END @92; idle"},
    {S("POST http://o.example/x HTTP/1.1\r\nHost: o\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"),
     "ABS POST http://o.example/x ka=1 @73; 400 malformed request: Invalid character in chunk size"},
    /* RFC 9110 §7.8: Upgrade in an HTTP/1.0 request is ignored; the connection then ends. */
    {S("GET /.well-known/masque/udp/h/53/ HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: connect-udp\r\n\r\n"),
     "LOCAL GET /.well-known/masque/udp/h/53/ ka=0 @89; closed"},
    /* Upgrade without "Connection: upgrade" is not an upgrade. */
    {S("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"), "LOCAL GET / ka=1 @47; idle"},
    /* Nothing yet, or only empty lines: nothing has started. */
    {S(""), "idle"},
    {S("CONN"), "more"},
};

static void test_accept(void **state) {
  (void)state;
  check_rows(accept_rows, sizeof(accept_rows) / sizeof(accept_rows[0]), &default_limits);
}

/* ---- refused ---- */

static const struct row reject_rows[] = {
    /* A WebSocket URI only with an upgrade; an upgrade has no body (llhttp stops at it). */
    {S("GET ws://h:1/ HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 a ws:// or wss:// target without an Upgrade"},
    {S("GET http://h:1/ HTTP/1.1\r\nHost: h:1\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 1\r\n\r\nx"),
     "400 a body with an Upgrade"},
    /* Two identities: which one counts would depend on the hop (h2 resets such a stream). */
    {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nProxy-Authorization: Basic YTpi\r\n"
       "proxy-authorization: Basic Yzpk\r\n\r\n"), "400 more than one Proxy-Authorization field"},
    /* The request line (RFC 9112 §3, H1S-09): no version, whitespace, versions. */
    {S("CONNECT h:1\r\nHost: h:1\r\n\r\n"), "400 request line without HTTP version"},
    {S("GET /\r\n\r\n"), "400 request line without HTTP version"},
    {S("CONNECT  h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 whitespace in the request line"},
    {S("CONNECT h:1  HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 whitespace in the request line"},
    {S("CONNECT h:1 HTTP/1.1 \r\nHost: h:1\r\n\r\n"), "400 whitespace in the request line"},
    {S("CONNECT h:1 HTTP/1.1\t\r\nHost: h:1\r\n\r\n"), "400 whitespace in the request line"},
    {S("CONNECT h:1\tHTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 whitespace in the request line"},
    {S("CONNECT\th:1 HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 whitespace in the request line"},
    {S("CONNECT h:1\v HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 whitespace in the request line"},
    {S("CONNECT h:1 x HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 malformed request: Expected HTTP/"},
    {S(" CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 whitespace before the request line"},
    {S("\r\n CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 whitespace before the request line"},
    {S("GET\r\n\r\n"), "400 incomplete request line"},
    {S("GET / \r\n\r\n"), "400 incomplete request line"},
    {S("CONNECT h:1 HTTP/2.0\r\nHost: h:1\r\n\r\n"),
     "505 only HTTP/1.0 and HTTP/1.1 requests are served here; HTTP/2 starts with ALPN h2 or the connection "
     "preface"},
    {S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
     "505 only HTTP/1.0 and HTTP/1.1 requests are served here; HTTP/2 starts with ALPN h2 or the connection "
     "preface"},
    {S("CONNECT h:1 HTTP/3.0\r\n"),
     "505 only HTTP/1.0 and HTTP/1.1 requests are served here; HTTP/2 starts with ALPN h2 or the connection "
     "preface"},
    {S("CONNECT h:1 HTTP/0.9\r\n"),
     "505 only HTTP/1.0 and HTTP/1.1 requests are served here; HTTP/2 starts with ALPN h2 or the connection "
     "preface"},
    {S("CONNECT h:1 HTTP/1.2\r\n"),
     "505 only HTTP/1.0 and HTTP/1.1 requests are served here; HTTP/2 starts with ALPN h2 or the connection "
     "preface"},
    {S("CONNECT h:1 HTTP/1.10\r\n"), "400 malformed request: Expected CRLF after version"},
    {S("CONNECT h:1 HTTP/1.1.\r\n"), "400 malformed request: Expected CRLF after version"},
    {S("CONNECT h:1 HTTP/12\r\n"), "400 malformed request: Expected dot"},
    {S("CONNECT h:1 HTTP/1\r\n"), "400 malformed HTTP version"},
    {S("CONNECT h:1 http/1.1\r\n"), "400 malformed request: Expected HTTP/"},
    {S("CONNECT h:1 HTTP/1.1x\r\n"), "400 malformed request: Expected CRLF after version"},
    /* Line endings (RFC 9112 §2.2, H1S-07): CRLF only. */
    {S("\nCONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 bare LF in the request head"},
    {S("\rCONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 bare CR in the request head"},
    {S("CONNECT h:1 HTTP/1.1\nHost: h:1\r\n\r\n"), "400 bare LF in the request head"},
    {S("CONNECT h:1\n"), "400 bare LF in the request head"},
    {S("CONNECT h:1 HTTP/1.1\rHost: h:1\r\n\r\n"), "400 bare CR in the request head"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\n\r\n"), "400 bare LF in the request head"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\r\n"), "400 bare CR in the request head"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\n"), "400 bare LF in the request head"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\rX"), "400 bare CR in the request head"},
    /* obs-fold anywhere, even in Host (RFC 9112 §5.2, H1S-06), and a whitespace-led first field
     * line (§2.2, H1S-08). */
    {S("CONNECT h:1 HTTP/1.1\r\nHost:\r\n h:1\r\n\r\n"), "400 obs-fold (line folding) is not allowed"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost: h\r\n\t:1\r\n\r\n"), "400 obs-fold (line folding) is not allowed"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nX-A: a\r\n b\r\n\r\n"), "400 obs-fold (line folding) is not allowed"},
    {S("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tb\r\n\r\n"), "400 obs-fold (line folding) is not allowed"},
    {S("CONNECT h:1 HTTP/1.1\r\n Host: h:1\r\n\r\n"), "400 whitespace before the first field line"},
    /* Errors llhttp finds (strict): method case (H1C-05), field syntax (H1S-05), framing (H1S-01..03). */
    {S("connect h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 malformed request: Invalid method encountered"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost : h:1\r\n\r\n"), "400 whitespace between a field name and its colon"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost\t: h:1\r\n\r\n"), "400 whitespace between a field name and its colon"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost h:1\r\n\r\n"), "400 whitespace between a field name and its colon"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost\r\n\r\n"), "400 field line without a colon"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n: x\r\n\r\n"), "400 empty field name"},
    {S("CONNECT h:1 HTTP/1.1\r\nH\x01st: h:1\r\n\r\n"), "400 malformed request: Invalid header token"},
    {S("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n"), "400 malformed request: Invalid header value char"},
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
     "400 malformed request: Content-Length can't be present with Transfer-Encoding"},
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
     "400 malformed request: Duplicate Content-Length"},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"),
     "400 malformed request: Request has invalid `Transfer-Encoding`"},
    /* Host (H1C-04). */
    {S("CONNECT h:1 HTTP/1.1\r\n\r\n"), "400 missing Host field"},
    {S("GET / HTTP/1.1\r\n\r\n"), "400 missing Host field"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nHost: h:1\r\n\r\n"), "400 more than one Host field"},
    {S("GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n"), "400 more than one Host field"},
    {S("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n"), "400 invalid Host field: userinfo not allowed"},
    {S("GET / HTTP/1.1\r\nHost: h:0\r\n\r\n"), "400 invalid Host field: port out of range"},
    {S("GET / HTTP/1.1\r\nHost: ::1\r\n\r\n"), "400 invalid Host field: unbracketed IPv6 address"},
    {S("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), "400 invalid Host field: unterminated IPv6 literal"},
    {S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), "400 invalid Host field: whitespace not allowed"},
    /* A Host that names another authority than the CONNECT target (as H2C-03 on h2). */
    {S("CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: evil.invalid:1\r\n\r\n"), "400 Host differs from the CONNECT target"},
    {S("CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:10\r\n\r\n"), "400 Host differs from the CONNECT target"},
    {S("CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), "400 Host differs from the CONNECT target"},
    {S("CONNECT 127.0.0.1:9 HTTP/1.0\r\nHost: 127.0.0.2:9\r\n\r\n"), "400 Host differs from the CONNECT target"},
    {S("CONNECT h:443 HTTP/1.1\r\nHost: \r\n\r\n"), "400 Host differs from the CONNECT target"},
    {S("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::2]:443\r\n\r\n"), "400 Host differs from the CONNECT target"},
    /* CONNECT target (H1C-01..03) and content (H1C-10). */
    {S("CONNECT /x HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 missing port"},
    {S("CONNECT http://h:1/ HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 invalid character in host"},
    {S("CONNECT h: HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 empty port"},
    {S("CONNECT u@h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n"), "400 userinfo not allowed"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nContent-Length: 5\r\n\r\nhello"), "400 CONNECT with a body"},
    {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), "400 CONNECT with a body"},
    /* Upgrade: only connect-udp, on a GET without content (RFC 9298 §3.2). */
    {S("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
     "501 protocol upgrade not supported"},
    {S("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"),
     "501 protocol upgrade not supported"},
    {S("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: connect-udp\r\nUpgrade: connect-udp\r\n\r\n"),
     "501 protocol upgrade not supported"},
    {S("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: connect-udp, websocket\r\n\r\n"),
     "501 protocol upgrade not supported"},
    {S("POST /u HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: connect-udp\r\n\r\n"), "400 connect-udp needs GET"},
    {S("GET /u HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: connect-udp\r\nContent-Length: 4\r\n\r\n\x00\x02\x00\x41"),
     "400 connect-udp request with a body"},
    {S("GET /u HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: connect-udp\r\nTransfer-Encoding: chunked\r\n\r\n"
       "4\r\n\x00\x02\x00\x41\r\n0\r\n\r\n"),
     "400 connect-udp request with a body"},
    {S("GET * HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: connect-udp\r\n\r\n"), "400 bad request target"},
    /* Other target forms. */
    {S("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), "400 bad request target"},
    /* A refusal after a good pipelined request. */
    {S("GET /a HTTP/1.1\r\nHost: x\r\n\r\nCONNECT h:1 HTTP/1.1\r\nHost:\r\n h:1\r\n\r\n"),
     "LOCAL GET /a ka=1 @28; 400 obs-fold (line folding) is not allowed"},
};

static void test_reject(void **state) {
  (void)state;
  check_rows(reject_rows, sizeof(reject_rows) / sizeof(reject_rows[0]), &default_limits);
}

/* The connect-udp kind is known on a refusal too, so the access log names the protocol. */
static void test_reject_connect_udp_kind(void **state) {
  static const char in[] = "GET /u HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: connect-udp\r\n"
                           "Content-Length: 4\r\n\r\nabcd";
  struct h1_req r;
  size_t used;
  (void)state;
  h1_req_init(&r, &default_limits);
  assert_int_equal(h1_req_feed(&r, in, sizeof(in) - 1, &used), H1_REQ_ERROR);
  assert_int_equal(r.head.kind, H1_REQ_CONNECT_UDP);
  assert_string_equal(r.target, "/u");
  h1_req_dispose(&r);
}

/* ---- limits (H1S-10) ---- */

static void test_limits(void **state) {
  static const struct h1_req_limits small = {.max_head_bytes = 64, .max_fields = 3};
  static const struct row rows[] = {
      /* Exactly 64 bytes of head is allowed; 65 is not. */
      {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nX-Pad: aaaaaaaaaaaaaaaaaaaa\r\n\r\n"), "CONNECT h:1 1.1 @64"},
      {S("CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaa\r\n\r\n"), "431 request head too large"},
      /* In the request line it is the target that is too long: 414. */
      {S("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n"), "414 request target too long"},
      /* Leading empty lines count too. */
      {S("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"),
       "431 request head too large"},
      /* Three fields are allowed, four are not. */
      {S("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n"), "LOCAL GET / ka=1 @39; idle"},
      {S("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), "431 too many header fields"},
      /* Each request of a connection gets the whole budget. */
      {S("GET /a HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n"),
       "LOCAL GET /a ka=1 @40; LOCAL GET /b ka=1 @80; idle"},
  };
  (void)state;
  check_rows(rows, sizeof(rows) / sizeof(rows[0]), &small);
}

/* A 9000-byte target is accepted under the default limits (H1S-10), and a Host too long to be a
 * host is refused without overflowing anything. */
static void test_long_values(void **state) {
  static const struct h1_req_limits lim = {.max_head_bytes = 32 * 1024, .max_fields = 100};
  char in[12000], log[256];
  size_t n;
  (void)state;
  n = (size_t)snprintf(in, sizeof(in), "GET /healthz?");
  memset(in + n, 'a', 9000);
  n += 9000;
  n += (size_t)snprintf(in + n, sizeof(in) - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
  run(in, n, &lim, 0, 0, log, sizeof(log));
  assert_true(strncmp(log, "LOCAL GET /healthz?aaaa", 23) == 0);
  run(in, n, &lim, 0, 1, log, sizeof(log));
  assert_true(strncmp(log, "LOCAL GET /healthz?aaaa", 23) == 0);

  n = (size_t)snprintf(in, sizeof(in), "CONNECT h:1 HTTP/1.1\r\nHost: ");
  memset(in + n, 'h', 300);
  n += 300;
  n += (size_t)snprintf(in + n, sizeof(in) - n, ":1\r\n\r\n");
  run(in, n, &lim, 0, 0, log, sizeof(log));
  assert_string_equal(log, "400 invalid Host field: too long");
  run(in, n, &lim, 0, 3, log, sizeof(log));
  assert_string_equal(log, "400 invalid Host field: too long");
}

/* Feeding after the last request (an upgrade, or an error) is the caller's bug, reported as such;
 * feeding nothing is harmless. */
static void test_misuse(void **state) {
  static const char in[] = "CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\nxyz";
  struct h1_req r;
  size_t used;
  (void)state;
  h1_req_init(&r, &default_limits);
  assert_int_equal(h1_req_feed(&r, NULL, 0, &used), H1_REQ_MORE);
  assert_int_equal(used, 0);
  assert_false(h1_req_started(&r));
  assert_int_equal(h1_req_feed(&r, in, 5, &used), H1_REQ_MORE);
  assert_true(h1_req_started(&r));
  assert_int_equal(h1_req_feed(&r, in + 5, sizeof(in) - 6, &used), H1_REQ_DONE);
  assert_int_equal(used, sizeof(in) - 1 - 5 - 3);
  assert_false(h1_req_started(&r));
  assert_int_equal(h1_req_feed(&r, "xyz", 3, &used), H1_REQ_ERROR);
  assert_int_equal(r.err, PXERR_INTERNAL);
  h1_req_dispose(&r);

  h1_req_init(&r, &default_limits);
  assert_int_equal(h1_req_feed(&r, "GET\r\n", 5, &used), H1_REQ_ERROR);
  assert_int_equal(used, 3);
  assert_int_equal(h1_req_feed(&r, "GET", 3, &used), H1_REQ_ERROR);
  assert_int_equal(r.err, PXERR_INTERNAL);
  h1_req_dispose(&r);
}

/* Feeds |in| cut at |cut| (0: whole) and returns the credentials of the last request returned. */
static char *credentials_of(const char *in, size_t len, size_t cut) {
  struct h1_req r;
  size_t off = 0, used;
  char *cred = NULL;
  h1_req_init(&r, &default_limits);
  while (off < len) {
    size_t n = cut && off < cut ? cut - off : len - off;
    enum h1_req_status st = h1_req_feed(&r, in + off, n, &used);
    assert_int_not_equal(st, H1_REQ_ERROR);
    off += used;
    if (st == H1_REQ_DONE) {
      free(cred);
      cred = h1_req_take_credentials(&r);
      assert_null(h1_req_take_credentials(&r)); /* handed over once */
      if (r.head.kind == H1_REQ_CONNECT) break;
    }
  }
  h1_req_dispose(&r);
  return cred;
}

/* Proxy-Authorization is carried as presented (trailing whitespace cut), for the request path;
 * not checked here. Each request has its own; two in one request are refused (reject_rows). */
static void test_credentials(void **state) {
  static const char connect[] = "CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nProxy-Authorization: Basic dXNlcjpwdw==  \r\n"
                                "X-Other: Basic b3RoZXI6eA==\r\n\r\n";
  static const char pipelined[] = "GET /healthz HTTP/1.1\r\nHost: h\r\nProxy-Authorization: Basic a\r\n\r\n"
                                  "CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n";
  (void)state;
  for (size_t cut = 0; cut < sizeof(connect) - 1; cut++) {
    char *c = credentials_of(connect, sizeof(connect) - 1, cut);
    assert_non_null(c);
    assert_string_equal(c, "Basic dXNlcjpwdw==");
    free(c);
  }
  assert_null(credentials_of(pipelined, sizeof(pipelined) - 1, 0));
  char *c = credentials_of(pipelined, 64, 0); /* the first request alone */
  assert_non_null(c);
  assert_string_equal(c, "Basic a");
  free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_credentials),
      cmocka_unit_test(test_accept),      cmocka_unit_test(test_reject),
      cmocka_unit_test(test_reject_connect_udp_kind),
      cmocka_unit_test(test_limits),      cmocka_unit_test(test_long_values),
      cmocka_unit_test(test_misuse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
