/* The table of front ends: how the connection layer finds the front end that serves a connection
 * -- by the protocol ALPN chose, or on cleartext by the bytes a client starts with -- without
 * including any of them. The composition root (src/main.c) fills one table at start-up, the TLS
 * context takes its ALPN preference list, and workers borrow it read-only; so the layers stay
 * one-way: src/ below h1/ and h2/. */
#ifndef H2T_FRONTEND_H
#define H2T_FRONTEND_H

#include <stddef.h>

struct conn;

/* One front end, a static const in its own module (h1/, h2/). */
struct frontend {
  const char *name;    /* "h1", "h2": logs */
  const char *alpn;    /* the ALPN protocol id it serves: "http/1.1", "h2" */
  const char *preface; /* cleartext: what a client speaking it without negotiation starts with
                          (the h2 connection preface, RFC 9113 §3.4), or NULL */
  /* Makes the front end the user of |c|: sets c->fe and c->fe_data, arms its timers. */
  void (*attach)(struct conn *c);
};

#define FRONTEND_MAX 4
#define FRONTEND_ALPN_MAX 64

struct frontend_table {
  const struct frontend *fe[FRONTEND_MAX]; /* borrowed (static); in ALPN preference order */
  size_t n;
  const struct frontend *fallback;         /* for clients that offer no ALPN, and cleartext that
                                              starts with no preface: borrowed, one of fe[] */
  unsigned char alpn[FRONTEND_ALPN_MAX];   /* the preference list in ALPN wire format */
  size_t alpn_len;
};

void frontend_table_init(struct frontend_table *t);
/* Adds |fe| (static), after those added before in ALPN preference; |fallback| makes it the
 * fallback. Aborts when the table is full (a programming error). */
void frontend_table_add(struct frontend_table *t, const struct frontend *fe, int fallback);
/* The front end for the ALPN id |id| (|len| bytes), or NULL. */
const struct frontend *frontend_by_alpn(const struct frontend_table *t, const unsigned char *id, size_t len);
/* Cleartext: the front end whose preface the first |n| bytes at |head| are; the fallback when
 * they match no preface; NULL when they are a proper prefix of a preface (more bytes decide). */
const struct frontend *frontend_sniff(const struct frontend_table *t, const void *head, size_t n);
/* The longest preface: how many bytes frontend_sniff may need. */
size_t frontend_sniff_len(const struct frontend_table *t);

#endif
