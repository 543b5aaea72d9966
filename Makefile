# The two commands a new user needs:  make demo   and   make test
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo serve test lint format bench install clean

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

## test: lint, then the whole suite on SQLite and, side by side, on PostgreSQL (less
## tests/ml, tests/browser and the own_database tests, the same on either; see
## scripts/test-suites.sh), with real Redis and Celery
## workers (each run starts its own servers on loopback and removes them afterwards)
test: install lint
	scripts/test-suites.sh $(PYTEST_ARGS)

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
