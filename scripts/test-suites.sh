#!/usr/bin/env bash
# The whole suite on SQLite and, side by side, again on PostgreSQL (less tests/ml,
# the pure-ML tests that touch no database).
#
#   scripts/test-suites.sh [PYTEST ARGS...]
#
# Each run gets its own throwaway PostgreSQL and Redis servers (with-services.sh), so
# the two share no database, broker or queue, and their Celery workers cannot take
# each other's tasks. Much of a run is spent waiting on workers, browsers and servers,
# so two side by side finish well before two in a row. The SQLite run prints as it
# goes; the PostgreSQL run's output follows it. Fails if either run fails.
set -uo pipefail
cd "$(dirname "$0")/.."

pg_log=$(mktemp "${TMPDIR:-/tmp}/governance-pg-suite.XXXXXX")
trap 'rm -f "$pg_log"' EXIT

scripts/with-services.sh bash -c '
  if [ -z "${TEST_POSTGRES_URL:-}" ]; then
    echo "PostgreSQL not available: skipped the PostgreSQL run"; exit 0
  fi
  DATABASE_URL="$TEST_POSTGRES_URL" exec .venv/bin/pytest -p no:cacheprovider \
    --ignore=tests/ml "$@"' pg-suite "$@" >"$pg_log" 2>&1 &
pg_pid=$!

echo "== test suite on SQLite (the PostgreSQL run goes on beside it) =="
started=$SECONDS
scripts/with-services.sh .venv/bin/pytest "$@"
sqlite_status=$?
echo "== SQLite run: exit $sqlite_status after $((SECONDS - started)) s =="

wait "$pg_pid"
pg_status=$?
echo "== test suite on PostgreSQL =="
cat "$pg_log"
echo "== PostgreSQL run: exit $pg_status after $((SECONDS - started)) s in all =="

[ "$sqlite_status" = 0 ] && [ "$pg_status" = 0 ]
