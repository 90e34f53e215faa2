/* Unit tests for src/strbuf.c: bounded text building (issue 8 item 2, the replacement for
 * `n += snprintf(buf + n, ...)`). Fixed buffers sit inside a larger array whose tail is a canary,
 * so a write past the declared size is seen even without ASan. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "src/strbuf.h"

#define CANARY 0x5a

static void test_fixed_exact_fit_then_refuse(void **state) {
  char mem[16 + 8];
  struct strbuf sb;
  (void)state;
  memset(mem, CANARY, sizeof(mem));
  strbuf_init_fixed(&sb, mem, 16);
  assert_string_equal(strbuf_str(&sb), "");
  assert_int_equal(strbuf_room(&sb), 15);
  assert_int_equal(strbuf_puts(&sb, "0123456789"), 0);
  assert_int_equal(strbuf_printf(&sb, "%s", "abcde"), 0); /* exactly 15: fits */
  assert_int_equal(sb.len, 15);
  assert_int_equal(sb.overflow, 0);
  assert_int_equal(strbuf_room(&sb), 0);
  /* One more byte is refused whole and the text stays as it was. */
  assert_int_equal(strbuf_puts(&sb, "x"), -ENOSPC);
  assert_int_equal(strbuf_printf(&sb, "%d", 7), -ENOSPC);
  assert_int_equal(strbuf_append(&sb, "y", 1), -ENOSPC);
  assert_int_equal(sb.overflow, 1);
  assert_string_equal(strbuf_str(&sb), "0123456789abcde");
  for (size_t i = 16; i < sizeof(mem); i++) assert_int_equal((unsigned char)mem[i], CANARY);
  strbuf_dispose(&sb); /* nothing to free for fixed storage */
}

/* The old bug: after a truncated snprintf, n passed the buffer and the next size wrapped. Here a
 * too-long piece in the middle is dropped, the overflow flag stays set, later pieces that fit are
 * still appended, and nothing lands past the storage. */
static void test_fixed_middle_overflow_is_sticky(void **state) {
  char mem[32 + 8];
  char big[100];
  struct strbuf sb;
  (void)state;
  memset(mem, CANARY, sizeof(mem));
  memset(big, 'B', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  strbuf_init_fixed(&sb, mem, 32);
  assert_int_equal(strbuf_puts(&sb, "head:"), 0);
  assert_int_equal(strbuf_printf(&sb, "%s", big), -ENOSPC);
  assert_int_equal(strbuf_puts(&sb, "tail"), 0);
  assert_string_equal(strbuf_str(&sb), "head:tail");
  assert_int_equal(sb.overflow, 1);
  for (size_t i = 32; i < sizeof(mem); i++) assert_int_equal((unsigned char)mem[i], CANARY);
}

static void test_heap_grows_to_max_only(void **state) {
  struct strbuf sb;
  (void)state;
  strbuf_init(&sb, 1000);
  assert_string_equal(strbuf_str(&sb), ""); /* nothing allocated yet */
  for (int i = 0; i < 100; i++) assert_int_equal(strbuf_printf(&sb, "%09d,", i), 0);
  assert_int_equal(sb.len, 1000);
  assert_true(sb.cap <= 1001);
  assert_int_equal(strncmp(sb.p, "000000000,000000001,", 20), 0);
  assert_int_equal(sb.p[1000], '\0');
  assert_int_equal(strbuf_puts(&sb, "!"), -ENOSPC);
  assert_int_equal(sb.len, 1000);
  assert_int_equal(sb.overflow, 1);
  strbuf_dispose(&sb);
  assert_null(sb.p);
}

static void test_heap_large_single_append(void **state) {
  static char big[70000];
  struct strbuf sb;
  (void)state;
  memset(big, 'q', sizeof(big) - 1);
  strbuf_init(&sb, sizeof(big) - 1);
  assert_int_equal(strbuf_printf(&sb, "%s", big), 0);
  assert_int_equal(sb.len, sizeof(big) - 1);
  assert_int_equal(strlen(strbuf_str(&sb)), sizeof(big) - 1);
  strbuf_dispose(&sb);
  /* Zero limit: only "" fits. */
  strbuf_init(&sb, 0);
  assert_int_equal(strbuf_puts(&sb, ""), 0);
  assert_int_equal(strbuf_puts(&sb, "a"), -ENOSPC);
  assert_string_equal(strbuf_str(&sb), "");
  strbuf_dispose(&sb);
}

static void cut(struct strbuf *sb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  strbuf_vprintf_cut(sb, fmt, ap);
  va_end(ap);
}

static void test_cut_keeps_what_fits(void **state) {
  char mem[10 + 4];
  struct strbuf sb;
  (void)state;
  memset(mem, CANARY, sizeof(mem));
  strbuf_init_fixed(&sb, mem, 10);
  cut(&sb, "%s", "abc");
  assert_int_equal(sb.overflow, 0);
  cut(&sb, "%s-%d", "defghijkl", 42);
  assert_string_equal(strbuf_str(&sb), "abcdefghi");
  assert_int_equal(sb.len, 9);
  assert_int_equal(sb.overflow, 1);
  cut(&sb, "more");
  assert_string_equal(strbuf_str(&sb), "abcdefghi");
  for (size_t i = 10; i < sizeof(mem); i++) assert_int_equal((unsigned char)mem[i], CANARY);
  /* On the heap too, up to the limit and no further. */
  strbuf_init(&sb, 5);
  cut(&sb, "%s", "0123456789");
  assert_string_equal(strbuf_str(&sb), "01234");
  strbuf_dispose(&sb);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixed_exact_fit_then_refuse),
      cmocka_unit_test(test_fixed_middle_overflow_is_sticky),
      cmocka_unit_test(test_heap_grows_to_max_only),
      cmocka_unit_test(test_heap_large_single_append),
      cmocka_unit_test(test_cut_keeps_what_fits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
