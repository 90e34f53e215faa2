// One Node.js (node:http2) session to the proxy carrying N concurrent plain CONNECT streams to an
// echo origin, each echoing distinct random bytes, with GET /healthz requests interleaved on the
// same session (checklist NODE-01, CHR-01 style multiplexing, H2C-16, H2-06).
//
// usage: node h2_many_tunnels.js PROXY_URL CA_FILE ECHO_AUTHORITY N MIN_BYTES MAX_BYTES N_GETS
// Prints one JSON summary line; exits 0 only if every tunnel and GET was correct.
'use strict';
const {run} = require('./mixed_session');

const [proxyUrl, caFile, echoAuthority, nStr, minStr, maxStr, getsStr] = process.argv.slice(2);
run({
  proxyUrl, caFile, echoAuthority,
  n: parseInt(nStr, 10), min: parseInt(minStr, 10), max: parseInt(maxStr, 10), gets: parseInt(getsStr, 10),
  getHeaders: () => ({':method': 'GET', ':path': '/healthz', ':scheme': 'https', ':authority': 'localhost'}),
  getOk: (i, status, body) => status === 200 && body === 'ok\n',
});
