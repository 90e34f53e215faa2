// Streams of several users on one HTTP/2 connection, each with its own Proxy-Authorization, for
// test_auth.py (issue 10: "streams of three users on one connection, each judged on its own
// credentials"). Node's built-in http2 module only.
//
// Usage: node h2_auth_streams.js '<json config>'
//   url     https://127.0.0.1:PORT        ca      CA file for the proxy's certificate
//   target  host:port of an echo origin   streams [{auth: "Basic ..." or null}, ...]
// Every stream is opened at once on the one session. A stream answered 200 sends "ping-<i>\n"
// and expects it echoed. Prints one JSON line: {streams: [{status, proxyAuthenticate,
// proxyStatus, echoed}], sessions: 1, errors: [...]}; exits 0 unless something threw.
'use strict';
const http2 = require('http2');
const fs = require('fs');

const cfg = JSON.parse(process.argv[2]);
const out = { streams: [], errors: [], sessions: 0 };
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

session = http2.connect(cfg.url, { ca: cfg.ca ? fs.readFileSync(cfg.ca) : undefined, servername: 'localhost' });
session.on('connect', () => { out.sessions++; });
session.on('error', (e) => { out.errors.push('session: ' + e.message); finish(); });
let pending = cfg.streams.length;
function done() { if (--pending === 0) finish(); }
cfg.streams.forEach((s, i) => {
  const rec = { status: 0, proxyAuthenticate: null, proxyStatus: null, echoed: false };
  out.streams[i] = rec;
  const headers = { ':method': 'CONNECT', ':authority': cfg.target };
  if (s.auth) headers['proxy-authorization'] = s.auth;
  const req = session.request(headers);
  let got = '';
  let settled = false;
  const settle = () => { if (!settled) { settled = true; done(); } };
  req.on('response', (h) => {
    rec.status = h[':status'];
    rec.proxyAuthenticate = h['proxy-authenticate'] || null;
    rec.proxyStatus = h['proxy-status'] || null;
    if (rec.status === 200) req.write('ping-' + i + '\n');
  });
  req.on('data', (d) => {
    got += d.toString();
    if (rec.status === 200 && got === 'ping-' + i + '\n') { rec.echoed = true; req.close(); settle(); }
  });
  req.on('end', settle);
  req.on('close', settle);
  req.on('error', (e) => { rec.error = e.message; settle(); });
});
