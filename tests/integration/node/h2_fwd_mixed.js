// One Node.js (node:http2) session to the proxy carrying forwarded requests (:scheme http,
// :authority an origin, issue 11) interleaved with plain CONNECT tunnels to an echo origin.
// Each forwarded request is a GET /info?i=N answered by the loopback origin (fwd_origin.py).
//
// usage: node h2_fwd_mixed.js PROXY_URL CA_FILE ORIGIN_AUTHORITY ECHO_AUTHORITY N_GETS N_TUNNELS
// Prints one JSON summary line; exits 0 only if every tunnel and GET was correct.
'use strict';
const {run} = require('./mixed_session');

const [proxyUrl, caFile, originAuthority, echoAuthority, getsStr, nStr] = process.argv.slice(2);
run({
  proxyUrl, caFile, echoAuthority,
  n: parseInt(nStr, 10), min: 1000, max: 200000, gets: parseInt(getsStr, 10),
  getHeaders: (i) => ({':method': 'GET', ':path': '/info?i=' + i, ':scheme': 'http', ':authority': originAuthority}),
  getOk: (i, status, body) => {
    if (status !== 200) return false;
    try { return JSON.parse(body).target === '/info?i=' + i; } catch (e) { return false; /* not JSON */ }
  },
});
