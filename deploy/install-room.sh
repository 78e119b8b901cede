#!/usr/bin/env bash
# Install (or update) the diemcau room agent on a room's Raspberry Pi (Raspberry Pi OS Bookworm).
#
#   sudo deploy/install-room.sh --site firmware_config/sites/vq-tan-doan.yaml \
#        --bundle /path/to/rooms/vq-tan-doan [--udev-rules my-room.rules] [--wheelhouse DIR]
#
# What it does (every step is skipped when already done, so running it again is safe):
#   1. apt: python3-venv and polkitd if missing (not with --wheelhouse/--no-apt)
#   2. system user "diemcau" in groups gpio and dialout
#   3. the source tree into /opt/diemcau, a venv /opt/diemcau/.venv with ".[pi]",
#      /usr/local/bin/diemcau-agent
#   4. /etc/diemcau: site.yaml, the broker hand-over bundle (tls/, credentials.yaml), with
#      secrets readable by root and group diemcau only
#   5. systemd unit, udev rules, polkit rule, modules-load and hardware-watchdog drop-ins
#   6. the diemcau block in /boot/firmware/config.txt (replaced between marker lines)
#   7. systemctl enable; check-config; restart the agent (not with --no-start)
# See docs/deploy.md. --dry-run prints the plan and changes nothing. --root DIR stages the
# files into DIR instead of / (image building, tests): commands that act on the running
# system (apt, useradd, pip, systemctl, udevadm) are printed, not run.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
ROOT=/
DRY_RUN=0
SITE=""
BUNDLE=""
UDEV_RULES=""
WHEELHOUSE=""
NO_APT=0
NO_START=0
PREFIX=/opt/diemcau
ETC=/etc/diemcau
UNIT=diemcau-agent.service
BEGIN_MARK="# BEGIN diemcau (managed by deploy/install-room.sh; edit firmware_config/boot/)"
END_MARK="# END diemcau"

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit "${1:-0}"; }
die() { echo "install-room: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --site) SITE=${2:?--site needs a file}; shift 2 ;;
    --bundle) BUNDLE=${2:?--bundle needs a directory}; shift 2 ;;
    --udev-rules) UDEV_RULES=${2:?--udev-rules needs a file}; shift 2 ;;
    --wheelhouse) WHEELHOUSE=${2:?--wheelhouse needs a directory}; NO_APT=1; shift 2 ;;
    --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
    --no-apt) NO_APT=1; shift ;;
    --no-start) NO_START=1; shift ;;
    --dry-run|-n) DRY_RUN=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install-room: unknown option $1" >&2; usage 2 ;;
  esac
done

ROOT=${ROOT%/}
STAGED=0
if [ -n "$ROOT" ]; then STAGED=1; ROOT=$(cd "$ROOT" 2>/dev/null && pwd) || die "--root $ROOT: no such directory"; fi
[ -f "$src/pyproject.toml" ] && [ -d "$src/agent" ] || die "run me from a diemcau source tree"
[ -z "$SITE" ] || [ -f "$SITE" ] || die "--site $SITE: no such file"
[ -z "$BUNDLE" ] || [ -d "$BUNDLE/tls" ] || die "--bundle $BUNDLE: expected a directory with tls/ (from diemcau-broker add-room)"
[ -z "$UDEV_RULES" ] || [ -f "$UDEV_RULES" ] || die "--udev-rules $UDEV_RULES: no such file"
[ -z "$WHEELHOUSE" ] || [ -d "$WHEELHOUSE" ] || die "--wheelhouse $WHEELHOUSE: no such directory"
if [ "$DRY_RUN" -eq 0 ] && [ "$STAGED" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  die "must run as root (sudo), or use --dry-run"
fi

REBOOT=0
step() { echo "==> $*"; }
note() { echo "    $*"; }
quote() { printf '%q ' "$@"; }
# Commands that act on the running system: printed with --dry-run and --root, run otherwise.
sys() {
  if [ "$DRY_RUN" -eq 1 ]; then echo "    + $(quote "$@")"
  elif [ "$STAGED" -eq 1 ]; then echo "    (staged, not run) $(quote "$@")"
  else "$@"; fi
}
# Commands that change files under $ROOT: printed with --dry-run, run otherwise.
fs() {
  if [ "$DRY_RUN" -eq 1 ]; then echo "    + $(quote "$@")"; else "$@"; fi
}
# Ownership only means something on the real system (the user may not exist in a staged root).
own() { if [ "$STAGED" -eq 0 ]; then fs chown "$@"; fi; }

# install_file SRC DEST MODE [GROUP]: copy when missing or different, then set mode (and group).
install_file() {
  local from=$1 dest=$ROOT$2 mode=$3 group=${4:-root}
  if [ -f "$dest" ] && cmp -s "$from" "$dest"; then
    note "unchanged: $2"
  else
    note "install: $2"
    fs install -D -m "$mode" "$from" "$dest"
  fi
  own "root:$group" "$dest"
  fs chmod "$mode" "$dest"
}

# ------------------------------------------------------------------------------------------
step "1. packages"
if [ "$NO_APT" -eq 1 ]; then
  note "skipped (--no-apt / --wheelhouse)"
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
if ! getent group gpio >/dev/null 2>&1; then
  note "group gpio missing (not Raspberry Pi OS?): creating it; /dev/gpiochip* must belong to it"
  sys groupadd --system gpio
fi
if getent passwd diemcau >/dev/null 2>&1; then
  sys usermod -a -G gpio,dialout diemcau
else
  sys useradd --system --user-group --home-dir /var/lib/diemcau --no-create-home \
    --shell /usr/sbin/nologin --groups gpio,dialout --comment "diemcau room agent" diemcau
fi

step "3. code in $PREFIX and its venv"
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
fs chmod -R u=rwX,go=rX "$ROOT$PREFIX"
own -R root:root "$ROOT$PREFIX"
pip_opts=(--disable-pip-version-check --quiet)
[ -z "$WHEELHOUSE" ] || pip_opts+=(--no-index --find-links "$WHEELHOUSE")
if [ ! -x "$ROOT$PREFIX/.venv/bin/python" ]; then
  sys python3 -m venv "$PREFIX/.venv"
else
  note "venv exists"
fi
# Dependencies first, then the project itself again (same version number, new code).
sys "$PREFIX/.venv/bin/python" -m pip install "${pip_opts[@]}" "$PREFIX[pi]"
sys "$PREFIX/.venv/bin/python" -m pip install "${pip_opts[@]}" --no-deps --force-reinstall "$PREFIX"

# Operators and technicians type "diemcau-agent status" without the venv path.
if [ "$(readlink "$ROOT/usr/local/bin/diemcau-agent" 2>/dev/null)" != "$PREFIX/.venv/bin/diemcau-agent" ]; then
  fs mkdir -p "$ROOT/usr/local/bin"
  fs ln -sfn "$PREFIX/.venv/bin/diemcau-agent" "$ROOT/usr/local/bin/diemcau-agent"
fi

step "4. configuration in $ETC"
fs install -d -m 0750 "$ROOT$ETC"
own root:diemcau "$ROOT$ETC"
if [ -n "$SITE" ]; then
  install_file "$SITE" "$ETC/site.yaml" 0640 diemcau
elif [ -f "$ROOT$ETC/site.yaml" ]; then
  note "keeping $ETC/site.yaml"
else
  note "WARNING: no $ETC/site.yaml yet: give --site FILE (the agent will not start without it)"
fi
if [ -n "$BUNDLE" ]; then
  fs install -d -m 0750 "$ROOT$ETC/tls"
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
  note "the site file's broker: section must match $ETC/broker.yaml"
fi

step "5. systemd unit, udev rules, polkit, modules, watchdog"
install_file "$src/deploy/systemd/$UNIT" "/etc/systemd/system/$UNIT" 0644
install_file "$src/deploy/systemd/system.conf.d/diemcau-watchdog.conf" \
  /etc/systemd/system.conf.d/diemcau-watchdog.conf 0644
install_file "$src/deploy/modules-load.d/diemcau.conf" /etc/modules-load.d/diemcau.conf 0644
install_file "$src/deploy/polkit/50-diemcau-agent.rules" /etc/polkit-1/rules.d/50-diemcau-agent.rules 0644
rules=/etc/udev/rules.d/99-diemcau-serial.rules
if [ -n "$UDEV_RULES" ]; then
  install_file "$UDEV_RULES" "$rules" 0644
elif [ -f "$ROOT$rules" ]; then
  note "keeping $rules (this room's own; --udev-rules FILE replaces it)"
else
  install_file "$src/deploy/udev/99-diemcau-serial.rules" "$rules" 0644
  note "WARNING: $rules is the EXAMPLE: edit it for this room's adapters (docs/deploy.md)"
fi

step "6. boot configuration"
boot=$ROOT/boot/firmware/config.txt
[ -f "$boot" ] || [ ! -f "$ROOT/boot/config.txt" ] || boot=$ROOT/boot/config.txt
new=$(mktemp)
trap 'rm -f "$new"' EXIT
if [ -f "$boot" ]; then
  # Everything except an earlier diemcau block, then the current block.
  awk -v b="# BEGIN diemcau" -v e="$END_MARK" \
    'index($0, b) == 1 {skip = 1; next} skip && $0 == e {skip = 0; next} !skip' "$boot" > "$new"
fi
# A shutdown pin handled by the kernel would bypass the lock: disable any such overlay.
if grep -Eq '^[[:space:]]*dtoverlay=gpio-(shutdown|poweroff)' "$new"; then
  note "WARNING: disabling dtoverlay=gpio-shutdown/gpio-poweroff in ${boot#"$ROOT"}: it bypasses the lock"
  sed -i -E 's/^([[:space:]]*dtoverlay=gpio-(shutdown|poweroff).*)$/# disabled by diemcau (bypasses the lock): \1/' "$new"
fi
# Drop trailing blank lines before appending, so repeated runs give the same file.
sed -i -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$new"
{ [ ! -s "$new" ] || echo; echo "$BEGIN_MARK"; cat "$src/firmware_config/boot/config.txt.fragment"; echo "$END_MARK"; } >> "$new"
if [ -f "$boot" ] && cmp -s "$new" "$boot"; then
  note "unchanged: ${boot#"$ROOT"}"
else
  note "update: ${boot#"$ROOT"} (reboot needed)"
  REBOOT=1
  if [ -f "$boot" ] && [ ! -f "$boot.diemcau-orig" ]; then fs cp -p "$boot" "$boot.diemcau-orig"; fi
  fs install -D -m 0644 "$new" "$boot"
fi
cmdline=$(dirname "$boot")/cmdline.txt
if [ -f "$cmdline" ] && grep -q 'console=serial0,[0-9]* *' "$cmdline"; then
  note "remove the serial console from ${cmdline#"$ROOT"} (the UART belongs to the RS-232 HAT)"
  [ -f "$cmdline.diemcau-orig" ] || fs cp -p "$cmdline" "$cmdline.diemcau-orig"
  fs sed -i 's/console=serial0,[0-9]* *//' "$cmdline"
  REBOOT=1
fi

step "7. enable and start"
sys systemctl daemon-reload
sys udevadm control --reload
sys udevadm trigger --subsystem-match=tty --action=add
if systemctl cat hciuart.service >/dev/null 2>&1; then
  sys systemctl disable --now hciuart.service   # Bluetooth is off (dtoverlay=disable-bt)
fi
sys systemctl enable "$UNIT"
if [ "$NO_START" -eq 1 ]; then
  note "not starting (--no-start)"
elif [ ! -f "$ROOT$ETC/site.yaml" ] && [ -z "$SITE" ]; then
  note "not starting: no $ETC/site.yaml"
else
  sys "$PREFIX/.venv/bin/diemcau-agent" check-config "$ETC/site.yaml"
  sys systemctl restart "$UNIT"
fi
if [ "$REBOOT" -eq 1 ]; then
  note "REBOOT NEEDED for the boot configuration (relay pins, watchdog, UART): sudo reboot"
fi
if [ "$DRY_RUN" -eq 1 ]; then echo "dry run: nothing was changed"; else echo "done"; fi
