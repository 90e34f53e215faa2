/* RFC 9297 capsules and RFC 9000 variable-length integers: a pure, incremental codec (no I/O).
 * Used by connect-udp (RFC 9298): DATAGRAM capsules (type 0x00) whose payload starts with a
 * Context ID varint; context 0 carries one UDP payload. */
#ifndef H2T_CAPSULE_H
#define H2T_CAPSULE_H

#include <stddef.h>
#include <stdint.h>

#define CAPSULE_TYPE_DATAGRAM 0x00
#define VARINT_MAX 0x3fffffffffffffffULL

/* Encodes |v| (<= VARINT_MAX) in the shortest form into |out| (at least 8 bytes). Returns the
 * length (1, 2, 4 or 8), or 0 if |v| is too large. */
size_t varint_encode(uint64_t v, uint8_t *out);
/* Decodes a varint from |len| bytes at |p|. Returns the bytes used (1..8), 0 if more bytes are
 * needed. */
size_t varint_decode(const uint8_t *p, size_t len, uint64_t *v);
/* The encoded length of |v|, or 0 if |v| > VARINT_MAX. */
size_t varint_len(uint64_t v);

/* Writes a DATAGRAM capsule with context ID 0 around |payload| into |out| (capacity |cap|).
 * Returns the total length, or 0 if it does not fit. */
size_t capsule_encode_datagram(const uint8_t *payload, size_t len, uint8_t *out, size_t cap);
/* The bytes capsule_encode_datagram needs for a |len|-byte payload (0 if it cannot be encoded). */
size_t capsule_datagram_size(size_t len);

/* Incremental decoder over a byte stream that may split capsules anywhere. */
struct capsule_decoder {
  size_t max_capsule;   /* DATAGRAM capsules whose Length exceeds this are an error (0: 65535 +
                           16); unknown types are skipped at any size */
  /* Internal state: */
  int state;            /* 0 type, 1 length, 2 payload, 3 skipping, 4 failed (sticky) */
  uint8_t hdr[8];       /* varint being assembled */
  size_t hdr_len;
  uint64_t type;
  uint64_t remaining;   /* payload bytes still expected */
  uint8_t *buf;         /* owned: payload of the capsule being assembled */
  size_t buf_len, buf_cap;
};

enum capsule_event {
  CAPSULE_NEED_MORE = 0, /* all input consumed, no complete capsule */
  CAPSULE_DATAGRAM = 1,  /* a context-0 DATAGRAM: *payload / *payload_len valid until next call;
                            *payload may point into the caller's input (no copy) or into buf, so
                            it is valid only while that input is too. *payload_len may be 0. */
  CAPSULE_ERROR = -1,    /* malformed (length over max, empty DATAGRAM, context ID overrunning
                            the value) or out of memory; the stream must end. Sticky: later calls
                            return CAPSULE_ERROR too. */
};

/* 1 when the decoder sits between capsules (no partial capsule buffered or being skipped). */
static inline int capsule_decoder_at_boundary(const struct capsule_decoder *d) {
  return d->state == 0 && d->hdr_len == 0;
}

void capsule_decoder_init(struct capsule_decoder *d, size_t max_capsule);
void capsule_decoder_free(struct capsule_decoder *d);
/* Consumes bytes from |*p| / |*len| (advancing them) until one event. Unknown capsule types are
 * skipped silently; DATAGRAMs with a non-zero context ID are dropped and counted in |*dropped|
 * (may be NULL). Call again while it returns CAPSULE_DATAGRAM. */
enum capsule_event capsule_decode(struct capsule_decoder *d, const uint8_t **p, size_t *len,
                                  const uint8_t **payload, size_t *payload_len, uint64_t *dropped);

#endif
