/* Placeholder until the HTTP/2 front end lands: answer with SETTINGS and a clean GOAWAY. */
#include "h2/h2_session.h"

#include "src/conn.h"

static void fe_on_read(struct conn *c, struct buf_chunk *chunk) { buf_put(&c->w->pool, chunk); }
static void fe_close(struct conn *c) { conn_close(c); }
static void fe_on_error(struct conn *c, int err) { conn_abort(c); }
static void fe_noop(struct conn *c) {}

static const struct conn_fe_ops h2_fe_ops = {
    .on_read = fe_on_read,
    .on_eof = fe_close,
    .on_error = fe_on_error,
    .on_drain = fe_noop,
    .on_timeout = fe_close,
    .on_stop = fe_close,
    .on_close = fe_noop,
};

void h2_session_attach(struct conn *c) {
  /* SETTINGS (empty), GOAWAY(last_stream_id 0, HTTP_1_1_REQUIRED). */
  static const unsigned char frames[] = {0, 0, 0, 4, 0, 0, 0, 0, 0,
                                         0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xd};
  c->fe = &h2_fe_ops;
  conn_write_copy(c, frames, sizeof(frames));
  conn_close(c);
}
