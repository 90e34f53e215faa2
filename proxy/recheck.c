#include "proxy/recheck.h"

#include <string.h>

#include "proxy/rules.h"
#include "src/access.h"
#include "src/config.h"
#include "src/log.h"
#include "src/policy.h"
#include "src/users.h"
#include "src/worker.h"
#include "tunnel/tunnel.h"


static unsigned proto_bit(enum tun_proto p) {
  switch (p) {
  case TUN_PROTO_CONNECT: return ACCESS_PROTO_CONNECT;
  case TUN_PROTO_WEBSOCKET: return ACCESS_PROTO_WEBSOCKET;
  case TUN_PROTO_CONNECT_UDP: return ACCESS_PROTO_CONNECT_UDP;
  default: return 0;
  }
}

/* The request path's decision again (request.c rules_and_limits, admitted, check_addr), from
 * the tunnel's fields. Returns NULL (allowed) or why not. */
static const char *refusal(const struct config *cfg, const struct tun_info *t) {
  const struct access *a = cfg->access;
  const struct access_auth *au = &a->auth;
  const struct sockaddr *client = (const struct sockaddr *)&t->client_addr;
  int client_known = t->client_addr.ss_family != AF_UNSPEC;
  if (client_known && !access_nets_empty(&au->allowed_client_nets) && !access_nets_contain(&au->allowed_client_nets, client))
    return "client address no longer allowed";
  if (t->user && !t->cert_user && au->users && !users_find(au->users, t->user)) return "user removed";
  if (!t->user && (au->users || au->client_ca) && !(client_known && access_nets_contain(&au->no_auth_nets, client)))
    return "authentication now required";

  struct rules_query q = {.user = t->user, .client = client, .host = t->asked.host, .port = t->asked.port,
                          .proto = proto_bit(t->proto)};
  struct rules_decision d = {0};
  int port_opened = 0;
  if (a->nrules) {
    rules_decide_name(a, &q, &d);
    if (d.verdict == RULES_DENY) return d.rule->name;
    if (d.verdict == RULES_ALLOW) port_opened = d.opens_port;
  }
  if (t->trusted) return NULL; /* a configured WebSocket backend: no address check */
  const struct sockaddr *peer = (const struct sockaddr *)&t->peer_addr;
  int peer_known = t->peer_addr.ss_family != AF_UNSPEC;
  const char *why = NULL;
  if (d.verdict == RULES_BY_ADDRESS && peer_known) {
    struct rules_decision ad;
    rules_decide_addr(a, &q, d.index, peer, &ad);
    if (ad.verdict == RULES_DENY) return ad.rule->name;
    if (ad.verdict == RULES_ALLOW) {
      if (!ad.opens_port && policy_check_port(cfg->policy, t->asked.port) != 0) return "port not allowed";
      if (!ad.opens_addr && policy_check_addr(cfg->policy, peer, &why) != 0) return why ? why : "address denied";
      return NULL;
    }
  }
  if (!port_opened && policy_check_port(cfg->policy, t->asked.port) != 0) return "port not allowed";
  if (peer_known && policy_check_addr(cfg->policy, peer, &why) != 0) return why ? why : "address denied";
  return NULL;
}

enum px_recheck_verdict px_recheck_decide(const struct config *cfg, const struct tun_info *t, const char **why) {
  *why = refusal(cfg, t);
  if (!*why) return PX_RECHECK_KEEP;
  if (cfg->reload_keep_tunnels || t->keep_on_reload) return PX_RECHECK_KEEP_ASKED;
  return PX_RECHECK_CLOSE;
}

size_t px_recheck_worker(struct worker *w) {
  const struct config *cfg = w->cfg;
  size_t closed = 0, kept = 0;
  struct list *n, *next;
  for (n = w->tunnels.next; n != &w->tunnels; n = next) {
    next = n->next; /* a killed tunnel leaves the list at once */
    struct tunnel *t = tunnel_from_link(n);
    const struct tun_info *ti = tunnel_info(t);
    if (tunnel_reason(t) != TUN_CLOSE_NONE) continue; /* already ending */
    const char *why;
    enum px_recheck_verdict v = px_recheck_decide(cfg, ti, &why);
    if (v == PX_RECHECK_KEEP) continue;
    /* Who and where, never credentials; the reason names a rule, not its contents. */
    if (v == PX_RECHECK_KEEP_ASKED) {
      kept++;
      log_info("reload: keeping tunnel %s -> %s%s%s (now refused: %s; %s)", ti->client, ti->target,
               ti->user ? " of user " : "", ti->user ? ti->user : "", why,
               cfg->reload_keep_tunnels ? "reload-keep-tunnels" : "keep-on-reload");
      continue;
    }
    log_info("reload: closing tunnel %s -> %s%s%s: %s (configuration version %llu)", ti->client, ti->target,
             ti->user ? " of user " : "", ti->user ? ti->user : "", why, (unsigned long long)cfg->version);
    METRIC_ADD(&w->metrics, tunnels_policy_closed, 1);
    tunnel_kill(t, TUN_CLOSE_POLICY_CHANGED);
    closed++;
  }
  if (kept) METRIC_ADD(&w->metrics, tunnels_policy_kept, kept);
  return closed;
}
