#!/usr/bin/env bash
# Installs the Debian packages conveyor's tests and demo need, skipping what is already there.
set -euo pipefail
pkgs=(docker.io docker-registry docker-compose apache2-utils groovy debootstrap busybox-static caddy git curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm packs Node.js for the node:20-slim base image; any npm will do (a nodejs that bundles it too)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "dev: installing ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
