/* A libFuzzer-compatible driver for compilers without libFuzzer (gcc): runs the target on every
 * file named on the command line (a directory means each regular file in it), then on a bounded
 * number of pseudo-random inputs from a fixed seed, so every run is reproducible. Half of the
 * generated inputs are mutations of the loaded files (byte flips, inserts of bytes that matter to
 * our parsers, deletions, splices), which reaches much deeper than uniform noise.
 *
 * Options, in libFuzzer's spelling: -runs=N (default 200000), -seed=N, -max_len=N (default 512),
 * -max_total_time=S (stop generating after S seconds, so a busy machine cannot stretch a ctest run
 * past its timeout; 0 = no bound).
 * Other "-x=y" options are ignored so the same ctest command line works for both drivers. When an
 * input crashes (a failed CHECK aborts; a sanitizer report dies), it is written to
 * ./crash-standalone for replay: `fuzz_x crash-standalone -runs=0`. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Present only in sanitizer builds; weak so the driver links without them. */
extern void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

struct input {
  uint8_t *data;
  size_t len;
};

static struct input *corpus;
static size_t corpus_len, corpus_cap;
static uint64_t rng_state;
/* The input being run, for the crash dump. */
static const uint8_t *volatile cur_data;
static volatile size_t cur_len;

/* Only async-signal-safe calls: this runs from SIGABRT or the sanitizer's death path. */
static void dump_current(void) {
  static const char msg[] = "standalone: crashing input written to ./crash-standalone\n";
  int fd;

  if (cur_data == NULL) return;
  fd = open("crash-standalone", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  if (write(fd, cur_data, cur_len) < 0 || write(2, msg, sizeof(msg) - 1) < 0) {
    /* nothing more to do while dying */
  }
  close(fd);
  cur_data = NULL;
}

static void on_abort(int sig) {
  dump_current();
  signal(sig, SIG_DFL);
  raise(sig);
}

static uint64_t rng(void) {
  /* splitmix64: tiny, full-period, good enough to pick mutations. */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) {
    fprintf(stderr, "standalone: out of memory\n");
    exit(2);
  }
  return p;
}

static void add_file(const char *path) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf;
  long n;

  if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fprintf(stderr, "standalone: cannot read %s\n", path);
    exit(2);
  }
  buf = xmalloc((size_t)n);
  if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fprintf(stderr, "standalone: short read on %s\n", path);
    exit(2);
  }
  fclose(f);
  if (corpus_len == corpus_cap) {
    corpus_cap = corpus_cap ? corpus_cap * 2 : 16;
    corpus = realloc(corpus, corpus_cap * sizeof(*corpus));
    if (corpus == NULL) exit(2);
  }
  corpus[corpus_len].data = buf;
  corpus[corpus_len].len = (size_t)n;
  corpus_len++;
}

static void add_path(const char *path) {
  struct stat st;
  DIR *dir;
  struct dirent *e;

  if (stat(path, &st) != 0) {
    fprintf(stderr, "standalone: no such file %s\n", path);
    exit(2);
  }
  if (!S_ISDIR(st.st_mode)) {
    add_file(path);
    return;
  }
  dir = opendir(path);
  if (dir == NULL) exit(2);
  while ((e = readdir(dir)) != NULL) {
    char full[4096];
    if (e->d_name[0] == '.') continue;
    snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
    if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) add_file(full);
  }
  closedir(dir);
}

/* Runs one input from an exact-size heap copy, so ASan flags a read one byte past the end. */
static void run_one(const uint8_t *data, size_t len) {
  uint8_t *copy = xmalloc(len);
  if (len > 0) memcpy(copy, data, len);
  cur_data = copy;
  cur_len = len;
  LLVMFuzzerTestOneInput(copy, len);
  cur_data = NULL;
  free(copy);
}

/* Bytes our parsers branch on: varint prefixes, percent escapes, template and path syntax. */
static const uint8_t interesting[] = {0x00, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0xbf, 0xc0, 0xff,
                                      '%',  '/',  ':',  '[',  ']',  '{',  '}',  '&',  '?',
                                      '=',  '.',  '0',  '9',  'a',  'A',  'f',  'F',  '\n'};

static size_t mutate(uint8_t *buf, size_t len, size_t max_len) {
  int ops = 1 + (int)(rng() % 4);

  for (int i = 0; i < ops; i++) {
    size_t pos = len ? (size_t)(rng() % len) : 0;
    switch (rng() % 6) {
    case 0: /* flip a bit */
      if (len) buf[pos] ^= (uint8_t)(1u << (rng() % 8));
      break;
    case 1: /* overwrite with an interesting byte */
      if (len) buf[pos] = interesting[rng() % sizeof(interesting)];
      break;
    case 2: /* insert an interesting byte */
      if (len < max_len) {
        memmove(buf + pos + 1, buf + pos, len - pos);
        buf[pos] = interesting[rng() % sizeof(interesting)];
        len++;
      }
      break;
    case 3: /* delete a run */
      if (len) {
        size_t n = 1 + (size_t)(rng() % (len - pos < 8 ? len - pos : 8));
        memmove(buf + pos, buf + pos + n, len - pos - n);
        len -= n;
      }
      break;
    case 4: /* duplicate a run */
      if (len) {
        size_t n = 1 + (size_t)(rng() % (len - pos < 16 ? len - pos : 16));
        if (len + n <= max_len) {
          memmove(buf + pos + n, buf + pos, len - pos);
          len += n;
        }
      }
      break;
    default: /* splice in the tail of another corpus entry */
      if (corpus_len) {
        const struct input *o = &corpus[rng() % corpus_len];
        size_t from = o->len ? (size_t)(rng() % o->len) : 0;
        size_t n = o->len - from;
        if (pos + n > max_len) n = max_len - pos;
        memcpy(buf + pos, o->data + from, n);
        len = pos + n;
      }
      break;
    }
  }
  return len;
}

int main(int argc, char **argv) {
  unsigned long long runs = 200000, seed = 1, max_secs = 0;
  size_t max_len = 512;
  uint8_t *buf;
  struct timespec t0, t1;
  double secs;

  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "-runs=", 6) == 0) runs = strtoull(argv[i] + 6, NULL, 10);
    else if (strncmp(argv[i], "-seed=", 6) == 0) seed = strtoull(argv[i] + 6, NULL, 10);
    else if (strncmp(argv[i], "-max_len=", 9) == 0) max_len = strtoull(argv[i] + 9, NULL, 10);
    else if (strncmp(argv[i], "-max_total_time=", 16) == 0) max_secs = strtoull(argv[i] + 16, NULL, 10);
    else if (argv[i][0] == '-') continue;
    else add_path(argv[i]);
  }
  if (max_len == 0) max_len = 1;
  signal(SIGABRT, on_abort);
  if (__sanitizer_set_death_callback != NULL) __sanitizer_set_death_callback(dump_current);
  rng_state = seed;
  buf = xmalloc(max_len);

  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (size_t i = 0; i < corpus_len; i++) run_one(corpus[i].data, corpus[i].len);
  unsigned long long r;
  for (r = 0; r < runs; r++) {
    size_t len;
    if (max_secs && (r & 255) == 0) {
      clock_gettime(CLOCK_MONOTONIC, &t1);
      if ((unsigned long long)(t1.tv_sec - t0.tv_sec) >= max_secs) break;
    }
    if (corpus_len > 0 && (rng() & 1)) {
      const struct input *in = &corpus[rng() % corpus_len];
      len = in->len < max_len ? in->len : max_len;
      memcpy(buf, in->data, len);
      len = mutate(buf, len, max_len);
    } else {
      len = (size_t)(rng() % (max_len + 1));
      for (size_t k = 0; k < len; k++) buf[k] = (uint8_t)rng();
    }
    run_one(buf, len);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("standalone: %zu corpus files, %llu generated inputs, %.2f s (%.0f execs/s)\n", corpus_len,
         r, secs, secs > 0 ? (double)(corpus_len + r) / secs : 0.0);
  for (size_t i = 0; i < corpus_len; i++) free(corpus[i].data);
  free(corpus);
  free(buf);
  return 0;
}
