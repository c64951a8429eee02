#!/usr/bin/env bash
# Install everything the tests need and run the whole suite: Python unit, integration and
# end-to-end tests on the real RabbitMQ, the dashboard's component tests (Vitest) and its
# browser tests in headless Chromium. Arguments go to pytest (e.g. -k upload).
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

say "Python tests (unit, integration, end to end, browser)"
set +e
"$VENV/bin/python" -m pytest "$@"
status=$?
set -e
if [ $status -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
fi
exit $status
