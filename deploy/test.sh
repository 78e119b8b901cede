#!/usr/bin/env bash
# Run the whole test suite after setting up everything it needs (see deploy/bootstrap.sh).
# Extra arguments go to pytest, e.g. deploy/test.sh -k lock -x
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
deploy/bootstrap.sh --test
export PATH="/usr/sbin:$PATH"   # mosquitto lives in /usr/sbin on Debian
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
