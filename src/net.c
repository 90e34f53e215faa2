#include "src/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>

char *net_format_ip(const struct sockaddr *sa, char *buf, size_t cap) {
  buf[0] = '\0';
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)cap);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)cap);
  return buf;
}

char *net_format_addr(const struct sockaddr *sa, char *buf, size_t cap) {
  char ip[INET6_ADDRSTRLEN];
  net_format_ip(sa, ip, sizeof(ip));
  if (sa->sa_family == AF_INET)
    snprintf(buf, cap, "%s:%u", ip, ntohs(((const struct sockaddr_in *)sa)->sin_port));
  else if (sa->sa_family == AF_INET6)
    snprintf(buf, cap, "[%s]:%u", ip, ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
  else
    snprintf(buf, cap, "?");
  return buf;
}

size_t net_addr_len(const struct sockaddr *sa) {
  return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

uint32_t net_tcp_rtt_us(int fd) {
  struct tcp_info ti;
  socklen_t len = sizeof(ti);
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return 0;
  return ti.tcpi_rtt;
}
