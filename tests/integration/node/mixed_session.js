// The session both h2_many_tunnels.js and h2_fwd_mixed.js drive: one node:http2 connection to the
// proxy carrying N concurrent CONNECT streams to an echo origin, each echoing distinct random
// bytes (checked by length and SHA-256), with GETS requests interleaved on the same session.
// The caller says what a GET asks and what a correct answer is.
//
// run({proxyUrl, caFile, echoAuthority, n, min, max, gets, getHeaders(i), getOk(i, status, body)})
// prints one JSON summary line and exits 0 only if every tunnel and GET was correct.
'use strict';
const http2 = require('node:http2');
const crypto = require('node:crypto');
const fs = require('node:fs');

function run(o) {
  const {n: N, min: MIN, max: MAX, gets: GETS} = o;
  const summary = {tunnels_ok: 0, tunnels_bad: [], gets_ok: 0, gets_bad: [], enableConnectProtocol: null,
                   maxConcurrentStreams: null, bytes: 0, errors: []};
  let finished = false;
  let session = null;

  function finish(code) {
    if (finished) return;
    finished = true;
    clearTimeout(watchdog);
    process.stdout.write(JSON.stringify(summary) + '\n');
    try { session.close(); } catch (e) { /* already gone */ }
    setTimeout(() => process.exit(code), 50).unref();
  }

  const watchdog = setTimeout(() => { summary.errors.push('watchdog: 120 s passed'); finish(3); }, 120000);

  session = http2.connect(o.proxyUrl, {
    ca: fs.readFileSync(o.caFile),
    servername: 'localhost',
    // Node's default maxSessionMemory (10 MB) makes Node itself send ENHANCE_YOUR_CALM with this
    // many streams in flight.
    maxSessionMemory: 1000,
    settings: {initialWindowSize: 1 << 20, enablePush: false},
  });
  session.on('error', (e) => { summary.errors.push('session: ' + e.message); finish(2); });
  session.on('goaway', (code, last) => { summary.errors.push(`goaway ${code} last=${last}`); });

  let pending = N + GETS;
  function done() { if (--pending === 0) finish(summary.tunnels_bad.length || summary.gets_bad.length || summary.errors.length ? 1 : 0); }

  function get(i) {
    const req = session.request(o.getHeaders(i));
    let status = 0, body = '';
    req.setEncoding('utf8');
    req.on('response', (h) => { status = h[':status']; });
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      if (o.getOk(i, status, body)) summary.gets_ok++;
      else summary.gets_bad.push({i, status, body});
      done();
    });
    req.on('error', (e) => { summary.gets_bad.push({i, error: e.message}); done(); });
    req.end();
  }

  function tunnel(i) {
    const size = MIN + Math.floor(Math.random() * (MAX - MIN + 1));
    const payload = crypto.randomBytes(size);
    const want = crypto.createHash('sha256').update(payload).digest('hex');
    const got = crypto.createHash('sha256');
    let n = 0, status = 0;
    const req = session.request({':method': 'CONNECT', ':authority': o.echoAuthority});
    req.on('response', (h) => {
      status = h[':status'];
      if (status !== 200) summary.tunnels_bad.push({i, status});
    });
    req.on('data', (d) => { got.update(d); n += d.length; });
    req.on('end', () => {
      const digest = got.digest('hex');
      if (status === 200 && n === size && digest === want) { summary.tunnels_ok++; summary.bytes += n; }
      else summary.tunnels_bad.push({i, status, size, n, same: digest === want});
    });
    req.on('close', () => {
      if (req.rstCode !== 0) summary.tunnels_bad.push({i, rstCode: req.rstCode});
      done();
    });
    req.on('error', (e) => { summary.tunnels_bad.push({i, error: e.message}); });
    // Write in pieces so the streams interleave; end() is the half-close (the echo origin then
    // sends its FIN, which becomes END_STREAM).
    let off = 0;
    const piece = 16384 + (i % 7) * 1000;
    function pump() {
      while (off < size) {
        const chunk = payload.subarray(off, Math.min(size, off + piece));
        off += chunk.length;
        if (!req.write(chunk)) { req.once('drain', pump); return; }
      }
      req.end();
    }
    pump();
  }

  session.on('remoteSettings', (s) => {
    if (summary.enableConnectProtocol !== null) return;
    summary.enableConnectProtocol = s.enableConnectProtocol === true;
    summary.maxConcurrentStreams = s.maxConcurrentStreams;
    if (s.enableConnectProtocol !== true) {
      summary.errors.push('server did not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL=1');
      finish(1);
      return;
    }
    let g = 0;
    for (let i = 0; i < N; i++) {
      tunnel(i);
      if (GETS && i % Math.max(1, Math.floor(N / GETS)) === 0 && g < GETS) { get(g++); }
    }
    while (g < GETS) get(g++);
  });
}

module.exports = {run};
