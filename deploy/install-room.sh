#!/usr/bin/env bash
# Install (or update, or remove) the diemcau room agent on a room's Raspberry Pi
# (Raspberry Pi OS Bookworm, Pi 4 or Pi 5).
#
#   sudo deploy/install-room.sh --site firmware_config/sites/vq-tan-doan.yaml \
#        --bundle /path/to/rooms/vq-tan-doan [--wheelhouse DIR] [--model pi4|pi5]
#   sudo deploy/install-room.sh                      # update: keeps the room's site and bundle
#   sudo deploy/install-room.sh --uninstall [--purge]
#   deploy/install-room.sh --root /mnt/image --site ... --bundle ...   # into a mounted image
#
# What it does (each step only where something differs, so running it again is safe):
#   0. refuses, changing nothing, a site file that does not validate or whose serial devices
#      have no adapter identity (diemcau-agent adapters --write), or a bundle for another room
#   1. apt: python3-venv and polkitd if missing (not with --wheelhouse/--no-apt)
#   2. system user "diemcau" in groups gpio and dialout
#   3. the source tree into /opt/diemcau, a venv /opt/diemcau/.venv with ".[pi]",
#      /usr/local/bin/diemcau-agent
#   4. /etc/diemcau: site.yaml (its broker: section from the bundle's broker.yaml), the
#      bundle (tls/, credentials.yaml), secrets readable by root and group diemcau only
#   5. systemd units, the udev rules GENERATED from the site file, polkit rule, modules-load,
#      hardware-watchdog drop-in
#   6. the diemcau block in /boot/firmware/config.txt, generated from the site file
#      (replaced between marker lines; shutdown overlays disabled)
#   7. enable; check-config; restart the agent if anything changed — unless a window locks
#      the room: then the restart is deferred to the lock's end (diemcau-agent-restart.timer)
# --dry-run prints the plan and changes nothing. --root DIR installs into DIR (an image):
# units are enabled by symlink, and nothing acts on the running system (no apt, pip,
# systemctl, udevadm). --uninstall removes the code, units, rules and boot block, keeping
# /etc/diemcau and /var/lib/diemcau (and the user) unless --purge. The last line says
# "result: changed" or "result: unchanged". See docs/deploy.md.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
ROOT=""
DRY_RUN=0
SITE=""
BUNDLE=""
WHEELHOUSE=""
MODEL=""
HELPER_PY=""
NO_APT=0
NO_START=0
UNINSTALL=0
PURGE=0
PREFIX=/opt/diemcau
ETC=/etc/diemcau
STATE=/var/lib/diemcau
UNIT=diemcau-agent.service
RESTART_UNITS=(diemcau-agent-restart.service diemcau-agent-restart.timer)
RULES=/etc/udev/rules.d/99-diemcau-serial.rules
SYSUSERS=/usr/lib/sysusers.d/diemcau.conf

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit "${1:-0}"; }
die() { echo "install-room: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --site) SITE=${2:?--site needs a file}; shift 2 ;;
    --bundle) BUNDLE=${2:?--bundle needs a directory}; shift 2 ;;
    --wheelhouse) WHEELHOUSE=${2:?--wheelhouse needs a directory}; NO_APT=1; shift 2 ;;
    --model) MODEL=${2:?--model needs pi4, pi5 or any}; shift 2 ;;
    --python) HELPER_PY=${2:?--python needs an interpreter}; shift 2 ;;
    --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
    --no-apt) NO_APT=1; shift ;;
    --no-start) NO_START=1; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    --dry-run|-n) DRY_RUN=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install-room: unknown option $1" >&2; usage 2 ;;
  esac
done

STAGED=0
if [ -n "$ROOT" ] && [ "$ROOT" != / ]; then
  STAGED=1
  ROOT=$(cd "$ROOT" 2>/dev/null && pwd) || die "--root $ROOT: no such directory"
else
  ROOT=""
fi
[ -f "$src/pyproject.toml" ] && [ -d "$src/agent" ] || die "run me from a diemcau source tree"
[ "$PURGE" -eq 0 ] || [ "$UNINSTALL" -eq 1 ] || die "--purge goes with --uninstall"
[ -z "$SITE" ] || [ -f "$SITE" ] || die "--site $SITE: no such file"
[ -z "$BUNDLE" ] || [ -d "$BUNDLE/tls" ] || die "--bundle $BUNDLE: expected a directory with tls/ (from diemcau-broker add-room)"
[ -z "$WHEELHOUSE" ] || [ -d "$WHEELHOUSE" ] || die "--wheelhouse $WHEELHOUSE: no such directory"
case "$MODEL" in ""|pi4|pi5|any) ;; *) die "--model $MODEL: choose pi4, pi5 or any" ;; esac
if [ "$DRY_RUN" -eq 0 ] && [ "$STAGED" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  die "must run as root (sudo), or use --dry-run"
fi

REBOOT=0
CHANGED=0
step() { echo "==> $*"; }
note() { echo "    $*"; }
quote() { printf '%q ' "$@"; }
# Commands that act on the running system: printed with --dry-run, never run with --root.
sys() {
  if [ "$DRY_RUN" -eq 1 ]; then echo "    + $(quote "$@")"
  elif [ "$STAGED" -eq 1 ]; then :
  else "$@"; fi
}
# Commands that change files under $ROOT: printed with --dry-run, run otherwise.
fs() {
  if [ "$DRY_RUN" -eq 1 ]; then echo "    + $(quote "$@")"; else "$@"; fi
}
# Ownership only means something on the real system (the user may not exist in an image).
own() { if [ "$STAGED" -eq 0 ]; then fs chown "$@"; fi; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# install_file SRC DEST MODE [GROUP]: copy when missing or different, then set mode (and group).
install_file() {
  local from=$1 dest=$ROOT$2 mode=$3 group=${4:-root}
  if [ -f "$dest" ] && cmp -s "$from" "$dest"; then
    note "unchanged: $2"
  else
    note "install: $2"
    fs install -D -m "$mode" "$from" "$dest"
    CHANGED=1
  fi
  own "root:$group" "$dest"
  if [ -e "$dest" ] && [ "$(stat -c %a "$dest")" != "${mode#0}" ]; then fs chmod "$mode" "$dest"; fi
}
remove_path() {
  if [ -e "$ROOT$1" ] || [ -L "$ROOT$1" ]; then note "remove: $1"; fs rm -rf "$ROOT$1"; CHANGED=1; fi
}
# enable UNIT TARGET: systemctl enable, or in an image the symlink systemctl would make.
enable_unit() {
  local unit=$1 target=$2 link=$ROOT/etc/systemd/system/$2.wants/$1
  if [ "$STAGED" -eq 1 ]; then
    if [ "$(readlink "$link" 2>/dev/null)" != "/etc/systemd/system/$unit" ]; then
      note "enable (symlink): ${link#"$ROOT"}"
      fs mkdir -p "$(dirname "$link")"
      fs ln -sfn "/etc/systemd/system/$unit" "$link"
      CHANGED=1
    fi
  else
    sys systemctl enable --quiet "$unit"
  fi
}

# A Python that can import the agent from this source tree (for the checks and generators).
python_ok() { [ -n "$1" ] && PYTHONPATH="$src" "$1" -c 'import agent.install.udev, serial' >/dev/null 2>&1; }
PY=""
find_python() {
  local c
  for c in "$HELPER_PY" "$src/.venv/bin/python" "$ROOT$PREFIX/.venv/bin/python" python3; do
    if python_ok "$c"; then PY=$c; return 0; fi
  done
  return 1
}
helper() { PYTHONPATH="$src" "$PY" -m agent.install "$@"; }

# The running agent's lock, if it holds one (real system only): "kind window_id", or "".
agent_lock() {
  [ "$STAGED" -eq 0 ] && [ -n "$PY" ] && [ -S "$STATE/agent.sock" ] || return 0
  PYTHONPATH="$src" "$PY" - "$STATE" <<'EOF' 2>/dev/null || true
import sys
from pathlib import Path
from agent.install.pending import lock_of
lock = lock_of(Path(sys.argv[1]))
if lock:
    print(f"{lock.get('kind')} {lock.get('window_id')}")
EOF
}

# ------------------------------------------------------------------------------------------
if [ "$UNINSTALL" -eq 1 ]; then
  find_python || true
  locked=$(agent_lock)
  [ -z "$locked" ] || die "refusing to uninstall: the room is locked by $locked (the agent must keep the lock until the district marks it complete); try again after it"
  step "uninstall"
  sys systemctl disable --now --quiet "$UNIT" "${RESTART_UNITS[1]}" || true
  remove_path "/etc/systemd/system/multi-user.target.wants/$UNIT"
  remove_path "/etc/systemd/system/timers.target.wants/${RESTART_UNITS[1]}"
  for u in "$UNIT" "${RESTART_UNITS[@]}"; do remove_path "/etc/systemd/system/$u"; done
  for f in /etc/systemd/system.conf.d/diemcau-watchdog.conf /etc/modules-load.d/diemcau.conf \
           /etc/polkit-1/rules.d/50-diemcau-agent.rules "$RULES" "$SYSUSERS" \
           /usr/local/bin/diemcau-agent "$PREFIX"; do
    remove_path "$f"
  done
  boot=$ROOT/boot/firmware/config.txt
  [ -f "$boot" ] || [ ! -f "$ROOT/boot/config.txt" ] || boot=$ROOT/boot/config.txt
  if [ -f "$boot" ] && grep -q '^# BEGIN diemcau' "$boot"; then
    awk -v b="# BEGIN diemcau" -v e="# END diemcau" \
      'index($0, b) == 1 {skip = 1; next} skip && $0 == e {skip = 0; next} !skip' "$boot" > "$tmp/boot"
    sed -i -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$tmp/boot"
    note "remove the diemcau block from ${boot#"$ROOT"} (relay pins are no longer held at boot)"
    fs install -m 0644 "$tmp/boot" "$boot"
    CHANGED=1; REBOOT=1
  fi
  if [ "$PURGE" -eq 1 ]; then
    remove_path "$ETC"
    remove_path "$STATE"
    if getent passwd diemcau >/dev/null 2>&1; then sys userdel diemcau; fi
  else
    for d in "$ETC" "$STATE"; do [ ! -e "$ROOT$d" ] || note "kept: $d (--purge removes it)"; done
  fi
  sys systemctl daemon-reload
  sys udevadm control --reload
  [ "$REBOOT" -eq 0 ] || note "REBOOT NEEDED for the boot configuration"
  if [ "$DRY_RUN" -eq 1 ]; then echo "dry run: nothing was changed"; fi
  if [ "$CHANGED" -eq 1 ]; then echo "result: changed"; else echo "result: unchanged"; fi
  exit 0
fi

# ------------------------------------------------------------------------------------------
step "0. checks"
INSTALLED_SITE=$ROOT$ETC/site.yaml
USE_SITE=${SITE:-$INSTALLED_SITE}
[ -f "$USE_SITE" ] || die "no site file: give --site FILE (the room's firmware_config/sites/<site>.yaml)"
checked=0
preflight() {
  # Every reason to refuse, before anything outside $PREFIX is written.
  local bargs=()
  helper preflight "$USE_SITE" || die "refused: $USE_SITE cannot be installed (reasons above); nothing else was changed"
  if [ -n "$SITE" ]; then
    if [ -n "$BUNDLE" ]; then bargs=(--bundle "$BUNDLE"); else bargs=(--broker-yaml "$ROOT$ETC/broker.yaml"); fi
    helper site-file "$SITE" "${bargs[@]}" > "$tmp/site.yaml" || die "refused: see above; nothing else was changed"
  fi
  helper udev-rules "$USE_SITE" > "$tmp/udev.rules" || die "refused: see above"
  checked=1
  note "site $(basename "$USE_SITE"): valid, every serial adapter identified"
}
if find_python; then preflight; else note "no Python with the agent's libraries yet: the checks run once the venv exists (step 3)"; fi

step "1. packages"
if [ "$NO_APT" -eq 1 ] || [ "$STAGED" -eq 1 ]; then
  note "skipped (--no-apt / --wheelhouse / --root)"
else
  pkgs=()
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || pkgs+=(python3-venv)
  dpkg-query -W -f='${Status}' polkitd 2>/dev/null | grep -q "ok installed" || pkgs+=(polkitd)
  if [ ${#pkgs[@]} -gt 0 ]; then
    sys apt-get update -qq
    sys env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}"
  else
    note "python3-venv and polkitd present"
  fi
fi

step "2. user diemcau (groups gpio, dialout)"
install_file "$src/deploy/sysusers.d/diemcau.conf" "$SYSUSERS" 0644
if [ "$STAGED" -eq 1 ]; then
  if [ -f "$ROOT/etc/passwd" ] && command -v systemd-sysusers >/dev/null 2>&1; then
    if ! grep -q '^diemcau:' "$ROOT/etc/passwd"; then
      fs systemd-sysusers --root="$ROOT" "$ROOT$SYSUSERS"; CHANGED=1
    fi
  else
    note "image without /etc/passwd here: systemd-sysusers creates the user from $SYSUSERS"
  fi
else
  if ! getent group gpio >/dev/null 2>&1; then
    note "group gpio missing (not Raspberry Pi OS?): creating it; /dev/gpiochip* must belong to it"
    sys groupadd --system gpio
  fi
  if getent passwd diemcau >/dev/null 2>&1; then
    id -nG diemcau 2>/dev/null | tr ' ' '\n' | grep -qx dialout && id -nG diemcau | tr ' ' '\n' | grep -qx gpio ||
      sys usermod -a -G gpio,dialout diemcau
  else
    sys useradd --system --user-group --home-dir "$STATE" --no-create-home \
      --shell /usr/sbin/nologin --groups gpio,dialout --comment "diemcau room agent" diemcau
  fi
fi

step "3. code in $PREFIX and its venv"
tree_sum() { [ -d "$ROOT$PREFIX" ] || return 0; (cd "$ROOT$PREFIX" && find . -path ./.venv -prune -o -type f -print0 | sort -z | xargs -0 -r sha256sum | sha256sum); }
before=$(tree_sum)
fs mkdir -p "$ROOT$PREFIX"
excludes=(.venv .git run __pycache__ .pytest_cache .ruff_cache .hypothesis '*.egg-info' build dist node_modules)
if command -v rsync >/dev/null 2>&1; then
  args=(-a --delete --exclude=/.venv)
  for e in "${excludes[@]}"; do args+=("--exclude=$e"); done
  fs rsync "${args[@]}" "$src/" "$ROOT$PREFIX/"
else
  # No rsync: empty the tree (keeping the venv) and copy it again with tar.
  if [ "$DRY_RUN" -eq 1 ]; then
    echo "    + remove everything in $ROOT$PREFIX except .venv; tar copy of $src"
  else
    find "$ROOT$PREFIX" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
    targs=()
    for e in "${excludes[@]}"; do targs+=("--exclude=$e"); done
    tar -C "$src" "${targs[@]}" -cf - . | tar -C "$ROOT$PREFIX" -xf -
  fi
fi
[ "$DRY_RUN" -eq 1 ] || chmod -R u=rwX,go=rX "$ROOT$PREFIX"
own -R root:root "$ROOT$PREFIX"
code_changed=0
if [ "$(tree_sum)" != "$before" ]; then code_changed=1; CHANGED=1; note "code updated"; else note "code unchanged"; fi
pip_opts=(--disable-pip-version-check --quiet)
[ -z "$WHEELHOUSE" ] || pip_opts+=(--no-index --find-links "$WHEELHOUSE")
if [ "$STAGED" -eq 1 ]; then
  note "image: the venv $PREFIX/.venv is built on the Pi (run this script there once, or python3 -m venv + pip install '$PREFIX[pi]')"
else
  if [ ! -x "$PREFIX/.venv/bin/python" ]; then
    sys python3 -m venv "$PREFIX/.venv"; code_changed=1
  fi
  if [ "$code_changed" -eq 1 ]; then
    # Dependencies first, then the project itself again (same version number, new code).
    sys "$PREFIX/.venv/bin/python" -m pip install "${pip_opts[@]}" "$PREFIX[pi]"
    sys "$PREFIX/.venv/bin/python" -m pip install "${pip_opts[@]}" --no-deps --force-reinstall "$PREFIX"
  else
    note "venv up to date"
  fi
fi
# Operators and technicians type "diemcau-agent status" without the venv path.
if [ "$(readlink "$ROOT/usr/local/bin/diemcau-agent" 2>/dev/null)" != "$PREFIX/.venv/bin/diemcau-agent" ]; then
  fs mkdir -p "$ROOT/usr/local/bin"
  fs ln -sfn "$PREFIX/.venv/bin/diemcau-agent" "$ROOT/usr/local/bin/diemcau-agent"
  CHANGED=1
fi
if [ "$checked" -eq 0 ]; then
  if [ "$DRY_RUN" -eq 0 ] && find_python; then preflight; else
    [ "$DRY_RUN" -eq 1 ] || die "no Python can import the agent (pip failed?): nothing configured"
    note "dry run: checks skipped (no venv yet)"
  fi
fi

step "4. configuration in $ETC"
if [ ! -d "$ROOT$ETC" ]; then fs install -d -m 0750 "$ROOT$ETC"; CHANGED=1; fi
own root:diemcau "$ROOT$ETC"
if [ -n "$SITE" ]; then
  if [ -s "$tmp/site.yaml" ]; then install_file "$tmp/site.yaml" "$ETC/site.yaml" 0640 diemcau
  else note "dry run: would install $SITE as $ETC/site.yaml (broker section from the bundle)"; fi
else
  note "keeping $ETC/site.yaml"
fi
if [ -n "$BUNDLE" ]; then
  if [ ! -d "$ROOT$ETC/tls" ]; then fs install -d -m 0750 "$ROOT$ETC/tls"; CHANGED=1; fi
  own root:diemcau "$ROOT$ETC/tls"
  for f in "$BUNDLE"/tls/*; do
    [ -f "$f" ] || continue
    case "$f" in
      *.key) install_file "$f" "$ETC/tls/$(basename "$f")" 0640 diemcau ;;
      *) install_file "$f" "$ETC/tls/$(basename "$f")" 0644 ;;
    esac
  done
  [ ! -f "$BUNDLE/credentials.yaml" ] || install_file "$BUNDLE/credentials.yaml" "$ETC/credentials.yaml" 0640 diemcau
  [ ! -f "$BUNDLE/broker.yaml" ] || install_file "$BUNDLE/broker.yaml" "$ETC/broker.yaml" 0644
fi

step "5. systemd units, udev rules, polkit, modules, watchdog"
units_before=$CHANGED; CHANGED=0
for u in "$UNIT" "${RESTART_UNITS[@]}"; do install_file "$src/deploy/systemd/$u" "/etc/systemd/system/$u" 0644; done
install_file "$src/deploy/systemd/system.conf.d/diemcau-watchdog.conf" \
  /etc/systemd/system.conf.d/diemcau-watchdog.conf 0644
units_changed=$CHANGED; CHANGED=$((units_before | CHANGED))
install_file "$src/deploy/modules-load.d/diemcau.conf" /etc/modules-load.d/diemcau.conf 0644
install_file "$src/deploy/polkit/50-diemcau-agent.rules" /etc/polkit-1/rules.d/50-diemcau-agent.rules 0644
rules_before=$CHANGED; CHANGED=0
if [ -s "$tmp/udev.rules" ]; then
  install_file "$tmp/udev.rules" "$RULES" 0644
else
  note "dry run: would install the udev rules generated from the site file"
fi
rules_changed=$CHANGED; CHANGED=$((rules_before | CHANGED))

step "6. boot configuration"
boot=$ROOT/boot/firmware/config.txt
[ -f "$boot" ] || [ ! -f "$ROOT/boot/config.txt" ] || boot=$ROOT/boot/config.txt
if [ -z "$MODEL" ]; then
  MODEL=any
  if [ "$STAGED" -eq 0 ] && [ -n "$PY" ]; then
    MODEL=$(PYTHONPATH="$src" "$PY" -c 'from agent.install.bootcfg import detect_model; print(detect_model() or "any")')
  fi
fi
note "board: $MODEL"
if [ -z "$PY" ]; then
  note "dry run: would write the diemcau block generated from the site file"
else
  helper boot-merge "$USE_SITE" "$boot" --model "$MODEL" > "$tmp/config.txt"
  if [ -f "$boot" ] && cmp -s "$tmp/config.txt" "$boot"; then
    note "unchanged: ${boot#"$ROOT"}"
  else
    note "update: ${boot#"$ROOT"} (reboot needed)"
    REBOOT=1; CHANGED=1
    if [ -f "$boot" ] && [ ! -f "$boot.diemcau-orig" ]; then fs cp -p "$boot" "$boot.diemcau-orig"; fi
    fs install -D -m 0644 "$tmp/config.txt" "$boot"
  fi
fi
uart=0
if [ -n "$PY" ]; then
  uart=$(PYTHONPATH="$src" "$PY" -c 'import sys; from pathlib import Path; from agent.config import load_config; from agent.install.udev import uses_pi_uart; print(1 if uses_pi_uart(load_config(Path(sys.argv[1]))) else 0)' "$USE_SITE")
fi
cmdline=$(dirname "$boot")/cmdline.txt
if [ "$uart" -eq 1 ] && [ -f "$cmdline" ] && grep -q 'console=serial0,[0-9]* *' "$cmdline"; then
  note "remove the serial console from ${cmdline#"$ROOT"} (the UART belongs to a room device)"
  [ -f "$cmdline.diemcau-orig" ] || fs cp -p "$cmdline" "$cmdline.diemcau-orig"
  fs sed -i 's/console=serial0,[0-9]* *//' "$cmdline"
  REBOOT=1; CHANGED=1
fi

step "7. enable and start"
[ "$units_changed" -eq 0 ] || sys systemctl daemon-reload
if [ "$rules_changed" -eq 1 ]; then
  sys udevadm control --reload
  sys udevadm trigger --subsystem-match=tty --action=add
fi
if [ "$uart" -eq 1 ] && [ "$STAGED" -eq 0 ] && systemctl cat hciuart.service >/dev/null 2>&1; then
  sys systemctl disable --now --quiet hciuart.service   # the PL011 is the room device's now
fi
enable_unit "$UNIT" multi-user.target
enable_unit "${RESTART_UNITS[1]}" timers.target
if [ "$STAGED" -eq 1 ]; then
  note "image: the agent starts at first boot"
elif [ "$NO_START" -eq 1 ]; then
  note "not starting (--no-start)"
else
  sys "$PREFIX/.venv/bin/diemcau-agent" check-config "$ETC/site.yaml"
  sys systemctl start "${RESTART_UNITS[1]}"
  if [ "$CHANGED" -eq 1 ]; then
    # Restart now, or (room locked) leave a marker the timer acts on when the lock ends.
    sys "$PREFIX/.venv/bin/python" -m agent.install restart --state-dir "$STATE" \
      --reason "install-room.sh $(date -Is)"
  else
    note "nothing changed: the agent is not restarted"
    sys systemctl start "$UNIT"
  fi
fi
if [ "$REBOOT" -eq 1 ]; then
  note "REBOOT NEEDED for the boot configuration (relay pins, watchdog, UART): sudo reboot"
fi
if [ "$DRY_RUN" -eq 1 ]; then echo "dry run: nothing was changed"; fi
if [ "$CHANGED" -eq 1 ]; then echo "result: changed"; else echo "result: unchanged"; fi
