#!/usr/bin/env bash
# Installs what the tests need, builds with ASan + UBSan and -Werror, and runs the whole suite
# through ctest. Extra arguments go to ctest (e.g. -L unit, -R h1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --test
if [ -d tests/integration/node ] && [ -f tests/integration/node/package.json ]; then
  (cd tests/integration/node && npm install --no-audit --no-fund --silent)
fi
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DENABLE_SANITIZERS=ON -DENABLE_WERROR=ON >/dev/null
cmake --build build-test -j"$(nproc)"
cd build-test
ctest --output-on-failure --timeout 900 "$@"
