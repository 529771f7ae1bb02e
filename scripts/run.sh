#!/usr/bin/env bash
# `make run`: set everything up and serve GridMarket on http://127.0.0.1:8000 until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
scripts/services.sh gridmarket

mkdir -p .run
if [ -z "${GM_SECRET_KEY:-}" ]; then
  [ -s .run/secret_key ] || .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))' > .run/secret_key
  GM_SECRET_KEY=$(cat .run/secret_key); export GM_SECRET_KEY
fi
# 国密 field-encryption keys: generated once per installation, kept in .run/ (back them up with the DB)
if [ -z "${GM_SM4_KEY:-}" ]; then
  [ -s .run/sm4_key ] || .venv/bin/python -c 'import secrets; print(secrets.token_hex(16))' > .run/sm4_key
  GM_SM4_KEY=$(cat .run/sm4_key); export GM_SM4_KEY
fi
if [ -z "${GM_BLIND_INDEX_KEY:-}" ]; then
  [ -s .run/blind_index_key ] || .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))' > .run/blind_index_key
  GM_BLIND_INDEX_KEY=$(cat .run/blind_index_key); export GM_BLIND_INDEX_KEY
fi
export PROMETHEUS_MULTIPROC_DIR="$PWD/.run/prometheus"
rm -rf "$PROMETHEUS_MULTIPROC_DIR"; mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

.venv/bin/gridmarket db upgrade
seed_out=$(.venv/bin/gridmarket seed-demo --scale "${GM_DEMO_SCALE:-small}" --if-empty)
echo "$seed_out"

BIND=${GM_BIND:-127.0.0.1:8000}
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "GridMarket stopped."
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

.venv/bin/gridmarket worker & pids+=($!)
.venv/bin/gunicorn --workers "${GM_WEB_WORKERS:-4}" --threads 4 --bind "$BIND" \
  --graceful-timeout 5 'api:create_app()' & pids+=($!)

for _ in $(seq 1 60); do
  .venv/bin/python -c "import urllib.request,sys; urllib.request.urlopen(\"http://$BIND/healthz\", timeout=1)" 2>/dev/null && break; sleep 0.5
done
cat <<MSG

  GridMarket 网格化精准营销系统 is running: http://$BIND/
  API docs: http://$BIND/api/docs
  Demo logins (password for all: Gm@2026demo):
$(echo "$seed_out" | grep -E '^  ')
  Press Ctrl-C to stop.

MSG
wait -n "${pids[@]}"
