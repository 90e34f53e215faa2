/* Target resolution for every upstream (TCP, UDP): legacy IPv4 spellings, DNS (c-ares), then the
 * caller's address check on each resolved address -- so that DNS cannot smuggle a denied target.
 * Which addresses are allowed is the caller's decision (proxy/request.c applies the policy); the
 * port was checked before resolving. A resolve owns itself until its callback has run or it is
 * cancelled. */
#ifndef H2T_RESOLVE_H
#define H2T_RESOLVE_H

#include <sys/socket.h>

#include "src/authority.h"
#include "src/dns.h"
#include "src/pxerr.h"

struct worker;
struct resolve;

/* Decides whether the resolved address |sa| may be reached: 0, or -EACCES with *|why| set to a
 * short static reason (for Proxy-Status details and the log). */
typedef int (*resolve_check_cb)(void *arg, const struct sockaddr *sa, const char **why);

/* |err| is PXERR_NONE with |allowed| holding at least one allowed address (port set), or a
 * failure with a short static |detail|: PXERR_DNS_ERROR, PXERR_DNS_TIMEOUT,
 * PXERR_DEST_PROHIBITED (every address refused by the check) or PXERR_INTERNAL. |allowed| is valid
 * only during the callback. */
typedef void (*resolve_cb)(void *arg, enum pxerr err, const char *detail, const struct dns_result *allowed);

/* Starts resolving |target|; |check| (with |check_arg|) judges each address, or NULL to take them
 * all (an operator-configured target). The callback always runs later from the loop. Never NULL. */
struct resolve *resolve_start(struct worker *w, const struct authority *target, resolve_check_cb check,
                              void *check_arg, resolve_cb cb, void *arg);
/* The callback will not run; |r| is freed. */
void resolve_cancel(struct resolve *r);

#endif
