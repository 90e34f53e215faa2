/* Fuzz target for tunnel/capsule.c. The first input byte seeds the chunk sizes, the second picks
 * max_capsule, the rest is the capsule stream. Invariants checked on every input:
 *   - the decoder never reads past a chunk (each chunk is an exact-size heap copy, so ASan sees it)
 *     and advances the input exactly as far as it reports;
 *   - every payload lies inside the chunk or the decoder's buffer and fits max_capsule;
 *   - the split decode yields the same payloads, drop count and verdict as a one-shot decode;
 *   - re-encoding the payloads as context-0 DATAGRAMs and decoding again gives the same payloads. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/capsule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    if (!(x)) {                                                                                    \
      fprintf(stderr, "fuzz_capsule: CHECK(%s) failed at line %d\n", #x, __LINE__);                \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* What one decode run produced: payloads as (8-byte length, bytes) records. */
struct run {
  uint8_t *log;
  size_t len, cap;
  size_t count;
  int error;
  uint64_t dropped;
};

static void log_add(struct run *r, const void *p, size_t n) {
  if (r->len + n > r->cap) {
    size_t cap = r->cap ? r->cap : 256;
    while (cap < r->len + n) cap *= 2;
    r->log = realloc(r->log, cap);
    CHECK(r->log != NULL);
    r->cap = cap;
  }
  if (n > 0) memcpy(r->log + r->len, p, n);
  r->len += n;
}

static int within(const uint8_t *p, size_t n, const uint8_t *base, size_t base_len) {
  if (base == NULL) return 0;
  return p >= base && p <= base + base_len && n <= (size_t)(base + base_len - p);
}

/* A small xorshift so chunk sizes depend only on the seed byte and the input length. */
static uint32_t next(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

/* Decodes |in| in chunks: sizes from |seed| (0: one chunk). */
static void decode(const uint8_t *in, size_t n, size_t max, uint32_t seed, struct run *r) {
  struct capsule_decoder d;
  size_t off = 0;

  memset(r, 0, sizeof(*r));
  capsule_decoder_init(&d, max);
  while (off < n && !r->error) {
    size_t chunk = n - off;
    if (seed != 0) {
      uint32_t x = next(&seed);
      size_t want = (x & 0x100) ? 1 + x % 300 : 1 + x % 9;
      if (want < chunk) chunk = want;
    }
    uint8_t *copy = malloc(chunk);
    CHECK(copy != NULL);
    memcpy(copy, in + off, chunk);
    const uint8_t *p = copy;
    size_t len = chunk;
    for (;;) {
      const uint8_t *payload = NULL, *before = p;
      size_t payload_len = 0, len_before = len;
      enum capsule_event ev = capsule_decode(&d, &p, &len, &payload, &payload_len, &r->dropped);
      CHECK(p >= before && len <= len_before && (size_t)(p - before) == len_before - len);
      if (ev == CAPSULE_ERROR) {
        r->error = 1;
        break;
      }
      if (ev == CAPSULE_NEED_MORE) {
        CHECK(len == 0);
        break;
      }
      CHECK(ev == CAPSULE_DATAGRAM);
      /* The context ID takes at least one byte of the capsule. */
      CHECK(payload_len + 1 <= d.max_capsule);
      CHECK(payload_len == 0 || within(payload, payload_len, copy, chunk) ||
            within(payload, payload_len, d.buf, d.buf_len));
      uint64_t l = payload_len;
      log_add(r, &l, sizeof(l));
      log_add(r, payload, payload_len);
      r->count++;
    }
    CHECK(d.buf_cap <= d.max_capsule);
    free(copy);
    off += chunk;
  }
  capsule_decoder_free(&d);
}

static void same(const struct run *a, const struct run *b) {
  CHECK(a->error == b->error);
  CHECK(a->dropped == b->dropped);
  CHECK(a->count == b->count);
  CHECK(a->len == b->len);
  CHECK(a->len == 0 || memcmp(a->log, b->log, a->len) == 0);
}

static void check_varint(const uint8_t *p, size_t n) {
  uint64_t v = 0, back = 0;
  uint8_t out[8];
  size_t used = varint_decode(p, n, &v), enc;

  if (used == 0) {
    CHECK(n == 0 || n < ((size_t)1 << (p[0] >> 6)));
    return;
  }
  CHECK(used == ((size_t)1 << (p[0] >> 6)) && v <= VARINT_MAX);
  enc = varint_encode(v, out);
  CHECK(enc >= 1 && enc <= used && enc == varint_len(v));
  CHECK(varint_decode(out, enc, &back) == enc && back == v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct run whole, split, again, again_split;
  uint8_t *enc = NULL;
  size_t enc_len = 0, max, off;

  if (size < 2) return 0;
  uint32_t seed = 0x9e3779b9u ^ ((uint32_t)data[0] << 8) ^ (uint32_t)size;
  /* Mostly small limits, so short inputs reach the over-max path; 0 is the default. */
  max = data[1] == 0xff ? 0 : (size_t)data[1] * 3;
  data += 2;
  size -= 2;

  check_varint(data, size);

  decode(data, size, max, 0, &whole);
  decode(data, size, max, seed, &split);
  same(&whole, &split);

  /* Re-encode every payload; the new stream must decode cleanly to the same payloads. */
  off = 0;
  for (size_t i = 0; i < whole.count; i++) {
    uint64_t l;
    memcpy(&l, whole.log + off, sizeof(l));
    off += sizeof(l);
    size_t need = capsule_datagram_size((size_t)l);
    CHECK(need > 0);
    enc = realloc(enc, enc_len + need);
    CHECK(enc != NULL);
    CHECK(capsule_encode_datagram(whole.log + off, (size_t)l, enc + enc_len, need) == need);
    /* One byte short must refuse. */
    CHECK(capsule_encode_datagram(whole.log + off, (size_t)l, enc + enc_len, need - 1) == 0);
    enc_len += need;
    off += (size_t)l;
  }
  CHECK(off == whole.len);
  decode(enc, enc_len, max, 0, &again);
  decode(enc, enc_len, max, seed ^ 0x5bd1e995u, &again_split);
  CHECK(!again.error && again.dropped == 0);
  CHECK(again.count == whole.count && again.len == whole.len);
  CHECK(whole.len == 0 || memcmp(again.log, whole.log, whole.len) == 0);
  same(&again, &again_split);

  free(enc);
  free(whole.log);
  free(split.log);
  free(again.log);
  free(again_split.log);
  return 0;
}
