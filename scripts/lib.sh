# Shared by scripts/start.sh and scripts/test.sh: the virtualenv and the dashboard build.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

need_python() {
  PYTHON="${PYTHON:-python3}"
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: Sistema Distribuido needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))." >&2
    exit 1
  fi
}

# ensure_venv EXTRAS: create .venv and (re)install the project when pyproject.toml changed.
ensure_venv() {
  local extras="$1" stamp
  need_python
  [ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
  stamp="$VENV/.installed-$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)-${extras:-base}"
  if [ ! -f "$stamp" ]; then
    say "installing Sistema Distribuido${extras:+ with [$extras]} into .venv"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT${extras:+[$extras]}"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
}

# build_web [force]: build web/ into src/sd_coordinator/static when missing or stale.
build_web() {
  local index="$ROOT/src/sd_coordinator/static/index.html"
  if [ "${1:-}" != force ] && [ -f "$index" ] && \
     [ -z "$(find "$ROOT/web/src" "$ROOT/web/index.html" "$ROOT/web/package.json" "$ROOT/web/vite.config.ts" -newer "$index" 2>/dev/null | head -n 1)" ]; then
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "warning: npm not found, so the dashboard cannot be built (the API still works at /docs)." >&2
    echo "         Install Node.js 20+ (e.g. apt-get install nodejs npm) and run this again." >&2
    return 0
  fi
  say "building the dashboard (web/ -> src/sd_coordinator/static)"
  if [ ! -d "$ROOT/web/node_modules" ] || [ "$ROOT/web/package-lock.json" -nt "$ROOT/web/node_modules/.package-lock.json" ]; then
    (cd "$ROOT/web" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  (cd "$ROOT/web" && npm run build --silent)
}
