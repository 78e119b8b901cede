#!/usr/bin/env bash
# The main job on one machine: the whole district. A local Mosquitto (the project's broker
# config, loopback only), the console (recorder, dispatcher, web dashboard) and 17 simulated
# rooms, one real `diemcau-agent run --simulate` per commune of Văn Quan, with a scripted test
# window two minutes after start. It prints the URL to open and a login. Ctrl-C stops all.
# Options (python -m district.demo --help): --rooms N, --window-in-s S, --http-port P, ...
# The single simulated room of before: .venv/bin/diemcau-agent demo
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
deploy/bootstrap.sh
export PATH="/usr/sbin:$PATH"
exec .venv/bin/python -m district.demo "$@"
