/* h2tunnel-load: CLI, threads, progress line, summary and the JSON line. No protocol logic. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <uv.h>

#include "load/lrun.h"
#include "load/lstats.h"
#include "load/opts.h"
#include "load/origin.h"

/* The main thread's loop: progress timer, signals, and a wake-up when a run finishes. */
struct ctl {
  uv_loop_t loop;
  uv_timer_t progress;
  uv_signal_t sig_int, sig_term;
  uv_async_t done;
  const struct load_opts *o; /* borrowed */
  struct lrun **runs;        /* owned array; the runs themselves too */
  int nruns;
  _Atomic int ndone;
  int signals;
  uint64_t t0;               /* ns */
  uint64_t last_ns;
  uint64_t last_ok, last_rr, last_down, last_up, last_dg;
};

static void on_run_done(void *arg) {
  struct ctl *k = arg;
  atomic_fetch_add(&k->ndone, 1);
  uv_async_send(&k->done);
}

static void sum_progress(struct ctl *k, uint64_t *ok, uint64_t *err, uint64_t *rr, uint64_t *down,
                         uint64_t *up, uint64_t *dg, int64_t *active) {
  *ok = *err = *rr = *down = *up = *dg = 0;
  *active = 0;
  for (int i = 0; i < k->nruns; i++) {
    struct lstats *s = lrun_stats(k->runs[i]);
    *ok += lstats_get(&s->tunnels_ok);
    *err += lstats_get(&s->errors);
    *rr += lstats_get(&s->rr);
    *down += lstats_get(&s->bytes_down);
    *up += lstats_get(&s->bytes_up);
    *dg += lstats_get(&s->dgram_rcvd);
    *active += atomic_load_explicit(&s->active, memory_order_relaxed);
  }
}

static void on_progress(uv_timer_t *t) {
  struct ctl *k = t->loop->data;
  uint64_t ok, err, rr, down, up, dg;
  int64_t active;
  sum_progress(k, &ok, &err, &rr, &down, &up, &dg, &active);
  uint64_t now = uv_hrtime();
  double dt = (double)(now - k->last_ns) / 1e9;
  if (dt <= 0) dt = 1e-9;
  fprintf(stderr,
          "[%6.1fs] tunnels %llu (%.0f/s) active %lld errors %llu | rr %.0f/s | down %.1f MB/s "
          "up %.1f MB/s",
          (double)(now - k->t0) / 1e9, (unsigned long long)ok, (double)(ok - k->last_ok) / dt,
          (long long)active, (unsigned long long)err, (double)(rr - k->last_rr) / dt,
          (double)(down - k->last_down) / dt / 1e6, (double)(up - k->last_up) / dt / 1e6);
  if (k->o->mode == MODE_UDP) fprintf(stderr, " | dgrams %.0f/s", (double)(dg - k->last_dg) / dt);
  fputc('\n', stderr);
  k->last_ns = now;
  k->last_ok = ok;
  k->last_rr = rr;
  k->last_down = down;
  k->last_up = up;
  k->last_dg = dg;
}

static void on_signal(uv_signal_t *s, int signum) {
  struct ctl *k = s->loop->data;
  if (++k->signals > 1) _exit(130);
  for (int i = 0; i < k->nruns; i++) lrun_stop(k->runs[i]);
}

static void on_done(uv_async_t *a) {
  struct ctl *k = a->loop->data;
  if (atomic_load(&k->ndone) < k->nruns) return;
  uv_close((uv_handle_t *)&k->progress, NULL);
  uv_close((uv_handle_t *)&k->sig_int, NULL);
  uv_close((uv_handle_t *)&k->sig_term, NULL);
  uv_close((uv_handle_t *)&k->done, NULL);
}

static double us(uint64_t ns) { return (double)ns / 1000.0; }

static void print_summary(const struct load_opts *o, const struct lstats *s, double secs,
                          double cpu, const char *reason) {
  uint64_t ok = lstats_get((_Atomic uint64_t *)&s->tunnels_ok);
  uint64_t err = lstats_get((_Atomic uint64_t *)&s->errors);
  uint64_t rr = lstats_get((_Atomic uint64_t *)&s->rr);
  uint64_t down = lstats_get((_Atomic uint64_t *)&s->bytes_down);
  uint64_t up = lstats_get((_Atomic uint64_t *)&s->bytes_up);
  fprintf(stderr, "\nh2tunnel-load %s via %s%s -> %s: %d thread(s), %d connection(s) x %d stream(s)\n",
          opts_mode_name(o->mode), o->proxy_url, o->h2 ? " (h2)" : " (http/1.1)", o->target,
          o->threads, o->conns, o->streams);
  fprintf(stderr, "  elapsed      %.3f s (client CPU %.3f s)%s%s\n", secs, cpu,
          reason[0] ? "; stopped: " : "", reason);
  fprintf(stderr, "  tunnels      %llu ok, %llu started, %llu cut at the end, %llu connections\n",
          (unsigned long long)ok, (unsigned long long)s->tunnels_started,
          (unsigned long long)s->cut, (unsigned long long)s->conns);
  fprintf(stderr, "  rate         %.1f tunnels/s, %.1f round trips/s\n", ok / secs, rr / secs);
  fprintf(stderr, "  bytes        down %llu (%.1f MB/s), up %llu (%.1f MB/s)\n",
          (unsigned long long)down, down / secs / 1e6, (unsigned long long)up, up / secs / 1e6);
  const struct lstats_hist *hs[] = {&s->setup, &s->rtt, &s->tunnel};
  const char *names[] = {"setup", o->mode == MODE_UDP ? "dgram rtt" : "round trip", "tunnel"};
  for (int i = 0; i < 3; i++) {
    const struct lstats_hist *h = hs[i];
    if (h->n == 0) continue;
    fprintf(stderr, "  %-12s n=%llu p50 %.0f us  p90 %.0f us  p99 %.0f us  max %.0f us\n", names[i],
            (unsigned long long)h->n, us(lstats_hist_quantile(h, 0.5)),
            us(lstats_hist_quantile(h, 0.9)), us(lstats_hist_quantile(h, 0.99)), us(h->max));
  }
  if (o->mode == MODE_UDP) {
    uint64_t sent = lstats_get((_Atomic uint64_t *)&s->dgram_sent);
    uint64_t rcvd = lstats_get((_Atomic uint64_t *)&s->dgram_rcvd);
    uint64_t lost = sent > rcvd + s->dgram_unknown ? sent - rcvd - s->dgram_unknown : 0;
    fprintf(stderr, "  datagrams    sent %llu, received %llu (%.0f/s), lost %llu (%.2f%%), in flight at the end %llu\n",
            (unsigned long long)sent, (unsigned long long)rcvd, rcvd / secs,
            (unsigned long long)lost, sent ? 100.0 * (double)lost / (double)sent : 0.0,
            (unsigned long long)s->dgram_unknown);
  }
  fprintf(stderr, "  errors       %llu", (unsigned long long)err);
  for (int i = 0; i < LSTATS_ERR_MAX; i++)
    if (s->err[i]) fprintf(stderr, " %s=%llu", lstats_err_name(i), (unsigned long long)s->err[i]);
  for (int i = 0; i < 600; i++)
    if (s->status[i]) fprintf(stderr, " status_%d=%llu", i, (unsigned long long)s->status[i]);
  fputc('\n', stderr);
  if (s->first_error[0]) fprintf(stderr, "  first error  %s\n", s->first_error);
}

/* Appends a JSON string (quotes and escapes) to |f|. */
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
    else fputc(ch, f);
  }
  fputc('"', f);
}

static void print_json(const struct load_opts *o, const struct lstats *s, double secs, double cpu,
                       const char *reason) {
  uint64_t ok = lstats_get((_Atomic uint64_t *)&s->tunnels_ok);
  uint64_t down = lstats_get((_Atomic uint64_t *)&s->bytes_down);
  uint64_t up = lstats_get((_Atomic uint64_t *)&s->bytes_up);
  uint64_t rr = lstats_get((_Atomic uint64_t *)&s->rr);
  uint64_t sent = lstats_get((_Atomic uint64_t *)&s->dgram_sent);
  uint64_t rcvd = lstats_get((_Atomic uint64_t *)&s->dgram_rcvd);
  uint64_t lost = sent > rcvd + s->dgram_unknown ? sent - rcvd - s->dgram_unknown : 0;
  FILE *f = stdout;
  fprintf(f, "{\"mode\":\"%s\",\"proxy\":", opts_mode_name(o->mode));
  json_str(f, o->proxy_url);
  fprintf(f, ",\"proto\":\"%s\",\"tls\":%s,\"target\":", o->h2 ? "h2" : "http/1.1",
          o->tls ? "true" : "false");
  json_str(f, o->target);
  fprintf(f,
          ",\"threads\":%d,\"conns\":%d,\"streams\":%d,\"elapsed_s\":%.6f,\"client_cpu_s\":%.6f,"
          "\"tunnels\":%llu,\"tunnels_started\":%llu,\"tunnels_cut\":%llu,\"connections\":%llu,"
          "\"tunnels_open_max\":%lld,\"tunnels_per_s\":%.3f,\"round_trips\":%llu,\"rr_per_s\":%.3f,"
          "\"bytes_down\":%llu,\"bytes_up\":%llu,\"mbps_down\":%.3f,\"mbps_up\":%.3f",
          o->threads, o->conns, o->streams, secs, cpu, (unsigned long long)ok,
          (unsigned long long)s->tunnels_started, (unsigned long long)s->cut,
          (unsigned long long)s->conns, (long long)s->active_max, ok / secs,
          (unsigned long long)rr, rr / secs, (unsigned long long)down, (unsigned long long)up,
          down / secs / 1e6, up / secs / 1e6);
  const struct lstats_hist *hs[] = {&s->setup, &s->rtt, &s->tunnel};
  const char *pre[] = {"", "rtt_", "tunnel_"};
  for (int i = 0; i < 3; i++) {
    const struct lstats_hist *h = hs[i];
    fprintf(f, ",\"%sp50_us\":%.1f,\"%sp90_us\":%.1f,\"%sp99_us\":%.1f,\"%smax_us\":%.1f", pre[i],
            us(lstats_hist_quantile(h, 0.5)), pre[i], us(lstats_hist_quantile(h, 0.9)), pre[i],
            us(lstats_hist_quantile(h, 0.99)), pre[i], us(h->max));
  }
  if (o->mode == MODE_UDP)
    fprintf(f,
            ",\"dgrams_sent\":%llu,\"dgrams_rcvd\":%llu,\"dgrams_lost\":%llu,"
            "\"dgrams_unknown\":%llu,\"dgrams_per_s\":%.3f,\"loss\":%.6f",
            (unsigned long long)sent, (unsigned long long)rcvd, (unsigned long long)lost,
            (unsigned long long)s->dgram_unknown, rcvd / secs,
            sent ? (double)lost / (double)sent : 0.0);
  fprintf(f, ",\"errors\":%llu,\"errors_by_kind\":{",
          (unsigned long long)lstats_get((_Atomic uint64_t *)&s->errors));
  int first = 1;
  for (int i = 0; i < LSTATS_ERR_MAX; i++) {
    if (!s->err[i]) continue;
    fprintf(f, "%s\"%s\":%llu", first ? "" : ",", lstats_err_name(i), (unsigned long long)s->err[i]);
    first = 0;
  }
  fprintf(f, "},\"status\":{");
  first = 1;
  for (int i = 0; i < 600; i++) {
    if (!s->status[i]) continue;
    fprintf(f, "%s\"%d\":%llu", first ? "" : ",", i, (unsigned long long)s->status[i]);
    first = 0;
  }
  fprintf(f, "},\"proxy_status\":");
  json_str(f, s->proxy_status);
  fprintf(f, ",\"first_error\":");
  json_str(f, s->first_error);
  fprintf(f, ",\"stopped\":");
  json_str(f, reason);
  fprintf(f, "}\n");
  fflush(f);
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  static struct load_opts o; /* large; read by every thread */
  int r = opts_parse(&o, argc, argv);
  if (r == 1) return 0;
  if (r != 0) return 2;
  signal(SIGPIPE, SIG_IGN);
  if (o.origin != ORIGIN_NONE) return origin_run(&o) == 0 ? 0 : 1;

  lrun_global_init();
  SSL_CTX *ctx = NULL;
  if (o.tls && !(ctx = lrun_ssl_ctx_new(&o))) return 2;

  static struct ctl k;
  k.o = &o;
  k.nruns = o.threads;
  k.runs = calloc((size_t)k.nruns, sizeof(*k.runs));
  if (!k.runs) return 1;
  uv_loop_init(&k.loop);
  k.loop.data = &k;
  uv_async_init(&k.loop, &k.done, on_done);
  uv_timer_init(&k.loop, &k.progress);
  uv_signal_init(&k.loop, &k.sig_int);
  uv_signal_init(&k.loop, &k.sig_term);
  uv_signal_start(&k.sig_int, on_signal, SIGINT);
  uv_signal_start(&k.sig_term, on_signal, SIGTERM);

  /* Connections and budget split evenly; the first threads take the remainder. */
  for (int i = 0; i < k.nruns; i++) {
    int conns = o.conns / k.nruns + (i < o.conns % k.nruns);
    uint64_t budget = UINT64_MAX;
    if (o.count) budget = o.count / (uint64_t)k.nruns + ((uint64_t)i < o.count % (uint64_t)k.nruns);
    k.runs[i] = lrun_new(&o, ctx, i, conns, budget, on_run_done, &k);
  }
  double cpu0 = cpu_seconds();
  k.t0 = k.last_ns = uv_hrtime();
  for (int i = 0; i < k.nruns; i++) {
    if ((r = lrun_start(k.runs[i])) != 0) {
      fprintf(stderr, "h2tunnel-load: cannot start a thread: %s\n", uv_strerror(r));
      return 1;
    }
  }
  if (!o.quiet && o.progress_ms)
    uv_timer_start(&k.progress, on_progress, o.progress_ms, o.progress_ms);
  uv_run(&k.loop, UV_RUN_DEFAULT);

  static struct lstats total;
  lstats_init(&total);
  uint64_t t_start = UINT64_MAX, t_end = 0;
  const char *reason = "";
  for (int i = 0; i < k.nruns; i++) {
    lrun_join(k.runs[i]);
    lstats_merge(&total, lrun_stats(k.runs[i]));
    if (lrun_t_start(k.runs[i]) < t_start) t_start = lrun_t_start(k.runs[i]);
    if (lrun_t_end(k.runs[i]) > t_end) t_end = lrun_t_end(k.runs[i]);
    if (!reason[0]) reason = lrun_stop_reason(k.runs[i]);
  }
  double cpu = cpu_seconds() - cpu0;
  double secs = t_end > t_start ? (double)(t_end - t_start) / 1e9 : 1e-9;
  if (!o.json_only) print_summary(&o, &total, secs, cpu, reason);
  print_json(&o, &total, secs, cpu, reason);
  uint64_t errors = lstats_get(&total.errors);

  for (int i = 0; i < k.nruns; i++) lrun_free(k.runs[i]);
  free(k.runs);
  uv_loop_close(&k.loop);
  SSL_CTX_free(ctx);
  return errors > o.max_errors ? 1 : 0;
}
