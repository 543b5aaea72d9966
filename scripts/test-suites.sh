#!/usr/bin/env bash
# The whole suite on SQLite and, side by side, again on PostgreSQL, less what does
# the same on either: tests/ml (pure ML, no database), tests/browser (the browser
# journeys drive the pages over the services every other test runs on both), and
# the tests marked own_database (they make databases of their own).
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
# Two runs, their workers and browsers share the cores: math libraries that each
# start a thread per core (and spin on them between calls) only slow the other
# run. One thread each made a pair of runs ~10 % faster here.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

pg_log=$(mktemp "${TMPDIR:-/tmp}/governance-pg-suite.XXXXXX")
trap 'rm -f "$pg_log"' EXIT

scripts/with-services.sh bash -c '
  if [ -z "${TEST_POSTGRES_URL:-}" ]; then
    echo "PostgreSQL not available: skipped the PostgreSQL run"; exit 0
  fi
  DATABASE_URL="$TEST_POSTGRES_URL" exec .venv/bin/pytest -p no:cacheprovider \
    --ignore=tests/ml --ignore=tests/browser "$@"' pg-suite "$@" >"$pg_log" 2>&1 &
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
