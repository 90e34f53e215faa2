/* Unit tests for src/log.c's rate limit (log_limit_pass): a burst per window, the lines held back
 * counted and reported with the next line written, a new window after the interval. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "src/log.h"

static void test_burst_then_hold_back(void **state) {
  (void)state;
  struct log_limit l = {0};
  uint64_t held = 99;
  /* Three lines pass in the first window (starting at t=1000), the next ones are counted. */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(log_limit_pass(&l, 1000 + (uint64_t)i, 10000, 3, &held), 1);
    assert_int_equal(held, 0);
  }
  for (int i = 0; i < 5; i++) assert_int_equal(log_limit_pass(&l, 2000, 10000, 3, &held), 0);
  /* Still the same window one millisecond before its end. */
  assert_int_equal(log_limit_pass(&l, 10999, 10000, 3, &held), 0);
  /* A new window: the line passes and reports the six held back, then the count starts over. */
  assert_int_equal(log_limit_pass(&l, 11000, 10000, 3, &held), 1);
  assert_int_equal(held, 6);
  assert_int_equal(log_limit_pass(&l, 11001, 10000, 3, &held), 1);
  assert_int_equal(held, 0);
}

static void test_one_per_interval(void **state) {
  (void)state;
  struct log_limit l = {0};
  uint64_t held;
  /* A window may start at time 0 too. */
  assert_int_equal(log_limit_pass(&l, 0, 250, 1, &held), 1);
  assert_int_equal(log_limit_pass(&l, 100, 250, 1, &held), 0);
  assert_int_equal(log_limit_pass(&l, 249, 250, 1, &held), 0);
  assert_int_equal(log_limit_pass(&l, 250, 250, 1, &held), 1);
  assert_int_equal(held, 2);
  /* A long quiet time: the next line passes at once. */
  assert_int_equal(log_limit_pass(&l, 1000000, 250, 1, &held), 1);
  assert_int_equal(held, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_burst_then_hold_back),
      cmocka_unit_test(test_one_per_interval),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
