#!/usr/bin/env bash
# Run a command with throwaway PostgreSQL and Redis servers on loopback.
#
#   scripts/with-services.sh COMMAND [ARGS...]
#
# Data lives in a fresh folder under the system's temporary directory (not in the
# checkout: run as root from a private home folder, the postgres user could not
# reach it there) and is deleted afterwards. The command sees
#   TEST_POSTGRES_URL  postgres://governance:governance@127.0.0.1:PORT/governance
#   TEST_REDIS_URL     redis://127.0.0.1:PORT/0
# A server whose binary is missing is skipped with a warning; CI installs both.
set -euo pipefail
cd "$(dirname "$0")/.."

# A folder per invocation: runs side by side do not share servers or data.
root=$(mktemp -d "${TMPDIR:-/tmp}/governance-services.XXXXXX")
chmod 755 "$root"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_bin=""
for candidate in "$(dirname "$(readlink -f "$(command -v pg_ctl 2>/dev/null || echo /nonexistent)")")" /usr/lib/postgresql/*/bin; do
  if [ -x "$candidate/pg_ctl" ] && [ -x "$candidate/initdb" ]; then pg_bin="$candidate"; break; fi
done

# PostgreSQL refuses to run as root: run it as the postgres user when we are root.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
  if [ -n "${pg_data:-}" ] && [ -f "$pg_data/postmaster.pid" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [ -n "${redis_pid:-}" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  rm -rf "$root"
}
trap cleanup EXIT


if [ -n "$pg_bin" ]; then
  pg_port=$(free_port)
  pg_data="$root/pg"
  mkdir -p "$pg_data"
  [ "$(id -u)" = 0 ] && chown -R postgres "$root"
  pwfile="$root/pgpass"; echo governance > "$pwfile"
  [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
  as_pg "$pg_bin/initdb" -D "$pg_data" -U governance --pwfile="$pwfile" -A scram-sha-256 \
    --no-sync -E UTF8 >"$root/initdb.log" 2>&1 || { cat "$root/initdb.log"; exit 1; }
  # fsync off: a throwaway test cluster trades durability for speed.
  as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$root/pg.log" -w -o \
    "-h 127.0.0.1 -p $pg_port -k $pg_data -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null || { cat "$root/pg.log"; exit 1; }
  PGPASSWORD=governance "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U governance -d postgres \
    -qc "CREATE DATABASE governance" >/dev/null
  export TEST_POSTGRES_URL="postgres://governance:governance@127.0.0.1:$pg_port/governance"
  echo "PostgreSQL on 127.0.0.1:$pg_port" >&2
else
  echo "warning: PostgreSQL (pg_ctl, initdb) not found; PostgreSQL runs are skipped" >&2
fi

if command -v redis-server >/dev/null; then
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$root" --logfile "$root/redis.log" &
  redis_pid=$!
  for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export TEST_REDIS_URL="redis://127.0.0.1:$redis_port/0"
  echo "Redis on 127.0.0.1:$redis_port" >&2
else
  echo "warning: redis-server not found; tests that need a worker are skipped" >&2
fi

"$@"
