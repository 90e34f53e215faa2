#!/usr/bin/env bash
# Installs what h2tunnel needs to build and test on Debian 12 (bookworm), as root.
# Idempotent: packages already present are left alone; apt is only asked when something is missing.
set -euo pipefail

BUILD_PKGS="build-essential cmake pkg-config libuv1-dev libssl-dev libnghttp2-dev libc-ares-dev
  node-llhttp libcmocka-dev libcrypt-dev libyaml-dev"
TEST_PKGS="nghttp2-client python3 python3-h2 python3-websockets socat openssl nodejs procps
  apache2-utils whois haproxy git openssh-server openssh-client python3-requests chromium
  dpkg-dev systemd logrotate proxytunnel libnss3-tools iproute2 debootstrap systemd-container lintian"

want="$BUILD_PKGS"
[ "${1:-}" = "--test" ] && want="$want $TEST_PKGS"

sudo_cmd=""
if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi

missing=""
for p in $want; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
# npm (for the Node test clients' packages): Debian's npm conflicts with a nodejs that bundles its
# own npm (NodeSource's), so it is asked for only when no npm is on the PATH.
if [ "${1:-}" = "--test" ] && ! command -v npm >/dev/null 2>&1; then missing="$missing npm"; fi

# curl >= 8.1 has --proxy-http2; bookworm main has 7.88, bookworm-backports has 8.x.
need_curl=0
if [ "${1:-}" = "--test" ]; then
  v=$(curl --version 2>/dev/null | awk 'NR==1{print $2}')
  case "$v" in 8.*|9.*) ;; *) need_curl=1 ;; esac
fi

if [ -n "$missing" ] || [ "$need_curl" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  if [ "$need_curl" = 1 ] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # Reuse the mirror this machine already uses for bookworm itself.
    mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1)
    [ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $3=="bookworm"{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    echo "deb $mirror bookworm-backports main" |
      $sudo_cmd tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
  fi
  $sudo_cmd apt-get update -qq
  if [ -n "$missing" ]; then
    # shellcheck disable=SC2086
    $sudo_cmd apt-get install -y -qq --no-install-recommends $missing
  fi
  if [ "$need_curl" = 1 ]; then
    $sudo_cmd apt-get install -y -qq --no-install-recommends -t bookworm-backports curl libcurl4
  fi
fi
