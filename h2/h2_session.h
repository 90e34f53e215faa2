/* The HTTP/2 front end: one nghttp2 server session per connection. */
#ifndef H2T_H2_SESSION_H
#define H2T_H2_SESSION_H

struct conn;
struct frontend;

/* Makes the h2 front end the user of |c| (sets c->fe and c->fe_data). */
void h2_session_attach(struct conn *c);
/* Its entry for the front-end table (src/frontend.h): ALPN "h2", and the cleartext preface. */
extern const struct frontend h2_frontend;

#endif
