#!/usr/bin/python3
"""Writes the seeds of tests/fuzz/corpus/fuzz_h2_session (usage: gen_h2_session_seeds.py DIR). Seeds for fuzz_h2_session: 2 bytes (mode, flags) then what a client sends after the preface
(the target prepends it). Made with python3-h2 (hyper-h2) as a real client would."""
import os, sys
import h2.connection, h2.config, h2.settings, h2.events
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
out = sys.argv[1]
os.makedirs(out, exist_ok=True)

def client():
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8", validate_outbound_headers=False))
    c.initiate_connection()
    return c

def take(c):
    d = c.data_to_send()
    return d[len(PREFACE):] if d.startswith(PREFACE) else d

def server_settings_enable_connect(c):
    # Pretend the server said SETTINGS_ENABLE_CONNECT_PROTOCOL=1 so h2 lets us send :protocol.
    import h2.frame_buffer
    from hyperframe.frame import SettingsFrame
    f = SettingsFrame(0)
    f.settings = {8: 1}
    c.receive_data(f.serialize())

def connect(c, sid, authority="example.test:443"):
    c.send_headers(sid, [(":method", "CONNECT"), (":authority", authority)])

def ext_connect(c, sid, proto, path, scheme="https"):
    c.send_headers(sid, [(":method", "CONNECT"), (":protocol", proto), (":scheme", scheme),
                         (":path", path), (":authority", "example.test:443"),
                         ("sec-websocket-version", "13")] if proto == "websocket" else
                        [(":method", "CONNECT"), (":protocol", proto), (":scheme", scheme),
                         (":path", path), (":authority", "example.test:443"), ("capsule-protocol", "?1")])

seeds = {}
c = client(); connect(c, 1); c.send_data(1, b"hello over CONNECT"); seeds["connect_data"] = (0, 0, take(c))
c = client(); connect(c, 1); c.send_data(1, b"x" * 100); c.end_stream(1); seeds["connect_half_close"] = (0, 0, take(c))
c = client(); connect(c, 1); c.reset_stream(1); seeds["connect_reset"] = (0, 0, take(c))
c = client(); connect(c, 1); c.send_data(1, b"a" * 4000); c.increment_flow_control_window(1 << 20); c.increment_flow_control_window(65535, stream_id=1); seeds["window_update"] = (1, 0x40, take(c))
c = client(); c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1, h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384}); connect(c, 1); c.send_data(1, b"y" * 2000); seeds["settings_tiny_window"] = (2, 0, take(c))
c = client(); c.ping(b"12345678"); c.ping(b"abcdefgh"); seeds["ping"] = (0, 0, take(c))
c = client()
for sid in range(1, 40, 2):
    connect(c, sid); c.reset_stream(sid)
seeds["rapid_reset"] = (3, 0, take(c))
c = client(); connect(c, 1); connect(c, 3, "[::1]:22"); c.send_data(3, b"ssh"); c.close_connection(); seeds["goaway"] = (1, 0, take(c))
c = client(); server_settings_enable_connect(c); ext_connect(c, 1, "websocket", "/chat"); c.send_data(1, b"\x81\x05hello"); seeds["ext_connect_ws"] = (0, 0, take(c))
c = client(); server_settings_enable_connect(c); ext_connect(c, 1, "connect-udp", "/.well-known/masque/udp/192.0.2.1/443/"); c.send_data(1, b"\x00\x06\x00hello"); seeds["ext_connect_udp"] = (4, 0, take(c))
c = client(); c.send_headers(1, [(":method", "GET"), (":scheme", "https"), (":path", "/healthz"), (":authority", "proxy.test")], end_stream=True); seeds["get_local"] = (0, 0, take(c))
c = client(); connect(c, 1); [c.send_data(1, b"z" * 16000) for _ in range(4)]; seeds["connect_fill_window"] = (0, 0x40, take(c))
for name, (mode, flags, body) in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([mode, flags]) + body)
print(len(seeds), "seeds")
