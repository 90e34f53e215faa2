#!/usr/bin/env bash
# Quick start: install what is missing, build, and run h2tunnel on its embedded default
# (TLS on 127.0.0.1:8443 with ALPN h2 + http/1.1, cleartext on 127.0.0.1:8080, a dev CA made on
# first run). Extra arguments go to h2tunnel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build build -j"$(nproc)"
exec ./build/h2tunnel "$@"
