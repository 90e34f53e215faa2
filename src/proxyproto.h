/* The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): the header a load balancer
 * sends first on a connection to say which client it relays. A pure parser: bytes in, a result
 * out; no I/O, no allocation, no state between calls (call again with more bytes).
 *
 *   v1  "PROXY TCP4 SRC DST SPORT DPORT\r\n", "PROXY TCP6 ...", "PROXY UNKNOWN[ anything]\r\n";
 *       at most 107 bytes with the CRLF; single spaces; addresses as inet_pton reads them (the
 *       family must match the keyword); ports decimal 0..65535 without leading zeros.
 *   v2  the 12-byte signature, version 2, command LOCAL (a health check from the balancer
 *       itself: no client address) or PROXY; family UNSPEC, INET, INET6 or UNIX over STREAM or
 *       UNSPEC; a 16-bit length that covers the addresses and the TLVs after them. TLVs are
 *       skipped, not checked (nothing here needs them). At most 16 + 65535 bytes by construction.
 *
 * A header that names no usable client (v1 UNKNOWN, v2 LOCAL, UNSPEC or UNIX) parses with
 * |has_addr| 0: the connection keeps its socket's peer address. */
#ifndef H2T_PROXYPROTO_H
#define H2T_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PP_V1_MAX 107        /* the longest v1 line, CRLF included */
#define PP_V2_SIG_LEN 12
#define PP_V2_HEAD_LEN 16    /* signature, version/command, family/protocol, length */
#define PP_SIG_MIN 6         /* bytes that tell "PROXY " or the v2 signature from anything else */

struct pp_header {
  int version;                  /* 1 or 2 */
  int has_addr;                 /* 0: LOCAL, UNKNOWN, UNSPEC or UNIX (keep the real peer) */
  struct sockaddr_storage src;  /* the client, when |has_addr| */
  struct sockaddr_storage dst;  /* the address the client connected to, when |has_addr| */
};

/* Parses the header at the start of |p| (|len| bytes so far). Returns its length (> 0) with *|out|
 * filled, 0 when more bytes are needed (everything so far is a valid beginning), or -EINVAL with
 * *|why| set to a short static reason. Bytes after the header are not looked at. */
int pp_parse(const uint8_t *p, size_t len, struct pp_header *out, const char **why);

/* Whether |p| starts like a PROXY header: 1 when its first min(len, PP_SIG_MIN) bytes are those of
 * "PROXY " or of the v2 signature and |len| >= PP_SIG_MIN; 0 when they cannot be; -1 when |len| is
 * too short to say (a prefix of either). Used on connections from untrusted sources. */
int pp_sniff(const uint8_t *p, size_t len);

/* Whether |sa| is inside |nets| (a CIDR of its own family, or one of its address classes). */
struct access_nets;
int pp_source_trusted(const struct access_nets *nets, const struct sockaddr *sa);

#endif
