/* WebSocket backend response head parser (see ws_resp.h).
 *
 * llhttp does the HTTP/1.1 syntax; the callbacks below keep four fields and judge nothing but
 * sizes and repeats:
 *   on_header_field(_complete)  the name is lowercased into a small buffer and matched once whole;
 *   on_header_value(_complete)  the value goes to its field's buffer; a value past its buffer is
 *                               an error (a cut Sec-WebSocket-Extensions would change meaning);
 *                               Accept and Protocol may appear once, Extensions and Upgrade are
 *                               joined with ", " as RFC 9110 §5.3 combines repeated fields;
 *   on_headers_complete         an interim 1xx (not 101) is dropped and parsing goes on with the
 *                               next head; a final head pauses llhttp right after its last LF,
 *                               which is where the head ends. */
#include "proxy/ws_resp.h"

#include <string.h>
#include <strings.h>

#include "src/util.h"

static struct ws_resp *of(llhttp_t *p) { return container_of(p, struct ws_resp, parser); }

static int fail(struct ws_resp *r, const char *why) {
  if (!r->error) r->error = why;
  return -1;
}

static void reset_fields(struct ws_resp *r) {
  r->seen = 0;
  r->accept[0] = r->protocol[0] = r->extensions[0] = r->upgrade[0] = '\0';
  r->upgrade_too_long = 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  struct ws_resp *r = of(p);
  for (size_t i = 0; i < len; i++) {
    if (r->name_len + 1 >= sizeof(r->name)) {
      r->name_too_long = 1; /* longer than any name we keep */
      break;
    }
    char c = at[i];
    r->name[r->name_len++] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  }
  return 0;
}

/* The buffer a kept field's value goes to, and its size. */
static char *field_buf(struct ws_resp *r, enum ws_resp_field f, size_t *size) {
  switch (f) {
  case WS_RESP_F_ACCEPT: *size = sizeof(r->accept); return r->accept;
  case WS_RESP_F_PROTOCOL: *size = sizeof(r->protocol); return r->protocol;
  case WS_RESP_F_EXTENSIONS: *size = sizeof(r->extensions); return r->extensions;
  case WS_RESP_F_UPGRADE: *size = sizeof(r->upgrade); return r->upgrade;
  case WS_RESP_F_OTHER: break;
  }
  *size = 0;
  return NULL;
}

/* Appends |len| bytes to the current field's buffer; 0 or -1 when it does not fit. */
static int put(struct ws_resp *r, const char *at, size_t len) {
  size_t size;
  char *buf = field_buf(r, r->field, &size);
  size_t n = strlen(buf);
  if (len >= size - n) return -1;
  memcpy(buf + n, at, len);
  buf[n + len] = '\0';
  return 0;
}

/* The current field's value does not fit its buffer. */
static int too_long(struct ws_resp *r) {
  switch (r->field) {
  case WS_RESP_F_ACCEPT: return fail(r, "Sec-WebSocket-Accept too long");
  case WS_RESP_F_PROTOCOL: return fail(r, "Sec-WebSocket-Protocol too long");
  case WS_RESP_F_EXTENSIONS: return fail(r, "Sec-WebSocket-Extensions too long");
  case WS_RESP_F_UPGRADE: r->upgrade_too_long = 1; return 0; /* then simply not "websocket" */
  case WS_RESP_F_OTHER: break;
  }
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  static const struct {
    const char *name;
    enum ws_resp_field field;
  } kept[] = {
      {"sec-websocket-accept", WS_RESP_F_ACCEPT},
      {"sec-websocket-protocol", WS_RESP_F_PROTOCOL},
      {"sec-websocket-extensions", WS_RESP_F_EXTENSIONS},
      {"upgrade", WS_RESP_F_UPGRADE},
  };
  struct ws_resp *r = of(p);
  r->name[r->name_len] = '\0';
  r->field = WS_RESP_F_OTHER;
  for (size_t i = 0; i < ARRAY_SIZE(kept) && !r->name_too_long; i++) {
    if (strcmp(r->name, kept[i].name) == 0) r->field = kept[i].field;
  }
  r->name_len = 0;
  r->name_too_long = 0;
  if (r->field == WS_RESP_F_OTHER) return 0;
  unsigned bit = 1u << r->field;
  if (r->seen & bit) {
    if (r->field == WS_RESP_F_ACCEPT) return fail(r, "Sec-WebSocket-Accept repeated");
    if (r->field == WS_RESP_F_PROTOCOL) return fail(r, "Sec-WebSocket-Protocol repeated");
    /* A repeated list field continues the list (RFC 9110 §5.3); an empty value takes the
     * separator back (on_header_value_complete). */
    size_t size;
    const char *buf = field_buf(r, r->field, &size);
    if (buf[0] != '\0') {
      r->sep_at = strlen(buf);
      if (put(r, ", ", 2) != 0) return too_long(r);
    }
  }
  r->seen |= bit;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  struct ws_resp *r = of(p);
  if (r->field == WS_RESP_F_OTHER || put(r, at, len) == 0) return 0;
  return too_long(r);
}

static int on_header_value_complete(llhttp_t *p) {
  struct ws_resp *r = of(p);
  size_t size;
  char *buf = field_buf(r, r->field, &size);
  if (buf) {
    /* Trailing whitespace is not part of a field value (RFC 9110 §5.5). */
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t')) buf[--n] = '\0';
    if (r->sep_at != SIZE_MAX && n <= r->sep_at + 1) buf[r->sep_at] = '\0'; /* empty repeat */
  }
  r->field = WS_RESP_F_OTHER;
  r->sep_at = SIZE_MAX;
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  struct ws_resp *r = of(p);
  int status = llhttp_get_status_code(p);
  if (status < 100) return fail(r, "bad status code");
  if (status < 200 && status != 101) {
    /* Interim (100 Continue, 103 Early Hints, ...): none of its fields count, and it has no body
     * whatever it claims ("1": skip the body). */
    reset_fields(r);
    return 1;
  }
  r->status = status;
  r->connection_upgrade = (p->flags & F_CONNECTION_UPGRADE) != 0;
  r->upgrade_websocket = !r->upgrade_too_long && strcasecmp(r->upgrade, "websocket") == 0;
  return HPE_PAUSED; /* stops right after the head */
}

static const llhttp_settings_t settings = {
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
};

void ws_resp_init(struct ws_resp *r, size_t max_head) {
  memset(r, 0, sizeof(*r));
  llhttp_init(&r->parser, HTTP_RESPONSE, &settings);
  r->max_head = max_head;
  r->sep_at = SIZE_MAX;
}

enum ws_resp_state ws_resp_feed(struct ws_resp *r, const char *data, size_t len, size_t *used) {
  if (r->state != WS_RESP_MORE) return r->state;
  llhttp_errno_t e = llhttp_execute(&r->parser, data, len);
  size_t n = len;
  if (e == HPE_PAUSED && r->status != 0) {
    n = (size_t)(llhttp_get_error_pos(&r->parser) - data);
  } else if (e != HPE_OK) {
    r->error = r->error ? r->error : llhttp_get_error_reason(&r->parser);
    if (!r->error) r->error = "malformed response head";
    r->state = WS_RESP_ERROR;
    return r->state;
  }
  /* Whole-head limit: a prefix over the limit means the head is over it, however it is split. */
  r->head_len += n;
  if (r->head_len > r->max_head) {
    r->error = "response head too large";
    r->state = WS_RESP_ERROR;
    return r->state;
  }
  *used = n;
  r->state = r->status != 0 ? WS_RESP_DONE : WS_RESP_MORE;
  return r->state;
}
