#!/usr/bin/env bash
# Set up everything diemcau needs on a fresh Debian 12 / Raspberry Pi OS machine:
# Mosquitto (broker and clients), OpenSSL, a Python venv in .venv with the project installed.
# With --test, also what the test suite checks with (systemd-analyze, node, dbus-daemon,
# systemd-inhibit, rsync, chromium; ansible-core, ansible-lint and Playwright come with the
# venv's test extras).
# Safe to run again: it only installs what is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv python3-pip)
if [ "${1:-}" = "--test" ]; then
  # The tests also check the systemd unit (systemd-analyze) and the polkit rule (node --check).
  command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
  command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
  # The console's PostgreSQL store is tested on a real server (initdb/pg_ctl in a temp dir).
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need_apt+=(postgresql)
  # The logind inhibitor test runs the real systemd-inhibit against a fake logind on a
  # private bus (dbus-daemon); the installer tests use rsync like the Pi does.
  command -v systemd-inhibit >/dev/null 2>&1 || need_apt+=(systemd)
  command -v dbus-daemon >/dev/null 2>&1 || need_apt+=(dbus)
  command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)
  # The dashboard's browser test drives Debian's Chromium (Playwright never downloads one).
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need_apt[*]} with apt-get" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Debian starts the packaged broker on port 1883; diemcau starts its own brokers with its own
# configs, so the packaged one is left as the system administrator set it.

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.diemcau-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log=$(mktemp)
  if ! { .venv/bin/python -m pip install -q --upgrade pip &&
         .venv/bin/python -m pip install -q -e ".[test]"; } >"$log" 2>&1; then
    cat "$log" >&2; echo "bootstrap: pip install failed" >&2; exit 1
  fi
  rm -f "$log"
  touch "$stamp"
fi
