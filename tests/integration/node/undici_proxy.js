// README "Using it from... Node.js": undici's ProxyAgent through h2tunnel (Node's built-in fetch
// ignores proxy variables). Usage: node undici_proxy.js PROXY_URL PROXY_CA ORIGIN_URL ORIGIN_CA
// Prints the origin's body; exits 1 with the error otherwise.
'use strict';
const fs = require('fs');
const { ProxyAgent, fetch } = require('undici');

async function main() {
  const [proxy, proxyCa, url, originCa] = process.argv.slice(2);
  const dispatcher = new ProxyAgent({
    uri: proxy,
    proxyTls: { ca: fs.readFileSync(proxyCa) },   // trust for the proxy
    requestTls: { ca: fs.readFileSync(originCa) }, // trust for the origin (a public CA needs none)
  });
  const res = await fetch(url, { dispatcher });
  process.stdout.write(Buffer.from(await res.arrayBuffer()));
  await dispatcher.close();
  if (res.status !== 200) throw new Error('status ' + res.status);
}

main().catch((e) => {
  console.error(e && (e.cause || e));
  process.exit(1);
});
