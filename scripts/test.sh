#!/usr/bin/env bash
# `make test`: the whole suite against real PostgreSQL/PostGIS and Redis (a dedicated *_test database).
set -euo pipefail
cd "$(dirname "$0")/.."
GM_WITH_BROWSER=1 GM_WITH_GDAL=1 scripts/bootstrap.sh
scripts/services.sh gridmarket
.venv/bin/python -m ruff check geo_core api jobs tiles tests migrations bench
exec .venv/bin/python -m pytest -q "$@"
