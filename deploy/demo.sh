#!/usr/bin/env bash
# The main job on one machine: a local Mosquitto and a simulated room (mock pins) with a
# sample schedule. It prints how to watch the room's topics and how to drive it. Ctrl-C stops.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
deploy/bootstrap.sh
export PATH="/usr/sbin:$PATH"
exec .venv/bin/diemcau-agent demo "$@"
