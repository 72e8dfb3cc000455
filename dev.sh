#!/usr/bin/env bash
# conveyor's one set-up script. On a fresh Debian machine it installs and starts everything
# (Debian packages, a Docker engine, local base images, the virtualenv), skipping what is there.
#
#   ./dev.sh demo [ARGS]   set up, then run the end-to-end demo (`conveyor demo`)
#   ./dev.sh test [ARGS]   set up, then run lint, type checks and the whole test suite
#   ./dev.sh setup         set up only
#   ./dev.sh down          remove what the demo started (`conveyor demo --down`), stop the tests' PostgreSQL
set -euo pipefail
cd "$(dirname "$0")"
root=$PWD
venv="$root/.venv"

# The dashboard's browser tests drive Debian's chromium through Playwright (never `playwright
# install`: tests/dashboard/conftest.py points Playwright at /usr/bin/chromium).
browser() {
  if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
    echo "dev: installing chromium"
    sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
}

setup() {
  scripts/system-deps.sh
  browser
  scripts/start-docker.sh
  if [ ! -x "$venv/bin/python" ]; then
    echo "dev: creating $venv"
    python3 -m venv "$venv"
  fi
  stamp="$venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "dev: installing conveyor and its test extras"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -e ".[test]"
    rm -f "$venv"/.installed-* && touch "$stamp"
  fi
  scripts/base-images.sh
  # the tests' PostgreSQL (a throwaway cluster of this checkout, see scripts/postgres.sh)
  scripts/postgres.sh start >/dev/null
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    setup ;;
  test)
    setup
    echo "dev: ruff"
    "$venv/bin/ruff" check --no-cache src tests bench examples
    "$venv/bin/ruff" format --no-cache --check src tests bench examples
    echo "dev: mypy"
    "$venv/bin/mypy" src/conveyor
    echo "dev: pytest"
    exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@" ;;
  demo)
    setup
    exec "$venv/bin/conveyor" demo "$@" ;;
  down)
    scripts/postgres.sh stop
    exec "$venv/bin/conveyor" demo --down "$@" ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2 ;;
esac
