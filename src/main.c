/* h2tunnel: configuration, certificates, workers and signals. No protocol logic here.
 *
 * The composition root: the only file that includes every layer. It fills the front-end table
 * (h2 preferred by ALPN and by its cleartext preface, h1 the fallback) and gives the workers the
 * connection layer's ops, so that the layers below never include the ones above. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "certs/devca.h"
#include "h1/h1_conn.h"
#include "h2/h2_session.h"
#include "proxy/recheck.h"
#include "tunnel/tunnel.h"
#include "src/access.h"
#include "src/auth.h"
#include "src/config.h"
#include "src/conn.h"
#include "src/dns.h"
#include "src/frontend.h"
#include "src/limits.h"
#include "src/membudget.h"
#include "src/log.h"
#include "src/reload.h"
#include "src/status.h"
#include "src/tls.h"
#include "src/upgrade.h"
#include "src/worker.h"

struct app {
  struct config *cfg;              /* owned reference; workers borrow it */
  struct frontend_table frontends; /* workers and the TLS context borrow it */
  struct tls_alpn_prefs alpn;      /* the table's ALPN list, borrowed by the TLS context */
  struct worker *workers;          /* owned array of cfg.workers */
  const struct metrics **metrics;  /* owned array of pointers into workers */
  struct status_worker **status;   /* owned: each worker's status page state */
  int nworkers;
  int stops;                       /* signals received */
  uv_loop_t *loop;                 /* the main thread's loop: signals only */
  uv_signal_t sigint, sigterm;
  uv_signal_t sigusr1;             /* reopen the access log (logrotate) */
  uv_timer_t drain_delay;          /* --drain-delay: from the first signal to the stop */
  struct upgrade_server *upgrade;  /* owned: --upgrade-socket; NULL once stopping or when off */
  int stopped;                     /* stop_workers ran (a signal, or a successor took over) */
  struct reload *reload;           /* owned: SIGHUP (src/reload.h) */
};

static void worker_thread(void *arg) { worker_run(arg); }

/* The server SSL_CTX for |cfg|: --cert/--key, or the dev certificate (made on first use), and the
 * client CA. At start and on every reload (src/reload.h), so a renewed certificate is read. */
static SSL_CTX *make_tls(void *arg, const struct config *cfg) {
  struct app *app = arg;
  char cert[600], key[600];
  if (cfg->cert_file[0]) {
    snprintf(cert, sizeof(cert), "%s", cfg->cert_file);
    snprintf(key, sizeof(key), "%s", cfg->key_file);
  } else {
    int created = 0;
    if (devca_ensure(cfg->state_dir, &created) != 0) {
      log_error("no --cert/--key given and the dev certificate could not be prepared in %s", cfg->state_dir);
      return NULL;
    }
    snprintf(cert, sizeof(cert), "%s/" DEVCA_LEAF_CERT, cfg->state_dir);
    snprintf(key, sizeof(key), "%s/" DEVCA_LEAF_KEY, cfg->state_dir);
    if (created) log_info("created a development CA in %s (trust %s/" DEVCA_CA_CERT ")", cfg->state_dir, cfg->state_dir);
  }
  SSL_CTX *ctx = tls_ctx_new(cert, key, &app->alpn);
  if (!ctx) return NULL;
  const struct access_auth *au = &cfg->access->auth;
  if (au->client_ca && tls_ctx_client_ca(ctx, au->client_ca, au->client_cert == ACCESS_CERT_REQUIRED) != 0) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

/* The stop proper: listeners close, front ends drain their tunnels until --drain-timeout. */
static void stop_workers(struct app *app) {
  if (app->stopped++) return; /* a successor's READY and the --drain-delay timer may both come */
  upgrade_server_close(app->upgrade); /* first: no successor may take sockets that are closing */
  app->upgrade = NULL;
  log_info("stopping (draining tunnels for up to %llu ms)", (unsigned long long)app->cfg->drain_timeout_ms);
  for (int i = 0; i < app->nworkers; i++) worker_request_stop(&app->workers[i]);
  reload_stop(app->reload);
  uv_close((uv_handle_t *)&app->sigint, NULL);
  uv_close((uv_handle_t *)&app->sigterm, NULL);
  uv_close((uv_handle_t *)&app->drain_delay, NULL);
}

static void on_drain_delay(uv_timer_t *t) { stop_workers(t->data); }

static void on_signal(uv_signal_t *h, int signum) {
  struct app *app = h->data;
  if (++app->stops > 1) {
    log_warn("second signal: exiting now");
    _exit(1);
  }
  if (app->cfg->drain_delay_ms == 0) {
    log_info("signal %d", signum);
    stop_workers(app);
    return;
  }
  /* Behind a load balancer: fail its health checks first, keep serving until it has noticed. */
  log_info("signal %d: /healthz answers 503 for --drain-delay %llu ms, then stopping", signum,
           (unsigned long long)app->cfg->drain_delay_ms);
  for (int i = 0; i < app->nworkers; i++) worker_request_drain(&app->workers[i]);
  uv_timer_start(&app->drain_delay, on_drain_delay, app->cfg->drain_delay_ms, 0);
}

/* A new process serves on our listening sockets (src/upgrade.h): stop at once, with no
 * --drain-delay (the address keeps answering, so load balancers need not notice). */
static void on_upgrade_ready(void *arg, pid_t pid) {
  log_info("binary upgrade: pid %d took over", (int)pid);
  stop_workers(arg);
}

/* SIGUSR1: logrotate has moved the access log; lines go to a new file at the configured path. */
static void on_sigusr1(uv_signal_t *h, int signum) {
  struct app *app = h->data;
  (void)signum;
  if (!app->cfg->access_log[0]) return; /* stdout: nothing to reopen */
  int r = log_reopen_access(app->cfg->access_log);
  if (r)
    log_error("SIGUSR1: cannot reopen the access log %s: %s (still writing to the old file)", app->cfg->access_log,
              strerror(-r));
  else
    log_info("SIGUSR1: access log reopened: %s", app->cfg->access_log);
}

/* The URL a client on this machine uses for listener |l|: a wildcard address becomes loopback
 * (the dev certificate names 127.0.0.1 and ::1, not 0.0.0.0). |host| gets the bare host. */
static void client_url(const struct config_listener *l, const char *scheme, char *url, size_t cap, char *host,
                       size_t hcap) {
  char hp[160];
  snprintf(hp, sizeof(hp), "%s", strstr(l->text, "://") + 3);
  hp[strcspn(hp, "?")] = '\0';
  char *colon = strrchr(hp, ':');
  *colon = '\0';
  const char *h = hp, *port = colon + 1;
  if (strcmp(h, "0.0.0.0") == 0) h = "127.0.0.1";
  if (strcmp(h, "[::]") == 0) h = "[::1]";
  snprintf(url, cap, "%s://%s:%s", scheme, h, port);
  snprintf(host, hcap, "%.*s", h[0] == '[' ? (int)strlen(h) - 2 : (int)strlen(h), h[0] == '[' ? h + 1 : h);
}

/* "Try it" lines that work as printed: the CA to trust is the dev CA's, or, with --cert, none when
 * the system store trusts the chain, the file itself when it holds its root, else the issuing CA
 * the operator has; and the host is one the certificate names. Admin listeners (no tunnels) are not
 * offered, nor, while another will do, those that expect a PROXY header from a balancer. */
static void print_banner(const struct app *app, int devcert) {
  const struct config *cfg = app->cfg;
  char tls_url[200] = "", tcp_url[200] = "", tls_host[160] = "", tcp_host[160] = "";
  fprintf(stderr, "h2tunnel %s: %d worker(s), listening on", H2T_VERSION, app->nworkers);
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < cfg->nlisteners; i++) {
      const struct config_listener *l = &cfg->listeners[i];
      if (pass == 0) fprintf(stderr, " %s%s", l->text, l->tls ? " (ALPN h2, http/1.1)" : "");
      if (l->admin || l->proxy_protocol != (pass == 1)) continue; /* no tunnels on ?admin */
      if (l->tls && !tls_url[0]) client_url(l, "https", tls_url, sizeof(tls_url), tls_host, sizeof(tls_host));
      if (!l->tls && !tcp_url[0]) client_url(l, "http", tcp_url, sizeof(tcp_url), tcp_host, sizeof(tcp_host));
    }
  }
  fprintf(stderr, "\nTry it:\n");
  if (tls_url[0]) {
    char cacert[600] = "", note[800] = "";
    if (devcert) {
      snprintf(cacert, sizeof(cacert), " --proxy-cacert %s/" DEVCA_CA_CERT, cfg->state_dir);
    } else {
      struct tls_cert_trust t;
      if (tls_cert_trust(cfg->cert_file, tls_host, &t) == 0) {
        if (!t.host_ok && t.dns_name[0]) {
          /* Reach it by a name the certificate holds (that name must resolve to this listener). */
          const char *port = strrchr(tls_url, ':');
          char url[sizeof(tls_url)];
          snprintf(url, sizeof(url), "https://%.*s%s", 120, t.dns_name, port);
          memcpy(tls_url, url, sizeof(url));
        }
        if (!t.system_trusted && t.root_in_file) {
          snprintf(cacert, sizeof(cacert), " --proxy-cacert %s", cfg->cert_file);
        } else if (!t.system_trusted) {
          snprintf(cacert, sizeof(cacert), " --proxy-cacert ISSUER-CA.pem");
          snprintf(note, sizeof(note),
                   "  (%s is not trusted by the system store and holds no root: ISSUER-CA.pem is the CA that "
                   "issued it)\n", cfg->cert_file);
        }
      }
    }
    fprintf(stderr, "  curl --proxy-http2 -x %s%s https://example.com/\n", tls_url, cacert);
    fprintf(stderr, "  curl -p -x %s%s https://example.com/\n", tls_url, cacert);
    fputs(note, stderr);
  }
  if (tcp_url[0]) fprintf(stderr, "  curl -p -x %s https://example.com/\n", tcp_url);
  fprintf(stderr, "Health: /healthz, metrics: /metrics on any listener. Stop with Ctrl-C.\n");
}

int main(int argc, char **argv) {
  struct app app;
  memset(&app, 0, sizeof(app));
  signal(SIGPIPE, SIG_IGN);
  int r = config_load(argc, argv, &app.cfg);
  if (r != 0) return r > 0 ? 0 : 2;
  struct config *cfg = app.cfg;
  if (cfg->check_only) { /* like nginx -t: the file is valid; show what it amounts to */
    config_print(cfg, stdout, 1);
    config_unref(cfg);
    return 0;
  }
  log_set_level((enum log_level)cfg->log_level);

  FILE *access = NULL;
  if (cfg->access_log[0]) {
    access = fopen(cfg->access_log, "ae"); /* O_CLOEXEC */
    if (!access) {
      log_error("cannot open access log %s: %s", cfg->access_log, strerror(errno));
      return 1;
    }
    log_set_access_stream(access);
  }

  frontend_table_init(&app.frontends);
  frontend_table_add(&app.frontends, &h2_frontend, 0);
  frontend_table_add(&app.frontends, &h1_frontend, 1);
  app.alpn.wire = app.frontends.alpn;
  app.alpn.len = app.frontends.alpn_len;

  int need_tls = 0;
  for (int i = 0; i < cfg->nlisteners; i++) need_tls |= cfg->listeners[i].tls;
  SSL_CTX *ctx = NULL;
  int devcert = !cfg->cert_file[0];
  if (need_tls && !(ctx = make_tls(&app, cfg))) return 1;

  /* TLS to upstreams (wss:// backends); verification is always on. */
  SSL_CTX *client_ctx = tls_client_ctx_new(cfg->upstream_ca);
  if (!client_ctx) return 1;

  if (dns_global_init() != 0) {
    log_error("c-ares initialisation failed");
    return 1;
  }
  app.nworkers = cfg->workers > 0 ? cfg->workers : (int)uv_available_parallelism();
  if (app.nworkers < 1) app.nworkers = 1;
  app.workers = xcalloc((size_t)app.nworkers, sizeof(*app.workers));
  app.metrics = xcalloc((size_t)app.nworkers, sizeof(*app.metrics));
  const struct access_tuning *tune = &cfg->access->tune;
  /* failed logins per client network, for every worker */
  struct auth_guard *guard = auth_guard_new(tune->ban_slots, tune->client_v4_prefix, tune->client_v6_prefix);
  struct limits *limits = limits_new(cfg->access); /* shared by every worker */
  struct config *limits_cfg = config_ref(cfg); /* limits borrow its access model; reloads keep it */
  /* A binary upgrade: take the listening sockets of the process running on --upgrade-socket. */
  struct upgrade_take take = {.conn = -1};
  struct worker_adopt *adopt = NULL;
  struct membudget *mb = membudget_new(cfg->memory_limit, cfg->memory_per_tunnel); /* likewise */
  int failed = 0;
  if (cfg->upgrade_socket[0]) {
    adopt = xcalloc((size_t)app.nworkers * (size_t)cfg->nlisteners, sizeof(*adopt));
    if (upgrade_take(cfg->upgrade_socket, &take) != 0 || upgrade_assign(&take, cfg, app.nworkers, adopt) != 0)
      failed = 1;
  }
  int ninit = 0;
  for (int i = 0; i < app.nworkers && !failed; i++) {
    if (worker_init_adopt(&app.workers[i], i, cfg, ctx, adopt ? &adopt[i * cfg->nlisteners] : NULL) != 0) failed = 1;
    app.workers[i].client_ssl_ctx = client_ctx;
    app.workers[i].limits = limits;
    app.workers[i].membudget = mb;
    app.workers[i].pool.mb = mb;
    app.workers[i].frontends = &app.frontends;
    app.workers[i].conn_ops = &conn_worker_ops;
    app.workers[i].auth_guard = guard;
    ninit = i + 1;
    app.metrics[i] = &app.workers[i].metrics;
  }
  app.status = xcalloc((size_t)app.nworkers, sizeof(*app.status));
  for (int i = 0; i < ninit && !failed; i++) app.status[i] = status_worker_new(&app.workers[i], tunnel_status_list);
  for (int i = 0; i < ninit; i++) {
    app.workers[i].all_metrics = app.metrics;
    app.workers[i].all_status = app.status;
    app.workers[i].nworkers = (size_t)app.nworkers;
  }
  app.loop = uv_default_loop();
  if (!failed && cfg->upgrade_socket[0]) {
    app.upgrade = upgrade_server_start(app.loop, cfg->upgrade_socket, app.workers, app.nworkers, on_upgrade_ready, &app);
    if (!app.upgrade) failed = 1;
  }
  if (failed) {
    if (adopt) upgrade_adopt_close(adopt, ninit, app.nworkers, cfg->nlisteners);
    free(adopt);
    upgrade_release(&take); /* without READY: the old process keeps serving */
    for (int i = 0; i < ninit; i++) worker_dispose(&app.workers[i]);
    for (int i = 0; i < ninit; i++) status_worker_free(app.status[i]);
    free(app.status);
    auth_guard_free(guard);
    limits_free(limits);
    config_unref(limits_cfg);
    membudget_free(mb);
    /* Everything else too: a start that fails (a port in use) must not look like a leak. */
    free(app.workers);
    free(app.metrics);
    SSL_CTX_free(ctx);
    SSL_CTX_free(client_ctx);
    dns_global_cleanup();
    config_unref(app.cfg);
    if (access) fclose(access);
    uv_loop_close(app.loop);
    return 1;
  }
  free(adopt);
  uv_signal_init(app.loop, &app.sigint);
  uv_signal_init(app.loop, &app.sigterm);
  app.sigint.data = app.sigterm.data = &app;
  uv_signal_start(&app.sigint, on_signal, SIGINT);
  uv_signal_start(&app.sigterm, on_signal, SIGTERM);
  uv_timer_init(app.loop, &app.drain_delay);
  app.drain_delay.data = &app;
  uv_signal_init(app.loop, &app.sigusr1);
  app.sigusr1.data = &app;
  uv_signal_start(&app.sigusr1, on_sigusr1, SIGUSR1);
  uv_unref((uv_handle_t *)&app.sigusr1); /* caught while draining too, but keeps nothing running */

  const struct reload_ops rops = {.make_tls = make_tls, .recheck = px_recheck_worker, .arg = &app};
  app.reload = reload_new(app.loop, app.workers, app.nworkers, &app.cfg, argc, argv, &rops);

  for (int i = 0; i < app.nworkers; i++)
    CHECK(uv_thread_create(&app.workers[i].thread, worker_thread, &app.workers[i]) == 0);
  print_banner(&app, devcert);
  upgrade_ready(&take); /* the old process (if any) stops now: our workers hold its sockets */
  upgrade_release(&take);
  uv_run(app.loop, UV_RUN_DEFAULT);
  for (int i = 0; i < app.nworkers; i++) uv_thread_join(&app.workers[i].thread);
  for (int i = 0; i < app.nworkers; i++) worker_dispose(&app.workers[i]);
  for (int i = 0; i < app.nworkers; i++) status_worker_free(app.status[i]);
  free(app.status);
  uv_close((uv_handle_t *)&app.sigusr1, NULL);
  reload_close(app.reload);
  uv_run(app.loop, UV_RUN_DEFAULT); /* the close callbacks */
  reload_free(app.reload);
  uv_loop_close(app.loop);
  free(app.workers);
  free(app.metrics);
  auth_guard_free(guard);
  limits_free(limits);
  config_unref(limits_cfg);
  membudget_free(mb);
  SSL_CTX_free(ctx);
  SSL_CTX_free(client_ctx);
  dns_global_cleanup();
  config_unref(app.cfg);
  if (access) fclose(access);
  log_info("stopped");
  return 0;
}
