/* Durations and sizes as the options and the configuration file write them (see units.h). */
#include "src/units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int units_parse_duration(const char *s, uint64_t *ms) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno || !(v >= 0)) return -EINVAL; /* !(>=) also refuses NaN */
  double mult = 1000;
  if (*end == '\0' || strcmp(end, "s") == 0)
    mult = 1000;
  else if (strcmp(end, "ms") == 0)
    mult = 1;
  else if (strcmp(end, "m") == 0)
    mult = 60000;
  else if (strcmp(end, "h") == 0)
    mult = 3600000;
  else
    return -EINVAL;
  double r = v * mult;
  if (!(r <= 1e15)) return -EINVAL;
  *ms = (uint64_t)r;
  return 0;
}

int units_parse_size(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || errno || s[0] == '-') return -EINVAL;
  unsigned long long mult = 1;
  if (*end == 'k' || *end == 'K')
    mult = 1024ULL, end++;
  else if (*end == 'm' || *end == 'M')
    mult = 1024ULL * 1024, end++;
  else if (*end == 'g' || *end == 'G')
    mult = 1024ULL * 1024 * 1024, end++;
  if (*end == 'i' || *end == 'b' || *end == 'B') end++;
  if (*end != '\0') return -EINVAL;
  if (v > (1ULL << 50) / mult) return -EINVAL;
  *out = v * mult;
  return 0;
}

void units_format_duration(uint64_t ms, char *buf, size_t cap) {
  static const struct {
    uint64_t ms;
    const char *unit;
  } units[] = {{3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
  size_t i = 0;
  while (ms && ms % units[i].ms) i++;
  if (ms == 0) i = 2;
  snprintf(buf, cap, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].unit);
}

void units_format_size(uint64_t v, char *buf, size_t cap) {
  static const char units[] = "gmk";
  for (int i = 0; i < 3; i++) {
    uint64_t u = 1ULL << (10 * (3 - i));
    if (v && v % u == 0) {
      snprintf(buf, cap, "%llu%c", (unsigned long long)(v / u), units[i]);
      return;
    }
  }
  snprintf(buf, cap, "%llu", (unsigned long long)v);
}
