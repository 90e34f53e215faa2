/* The HTTP/2 front end: one nghttp2 server session per connection. */
#ifndef H2T_H2_SESSION_H
#define H2T_H2_SESSION_H

struct conn;

/* Makes the h2 front end the user of |c| (sets c->fe and c->fe_data). */
void h2_session_attach(struct conn *c);

#endif
