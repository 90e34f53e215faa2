/* Unit tests for src/units.c: durations and sizes, accepted and refused (the output untouched on
 * error), and the shortest exact formatting reading back to the same value. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>

#include "src/units.h"
#include "src/util.h"

/* ---- durations ---- */

struct dur_case {
  const char *in;
  int ok;
  uint64_t ms;
};

static const struct dur_case dur_cases[] = {
    {"30", 1, 30000},     {"0", 1, 0},         {"1.5s", 1, 1500},    {"250ms", 1, 250},
    {"5m", 1, 300000},    {"1h", 1, 3600000},  {"0.5", 1, 500},      {"10s", 1, 10000},
    {"", 0, 0},           {"s", 0, 0},         {"ms", 0, 0},         {"abc", 0, 0},
    {"-1", 0, 0},         {"-1s", 0, 0},       {"10x", 0, 0},        {"10 s", 0, 0},
    {"10sec", 0, 0},      {"5mm", 0, 0},       {"1d", 0, 0},         {"inf", 0, 0},
    {"nan", 0, 0},        {"nanms", 0, 0},     {"1e300", 0, 0},      {"1e12h", 0, 0},
};

static void test_parse_duration(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(dur_cases); i++) {
    const struct dur_case *c = &dur_cases[i];
    uint64_t ms = 777;
    int r = units_parse_duration(c->in, &ms);
    if (c->ok) {
      if (r != 0) fail_msg("duration '%s' refused", c->in);
      if (ms != c->ms) fail_msg("duration '%s' = %llu, want %llu", c->in, (unsigned long long)ms,
                                (unsigned long long)c->ms);
    } else {
      if (r != -EINVAL) fail_msg("duration '%s' accepted as %llu", c->in, (unsigned long long)ms);
      if (ms != 777) fail_msg("duration '%s' wrote the output on error", c->in);
    }
  }
}

/* ---- sizes ---- */

struct size_case {
  const char *in;
  int ok;
  uint64_t v;
};

static const struct size_case size_cases[] = {
    {"65536", 1, 65536},
    {"0", 1, 0},
    {"64k", 1, 65536},
    {"64K", 1, 65536},
    {"1m", 1, 1048576},
    {"1M", 1, 1048576},
    {"1g", 1, 1073741824ULL},
    {"2G", 1, 2147483648ULL},
    {"16kb", 1, 16384},
    {"1125899906842624", 1, 1ULL << 50}, /* the cap itself */
    {"1048576g", 1, 1ULL << 50},
    {"1125899906842625", 0, 0},
    {"1048577g", 0, 0},
    {"99999999999999999999999", 0, 0}, /* strtoull overflow */
    {"", 0, 0},
    {"k", 0, 0},
    {"-1", 0, 0},
    {" -1", 0, 0},
    {"1.5k", 0, 0},
    {"64kk", 0, 0},
    {"64t", 0, 0},
    {"64 k", 0, 0},
};

static void test_parse_size(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(size_cases); i++) {
    const struct size_case *c = &size_cases[i];
    uint64_t v = 777;
    int r = units_parse_size(c->in, &v);
    if (c->ok) {
      if (r != 0) fail_msg("size '%s' refused", c->in);
      if (v != c->v) fail_msg("size '%s' = %llu, want %llu", c->in, (unsigned long long)v,
                              (unsigned long long)c->v);
    } else {
      if (r != -EINVAL) fail_msg("size '%s' accepted as %llu", c->in, (unsigned long long)v);
      if (v != 777) fail_msg("size '%s' wrote the output on error", c->in);
    }
  }
}

/* ---- formatting ---- */

static void test_format_reads_back(void **state) {
  (void)state;
  static const struct {
    uint64_t v;
    const char *dur, *size;
  } cases[] = {
      {0, "0s", "0"},           {250, "250ms", "250"},     {1000, "1s", "1000"},
      {1024, "1024ms", "1k"},   {60000, "1m", "60000"},    {3600000, "1h", "3600000"},
      {1500, "1500ms", "1500"}, {1048576, "1048576ms", "1m"}, {1073741824, "1073741824ms", "1g"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    char buf[32];
    uint64_t back;
    units_format_duration(cases[i].v, buf, sizeof(buf));
    assert_string_equal(buf, cases[i].dur);
    assert_int_equal(units_parse_duration(buf, &back), 0);
    assert_int_equal(back, cases[i].v);
    units_format_size(cases[i].v, buf, sizeof(buf));
    assert_string_equal(buf, cases[i].size);
    assert_int_equal(units_parse_size(buf, &back), 0);
    assert_int_equal(back, cases[i].v);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_duration),
      cmocka_unit_test(test_parse_size),
      cmocka_unit_test(test_format_reads_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
