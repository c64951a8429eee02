#!/usr/bin/env bash
# Install everything the tests need and run the whole suite: Python unit, integration and
# end-to-end tests on the real RabbitMQ, the dashboard's component tests (Vitest) and its
# browser tests in headless Chromium. Arguments go to pytest (e.g. -k upload).
# A whole run (no test paths, no -k/-m) also lints and format-checks (ruff), type-checks src for
# Linux, Windows and macOS, and runs the worker and end-to-end tests once more as Windows and
# macOS run them (PORTABLE_RUNTIME=true); PORTABLE_PASS=0 leaves that pass out, PORTABLE_PASS=1
# forces it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

broker_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! broker_up; then
  say "starting RabbitMQ"
  as_root rabbitmq-server -detached
fi
for _ in $(seq 1 60); do broker_up && break; sleep 1; done
broker_up || { echo "error: RabbitMQ did not come up on 127.0.0.1:5672" >&2; exit 1; }
if [ -x scripts/rabbitmq-tls-setup.sh ]; then
  say "making sure RabbitMQ has its TLS test listener (5671)"
  as_root scripts/rabbitmq-tls-setup.sh
fi

ensure_venv test
build_web force

say "dashboard component tests (Vitest)"
(cd web && npm test --silent)

whole=1
for arg in "$@"; do
  case "$arg" in -k|-m|-k?*|-m?*|[!-]*) whole=0 ;; esac
done

if [ $whole = 1 ]; then
  say "lint and format check of src, tests and benchmarks (ruff)"
  "$VENV/bin/ruff" check src tests benchmarks \
    || { echo "error: ruff check found problems (ruff check --fix may mend them)" >&2; exit 1; }
  "$VENV/bin/ruff" format --check src tests benchmarks \
    || { echo "error: files not formatted; run: .venv/bin/ruff format src tests benchmarks" >&2; exit 1; }
  say "type check of src for Linux, Windows and macOS, and of benchmarks/ (Linux only) (mypy --platform)"
  for platform in linux win32 darwin; do
    files=(src)
    [ "$platform" = linux ] && files+=(benchmarks)
    "$VENV/bin/mypy" --platform "$platform" --cache-dir ".mypy_cache/$platform" "${files[@]}" \
      || { echo "error: mypy found errors for --platform $platform" >&2; exit 1; }
  done
fi

say "Python tests (unit, integration, end to end, browser)"
set +e
"$VENV/bin/python" -m pytest "$@"
status=$?
set -e
if [ $status -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
fi

if [ "${PORTABLE_PASS:-$whole}" = 1 ]; then
  say "worker and end-to-end tests again as on Windows and macOS (PORTABLE_RUNTIME=true:" \
      "concurrent.futures pool, spawn, signal.signal, no uvloop)"
  set +e
  PORTABLE_RUNTIME=true "$VENV/bin/python" -m pytest "$@" tests/sd_worker tests/e2e
  portable_status=$?
  set -e
  [ $status -ne 0 ] || status=$portable_status
fi
exit $status
