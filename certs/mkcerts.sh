#!/usr/bin/env bash
# Makes a throwaway CA, a server leaf and a client certificate with the openssl CLI, for tests and
# CI. Never use these for anything real: the CA key sits next to the certificates, unencrypted.
#
# Usage: certs/mkcerts.sh DIR [SAN...]
#   DIR   created if missing (mode 0700); existing files of the same names are overwritten.
#   SAN   extra subjectAltName entries for the server leaf, e.g. DNS:proxy.test IP:10.0.0.1
#         (localhost, 127.0.0.1 and ::1 are always included).
# Env:    DAYS (leaf validity, default 30), CN (server leaf CN, default localhost).
#
# Output, in DIR (the server names match what h2tunnel's own dev CA writes):
#   ca.pem, ca.key          CA certificate and key (ECDSA P-256, 1 year)
#   cert.pem, key.pem       server leaf for localhost + SANs (serverAuth), signed by the CA
#   fullchain.pem           cert.pem followed by ca.pem, for testing --cert with a chain file
#   client.pem, client.key  client certificate CN "h2tunnel test client" (clientAuth)
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  [[ $# -ge 1 ]] && exit 0 || exit 2
fi
dir=$1
shift
days=${DAYS:-30}
cn=${CN:-localhost}
san="DNS:localhost,IP:127.0.0.1,IP:::1"
for s in "$@"; do
  san+=",$s"
done

command -v openssl >/dev/null || { echo "mkcerts.sh: openssl not found" >&2; exit 1; }
umask 077 # keys are private from creation; certificates are chmod'ed to 0644 below
mkdir -p -- "$dir"
chmod 700 -- "$dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/mkcerts.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

serial() { echo "0x$(openssl rand -hex 16)"; }
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# CA: self-signed, may sign leaves only.
cat >"$work/ca.ext" <<'EOF'
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
newkey "$work/ca.key"
openssl req -new -key "$work/ca.key" -subj "/CN=h2tunnel test CA $(openssl rand -hex 4)" \
  -out "$work/ca.csr"
openssl x509 -req -in "$work/ca.csr" -signkey "$work/ca.key" -days 365 -sha256 \
  -set_serial "$(serial)" -extfile "$work/ca.ext" -out "$work/ca.pem" 2>/dev/null

# issue NAME CN EXTFILE: a leaf key and certificate signed by the CA.
issue() {
  newkey "$work/$1.key"
  openssl req -new -key "$work/$1.key" -subj "/CN=$2" -out "$work/$1.csr"
  openssl x509 -req -in "$work/$1.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -days "$days" \
    -sha256 -set_serial "$(serial)" -extfile "$3" -out "$work/$1.pem" 2>/dev/null
}

cat >"$work/server.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
issue server "$cn" "$work/server.ext"

cat >"$work/client.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
issue client "h2tunnel test client" "$work/client.ext"

openssl verify -x509_strict -purpose sslserver -CAfile "$work/ca.pem" "$work/server.pem" >/dev/null
openssl verify -x509_strict -purpose sslclient -CAfile "$work/ca.pem" "$work/client.pem" >/dev/null
cat "$work/server.pem" "$work/ca.pem" >"$work/fullchain.pem"

# Copied into place only after both verify, so a failed run never leaves a mismatched set.
install -m 600 "$work/ca.key" "$dir/ca.key"
install -m 600 "$work/server.key" "$dir/key.pem"
install -m 600 "$work/client.key" "$dir/client.key"
install -m 644 "$work/ca.pem" "$dir/ca.pem"
install -m 644 "$work/server.pem" "$dir/cert.pem"
install -m 644 "$work/fullchain.pem" "$dir/fullchain.pem"
install -m 644 "$work/client.pem" "$dir/client.pem"
echo "mkcerts.sh: wrote ca.pem ca.key cert.pem key.pem fullchain.pem client.pem client.key to $dir"
