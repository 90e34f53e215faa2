/* A fake DNS server for unit tests that run a real resolver: a uv_udp_t on 127.0.0.1 (random
 * port) on the test's own loop, answering A/AAAA questions from a table the test gives. A name in
 * the table answers NOERROR (NODATA for a type it has no record of); a record whose address is
 * NULL marks a name that is never answered (for timeouts); any other name is NXDOMAIN.
 * Header-only so that each test program can include it. */
#ifndef H2T_TEST_FAKE_DNS_H
#define H2T_TEST_FAKE_DNS_H

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

struct fake_dns_rr {
  const char *name;
  int aaaa;         /* 0: an A record, 1: an AAAA record */
  const char *addr; /* NULL: the name is never answered */
};

/* Owned by the test; fake_dns_stop closes the handle (the loop must run to finish the close). */
struct fake_dns {
  uv_udp_t udp;
  int port;
  const struct fake_dns_rr *rrs; /* borrowed from the test */
  size_t nrrs;
  unsigned nqueries; /* every question received, answered or not */
  unsigned nsilent;  /* questions for a name that is never answered */
  char buf[1500];
};

static void fake_dns_alloc(uv_handle_t *h, size_t size, uv_buf_t *b) {
  struct fake_dns *f = h->data;
  *b = uv_buf_init(f->buf, sizeof(f->buf));
}

static size_t fake_dns_put16(uint8_t *p, unsigned v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
  return 2;
}

/* The answer to |q| (|qlen| bytes) in |out| (at least 512 bytes); 0 to stay silent. */
static size_t fake_dns_answer(struct fake_dns *f, const uint8_t *q, size_t qlen, uint8_t *out) {
  char name[256];
  size_t nlen = 0, off = 12, len = 0;
  int known = 0;
  unsigned an = 0;

  if (qlen < 12 || (q[2] & 0x80) || q[4] != 0 || q[5] != 1) return 0;
  while (off < qlen && q[off] != 0) {
    size_t l = q[off++];
    if (l > 63 || off + l > qlen || nlen + l + 1 >= sizeof(name)) return 0;
    if (nlen > 0) name[nlen++] = '.';
    memcpy(name + nlen, q + off, l);
    nlen += l;
    off += l;
  }
  name[nlen] = '\0';
  if (off + 5 > qlen) return 0;
  unsigned qtype = (unsigned)q[off + 1] << 8 | q[off + 2];
  size_t qend = off + 5; /* root label, QTYPE, QCLASS */
  f->nqueries++;
  for (size_t i = 0; i < f->nrrs; i++) {
    if (strcasecmp(name, f->rrs[i].name) != 0) continue;
    if (f->rrs[i].addr == NULL) {
      f->nsilent++;
      return 0;
    }
    known = 1;
  }
  len += fake_dns_put16(out + len, (unsigned)q[0] << 8 | q[1]); /* id */
  out[len++] = (uint8_t)(0x80 | (q[2] & 0x01));                   /* QR, RD copied */
  out[len++] = (uint8_t)(0x80 | (known ? 0 : 3));                 /* RA, NOERROR/NXDOMAIN */
  len += fake_dns_put16(out + len, 1);
  size_t ancount_at = len;
  len += fake_dns_put16(out + len, 0);
  len += fake_dns_put16(out + len, 0);
  len += fake_dns_put16(out + len, 0); /* no EDNS */
  memcpy(out + len, q + 12, qend - 12);
  len += qend - 12;
  for (size_t i = 0; i < f->nrrs && len + 40 < 512; i++) {
    const struct fake_dns_rr *rr = &f->rrs[i];
    unsigned type = rr->aaaa ? 28 : 1;
    if (strcasecmp(name, rr->name) != 0 || type != qtype) continue;
    len += fake_dns_put16(out + len, 0xc00c); /* the question's name */
    len += fake_dns_put16(out + len, type);
    len += fake_dns_put16(out + len, 1);
    len += fake_dns_put16(out + len, 0);
    len += fake_dns_put16(out + len, 60); /* TTL */
    len += fake_dns_put16(out + len, rr->aaaa ? 16 : 4);
    if (inet_pton(rr->aaaa ? AF_INET6 : AF_INET, rr->addr, out + len) != 1) return 0;
    len += rr->aaaa ? 16 : 4;
    an++;
  }
  fake_dns_put16(out + ancount_at, an);
  return len;
}

static void fake_dns_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *b, const struct sockaddr *from,
                          unsigned flags) {
  struct fake_dns *f = u->data;
  uint8_t out[512];
  if (nread <= 0 || from == NULL) return;
  size_t len = fake_dns_answer(f, (const uint8_t *)b->base, (size_t)nread, out);
  if (len == 0) return;
  uv_buf_t ob = uv_buf_init((char *)out, (unsigned)len);
  uv_udp_try_send(u, &ob, 1, from);
}

/* Starts serving |rrs| on |loop|. Returns 0 or a libuv error. */
static int fake_dns_start(uv_loop_t *loop, struct fake_dns *f, const struct fake_dns_rr *rrs, size_t nrrs) {
  struct sockaddr_in sin;
  struct sockaddr_storage ss;
  int sslen = sizeof(ss), r;

  memset(f, 0, sizeof(*f));
  f->rrs = rrs;
  f->nrrs = nrrs;
  if ((r = uv_udp_init(loop, &f->udp)) != 0) return r;
  f->udp.data = f;
  uv_ip4_addr("127.0.0.1", 0, &sin);
  if ((r = uv_udp_bind(&f->udp, (const struct sockaddr *)&sin, 0)) != 0 ||
      (r = uv_udp_getsockname(&f->udp, (struct sockaddr *)&ss, &sslen)) != 0 ||
      (r = uv_udp_recv_start(&f->udp, fake_dns_alloc, fake_dns_recv)) != 0)
    return r;
  f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return 0;
}

static void fake_dns_stop(struct fake_dns *f) { uv_close((uv_handle_t *)&f->udp, NULL); }

#endif
