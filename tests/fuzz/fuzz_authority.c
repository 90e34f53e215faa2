/* Fuzz target for src/authority.c (issue 8: every parser fuzzed). The input is parsed whole as
 * authority-form; its first two bytes are also a port and the rest a host for
 * authority_from_host. Whenever a parse succeeds the result must be what the resolver and the
 * logs may see: a host of 1..255 bytes with no forbidden byte (lowercase reg-name characters, or
 * a canonical IPv6 literal), a port in 1..65535, a kind that matches the text; and it must
 * format to text that parses back to the same value, also through authority_from_host. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/authority.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    if (!(x)) {                                                                                    \
      fprintf(stderr, "fuzz_authority: CHECK(%s) failed at line %d\n", #x, __LINE__);             \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

static void check_value(const struct authority *a) {
  size_t n = strnlen(a->host, sizeof(a->host));
  struct in6_addr a6;
  struct in_addr a4;
  char canon[INET6_ADDRSTRLEN];

  CHECK(n > 0 && n <= AUTHORITY_HOST_MAX);
  CHECK(a->port >= 1);
  if (a->kind == AUTHORITY_IPV6) {
    CHECK(inet_pton(AF_INET6, a->host, &a6) == 1);
    CHECK(inet_ntop(AF_INET6, &a6, canon, sizeof(canon)) != NULL);
    CHECK(strcmp(canon, a->host) == 0); /* one spelling per address */
    return;
  }
  CHECK(a->kind == AUTHORITY_NAME || a->kind == AUTHORITY_IPV4);
  CHECK((a->kind == AUTHORITY_IPV4) == (inet_pton(AF_INET, a->host, &a4) == 1));
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)a->host[i];
    CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~!$&'()*+,;=", c) != NULL);
  }
}

static void check_same(const struct authority *x, const struct authority *y) {
  CHECK(strcmp(x->host, y->host) == 0);
  CHECK(x->port == y->port);
  CHECK(x->kind == y->kind);
}

/* Formats |a|, parses the text back, and formats into every short buffer (no overrun, always
 * NUL-terminated, a prefix of the full text). */
static void round_trip(const struct authority *a) {
  char text[AUTHORITY_FORMAT_MAX];
  struct authority back;
  const char *why = NULL;
  size_t n = authority_format(a, text, sizeof(text));

  CHECK(n == strlen(text) && n < sizeof(text));
  CHECK(authority_parse(text, n, &back, &why) == 0);
  check_same(a, &back);
  CHECK(authority_from_host(a->host, a->port, &back) == 0);
  check_same(a, &back);
  for (size_t cap = 0; cap <= n + 1; cap++) {
    char *small = malloc(cap ? cap : 1);
    CHECK(small != NULL);
    size_t m = authority_format(a, small, cap);
    if (cap == 0) {
      CHECK(m == 0);
    } else {
      CHECK(m == (n < cap ? n : cap - 1));
      CHECK(small[m] == '\0' && memcmp(small, text, m) == 0);
    }
    free(small);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct authority a;
  const char *why = NULL;

  memset(&a, 0x5a, sizeof(a)); /* written only on success */
  int rv = authority_parse((const char *)data, size, &a, &why);
  CHECK(rv == 0 || rv == -EINVAL);
  if (rv == 0) {
    check_value(&a);
    round_trip(&a);
  } else {
    CHECK(why != NULL && why[0] != '\0');
  }

  if (size >= 2) {
    char *host = malloc(size - 1);
    CHECK(host != NULL);
    memcpy(host, data + 2, size - 2);
    host[size - 2] = '\0';
    uint16_t port = (uint16_t)(data[0] << 8 | data[1]);
    rv = authority_from_host(host, port, &a);
    CHECK(rv == 0 || rv == -EINVAL);
    if (rv == 0) {
      CHECK(port != 0);
      check_value(&a);
      round_trip(&a);
    }
    free(host);
  }
  return 0;
}
