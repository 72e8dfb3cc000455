#!/bin/sh
# Starts dockerd as the official docker:dind image does: the same observable behaviour, written anew.
# Source followed: docker-library/docker, dockerd-entrypoint.sh (commit 163b457):
#  - with no arguments, or a first argument starting with `-`, the arguments go to dockerd after
#    --host=unix:///var/run/docker.sock (or $DOCKER_HOST when that is a unix:// URL) and
#    * DOCKER_TLS_CERTDIR set (this image's default /certs): certificates are (re)made under it and
#      --host=tcp://0.0.0.0:2376 --tlsverify --tlscacert/--tlscert/--tlskey <dir>/server/... is added;
#    * DOCKER_TLS_CERTDIR empty: --host=tcp://0.0.0.0:2375 without TLS.
#    So a caller must never pass another --host=tcp://...:2375 (dockerd would bind twice and exit).
#  - certificates: the CA is made when its key exists or its cert does not; while the CA key is there,
#    server and client certificates are made again on every start (new IPs and names), keeping keys.
#    The server certificate names every address of the container, its hostname, `docker`, `localhost`
#    and $DOCKER_TLS_SAN. The client key is mode 0644 so any uid (Jenkins' 1000) can read it.
#  - stale docker*.pid files under /run are removed before dockerd starts.
#  - any other command runs as given.
set -eu

new_key() {  # keep an existing key, else make one (openssl writes it 0600)
  [ -s "$1" ] || openssl genrsa -out "$1" 4196 2>/dev/null  # the official size, sic
}

alt_names() {
  {
    for address in $(hostname -i 2>/dev/null) $(ip -o address 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4 }'); do
      echo "IP:$address"
    done
    for name in "$(cat /etc/hostname 2>/dev/null)" docker localhost "$(hostname -f 2>/dev/null)" "$(hostname -s 2>/dev/null)"; do
      [ -n "$name" ] && echo "DNS:$name"
    done
    [ -n "${DOCKER_TLS_SAN:-}" ] && echo "$DOCKER_TLS_SAN"
  } | sort -u | paste -sd, -
}

sign() {  # sign <dir> <extensions file> : <dir>/csr.pem -> <dir>/cert.pem with the CA
  openssl x509 -req -in "$1/csr.pem" -CA "$certs/ca/cert.pem" -CAkey "$certs/ca/key.pem" \
    -CAcreateserial -out "$1/cert.pem" -days 825 -extfile "$2" -extensions x509_exts 2>/dev/null
  cp "$certs/ca/cert.pem" "$1/ca.pem"
  openssl verify -CAfile "$1/ca.pem" "$1/cert.pem" >/dev/null
}

make_certs() {
  certs="$1"
  if [ -s "$certs/ca/key.pem" ] || [ ! -s "$certs/ca/cert.pem" ]; then
    mkdir -p "$certs/ca"
    new_key "$certs/ca/key.pem"
    openssl req -new -x509 -days 825 -key "$certs/ca/key.pem" -subj '/CN=docker:dind CA' \
      -out "$certs/ca/cert.pem"
  fi
  [ -s "$certs/ca/key.pem" ] || return 0  # a CA managed elsewhere: use the certificates as they are
  mkdir -p "$certs/server" "$certs/client"
  new_key "$certs/server/key.pem"
  openssl req -new -key "$certs/server/key.pem" -subj '/CN=docker:dind server' -out "$certs/server/csr.pem"
  printf '[ x509_exts ]\nsubjectAltName = %s\n' "$(alt_names)" > "$certs/server/openssl.cnf"
  sign "$certs/server" "$certs/server/openssl.cnf"
  new_key "$certs/client/key.pem"
  chmod 0644 "$certs/client/key.pem"  # shared with clients of any uid, as the official image does
  openssl req -new -key "$certs/client/key.pem" -subj '/CN=docker:dind client' -out "$certs/client/csr.pem"
  printf '[ x509_exts ]\nextendedKeyUsage = clientAuth\n' > "$certs/client/openssl.cnf"
  sign "$certs/client" "$certs/client/openssl.cnf"
}

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  socket=unix:///var/run/docker.sock
  case "${DOCKER_HOST:-}" in unix://*) socket="$DOCKER_HOST" ;; esac
  if [ -n "${DOCKER_TLS_CERTDIR:-}" ] && make_certs "$DOCKER_TLS_CERTDIR" \
     && [ -s "$DOCKER_TLS_CERTDIR/server/ca.pem" ] && [ -s "$DOCKER_TLS_CERTDIR/server/cert.pem" ] \
     && [ -s "$DOCKER_TLS_CERTDIR/server/key.pem" ]; then
    set -- dockerd --host="$socket" --host=tcp://0.0.0.0:2376 --tlsverify \
      --tlscacert "$DOCKER_TLS_CERTDIR/server/ca.pem" --tlscert "$DOCKER_TLS_CERTDIR/server/cert.pem" \
      --tlskey "$DOCKER_TLS_CERTDIR/server/key.pem" "$@"
  else
    set -- dockerd --host="$socket" --host=tcp://0.0.0.0:2375 "$@"
  fi
fi

if [ "$1" = dockerd ]; then
  find /run /var/run -iname 'docker*.pid' -delete 2>/dev/null || :
fi
exec "$@"
