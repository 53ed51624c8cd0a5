#!/usr/bin/env bash
# nlpzk quick start. Two commands on a fresh Debian/Ubuntu machine:
#   ./run.sh demo   set everything up, then run the end-to-end job on the embedded ZooKeeper
#   ./run.sh test   set everything up, then run the test suite (what CI runs)
# Set-up (idempotent): a JRE and ZooKeeper (apt-get, with sudo when not root) if absent,
# python3-venv if needed, a virtualenv in .venv with nlpzk and its test extras.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${NLPZK_VENV:-.venv}
PY=${PYTHON:-python3}

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@";
  elif command -v sudo >/dev/null; then sudo "$@";
  else die "need root to run: $* (no sudo found)"; fi
}

apt_install() {
  command -v apt-get >/dev/null || return 1
  say "installing $* with apt-get"
  if [ -z "${_APT_UPDATED:-}" ]; then as_root apt-get update -qq; _APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

have_zookeeper() {
  if [ -n "${ZOOKEEPER_HOME:-}" ]; then ls "$ZOOKEEPER_HOME"/lib/zookeeper-*.jar "$ZOOKEEPER_HOME"/zookeeper-*.jar >/dev/null 2>&1; return; fi
  [ -f /usr/share/java/zookeeper.jar ]
}

setup_system() {
  local need=()
  command -v java >/dev/null || [ -x "${JAVA_HOME:-/nonexistent}/bin/java" ] || need+=(default-jre-headless)
  have_zookeeper || need+=(zookeeper)
  "$PY" -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
  # the fault-injection tests cut a worker off in a network namespace (ip netns) and fill a tmpfs
  # and the TLS tests make their certificates with openssl
  if [ "${1:-}" = test ]; then
    command -v ip >/dev/null || need+=(iproute2)
    command -v openssl >/dev/null || need+=(openssl)
  fi
  if [ ${#need[@]} -gt 0 ]; then
    apt_install "${need[@]}" || die "cannot install ${need[*]}: no apt-get here. Install a JRE and Apache ZooKeeper, and set ZOOKEEPER_HOME to the unpacked release."
  fi
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "Python >= 3.10 is needed (found $("$PY" --version))"
}

setup_python() {
  local stamp="$VENV/.nlpzk-installed"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV"
    "$PY" -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing nlpzk and its dependencies into $VENV"
    local log="$VENV/pip-install.log"
    if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check -U pip &&
           "$VENV/bin/python" -m pip install --disable-pip-version-check -e ".[test]"; } >"$log" 2>&1; then
      tail -n 30 "$log" >&2
      die "installing the Python packages failed (full log: $log)"
    fi
    touch "$stamp"
  fi
}

setup() { setup_system "${1:-}"; setup_python; }

case "${1:-}" in
  setup) setup test ;;
  demo)  shift; setup demo; exec "$VENV/bin/nlpzk" demo "$@" ;;
  test)  shift; setup test; exec "$VENV/bin/python" -m pytest "$@" ;;
  *) echo "usage: ./run.sh demo|test|setup [args...]" >&2; exit 2 ;;
esac
