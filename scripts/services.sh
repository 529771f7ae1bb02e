#!/usr/bin/env bash
# Make sure PostgreSQL + PostGIS and Redis run on loopback and the project's roles/databases exist.
# With DATABASE_URL / REDIS_URL set, only checks that those servers answer.
# Usage: scripts/services.sh [database-name ...]
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
fi

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    die "missing packages: $*; install them with your package manager"
  fi
  if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
    die "missing packages: $*; run: sudo apt-get install -y $*"
  fi
  log "installing OS packages: $*"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_major() {
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | awk 'NR==1{print $1}'
  fi
}

as_postgres() {  # psql as the postgres superuser: trust over TCP, else peer over the socket
  if psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
    psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres "$@"
  elif [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"
  else
    $SUDO -u postgres psql -X -q -v ON_ERROR_STOP=1 "$@"
  fi
}

ensure_local_postgres() {
  if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(pg_major)" ]; then
    apt_install postgresql postgresql-contrib
  fi
  local ver; ver=$(pg_major)
  [ -n "$ver" ] || die "no PostgreSQL cluster found after install"
  if [ ! -f "/usr/share/postgresql/$ver/extension/postgis.control" ]; then
    apt_install "postgresql-$ver-postgis-3"
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL $ver"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || $SUDO pg_ctlcluster "$ver" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL does not answer on 127.0.0.1:5432"
  # owner role (migrations, seeding) and the RLS-bound application role
  as_postgres -d postgres <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmarket') THEN
    CREATE ROLE gridmarket LOGIN SUPERUSER PASSWORD 'gridmarket';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gridmarket_app') THEN
    CREATE ROLE gridmarket_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD 'gridmarket_app';
  END IF;
END $$;
SQL
  for db in "$@"; do
    if [ -z "$(as_postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
      log "creating database $db"
      as_postgres -d postgres -c "CREATE DATABASE \"$db\" OWNER gridmarket"
    fi
  done
}

ensure_local_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  log "starting Redis on 127.0.0.1:6379"
  mkdir -p /tmp/gridmarket-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/gridmarket-redis --logfile /tmp/gridmarket-redis/redis.log
  for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return; sleep 0.5; done
  die "Redis does not answer on 127.0.0.1:6379"
}

command -v psql >/dev/null 2>&1 || apt_install postgresql-client
command -v redis-cli >/dev/null 2>&1 || apt_install redis-tools

if [ -z "${DATABASE_URL:-}" ]; then
  ensure_local_postgres "$@"
else
  psql -X -q "$DATABASE_URL" -c 'select 1' >/dev/null || die "DATABASE_URL does not answer"
fi
if [ -z "${REDIS_URL:-}" ]; then
  ensure_local_redis
else
  redis-cli -u "$REDIS_URL" ping >/dev/null || die "REDIS_URL does not answer"
fi
log "PostgreSQL and Redis are ready"
