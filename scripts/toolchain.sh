#!/usr/bin/env bash
# Build the one environment every developer and CI use: Python 3.14 (Home Assistant's runtime)
# and 3.13 (the oldest the library supports), mosquitto, PostgreSQL 18 + TimescaleDB, chromium,
# socat, shellcheck (actionlint comes with the dev extra), and node with npm for the Lovelace
# cards (frontend/, built by scripts/frontend.sh). Where the host has python3.14 (>= 3.14.2) a
# plain venv is made; otherwise (Debian 12) a Debian testing root is built with debootstrap
# under .toolchain/root and used through scripts/in-env. Idempotent: a stamp keyed on this
# script and pyproject.toml skips work.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tool="$repo/.toolchain"
root="$tool/root"
suite=forky
mirror=${EDGE_EMS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Pinned together: this harness release ships Home Assistant 2026.10.4.
phcc_version=0.13.375
apt_packages=(mosquitto postgresql-18-timescaledb chromium socat python3.13 python3.13-venv
  python3.14-dev python3.13-dev gcc g++ make git procps iproute2 apparmor nodejs npm
  shellcheck)

log() { printf '\033[1m[toolchain]\033[0m %s\n' "$*" >&2; }

stamp_key() {
  cat "$0" "$repo/pyproject.toml" | sha256sum | cut -c1-16
}

host_python_ok() {
  command -v python3.14 >/dev/null 2>&1 &&
    python3.14 -c 'import sys; sys.exit(sys.version_info < (3, 14, 2))'
}

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "building the Debian $suite root needs root (debootstrap, chroot); run with sudo"
    exit 1
  fi
}

build_root() {
  need_root
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    apt-get install -y debootstrap >/dev/null
  fi
  # Debian 12's debootstrap knows no 'forky'; sid's script builds any testing suite.
  local script=/usr/share/debootstrap/scripts/sid
  rm -rf "$root.partial"
  log "debootstrap $suite into .toolchain/root (about a minute)"
  debootstrap --variant=minbase --include=python3.14,python3.14-venv,ca-certificates \
    "$suite" "$root.partial" "$mirror" "$script" >"$tool/debootstrap.log" 2>&1 ||
    { tail -20 "$tool/debootstrap.log"; exit 1; }
  mv "$root.partial" "$root"
}

provision_root() {
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  log "apt-get install ${apt_packages[*]}"
  # The mirror may serve a dated snapshot whose Release file has expired.
  "$repo/scripts/in-env" sh -c "
    apt-get -o Acquire::Check-Valid-Until=false update -q >/tmp/apt-update.log 2>&1 || { cat /tmp/apt-update.log; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${apt_packages[*]} \
      >/tmp/apt-install.log 2>&1 || { tail -30 /tmp/apt-install.log; exit 1; }
    systemctl disable mosquitto postgresql >/dev/null 2>&1 || true"
}

provision_host() {
  local servers=(mosquitto postgresql-18-timescaledb chromium socat python3.13-venv apparmor
    nodejs npm shellcheck)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "apt-get install ${servers[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${servers[@]}" >/dev/null
  else
    log "not root: make sure ${servers[*]} are installed"
  fi
}

make_venvs() {
  # Inside the root the venvs live under /opt; on a host with python3.14, under .toolchain/.
  local prefix=$1
  log "venv for Python 3.14 (Home Assistant $phcc_version harness + edge-ems[hub,dev])"
  "$repo/scripts/in-env" sh -ec "
    cd '$repo'
    [ -x $prefix/py314/bin/python ] || python3.14 -m venv $prefix/py314
    $prefix/py314/bin/pip install -q --upgrade pip
    $prefix/py314/bin/pip install -q pytest-homeassistant-custom-component==$phcc_version
    site=\$($prefix/py314/bin/python -c 'import homeassistant, os; print(os.path.dirname(homeassistant.__file__))')
    cp \$site/package_constraints.txt $prefix/ha-constraints.txt
    # As Home Assistant installs an integration's requirements: under its constraints.
    $prefix/py314/bin/pip install -q -c $prefix/ha-constraints.txt -e '.[hub,dev]'
    # What a real Home Assistant needs for its UI and the logbook (make demo, the logbook
    # tests): the frontend, and what listing actions imports (conversation, camera, voice).
    $prefix/py314/bin/pip install -q -c $prefix/ha-constraints.txt home-assistant-frontend \
      hassil gazetteer-matcher home-assistant-intents PyTurboJPEG mutagen ha-ffmpeg \
      pymicro-vad pyspeex-noise
    $prefix/py314/bin/pip check
    [ -x $prefix/py313/bin/python ] || python3.13 -m venv $prefix/py313
    $prefix/py313/bin/pip install -q --upgrade pip
    $prefix/py313/bin/pip install -q -c $prefix/ha-constraints.txt -e '.[hub,test]'
  "
}

build_frontend() {
  log "frontend: npm ci from frontend/package-lock.json, then the cards' bundle"
  "$repo/scripts/in-env" scripts/frontend.sh
}

main() {
  mkdir -p "$tool"
  local key
  key=$(stamp_key)
  if [ -f "$tool/stamp" ] && [ "$(cat "$tool/stamp")" = "$key" ]; then
    exit 0
  fi
  if host_python_ok; then
    echo host >"$tool/mode"
    provision_host
    make_venvs "$tool"
  else
    echo root >"$tool/mode"
    [ -x "$root/usr/bin/python3.14" ] || build_root
    provision_root
    make_venvs /opt/edge-ems
  fi
  build_frontend
  echo "$key" >"$tool/stamp"
  log "ready ($(cat "$tool/mode") mode)"
}

main "$@"
