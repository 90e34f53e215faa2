// WebSocket over HTTP/2 (RFC 8441) client for test_xc_websocket.py: Node 20's built-in http2
// module only, with the RFC 6455 framing written here (masked client frames, text, binary,
// ping/pong, close). Checklist IDs: NODE-02, XC-01, XC-06..XC-08.
//
// Usage: node ws_h2_client.js '<json config>'
//   url        https://127.0.0.1:PORT (or http:// for h2c)      ca   CA file for the proxy's cert
//   authority  :authority (default: the URL's host:port)         path :path (default /chat)
//   scheme     :scheme override (default from the URL)            subprotocol  sec-websocket-protocol
//   origin     origin header                                     binSize  bytes of the big binary message
//   mode       "full" (exchange + close) or "status" (report the response only)
// Prints one JSON line with the results; exits 0 unless something unexpected threw.
'use strict';
const http2 = require('http2');
const fs = require('fs');
const crypto = require('crypto');

const cfg = JSON.parse(process.argv[2]);
const out = { errors: [] };
const deadline = setTimeout(() => { out.errors.push('timeout'); finish(); }, cfg.timeoutMs || 30000);
let finished = false;
let session = null;
function finish() {
  if (finished) return;
  finished = true;
  clearTimeout(deadline);
  process.stdout.write(JSON.stringify(out) + '\n');
  try { if (session) session.close(); } catch (e) { /* ignore */ }
  setTimeout(() => process.exit(0), 200).unref();
}

function frame(opcode, payload, fin = true) {
  const mask = crypto.randomBytes(4);
  const len = payload.length;
  let head;
  if (len < 126) { head = Buffer.alloc(2); head[1] = 0x80 | len; }
  else if (len < 65536) { head = Buffer.alloc(4); head[1] = 0x80 | 126; head.writeUInt16BE(len, 2); }
  else { head = Buffer.alloc(10); head[1] = 0x80 | 127; head.writeBigUInt64BE(BigInt(len), 2); }
  head[0] = (fin ? 0x80 : 0) | opcode;
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, body]);
}

// Incremental parser for the server's (unmasked) frames; reassembles fragmented messages.
function makeParser(onMessage) {
  let buf = Buffer.alloc(0);
  let frag = null, fragOp = 0;
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const fin = (buf[0] & 0x80) !== 0, op = buf[0] & 0x0f, masked = (buf[1] & 0x80) !== 0;
      let len = buf[1] & 0x7f, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      let mask = null;
      if (masked) { if (buf.length < off + 4) return; mask = buf.subarray(off, off + 4); off += 4; }
      if (buf.length < off + len) return;
      let payload = Buffer.from(buf.subarray(off, off + len));
      if (mask) for (let i = 0; i < len; i++) payload[i] ^= mask[i & 3];
      buf = buf.subarray(off + len);
      if (masked) out.errors.push('server frame was masked');
      if (op === 0) {
        frag = Buffer.concat([frag || Buffer.alloc(0), payload]);
        if (fin) { onMessage(fragOp, frag); frag = null; }
      } else if (op < 8 && !fin) { frag = payload; fragOp = op; }
      else onMessage(op, payload);
    }
  };
}

const opts = {};
if (cfg.ca) opts.ca = fs.readFileSync(cfg.ca);
session = http2.connect(cfg.url, opts);
session.on('error', (e) => { out.errors.push('session: ' + e.message); finish(); });
session.on('remoteSettings', (settings) => {
  if (out.enableConnectProtocol !== undefined) return;
  out.enableConnectProtocol = !!settings.enableConnectProtocol;
  const headers = {
    ':method': 'CONNECT', ':protocol': cfg.protocol || 'websocket', ':path': cfg.path || '/chat',
    'sec-websocket-version': '13',
  };
  if (cfg.authority) headers[':authority'] = cfg.authority;
  if (cfg.scheme) headers[':scheme'] = cfg.scheme;
  if (cfg.subprotocol) headers['sec-websocket-protocol'] = cfg.subprotocol;
  if (cfg.origin) headers['origin'] = cfg.origin;
  Object.assign(headers, cfg.extraHeaders || {});
  let req;
  try { req = session.request(headers, { endStream: false }); }
  catch (e) { out.errors.push('request: ' + e.message); finish(); return; }
  run(req);
});

function run(req) {
  let body = [];
  let phase = 'head';
  const bin = crypto.randomBytes(cfg.binSize || 100 * 1024);
  const binHash = crypto.createHash('sha256').update(bin).digest('hex');
  req.on('response', (h) => {
    out.status = h[':status'];
    out.headers = {};
    for (const k of Object.keys(h)) out.headers[k] = h[k];
    if (out.status !== 200 || cfg.mode === 'status') {
      phase = 'body';
      req.end(); // nothing to send: our END_STREAM lets the stream close once the body is read
      return;
    }
    phase = 'text';
    req.write(frame(1, Buffer.from('hello over h2 \u00e9')));
  });
  const parse = makeParser((op, payload) => {
    if (phase === 'text') {
      out.text_ok = op === 1 && payload.toString('utf8') === 'hello over h2 \u00e9';
      phase = 'binary';
      // Sent in two writes so that the frame straddles DATA frames.
      const f = frame(2, bin);
      req.write(f.subarray(0, 1000));
      req.write(f.subarray(1000));
    } else if (phase === 'binary') {
      out.binary_ok = op === 2 && payload.length === bin.length &&
        crypto.createHash('sha256').update(payload).digest('hex') === binHash;
      out.binary_len = payload.length;
      phase = 'ping';
      req.write(frame(9, Buffer.from('ping-123')));
    } else if (phase === 'ping') {
      out.pong_ok = op === 10 && payload.toString() === 'ping-123';
      phase = 'close';
      const p = Buffer.alloc(2 + 3); p.writeUInt16BE(1000, 0); p.write('bye', 2);
      req.write(frame(8, p));
    } else if (phase === 'close') {
      if (op === 8) {
        out.close_code = payload.length >= 2 ? payload.readUInt16BE(0) : null;
        phase = 'closed';
        req.end(); // our side of the stream ends after the close handshake
      } else out.errors.push('unexpected opcode ' + op + ' while closing');
    } else out.errors.push('frame after close: opcode ' + op);
  });
  req.on('data', (d) => { if (phase === 'body' || phase === 'head') body.push(d); else parse(d); });
  req.on('end', () => {
    out.ended = true;
    if (body.length) out.body = Buffer.concat(body).toString('utf8');
    if (phase !== 'closed' && phase !== 'body') out.errors.push('stream ended in phase ' + phase);
  });
  req.on('close', () => { out.rstCode = req.rstCode; finish(); });
  req.on('error', (e) => { out.errors.push('stream: ' + e.message); });
}
