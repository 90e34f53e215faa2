/* Target resolution under policy, shared by every upstream endpoint (TCP, UDP): port policy,
 * legacy IPv4 spellings, DNS (c-ares), then the address policy on each resolved address.
 * A resolve owns itself until its callback has run or it is cancelled. */
#ifndef H2T_RESOLVE_H
#define H2T_RESOLVE_H

#include "src/authority.h"
#include "src/dns.h"
#include "src/pxerr.h"

struct worker;
struct resolve;

/* |err| is PXERR_NONE with |allowed| holding at least one policy-allowed address (port set), or a
 * failure with a short static |detail|. |allowed| is valid only during the callback. */
typedef void (*resolve_cb)(void *arg, enum pxerr err, const char *detail, const struct dns_result *allowed);

/* Starts resolving |target|. The callback always runs later from the loop. Never NULL. */
struct resolve *resolve_start(struct worker *w, const struct authority *target, resolve_cb cb, void *arg);
/* The same for an operator-configured target: no port or address policy. */
struct resolve *resolve_start_trusted(struct worker *w, const struct authority *target, resolve_cb cb, void *arg);
/* The callback will not run; |r| is freed. */
void resolve_cancel(struct resolve *r);

#endif
