#!/usr/bin/env bash
# Install the project's own dependencies: a Python venv (.venv) and the web front end's npm packages.
# Idempotent: re-runs are quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }
SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
apt_install() {
  command -v apt-get >/dev/null 2>&1 || { log "please install: $*"; exit 1; }
  log "installing OS packages: $*"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || apt_install python3 python3-venv
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { log "Python >= 3.11 is required (found $("$PY" --version))"; exit 1; }

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv 2>/dev/null || { apt_install python3-venv; rm -rf .venv; "$PY" -m venv .venv; }
fi
stamp=.venv/.gridmarket-deps
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing Python dependencies"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -vE '^(WARNING: Location|\s*$)' >&2 || true
  .venv/bin/python -c 'import api, geo_core, flask_smorest, geoalchemy2, rq' \
    || { log "Python dependencies failed to install"; exit 1; }
  echo "$want" > "$stamp"
fi

command -v npm >/dev/null 2>&1 || apt_install nodejs npm
wstamp=web/node_modules/.gridmarket-lock
wwant=$(sha256sum web/package-lock.json | cut -d' ' -f1)
if [ ! -f "$wstamp" ] || [ "$(cat "$wstamp")" != "$wwant" ]; then
  log "installing web front-end packages (npm ci)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$wwant" > "$wstamp"
fi

# Headless browser for the end-to-end tests (tests/e2e) and scripts/screenshots.mjs: only when asked
# (make test asks; make run does not need it).
if [ "${GM_WITH_BROWSER:-0}" = "1" ] && [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi
# A CJK font, so the zh-CN pages render readable characters in headless screenshots (not boxes).
if [ "${GM_WITH_BROWSER:-0}" = "1" ] && [ ! -d /usr/share/fonts/opentype/noto ]; then
  apt_install fonts-noto-cjk
fi
# GDAL/OGR command-line tools (ogrinfo, ogr2ogr) for the GIS-client tests (tests/tiles/test_gis_clients.py): only
# when asked (make test asks).
if [ "${GM_WITH_GDAL:-0}" = "1" ] && ! command -v ogrinfo >/dev/null 2>&1; then
  apt_install gdal-bin
fi
