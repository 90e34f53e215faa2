"""A WebSocket echo backend for test_xc_websocket.py (python3-websockets 10.4, Debian).

Prints "PORT <n>" once listening on 127.0.0.1, echoes every message (text stays text, binary
stays binary), answers pings and close frames (the library does both), and appends each upgrade
request's path and headers as one JSON line to --log. --cert/--key serve wss."""

import argparse
import asyncio
import json
import ssl
import sys

import websockets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--subprotocols", default="")
    a = ap.parse_args()
    ctx = None
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
    subprotocols = [p for p in a.subprotocols.split(",") if p] or None

    def process_request(path, headers):
        with open(a.log, "a") as f:
            f.write(json.dumps({"path": path, "headers": [[k, v] for k, v in headers.raw_items()]})
                    + "\n")
        return None

    async def echo(ws, path=None):
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass

    async def run():
        async with websockets.serve(echo, "127.0.0.1", 0, ssl=ctx, subprotocols=subprotocols,
                                    process_request=process_request, max_size=4 << 20,
                                    compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            sys.stdout.write("PORT %d\n" % port)
            sys.stdout.flush()
            await asyncio.Future()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
