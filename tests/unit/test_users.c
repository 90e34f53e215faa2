/* Unit tests for src/users.c: htpasswd lines and files (accepted and refused hash formats, with
 * "FILE:LINE: user 'x': ..." messages), lookup, and password verification with libxcrypt.
 *
 * The hashes below were made by the real tools (apache2-utils, whois):
 *   htpasswd -nbB -C 4 alice pw-alice            mkpasswd -m yescrypt pw-yes
 *   mkpasswd -m sha-512 pw-512                    mkpasswd -m sha-256 -R 6000 erin-secret
 *   htpasswd -nbm x y ($apr1$), -nbs ({SHA}), -nbd (DES crypt), -nbp (plain text) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/users.h"
#include "src/util.h"

#define BCRYPT_ALICE "$2y$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W" /* pw-alice */
#define YESCRYPT "$y$j9T$v/xGnUu1wYOlmppBI.759.$a5ahV4Gl48IyQbBOVGpKxrON1dRXiASmBHTC.U/yti1" /* pw-yes */
#define SHA512 "$6$NNqWr.XI9UaOkMAa$Nk024Wi9GroNMSqcP4xNETAWJ2DdYQFAUAdlzF74f1SeN8ooOOlaZYdBspxDxkR2J11QOyWIemJmTI6oH88Wh0"
#define SHA256_ROUNDS "$5$rounds=6000$bRE89TYJjKlT106p$z9sIW39mal/vBBrwWoBWOde1dxfFnoglp773ZRFWIt7"

struct line_case {
  const char *line;
  int want;           /* 1 entry, 0 skipped, -EINVAL refused */
  const char *why;    /* for a refusal: the start of the reason */
};

static const struct line_case line_cases[] = {
    {"alice:" BCRYPT_ALICE, 1, NULL},
    {"alice:$2b$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W", 1, NULL},
    {"alice:$2a$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W", 1, NULL},
    {"yes:" YESCRYPT, 1, NULL},
    {"six:" SHA512, 1, NULL},
    {"five:" SHA256_ROUNDS, 1, NULL},
    {"crlf:" BCRYPT_ALICE "\r", 1, NULL},
    {"user name with spaces:" YESCRYPT, 1, NULL},
    {"", 0, NULL},
    {"\r", 0, NULL},
    {"# a comment:" BCRYPT_ALICE, 0, NULL},
    {"x:$apr1$5jISNFc6$SJCE3yVjKK8jXj0DERRSQ/", -EINVAL, "weak or unknown hash format (MD5 $apr1$)"},
    {"x:$1$abcdefgh$0123456789abcdefghijkl", -EINVAL, "weak or unknown hash format (MD5-crypt $1$)"},
    {"x:{SHA}lcsL/Sl3x2EpjZYk5LTUxyo5l0o=", -EINVAL, "weak or unknown hash format ({SHA}"},
    {"x:U2IRlbjywrluw", -EINVAL, "weak or unknown hash format (DES crypt)"},
    {"x:y", -EINVAL, "weak or unknown hash format (plain text?)"},
    {"x:", -EINVAL, "weak or unknown hash format (plain text?)"},
    {"x:$7$CU..../....abcdefgh$0123", -EINVAL, "weak or unknown hash format (unknown $...$ prefix)"},
    {"x:$gy$j9T$abc$def", -EINVAL, "weak or unknown hash format (unknown"},
    {"x:$2y$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98", -EINVAL, "malformed bcrypt"},
    {"x:$2y$03$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W", -EINVAL, "malformed bcrypt"},
    {"x:$2y$32$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W", -EINVAL, "malformed bcrypt"},
    {"x:$2y$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98!", -EINVAL, "malformed bcrypt"},
    {"x:$2x$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W", -EINVAL, "weak or unknown"},
    {"x:$6$NNqWr.XI9UaOkMAa$short", -EINVAL, "malformed SHA-512-crypt"},
    {"x:$5$rounds=$bRE89TYJjKlT106p$z9sIW39mal/vBBrwWoBWOde1dxfFnoglp773ZRFWIt7", -EINVAL, "malformed SHA-256"},
    {"x:$y$j9T$v/xGnUu1wYOlmppBI.759.$", -EINVAL, "malformed yescrypt"},
    {"x:$y$j9T$v/xGnUu1wYOlmppBI.759.", -EINVAL, "malformed yescrypt"},
    {"x:$y$j9T$v/x$abc$extra", -EINVAL, "malformed yescrypt"},
    {"x:" BCRYPT_ALICE " ", -EINVAL, "malformed bcrypt"},
    {":" BCRYPT_ALICE, -EINVAL, "empty user name"},
    {"no colon here", -EINVAL, "no ':'"},
    {"tab\there:" BCRYPT_ALICE, -EINVAL, "control character"},
};

static void test_parse_line(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(line_cases); i++) {
    const struct line_case *c = &line_cases[i];
    struct users_entry e = {0};
    const char *why = NULL;
    size_t uend = 0;
    int r = users_parse_line(c->line, strlen(c->line), &e, &why, &uend);
    if (r != c->want) fail_msg("line %zu '%s': got %d (%s), want %d", i, c->line, r, why ? why : "", c->want);
    if (r < 0 && strncmp(why, c->why, strlen(c->why)) != 0)
      fail_msg("line %zu '%s': reason '%s', want '%s...'", i, c->line, why, c->why);
    if (r == 1) {
      const char *colon = strchr(c->line, ':');
      assert_int_equal(strlen(e.name), (size_t)(colon - c->line));
      assert_int_equal(strncmp(e.hash, colon + 1, strlen(e.hash)), 0);
      assert_null(strchr(e.hash, '\r'));
    }
    free(e.name);
    free(e.hash);
  }
}

static void test_parse_file(void **state) {
  (void)state;
  static const char text[] = "# users\n"
                             "carol:" SHA512 "\n"
                             "\n"
                             "alice:" BCRYPT_ALICE "\r\n"
                             "bob:" YESCRYPT; /* no final newline */
  struct cfgfile_err err;
  struct users *u = users_parse("u.htpasswd", text, strlen(text), &err);
  assert_non_null(u);
  assert_int_equal(u->n, 3);
  assert_string_equal(u->v[0].name, "alice"); /* sorted */
  assert_string_equal(u->v[1].name, "bob");
  assert_string_equal(u->v[2].name, "carol");
  assert_int_equal(u->v[0].kind, USERS_BCRYPT);
  assert_int_equal(u->v[0].line, 4);
  assert_int_equal(u->v[1].kind, USERS_YESCRYPT);
  assert_int_equal(u->v[2].kind, USERS_SHA512);
  assert_ptr_equal(users_find(u, "bob"), &u->v[1]);
  assert_null(users_find(u, "dave"));
  assert_null(users_find(u, "Bob"));
  users_free(u);

  u = users_parse("empty", "", 0, &err);
  assert_non_null(u);
  assert_int_equal(u->n, 0);
  assert_null(users_find(u, "x"));
  users_free(u);
}

struct file_case {
  const char *text;
  const char *want;
};

static const struct file_case file_cases[] = {
    {"alice:" BCRYPT_ALICE "\nbob:$apr1$5jISNFc6$SJCE3yVjKK8jXj0DERRSQ/\n",
     "u.htpasswd:2: user 'bob': weak or unknown hash format (MD5 $apr1$)"},
    {"\n\nmallory:secret\n", "u.htpasswd:3: user 'mallory': weak or unknown hash format (plain text?)"},
    {"bob:" YESCRYPT "\nalice:" BCRYPT_ALICE "\nbob:" SHA512 "\n",
     "u.htpasswd:3: user 'bob': given twice (first on line 1)"},
    {"garbage\n", "u.htpasswd:1: no ':' between user and hash"},
    {"a:" BCRYPT_ALICE "\nx\0y:" BCRYPT_ALICE "\n", "u.htpasswd:2: a NUL byte in the line"},
};

static void test_parse_file_errors(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE(file_cases); i++) {
    struct cfgfile_err err;
    /* Case 4 holds a NUL: its length is counted by hand. */
    size_t len = i == 4 ? strlen(file_cases[i].text) + 1 + strlen(file_cases[i].text + strlen(file_cases[i].text) + 1)
                        : strlen(file_cases[i].text);
    assert_null(users_parse("u.htpasswd", file_cases[i].text, len, &err));
    if (strcmp(err.text, file_cases[i].want) != 0) fail_msg("case %zu: got '%s', want '%s'", i, err.text, file_cases[i].want);
  }
}

static void test_load_missing(void **state) {
  (void)state;
  struct cfgfile_err err;
  assert_null(users_load("/nonexistent/users", &err));
  assert_string_equal(err.text, "/nonexistent/users:1:1: cannot read: No such file or directory");
}

static void test_verify(void **state) {
  (void)state;
  static const char text[] = "alice:" BCRYPT_ALICE "\n"
                             "b2b:$2b$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W\n"
                             "yes:" YESCRYPT "\n"
                             "six:" SHA512 "\n"
                             "five:" SHA256_ROUNDS "\n";
  struct cfgfile_err err;
  struct users *u = users_parse("u", text, strlen(text), &err);
  assert_non_null(u);
  assert_int_equal(users_verify(u, "alice", "pw-alice", 8), 0);
  assert_int_equal(users_verify(u, "alice", "pw-alicE", 8), -EACCES);
  assert_int_equal(users_verify(u, "alice", "pw-alice", 7), -EACCES); /* a prefix is not enough */
  assert_int_equal(users_verify(u, "alice", "pw-alice\0x", 10), -EINVAL);
  assert_int_equal(users_verify(u, "b2b", "pw-alice", 8), 0);
  assert_int_equal(users_verify(u, "yes", "pw-yes", 6), 0);
  assert_int_equal(users_verify(u, "yes", "pw-no", 5), -EACCES);
  assert_int_equal(users_verify(u, "six", "pw-512", 6), 0);
  assert_int_equal(users_verify(u, "five", "erin-secret", 11), 0);
  assert_int_equal(users_verify(u, "five", "", 0), -EACCES);
  /* An unknown user is refused like a wrong password (after hashing the dummy). */
  assert_int_equal(users_verify(u, "nobody", "pw-alice", 8), -EACCES);
  users_free(u);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_line),
      cmocka_unit_test(test_parse_file),
      cmocka_unit_test(test_parse_file_errors),
      cmocka_unit_test(test_load_missing),
      cmocka_unit_test(test_verify),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
