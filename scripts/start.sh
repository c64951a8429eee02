#!/usr/bin/env bash
# Install Sistema Distribuido into .venv, build the dashboard if needed, and start the
# coordinator. With RABBIT_HOST unset it runs the embedded queue and a local worker:
# open http://localhost:8000. Arguments go to sd-coordinator (e.g. --port 9000).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_venv ""
build_web
say "starting sd-coordinator (Ctrl+C stops it)"
exec "$VENV/bin/sd-coordinator" "$@"
