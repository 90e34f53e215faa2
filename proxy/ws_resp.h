/* The WebSocket backend's answer to our Upgrade request (RFC 6455 §4.1, checklist XC-07, XC-09):
 * a pure parser over llhttp. Bytes go in, in any split; out come the status, the
 * Sec-WebSocket-Accept, -Protocol and -Extensions values, whether Upgrade: websocket and
 * Connection: upgrade were present, and where the head ended (the bytes after it are WebSocket
 * frames or a body, not ours). No I/O; the caller judges the result (ws_upgrade.c).
 *
 * Interim 1xx responses other than 101 are skipped. The final head (101, or any status >= 200)
 * ends the parse. The result never depends on how the input was split: every limit applies to
 * the head as a whole. */
#ifndef H2T_WS_RESP_H
#define H2T_WS_RESP_H

#include <llhttp.h>
#include <stddef.h>

#define WS_RESP_ACCEPT_MAX 63      /* a real one is 28 characters */
#define WS_RESP_PROTOCOL_MAX 255   /* fits struct ws_upgrade_result.protocol */
#define WS_RESP_EXTENSIONS_MAX 511 /* fits struct ws_upgrade_result.extensions */

enum ws_resp_state {
  WS_RESP_MORE = 0, /* the head is not complete: feed more */
  WS_RESP_DONE,     /* the final head is parsed; see |head_len| */
  WS_RESP_ERROR,    /* not a usable response; |error| says why */
};

/* The header fields we keep; every other field is parsed and ignored. */
enum ws_resp_field {
  WS_RESP_F_OTHER = 0,
  WS_RESP_F_ACCEPT,
  WS_RESP_F_PROTOCOL,
  WS_RESP_F_EXTENSIONS,
  WS_RESP_F_UPGRADE,
};

/* Embedded by its user (struct ws_upgrade); no heap. */
struct ws_resp {
  llhttp_t parser;
  enum ws_resp_state state;
  const char *error;          /* static reason when state is WS_RESP_ERROR */
  size_t max_head;            /* the limit for all heads together, interim ones included */
  size_t head_len;            /* bytes of head parsed so far; when DONE, the whole head */
  int status;                 /* the final status (0 until DONE) */
  int upgrade_websocket;      /* "Upgrade: websocket" (case-insensitive) was present */
  int connection_upgrade;     /* Connection lists the "upgrade" token */
  char name[32];              /* the field name being read, lowercased ("" if longer) */
  size_t name_len;
  int name_too_long;
  enum ws_resp_field field;   /* which kept field the current value belongs to */
  unsigned seen;              /* bit (1 << field): the field has appeared in this head */
  size_t sep_at;              /* where the ", " joining a repeated field starts (SIZE_MAX: none) */
  char accept[WS_RESP_ACCEPT_MAX + 1];
  char protocol[WS_RESP_PROTOCOL_MAX + 1];
  char extensions[WS_RESP_EXTENSIONS_MAX + 1];
  char upgrade[16];           /* enough for "websocket"; longer is never a match */
  int upgrade_too_long;
};

/* Prepares |r| to parse one response head of at most |max_head| bytes. */
void ws_resp_init(struct ws_resp *r, size_t max_head);

/* Parses the next |len| bytes. Returns:
 *   WS_RESP_MORE  all |len| bytes were head; *|used| = len.
 *   WS_RESP_DONE  the final head ended *|used| bytes into this input (0 < *used <= len); the
 *                 rest is not part of the head.
 *   WS_RESP_ERROR r->error says why; *|used| is undefined.
 * Once DONE or ERROR, further calls return the same state and parse nothing. */
enum ws_resp_state ws_resp_feed(struct ws_resp *r, const char *data, size_t len, size_t *used);

#endif
