#!/usr/bin/env bash
# Starts a Docker engine when none answers (there is no systemd here), waits until it does.
# Never stops an engine it did not start.
set -euo pipefail
if docker info >/dev/null 2>&1; then
  exit 0
fi
echo "dev: starting dockerd (log: /var/log/dockerd.log)"
# setsid: the engine must outlive the shell (and process group) that started it
setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
for _ in $(seq 1 120); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "dev: dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
tail -20 /var/log/dockerd.log >&2 || true
exit 1
