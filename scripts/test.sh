#!/usr/bin/env bash
# Installs what the tests need, builds with ASan + UBSan and -Werror, and runs the whole suite
# through ctest. Extra arguments go to ctest (e.g. -L unit, -R h1).
#
#   bash scripts/test.sh                 the suite, once
#   bash scripts/test.sh --stress [N]    the suite N times in a row (default 3) while one busy loop
#                                        per core holds the CPUs: the suite must not depend on a
#                                        quiet machine
#
# A test skipped because a tool is missing fails the run (the install step exists so that nothing
# is skipped); other skips are listed. Skipped tests show as "Not Run" in ctest, never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=1
stress=0
if [ "${1:-}" = "--stress" ]; then
  stress=1
  shift
  if [[ "${1:-}" =~ ^[0-9]+$ ]]; then rounds=$1; shift; else rounds=3; fi
fi

bash scripts/deps.sh --test
if [ -d tests/integration/node ] && [ -f tests/integration/node/package.json ]; then
  (cd tests/integration/node && npm install --no-audit --no-fund --silent)
fi
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DENABLE_SANITIZERS=ON -DENABLE_WERROR=ON >/dev/null
cmake --build build-test -j"$(nproc)"
cd build-test

busy_pids=()
stop_busy() {
  for p in "${busy_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  busy_pids=()
}
trap stop_busy EXIT
if [ "$stress" = 1 ]; then
  # Bounded even if this script is killed: each loop ends on its own after two hours.
  for _ in $(seq "$(nproc)"); do
    timeout 7200 sh -c 'while :; do :; done' &
    busy_pids+=("$!")
  done
  echo "== stress: ${#busy_pids[@]} busy loop(s) hold the CPUs; ${rounds} round(s)"
fi

export H2T_SKIP_LOG="$PWD/skipped.log"
for r in $(seq "$rounds"); do
  [ "$rounds" -gt 1 ] && echo "== round $r of $rounds"
  : >"$H2T_SKIP_LOG"
  ctest --output-on-failure --timeout 900 "$@"
  if [ -s "$H2T_SKIP_LOG" ]; then
    echo "== skipped tests (not passes):"
    sed 's/^/   /' "$H2T_SKIP_LOG"
    if grep -q "missing tool: " "$H2T_SKIP_LOG"; then
      echo "FAIL: tests were skipped for a missing tool; scripts/deps.sh --test should install it" >&2
      exit 1
    fi
  fi
done
