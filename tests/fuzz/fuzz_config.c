/* Fuzz target for the configuration file loader: src/config.c, with src/cfgfile.c, src/access.c
 * and src/users.c compiled into this file so that, under libFuzzer, the whole loader carries the
 * coverage instrumentation (the library's copies are then not linked). No file is read: the
 * input is the YAML text, and an htpasswd named by it is replaced by three fixed users.
 *
 * Properties checked on every input:
 * - a refused input has one error line that starts with "fuzz.yaml:LINE:COL: " (LINE, COL >= 1);
 * - an accepted input prints (config_print) as YAML that is accepted again and prints the same
 *   text: --check-config's output is a configuration file meaning the same thing. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/access.c"
#include "src/cfgfile.c"
#include "src/config.h"
#include "src/users.c"
#include "src/util.h" /* CHECK: aborts in every build */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const char users_text[] = "alice:$2y$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W\n"
                                 "bob:$2y$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W\n"
                                 "carol:$2y$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W\n";

static void check_error(const struct cfgfile_err *err) {
  unsigned line = 0, col = 0;
  CHECK(strncmp(err->text, "fuzz.yaml:", 10) == 0);
  CHECK(sscanf(err->text + 10, "%u:%u: ", &line, &col) == 2);
  CHECK(line >= 1 && col >= 1);
  CHECK(strchr(err->text, '\n') == NULL);
}

/* Applies |text| as fuzz.yaml and checks it; returns 0, or -EINVAL with |err| set. */
static int load(struct config *cfg, const char *text, size_t len, struct cfgfile_err *err) {
  config_init(cfg);
  snprintf(cfg->config_file, sizeof(cfg->config_file), "fuzz.yaml");
  int r = config_apply_yaml(cfg, "fuzz.yaml", text, len, err);
  if (r == 0 && cfg->access->auth.htpasswd) {
    cfg->access->auth.users = users_parse("users", users_text, sizeof(users_text) - 1, err);
    CHECK(cfg->access->auth.users != NULL);
  }
  if (r == 0) r = config_check(cfg, err);
  return r;
}

static char *print(const struct config *cfg, size_t *len) {
  char *buf = NULL;
  FILE *f = open_memstream(&buf, len);
  CHECK(f != NULL);
  config_print(cfg, f, 0);
  fclose(f);
  return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Static: two 30 KiB structs on an instrumented stack would be poisoned on every call. */
  static struct config a, b;
  struct cfgfile_err err;
  if (load(&a, (const char *)data, size, &err) != 0) {
    check_error(&err);
    config_dispose(&a);
    return 0;
  }
  size_t len1, len2;
  char *out1 = print(&a, &len1);
  if (load(&b, out1, len1, &err) != 0) {
    fprintf(stderr, "fuzz_config: printed configuration refused: %s\n%s\n", err.text, out1);
    abort();
  }
  char *out2 = print(&b, &len2);
  if (len1 != len2 || memcmp(out1, out2, len1) != 0) {
    fprintf(stderr, "fuzz_config: printed twice differently:\n%s\n----\n%s\n", out1, out2);
    abort();
  }
  free(out1);
  free(out2);
  config_dispose(&a);
  config_dispose(&b);
  return 0;
}
