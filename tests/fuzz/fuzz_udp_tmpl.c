/* Fuzz target for src/udp_tmpl.c. The whole input is matched as a path against the default and a
 * query template; if it holds a '\n', the text before it is also tried as a template and the
 * text after it as a path. Whenever a match succeeds, the result must be what the resolver may
 * see: a non-empty host with no '/', '%', space or control byte (a valid IPv6 literal when it has
 * a ':'), a port in 1..65535, and the same answer with an exact-size host buffer. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/udp_tmpl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    if (!(x)) {                                                                                    \
      fprintf(stderr, "fuzz_udp_tmpl: CHECK(%s) failed at line %d\n", #x, __LINE__);               \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

static void check_host(const char *host) {
  size_t n = strlen(host);
  struct in6_addr a6;

  CHECK(n > 0);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)host[i];
    CHECK(c > 0x20 && c < 0x7f && c != '/' && c != '%' && c != '[' && c != ']' && c != '@');
  }
  if (strchr(host, ':') != NULL) CHECK(inet_pton(AF_INET6, host, &a6) == 1);
}

static void try_match(const char *tmpl, const char *path, size_t len) {
  char host[300];
  uint16_t port = 0;
  int rv = udp_tmpl_match(tmpl, path, len, host, sizeof(host), &port);

  CHECK(rv == 0 || rv == -EINVAL);
  if (rv != 0) return;
  CHECK(udp_tmpl_validate(tmpl) == 0);
  CHECK(port >= 1);
  check_host(host);

  /* The same match into an exact-size heap buffer (ASan sees any overrun); one byte less fails. */
  size_t need = strlen(host) + 1;
  char *exact = malloc(need);
  uint16_t port2 = 0;
  CHECK(exact != NULL);
  CHECK(udp_tmpl_match(tmpl, path, len, exact, need, &port2) == 0);
  CHECK(strcmp(exact, host) == 0 && port2 == port);
  CHECK(udp_tmpl_match(tmpl, path, len, exact, need - 1, &port2) == -EINVAL);
  free(exact);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = (const char *)data;
  const uint8_t *nl = memchr(data, '\n', size);

  try_match(UDP_TMPL_DEFAULT, path, size);
  try_match("/masque?h={target_host}&p={target_port}", path, size);
  try_match("/u/{target_port}/{target_host}", path, size);

  if (nl != NULL) {
    size_t tlen = (size_t)(nl - data);
    char *tmpl = malloc(tlen + 1);
    CHECK(tmpl != NULL);
    memcpy(tmpl, data, tlen);
    tmpl[tlen] = '\0';
    /* Validation must not depend on anything past the NUL. */
    int valid = udp_tmpl_validate(tmpl);
    CHECK(valid == 0 || valid == -EINVAL);
    try_match(tmpl, (const char *)nl + 1, size - tlen - 1);
    free(tmpl);
  }
  return 0;
}
