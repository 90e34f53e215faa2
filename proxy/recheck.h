/* A reload's second look at the tunnels already open: each is judged again under the new
 * snapshot the way the request path judged it (proxy/request.h), from what the tunnel kept of its
 * request (tunnel.h struct tun_info). A tunnel the new configuration would refuse is closed with
 * close reason `policy_changed`, unless `reload-keep-tunnels` or the allowing rule's
 * `keep-on-reload: true` says to keep it.
 *
 * What is judged again: the client network (auth.allowed-client-nets), the user (gone from the
 * htpasswd file; an anonymous tunnel when authentication is now required outside no-auth-nets),
 * the rules on the name and on the connected address, and the built-in target policy (port,
 * address class; not for configured WebSocket backends). What is not: the limits (a tunnel over
 * a lowered count keeps running, and counts as before), a password that changed but whose user
 * is still there, a client certificate (its user is not looked up in htpasswd), and forwarded
 * requests in flight (each new forwarded request is decided under the new snapshot anyway). */
#ifndef H2T_PROXY_RECHECK_H
#define H2T_PROXY_RECHECK_H

#include <stddef.h>

struct config;
struct tun_info;
struct worker;

enum px_recheck_verdict {
  PX_RECHECK_KEEP,       /* the new configuration would allow it too */
  PX_RECHECK_CLOSE,      /* refused now: close it (policy_changed) */
  PX_RECHECK_KEEP_ASKED, /* refused now, kept by reload-keep-tunnels or keep-on-reload */
};

/* Judges tunnel |t| under |cfg|. *|why| (static, or a rule name inside |cfg|) says what refuses
 * it, for the log; set for CLOSE and KEEP_ASKED. Pure. */
enum px_recheck_verdict px_recheck_decide(const struct config *cfg, const struct tun_info *t, const char **why);

/* Runs px_recheck_decide on every live tunnel of |w| under w->cfg (on |w|'s loop) and closes those
 * it refuses. Counts what it closed in |w|'s metrics and returns how many tunnels it closed. */
size_t px_recheck_worker(struct worker *w);

#endif
