/* Socket address helpers. */
#ifndef H2T_NET_H
#define H2T_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* "1.2.3.4:80" or "[::1]:80" into |buf| (always NUL-terminated). Returns |buf|. */
char *net_format_addr(const struct sockaddr *sa, char *buf, size_t cap);
/* The address without the port: "1.2.3.4" or "::1". */
char *net_format_ip(const struct sockaddr *sa, char *buf, size_t cap);
size_t net_addr_len(const struct sockaddr *sa);
/* The kernel's smoothed round-trip time of TCP socket |fd| (TCP_INFO), in microseconds; 0 when
 * unknown. One getsockopt. */
uint32_t net_tcp_rtt_us(int fd);

#endif
