#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for conveyor's tests (and bench), one per checkout, on a free
# loopback port, started with initdb/pg_ctl (no system cluster, no root needed; as root it runs
# as the `postgres` user, since PostgreSQL refuses to run as root). Installs Debian's
# `postgresql` if no server is there.
#
#   scripts/postgres.sh start   init if needed, start if stopped; print the admin URL
#   scripts/postgres.sh url     the same (what the tests call)
#   scripts/postgres.sh stop    stop the cluster
#   scripts/postgres.sh restart stop then start (the same port and data)
#
# The admin URL (user `conveyor`, a random password kept mode 600 in the data dir) names the
# `postgres` database; tests create a fresh database each from it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CONVEYOR_TEST_PG_DIR:-/tmp/conveyor-pg-$(id -u)-$(printf %s "$root" | sha256sum | cut -c1-8)}
data=$dir/data

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(bindir)" ]; then
  echo "dev: installing postgresql" >&2
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
bin=$(bindir)
as_owner=(); [ "$(id -u)" -eq 0 ] && as_owner=(runuser -u postgres --)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

init() {
  mkdir -p "$dir"
  chmod 700 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  umask 077
  python3 -c 'import secrets; print(secrets.token_urlsafe(18))' > "$dir/password"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/password"
  "${as_owner[@]}" "$bin/initdb" -D "$data" -U conveyor --auth=scram-sha-256 \
    --pwfile="$dir/password" -E UTF8 --locale=C.UTF-8 >/dev/null
  free_port > "$dir/port"
  cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $(cat "$dir/port")
unix_socket_directories = ''
max_connections = 300
shared_buffers = 64MB
logging_collector = off
CONF
}

running() { "${as_owner[@]}" "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

start() {
  [ -f "$data/PG_VERSION" ] || init
  if ! running; then
    "${as_owner[@]}" "$bin/pg_ctl" -D "$data" -l "$dir/log" -w -t 60 start >/dev/null
  fi
  echo "postgresql://conveyor:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/postgres"
}

case "${1:-start}" in
  start|url) start ;;
  stop) running && "${as_owner[@]}" "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null; true ;;
  restart) "$0" stop; "$0" start ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
