/* Fuzz target for proxy/ws_resp.c, the WebSocket backend response head parser (issue 8: every
 * parser fuzzed). The first input byte picks the head limit and the split points; the rest is
 * what a backend sends. The input is parsed whole, one byte at a time, and in three pieces:
 * the outcome must be the same every way (the result does not depend on how the bytes arrive),
 * a head ends within the input, and what is kept is fit for the h2 response: NUL-terminated
 * within its buffer and free of control bytes (no CR, LF or NUL can reach a header we send). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/ws_resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    if (!(x)) {                                                                                    \
      fprintf(stderr, "fuzz_ws_resp: CHECK(%s) failed at line %d\n", #x, __LINE__);               \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

struct outcome {
  enum ws_resp_state state;
  size_t head_end;
  struct ws_resp r;
};

/* Feeds |len| bytes ending pieces at |cuts| (ascending); |step| > 0 feeds |step| bytes at a time. */
static void run(struct outcome *o, const char *s, size_t len, size_t max, const size_t *cuts, size_t ncuts,
                size_t step) {
  size_t off = 0, i = 0;
  memset(o, 0, sizeof(*o));
  ws_resp_init(&o->r, max);
  o->state = WS_RESP_MORE;
  while (o->state == WS_RESP_MORE && off < len) {
    size_t end = step ? (len - off < step ? len : off + step) : (i < ncuts ? cuts[i++] : len);
    if (end < off) end = off;
    size_t used = 0;
    o->state = ws_resp_feed(&o->r, s + off, end - off, &used);
    if (o->state == WS_RESP_DONE) {
      CHECK(used <= end - off);
      o->head_end = off + used;
    } else if (o->state == WS_RESP_MORE) {
      CHECK(used == end - off);
    }
    off = end;
  }
}

static void check_text(const char *s, size_t size) {
  size_t n = strnlen(s, size);
  CHECK(n < size);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    CHECK(c >= 0x20 || c == '\t');
    CHECK(c != 0x7f);
  }
}

static void check_same(const struct outcome *a, const struct outcome *b) {
  CHECK(a->state == b->state);
  if (a->state != WS_RESP_DONE) return;
  CHECK(a->head_end == b->head_end);
  CHECK(a->r.status == b->r.status);
  CHECK(strcmp(a->r.accept, b->r.accept) == 0);
  CHECK(strcmp(a->r.protocol, b->r.protocol) == 0);
  CHECK(strcmp(a->r.extensions, b->r.extensions) == 0);
  CHECK(a->r.upgrade_websocket == b->r.upgrade_websocket);
  CHECK(a->r.connection_upgrade == b->r.connection_upgrade);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct outcome whole, bytes, pieces; /* large: keep them off the stack */
  if (size < 1) return 0;
  uint8_t pick = data[0];
  const char *s = (const char *)data + 1;
  size_t len = size - 1;
  size_t max = (pick & 1) ? 16384 : 32 + (size_t)(pick >> 1) * 4;

  run(&whole, s, len, max, NULL, 0, 0);
  if (whole.state == WS_RESP_DONE) {
    CHECK(whole.head_end > 0 && whole.head_end <= len);
    CHECK(whole.head_end == whole.r.head_len && whole.head_end <= max);
    CHECK(whole.r.status == 101 || (whole.r.status >= 200 && whole.r.status <= 999));
    check_text(whole.r.accept, sizeof(whole.r.accept));
    check_text(whole.r.protocol, sizeof(whole.r.protocol));
    check_text(whole.r.extensions, sizeof(whole.r.extensions));
  } else if (whole.state == WS_RESP_ERROR) {
    CHECK(whole.r.error != NULL);
  } else {
    CHECK(whole.r.head_len == len && len <= max);
  }

  run(&bytes, s, len, max, NULL, 0, 1);
  check_same(&whole, &bytes);

  size_t cuts[3];
  for (size_t i = 0; i < 3; i++) cuts[i] = len ? (size_t)((pick * (i + 7) * 2654435761u) % (len + 1)) : 0;
  /* ascending */
  for (size_t i = 0; i < 3; i++) {
    for (size_t j = i + 1; j < 3; j++) {
      if (cuts[j] < cuts[i]) {
        size_t t = cuts[i];
        cuts[i] = cuts[j];
        cuts[j] = t;
      }
    }
  }
  run(&pieces, s, len, max, cuts, 3, 0);
  check_same(&whole, &pieces);
  return 0;
}
