/* RFC 9000 §16 variable-length integers and the RFC 9297 capsule codec (connect-udp, RFC 9298).
 *
 * The decoder is a byte-at-a-time state machine for the two header varints and a bulk copier for
 * the value, so a capsule may be split anywhere in the stream. Three rules keep memory bounded:
 *   - unknown capsule types are skipped by counting, never buffered;
 *   - a DATAGRAM longer than max_capsule is an error, found from its Length before any value byte
 *     (unknown types of any size are skipped, RFC 9297 §3.2);
 *   - a DATAGRAM capsule is buffered only when it arrives in pieces; when the whole value is in the
 *     caller's input, the payload points straight into that input (no copy).
 * After CAPSULE_ERROR the decoder stays failed: the stream is unframed from that point on. */
#include "tunnel/capsule.h"

#include <stdlib.h>
#include <string.h>

/* 1-byte type + 8-byte length + 1-byte context ID around a 64 KiB UDP payload. */
#define CAPSULE_DEFAULT_MAX (65535 + 16)

enum {
  ST_TYPE = 0,
  ST_LENGTH = 1,
  ST_PAYLOAD = 2,
  ST_SKIP = 3,
  ST_FAILED = 4, /* sticky after CAPSULE_ERROR */
};

size_t varint_len(uint64_t v) {
  if (v <= 63) return 1;
  if (v <= 16383) return 2;
  if (v <= 1073741823) return 4;
  if (v <= VARINT_MAX) return 8;
  return 0;
}

size_t varint_encode(uint64_t v, uint8_t *out) {
  size_t n = varint_len(v);

  if (n == 0) return 0;
  for (size_t i = n; i > 0; i--) {
    out[i - 1] = (uint8_t)(v & 0xff);
    v >>= 8;
  }
  /* The two high bits of the first byte carry log2 of the length. */
  if (n == 2) out[0] |= 0x40;
  else if (n == 4) out[0] |= 0x80;
  else if (n == 8) out[0] |= 0xc0;
  return n;
}

size_t varint_decode(const uint8_t *p, size_t len, uint64_t *v) {
  size_t n;
  uint64_t x;

  if (len == 0) return 0;
  n = (size_t)1 << (p[0] >> 6);
  if (len < n) return 0;
  x = p[0] & 0x3f;
  for (size_t i = 1; i < n; i++) x = (x << 8) | p[i];
  *v = x;
  return n;
}

size_t capsule_datagram_size(size_t len) {
  /* Type (1) + Length (up to 8) + context ID 0 (1) + payload; the Length varint holds len + 1. */
  if (len > SIZE_MAX - 10 || (uint64_t)len > VARINT_MAX - 1) return 0;
  return 1 + varint_len((uint64_t)len + 1) + 1 + len;
}

size_t capsule_encode_datagram(const uint8_t *payload, size_t len, uint8_t *out, size_t cap) {
  size_t total = capsule_datagram_size(len);
  size_t off = 0;

  if (total == 0 || total > cap) return 0;
  out[off++] = CAPSULE_TYPE_DATAGRAM;
  off += varint_encode((uint64_t)len + 1, out + off);
  out[off++] = 0x00; /* context ID 0: UDP payload */
  if (len > 0) memcpy(out + off, payload, len);
  return off + len;
}

void capsule_decoder_init(struct capsule_decoder *d, size_t max_capsule) {
  memset(d, 0, sizeof(*d));
  d->max_capsule = max_capsule != 0 ? max_capsule : CAPSULE_DEFAULT_MAX;
  d->state = ST_TYPE;
}

void capsule_decoder_free(struct capsule_decoder *d) {
  free(d->buf);
  d->buf = NULL;
  d->buf_len = 0;
  d->buf_cap = 0;
}

/* Moves header bytes into d->hdr until one varint is whole. Returns 1 with *v set, or 0 when the
 * input ran out first (the partial varint stays in d->hdr for the next call). */
static int take_varint(struct capsule_decoder *d, const uint8_t **p, size_t *len, uint64_t *v) {
  while (*len > 0) {
    d->hdr[d->hdr_len++] = **p;
    (*p)++;
    (*len)--;
    if (d->hdr_len == (size_t)1 << (d->hdr[0] >> 6)) {
      varint_decode(d->hdr, d->hdr_len, v);
      d->hdr_len = 0;
      return 1;
    }
  }
  return 0;
}

static enum capsule_event fail(struct capsule_decoder *d) {
  d->state = ST_FAILED;
  return CAPSULE_ERROR;
}

/* One whole DATAGRAM value. Returns CAPSULE_DATAGRAM for context 0, CAPSULE_NEED_MORE for a
 * dropped context (the caller keeps going), CAPSULE_ERROR when the context ID overruns. */
static enum capsule_event datagram(struct capsule_decoder *d, const uint8_t *value, size_t n,
                                   const uint8_t **payload, size_t *payload_len,
                                   uint64_t *dropped) {
  uint64_t ctx;
  size_t used = varint_decode(value, n, &ctx);

  if (used == 0) return fail(d);
  if (ctx != 0) {
    /* RFC 9298 §4: unknown contexts are dropped; the count lets the caller see misuse. */
    if (dropped != NULL) (*dropped)++;
    return CAPSULE_NEED_MORE;
  }
  *payload = value + used;
  *payload_len = n - used;
  return CAPSULE_DATAGRAM;
}

enum capsule_event capsule_decode(struct capsule_decoder *d, const uint8_t **p, size_t *len,
                                  const uint8_t **payload, size_t *payload_len,
                                  uint64_t *dropped) {
  uint64_t v;
  enum capsule_event ev;

  if (d->state == ST_FAILED) return CAPSULE_ERROR;
  for (;;) {
    switch (d->state) {
    case ST_TYPE:
      if (!take_varint(d, p, len, &v)) return CAPSULE_NEED_MORE;
      d->type = v;
      d->state = ST_LENGTH;
      break;

    case ST_LENGTH:
      if (!take_varint(d, p, len, &v)) return CAPSULE_NEED_MORE;
      d->remaining = v;
      if (d->type != CAPSULE_TYPE_DATAGRAM) {
        /* Unknown types are dropped silently whatever their size (RFC 9297 §3.2); skipping
         * them costs no memory. */
        d->state = v > 0 ? ST_SKIP : ST_TYPE;
        break;
      }
      if (v > d->max_capsule) return fail(d);
      /* A DATAGRAM value holds at least its context ID. */
      if (v == 0) return fail(d);
      d->state = ST_TYPE;
      if (d->remaining <= *len) {
        /* Zero-copy: the whole value is in the caller's input. */
        const uint8_t *value = *p;
        size_t n = (size_t)d->remaining;
        *p += n;
        *len -= n;
        d->remaining = 0;
        ev = datagram(d, value, n, payload, payload_len, dropped);
        if (ev != CAPSULE_NEED_MORE) return ev;
        break;
      }
      if (d->buf_cap < d->remaining) {
        /* Grow to this capsule's size only; max_capsule bounds it. */
        uint8_t *nb = realloc(d->buf, (size_t)d->remaining);
        if (nb == NULL) return fail(d);
        d->buf = nb;
        d->buf_cap = (size_t)d->remaining;
      }
      d->buf_len = 0;
      d->state = ST_PAYLOAD;
      break;

    case ST_PAYLOAD: {
      size_t n = *len < d->remaining ? *len : (size_t)d->remaining;
      if (n > 0) memcpy(d->buf + d->buf_len, *p, n);
      d->buf_len += n;
      d->remaining -= n;
      *p += n;
      *len -= n;
      if (d->remaining > 0) return CAPSULE_NEED_MORE;
      d->state = ST_TYPE;
      ev = datagram(d, d->buf, d->buf_len, payload, payload_len, dropped);
      if (ev != CAPSULE_NEED_MORE) return ev;
      break;
    }

    case ST_SKIP: {
      size_t n = *len < d->remaining ? *len : (size_t)d->remaining;
      d->remaining -= n;
      *p += n;
      *len -= n;
      if (d->remaining > 0) return CAPSULE_NEED_MORE;
      d->state = ST_TYPE;
      break;
    }

    default:
      return fail(d);
    }
  }
}
