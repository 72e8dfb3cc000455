#!/bin/sh
# Starts dockerd like the official docker:dind image does (a reduced, readable version).
set -eu

make_certs() {
  dir="$1"
  [ -s "$dir/server/cert.pem" ] && return 0
  mkdir -p "$dir/ca" "$dir/server" "$dir/client"
  openssl genrsa -out "$dir/ca/key.pem" 4096 2>/dev/null
  openssl req -new -x509 -days 825 -key "$dir/ca/key.pem" -subj "/CN=docker:dind CA" \
    -out "$dir/ca/cert.pem"
  # server: valid for the names the daemon is reached by
  openssl genrsa -out "$dir/server/key.pem" 4096 2>/dev/null
  openssl req -new -key "$dir/server/key.pem" -subj "/CN=docker:dind server" -out "$dir/server/csr.pem"
  printf 'subjectAltName = DNS:docker, DNS:localhost, DNS:%s, IP:127.0.0.1\nextendedKeyUsage = serverAuth\n' \
    "$(hostname)" > "$dir/server/openssl.cnf"
  openssl x509 -req -days 825 -in "$dir/server/csr.pem" -CA "$dir/ca/cert.pem" -CAkey "$dir/ca/key.pem" \
    -CAcreateserial -extfile "$dir/server/openssl.cnf" -out "$dir/server/cert.pem" 2>/dev/null
  cp "$dir/ca/cert.pem" "$dir/server/ca.pem"
  # client: what DOCKER_CERT_PATH points at on the other side of the shared volume
  openssl genrsa -out "$dir/client/key.pem" 4096 2>/dev/null
  openssl req -new -key "$dir/client/key.pem" -subj "/CN=docker:dind client" -out "$dir/client/csr.pem"
  printf 'extendedKeyUsage = clientAuth\n' > "$dir/client/openssl.cnf"
  openssl x509 -req -days 825 -in "$dir/client/csr.pem" -CA "$dir/ca/cert.pem" -CAkey "$dir/ca/key.pem" \
    -CAcreateserial -extfile "$dir/client/openssl.cnf" -out "$dir/client/cert.pem" 2>/dev/null
  cp "$dir/ca/cert.pem" "$dir/client/ca.pem"
  chmod 0444 "$dir"/*/cert.pem "$dir"/*/ca.pem
  chmod 0400 "$dir"/*/key.pem
}

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  if [ -n "${DOCKER_TLS_CERTDIR:-}" ]; then
    make_certs "$DOCKER_TLS_CERTDIR"
    set -- dockerd --host=unix:///var/run/docker.sock --host=tcp://0.0.0.0:2376 \
      --tlsverify --tlscacert "$DOCKER_TLS_CERTDIR/server/ca.pem" \
      --tlscert "$DOCKER_TLS_CERTDIR/server/cert.pem" --tlskey "$DOCKER_TLS_CERTDIR/server/key.pem" "$@"
  else
    set -- dockerd --host=unix:///var/run/docker.sock --host=tcp://0.0.0.0:2375 "$@"
  fi
fi
exec "$@"
