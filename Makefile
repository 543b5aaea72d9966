# The two commands a new user needs:  make demo   and   make test
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo serve test test-suites lint format bench install clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU build; an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt ".[dev]"
	touch $@

install: $(VENV)/.installed

## demo: install, migrate the embedded SQLite database, run the whole flow on the
## bundled Adult data, print the demo logins, and serve the admin on 127.0.0.1:8000
demo: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo
	$(BIN)/python manage.py runserver 127.0.0.1:8000

serve: install
	$(BIN)/python manage.py runserver 127.0.0.1:8000

## test: lint, then the whole suite on SQLite and again on PostgreSQL (less tests/ml,
## the pure-ML tests that touch no database), with real Redis and Celery workers
## (servers are started on loopback and removed afterwards)
test: install lint
	scripts/with-services.sh $(MAKE) --no-print-directory test-suites

test-suites:
	@echo "== test suite on SQLite =="
	$(BIN)/pytest $(PYTEST_ARGS)
	@if [ -n "$$TEST_POSTGRES_URL" ]; then \
	  echo "== test suite on PostgreSQL =="; \
	  DATABASE_URL="$$TEST_POSTGRES_URL" $(BIN)/pytest --ignore=tests/ml $(PYTEST_ARGS); \
	else echo "PostgreSQL not available: skipped the PostgreSQL run"; fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	scripts/with-services.sh $(BIN)/python bench/run_all.py

clean:
	rm -rf var/
