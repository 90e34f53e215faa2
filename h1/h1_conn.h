/* The HTTP/1.1 front end: parses request heads with llhttp, answers local requests, and turns a
 * CONNECT into a tunnel that takes over the connection. */
#ifndef H2T_H1_CONN_H
#define H2T_H1_CONN_H

struct conn;
struct frontend;

/* Makes the h1 front end the user of |c| (sets c->fe and c->fe_data, arms the head timeout). */
void h1_conn_attach(struct conn *c);
/* Its entry for the front-end table (src/frontend.h): ALPN "http/1.1". */
extern const struct frontend h1_frontend;

#endif
