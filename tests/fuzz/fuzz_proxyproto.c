/* Fuzz target for src/proxyproto.c (issue 13 item 3: the PROXY protocol parser fuzzed). The input
 * is parsed whole and at every split a byte at a time would give; the invariants: a result is a
 * length within the input, -EINVAL with a reason, or 0 (more needed) -- and 0 only while the
 * input is shorter than the longest header; a prefix of an accepted header never fails and never
 * succeeds early (the answer does not depend on how the bytes arrive); an accepted header is
 * version 1 (at most 107 bytes, ending in CRLF) or 2 (16 + its length field); an address, when
 * there is one, is AF_INET or AF_INET6 in both src and dst. */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    if (!(x)) {                                                                                    \
      fprintf(stderr, "fuzz_proxyproto: CHECK(%s) failed at line %d\n", #x, __LINE__);            \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct pp_header h;
  const char *why = NULL;
  int r = pp_parse(data, size, &h, &why);
  CHECK(r == 0 || r == -EINVAL || (r > 0 && (size_t)r <= size));
  if (r == -EINVAL) CHECK(why != NULL && why[0] != '\0');
  if (r == 0) CHECK(size < PP_V2_HEAD_LEN + 65535);
  if (r > 0) {
    CHECK(h.version == 1 || h.version == 2);
    if (h.version == 1) CHECK(r <= PP_V1_MAX && data[r - 2] == '\r' && data[r - 1] == '\n');
    if (h.version == 2) CHECK((size_t)r == PP_V2_HEAD_LEN + ((size_t)data[14] << 8 | data[15]));
    if (h.has_addr) {
      CHECK(h.src.ss_family == AF_INET || h.src.ss_family == AF_INET6);
      CHECK(h.dst.ss_family == h.src.ss_family);
    }
    /* Every strict prefix asks for more; the header alone gives the same length. */
    for (int i = 0; i < r; i++) {
      struct pp_header t;
      CHECK(pp_parse(data, (size_t)i, &t, &why) == 0);
    }
    struct pp_header t;
    CHECK(pp_parse(data, (size_t)r, &t, &why) == r);
    CHECK(t.has_addr == h.has_addr && t.version == h.version);
  }
  if (r == -EINVAL) {
    /* More bytes never rescue a refused header. */
    uint8_t *more = malloc(size + 8);
    CHECK(more != NULL);
    if (size) memcpy(more, data, size);
    memcpy(more + size, "\r\n\r\nxxxx", 8);
    CHECK(pp_parse(more, size + 8, &h, &why) == -EINVAL);
    free(more);
  }
  int s = pp_sniff(data, size);
  CHECK(s == -1 || s == 0 || s == 1);
  if (s == 0) CHECK(r == -EINVAL);
  return 0;
}
