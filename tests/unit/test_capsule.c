/* Unit tests for tunnel/capsule.c: RFC 9000 varints and the RFC 9297 capsule decoder. The stream
 * tests feed every row split at every byte offset (and byte by byte) and require exactly the result
 * of one whole-buffer call, since TLS records and h2 DATA frames may cut a capsule anywhere. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "tunnel/capsule.h"

/* A byte-string literal with its exact length (rows hold NUL bytes). */
#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

/* ---- varints ---- */

struct varint_case {
  uint64_t v;
  size_t len; /* 0: not encodable */
  const uint8_t *bytes;
  size_t bytes_len;
};

static const struct varint_case varint_cases[] = {
    {0, 1, S("\x00")},
    {63, 1, S("\x3f")},
    {64, 2, S("\x40\x40")},
    {16383, 2, S("\x7f\xff")},
    {16384, 4, S("\x80\x00\x40\x00")},
    {(1ULL << 30) - 1, 4, S("\xbf\xff\xff\xff")},
    {1ULL << 30, 8, S("\xc0\x00\x00\x00\x40\x00\x00\x00")},
    {(1ULL << 62) - 1, 8, S("\xff\xff\xff\xff\xff\xff\xff\xff")},
    /* RFC 9000 Appendix A.1. */
    {151288809941952652ULL, 8, S("\xc2\x19\x7c\x5e\xff\x14\xe8\x8c")},
    {494878333, 4, S("\x9d\x7f\x3e\x7d")},
    {15293, 2, S("\x7b\xbd")},
    {37, 1, S("\x25")},
    {1ULL << 62, 0, S("")},
    {UINT64_MAX, 0, S("")},
};

static void test_varint_encode_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(varint_cases) / sizeof(varint_cases[0]); i++) {
    const struct varint_case *c = &varint_cases[i];
    uint8_t out[8];
    uint64_t back = 0;

    memset(out, 0xaa, sizeof(out));
    assert_int_equal(varint_len(c->v), c->len);
    assert_int_equal(varint_encode(c->v, out), c->len);
    if (c->len == 0) continue;
    assert_int_equal(c->bytes_len, c->len);
    assert_memory_equal(out, c->bytes, c->len);
    assert_int_equal(varint_decode(out, c->len, &back), c->len);
    assert_true(back == c->v);
  }
}

/* Decoding accepts any length prefix, minimal or not (RFC 9000 §16 and A.1: 0x4025 is 37). */
struct decode_case {
  const uint8_t *in;
  size_t in_len;
  size_t used; /* 0: needs more */
  uint64_t v;
};

static const struct decode_case decode_cases[] = {
    {S("\xc2\x19\x7c\x5e\xff\x14\xe8\x8c"), 8, 151288809941952652ULL},
    {S("\x9d\x7f\x3e\x7d"), 4, 494878333},
    {S("\x7b\xbd"), 2, 15293},
    {S("\x25"), 1, 37},
    {S("\x40\x25"), 2, 37},
    {S("\x80\x00\x00\x25"), 4, 37},
    {S("\xc0\x00\x00\x00\x00\x00\x00\x25"), 8, 37},
    {S("\x00"), 1, 0},
    {S("\x25\xff\xff"), 1, 37},                  /* trailing bytes are not consumed */
    {S("\x40\x25\x00"), 2, 37},
    {S(""), 0, 0},                                /* needs more */
    {S("\x40"), 0, 0},
    {S("\x80\x00\x00"), 0, 0},
    {S("\xc2\x19\x7c\x5e\xff\x14\xe8"), 0, 0},
};

static void test_varint_decode_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(decode_cases) / sizeof(decode_cases[0]); i++) {
    const struct decode_case *c = &decode_cases[i];
    uint64_t v = 12345;
    size_t used = varint_decode(c->in, c->in_len, &v);
    assert_int_equal(used, c->used);
    if (used > 0) assert_true(v == c->v);
    else assert_true(v == 12345); /* untouched when more bytes are needed */
  }
}

static void test_varint_round_trip(void **state) {
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  (void)state;
  /* Every boundary +-1, then pseudo-random values of every magnitude. */
  static const uint64_t edges[] = {0, 63, 64, 16383, 16384, (1ULL << 30) - 1, 1ULL << 30,
                                   (1ULL << 62) - 1};
  for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
    for (int d = -1; d <= 1; d++) {
      uint64_t v = edges[i] + (uint64_t)(int64_t)d, back;
      uint8_t out[8];
      size_t n;
      if ((d < 0 && edges[i] == 0) || v > VARINT_MAX) continue;
      n = varint_encode(v, out);
      assert_true(n > 0);
      assert_int_equal(varint_decode(out, n, &back), n);
      assert_true(back == v);
      /* Any shorter input asks for more. */
      for (size_t k = 0; k < n; k++) assert_int_equal(varint_decode(out, k, &back), 0);
    }
  }
  for (int i = 0; i < 100000; i++) {
    uint64_t v, back;
    uint8_t out[8];
    size_t n;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v = (x & VARINT_MAX) >> (x % 62); /* spread over all four lengths */
    n = varint_encode(v, out);
    assert_int_equal(n, varint_len(v));
    assert_int_equal(varint_decode(out, n, &back), n);
    assert_true(back == v);
  }
}

/* ---- DATAGRAM encoding ---- */

static void test_encode_datagram(void **state) {
  uint8_t out[256], big[100];
  uint8_t expect_big[1 + 2 + 1 + 100];
  (void)state;

  assert_int_equal(capsule_datagram_size(3), 6);
  assert_int_equal(capsule_encode_datagram((const uint8_t *)"abc", 3, out, sizeof(out)), 6);
  assert_memory_equal(out, "\x00\x04\x00" "abc", 6);
  /* Too small by one byte: nothing is written. */
  assert_int_equal(capsule_encode_datagram((const uint8_t *)"abc", 3, out, 5), 0);
  /* Empty payload: the value is the context ID alone. */
  assert_int_equal(capsule_datagram_size(0), 3);
  assert_int_equal(capsule_encode_datagram(NULL, 0, out, sizeof(out)), 3);
  assert_memory_equal(out, "\x00\x01\x00", 3);
  /* 62 + 1 fits a 1-byte length; 63 + 1 needs two. */
  assert_int_equal(capsule_datagram_size(62), 65);
  assert_int_equal(capsule_datagram_size(63), 67);
  memset(big, 'x', sizeof(big));
  memcpy(expect_big, "\x00\x40\x65\x00", 4);
  memset(expect_big + 4, 'x', 100);
  assert_int_equal(capsule_encode_datagram(big, sizeof(big), out, sizeof(out)), sizeof(expect_big));
  assert_memory_equal(out, expect_big, sizeof(expect_big));
  assert_int_equal(capsule_datagram_size(65535), 1 + 4 + 1 + 65535);
  assert_int_equal(capsule_datagram_size(SIZE_MAX), 0);
}

/* ---- the decoder ---- */

/* Everything a decode run produced: payloads as (length byte, bytes), the count, and the end. */
struct run {
  uint8_t log[16384];
  size_t log_len;
  size_t count;
  int error;
  uint64_t dropped;
};

static void record(struct run *r, const uint8_t *payload, size_t len) {
  assert_true(len < 256 && r->log_len + 1 + len <= sizeof(r->log));
  r->log[r->log_len++] = (uint8_t)len;
  if (len > 0) memcpy(r->log + r->log_len, payload, len);
  r->log_len += len;
  r->count++;
}

/* Feeds one chunk, draining every event it holds. */
static void feed(struct capsule_decoder *d, struct run *r, const uint8_t *chunk, size_t n) {
  const uint8_t *p = chunk;
  size_t len = n;

  for (;;) {
    const uint8_t *payload = NULL;
    size_t payload_len = 0;
    const uint8_t *before = p;
    enum capsule_event ev = capsule_decode(d, &p, &len, &payload, &payload_len, &r->dropped);
    assert_true(p >= before && p + len == chunk + n);
    if (ev == CAPSULE_ERROR) {
      r->error = 1;
      return;
    }
    if (ev == CAPSULE_NEED_MORE) {
      assert_int_equal(len, 0);
      return;
    }
    assert_int_equal(ev, CAPSULE_DATAGRAM);
    assert_true(payload_len <= d->max_capsule);
    record(r, payload, payload_len);
  }
}

/* Decodes |in| cut into pieces: at |cut| (0: whole), or byte by byte when |cut| is SIZE_MAX. */
static void run_split(const uint8_t *in, size_t n, size_t max, size_t cut, struct run *r) {
  struct capsule_decoder d;

  memset(r, 0, sizeof(*r));
  capsule_decoder_init(&d, max);
  if (cut == SIZE_MAX) {
    for (size_t i = 0; i < n && !r->error; i++) {
      /* A one-byte copy, so ASan sees any read past the byte handed in. */
      uint8_t b = in[i];
      feed(&d, r, &b, 1);
    }
  } else if (cut == 0 || cut >= n) {
    feed(&d, r, in, n);
  } else {
    feed(&d, r, in, cut);
    if (!r->error) feed(&d, r, in + cut, n - cut);
  }
  capsule_decoder_free(&d);
}

struct stream_case {
  const char *name;
  const uint8_t *in;
  size_t in_len;
  size_t max;          /* 0: default */
  const uint8_t *expect; /* the run log: (length, bytes)... */
  size_t expect_len;
  int error;
  uint64_t dropped;
};

static const struct stream_case stream_cases[] = {
    {"one datagram", S("\x00\x04\x00" "abc"), 0, S("\x03" "abc"), 0, 0},
    {"empty udp payload", S("\x00\x01\x00"), 0, S("\x00"), 0, 0},
    {"two datagrams", S("\x00\x02\x00" "a" "\x00\x03\x00" "bc"), 0, S("\x01" "a" "\x02" "bc"), 0, 0},
    {"unknown capsules around datagrams",
     S("\x2a\x03" "xyz" "\x00\x04\x00" "abc" "\x41\x23\x00" "\x80\x00\x01\x00\x02" "pq"
       "\x00\x40\x03\x00" "de" "\x3f\x01" "\x00"),
     0, S("\x03" "abc" "\x02" "de"), 0, 0},
    {"non-minimal type, length and context", S("\x40\x00\x80\x00\x00\x04\x40\x00" "hi"), 0,
     S("\x02" "hi"), 0, 0},
    {"context != 0 dropped", S("\x00\x03\x01" "ab" "\x00\x02\x00" "z" "\x00\x04\x40\x40" "ab"), 0,
     S("\x01" "z"), 0, 2},
    {"context-only, non-zero", S("\x00\x01\x05"), 0, S(""), 0, 1},
    {"truncated capsule waits", S("\x00\x05\x00" "ab"), 0, S(""), 0, 0},
    {"truncated header waits", S("\x00\x02\x00" "a" "\x00\x40"), 0, S("\x01" "a"), 0, 0},
    {"zero-length datagram", S("\x00\x02\x00" "a" "\x00\x00" "\x00\x02\x00" "b"), 0, S("\x01" "a"),
     1, 0},
    {"context id overruns the value", S("\x00\x01\x40"), 0, S(""), 1, 0},
    {"8-byte context id in 4 bytes", S("\x00\x04\xc0\x00\x00\x00"), 0, S(""), 1, 0},
    {"at max", S("\x00\x04\x00" "abc"), 4, S("\x03" "abc"), 0, 0},
    {"over max", S("\x00\x05\x00" "abcd"), 4, S(""), 1, 0},
    /* Unknown types are skipped whatever their size (RFC 9297 §3.2). */
    {"unknown over max is skipped", S("\x21\x05" "abcde" "\x00\x02\x00" "a"), 4, S("\x01" "a"), 0, 0},
    {"huge length", S("\x00\xff\xff\xff\xff\xff\xff\xff\xff"), 0, S(""), 1, 0},
    {"error after a dropped one", S("\x00\x02\x09" "a" "\x00\x01\xc0"), 0, S(""), 1, 1},
    {"empty input", S(""), 0, S(""), 0, 0},
};

static void check_run(const struct stream_case *c, const struct run *r, size_t cut) {
  if (r->error != c->error || r->dropped != c->dropped || r->log_len != c->expect_len ||
      memcmp(r->log, c->expect, c->expect_len) != 0) {
    fail_msg("%s (cut %zu): error %d dropped %llu log %zu bytes", c->name, cut, r->error,
             (unsigned long long)r->dropped, r->log_len);
  }
}

static void test_stream_table_every_split(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(stream_cases) / sizeof(stream_cases[0]); i++) {
    const struct stream_case *c = &stream_cases[i];
    struct run r;

    run_split(c->in, c->in_len, c->max, 0, &r);
    check_run(c, &r, 0);
    for (size_t cut = 1; cut < c->in_len; cut++) {
      run_split(c->in, c->in_len, c->max, cut, &r);
      check_run(c, &r, cut);
    }
    run_split(c->in, c->in_len, c->max, SIZE_MAX, &r);
    check_run(c, &r, SIZE_MAX);
  }
}

/* A long generated stream: mixed unknown capsules, dropped contexts and datagrams of many sizes,
 * split at every offset and byte by byte, always giving the whole-buffer result. */
static void test_generated_stream_every_split(void **state) {
  static uint8_t in[8192];
  static uint8_t payload[300];
  struct run whole, r;
  size_t n = 0;
  uint64_t expect_dropped = 0;
  size_t expect_count = 0;
  (void)state;

  for (size_t i = 0; i < sizeof(payload); i++) payload[i] = (uint8_t)(i * 7 + 1);
  for (size_t k = 0; k < 24; k++) {
    size_t plen = (k * 37) % 200;
    /* Unknown capsule with a 2-byte type and a varying body. */
    n += varint_encode(0x4000 + k, in + n);
    n += varint_encode(k % 70, in + n);
    memset(in + n, 0xee, k % 70);
    n += k % 70;
    if (k % 3 == 0) {
      /* Context 2: dropped. */
      in[n++] = 0x00;
      n += varint_encode(1 + plen, in + n);
      in[n++] = 0x02;
      memcpy(in + n, payload, plen);
      n += plen;
      expect_dropped++;
    }
    n += capsule_encode_datagram(payload + k, plen, in + n, sizeof(in) - n);
    expect_count++;
  }
  assert_true(n < sizeof(in));

  run_split(in, n, 0, 0, &whole);
  assert_int_equal(whole.error, 0);
  assert_int_equal(whole.count, expect_count);
  assert_true(whole.dropped == expect_dropped);
  for (size_t cut = 1; cut < n; cut++) {
    run_split(in, n, 0, cut, &r);
    assert_int_equal(r.error, 0);
    assert_true(r.dropped == expect_dropped);
    assert_int_equal(r.log_len, whole.log_len);
    assert_memory_equal(r.log, whole.log, whole.log_len);
  }
  run_split(in, n, 0, SIZE_MAX, &r);
  assert_int_equal(r.log_len, whole.log_len);
  assert_memory_equal(r.log, whole.log, whole.log_len);
}

/* A whole capsule in the input is handed out in place; a split one comes from the decoder's
 * buffer, which grows to that capsule's size and no further. */
static void test_zero_copy_and_buffer_bound(void **state) {
  uint8_t in[64];
  size_t n = capsule_encode_datagram((const uint8_t *)"0123456789", 10, in, sizeof(in));
  struct capsule_decoder d;
  const uint8_t *p = in, *payload = NULL;
  size_t len = n, payload_len = 0;
  (void)state;

  capsule_decoder_init(&d, 0);
  assert_int_equal(d.max_capsule, 65535 + 16);
  assert_int_equal(capsule_decode(&d, &p, &len, &payload, &payload_len, NULL), CAPSULE_DATAGRAM);
  assert_ptr_equal(payload, in + 3);
  assert_int_equal(payload_len, 10);
  assert_null(d.buf);
  assert_int_equal(capsule_decode(&d, &p, &len, &payload, &payload_len, NULL), CAPSULE_NEED_MORE);

  /* Split after the header: buffered, buf sized to the value (11 bytes). */
  p = in;
  len = 5;
  assert_int_equal(capsule_decode(&d, &p, &len, &payload, &payload_len, NULL), CAPSULE_NEED_MORE);
  assert_int_equal(d.state, 2);
  len = n - 5;
  assert_int_equal(capsule_decode(&d, &p, &len, &payload, &payload_len, NULL), CAPSULE_DATAGRAM);
  assert_ptr_equal(payload, d.buf + 1);
  assert_memory_equal(payload, "0123456789", 10);
  assert_int_equal(d.buf_cap, 11);
  capsule_decoder_free(&d);
  assert_null(d.buf);
}

/* Unknown capsules are skipped by counting: even a large one split into pieces allocates nothing. */
static void test_skip_does_not_buffer(void **state) {
  static uint8_t body[60000];
  uint8_t hdr[16];
  size_t h = 0;
  struct capsule_decoder d;
  const uint8_t *p, *payload;
  size_t len, payload_len;
  (void)state;

  h += varint_encode(0x1234567, hdr + h);
  h += varint_encode(sizeof(body), hdr + h);
  capsule_decoder_init(&d, 0);
  p = hdr;
  len = h;
  assert_int_equal(capsule_decode(&d, &p, &len, &payload, &payload_len, NULL), CAPSULE_NEED_MORE);
  assert_int_equal(d.state, 3);
  for (size_t off = 0; off < sizeof(body); off += 1000) {
    p = body + off;
    len = 1000;
    assert_int_equal(capsule_decode(&d, &p, &len, &payload, &payload_len, NULL),
                     CAPSULE_NEED_MORE);
  }
  assert_int_equal(d.state, 0);
  assert_null(d.buf);
  capsule_decoder_free(&d);
}

/* After CAPSULE_ERROR the stream is unframed: later input, however valid, is refused. */
static void test_error_is_sticky(void **state) {
  static const uint8_t bad[] = {0x00, 0x00};
  static const uint8_t good[] = {0x00, 0x02, 0x00, 'a'};
  struct capsule_decoder d;
  const uint8_t *p = bad, *payload = NULL;
  size_t len = sizeof(bad), payload_len = 0;
  (void)state;

  capsule_decoder_init(&d, 0);
  assert_int_equal(capsule_decode(&d, &p, &len, &payload, &payload_len, NULL), CAPSULE_ERROR);
  p = good;
  len = sizeof(good);
  assert_int_equal(capsule_decode(&d, &p, &len, &payload, &payload_len, NULL), CAPSULE_ERROR);
  assert_int_equal(len, sizeof(good));
  capsule_decoder_free(&d);
}

/* dropped may be NULL; the capsule is still dropped. */
static void test_dropped_null(void **state) {
  static const uint8_t in[] = {0x00, 0x02, 0x07, 'x', 0x00, 0x02, 0x00, 'y'};
  struct capsule_decoder d;
  const uint8_t *p = in, *payload = NULL;
  size_t len = sizeof(in), payload_len = 0;
  (void)state;

  capsule_decoder_init(&d, 0);
  assert_int_equal(capsule_decode(&d, &p, &len, &payload, &payload_len, NULL), CAPSULE_DATAGRAM);
  assert_int_equal(payload_len, 1);
  assert_int_equal(payload[0], 'y');
  capsule_decoder_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_varint_encode_table),
      cmocka_unit_test(test_varint_decode_table),
      cmocka_unit_test(test_varint_round_trip),
      cmocka_unit_test(test_encode_datagram),
      cmocka_unit_test(test_stream_table_every_split),
      cmocka_unit_test(test_generated_stream_every_split),
      cmocka_unit_test(test_zero_copy_and_buffer_bound),
      cmocka_unit_test(test_skip_does_not_buffer),
      cmocka_unit_test(test_error_is_sticky),
      cmocka_unit_test(test_dropped_null),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
