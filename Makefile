# The two commands of the README: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
POSTGRES_TEST_URL ?= postgresql://postgres@127.0.0.1:5432/test
# `make test TEST_WORKERS=2` runs each database's suite in that many pytest-xdist
# processes, each with its own database and server, a test file whole in one of them.
# Off by default: on two cores the suite is bound by the processor, the two databases'
# runs side by side already keep both busy, and more processes made it slower.
TEST_WORKERS ?= 0
PYTEST := $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

.PHONY: run test lint console console-check test-sqlite test-postgres bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# `make run PORT=9000` (or HOST=0.0.0.0): passed on as CADENYA_SERVER_PORT / _HOST.
# For development, webhooks may reach receivers on this machine (loopback); the demo
# says so when it starts. Production servers reach public addresses only.
run: $(BIN)/.installed ## Start the server on SQLite with a demo account
	$(if $(PORT),CADENYA_SERVER_PORT=$(PORT)) $(if $(HOST),CADENYA_SERVER_HOST=$(HOST)) \
	CADENYA_SERVER_WEBHOOK_ALLOWED_NETWORKS="$${CADENYA_SERVER_WEBHOOK_ALLOWED_NETWORKS-127.0.0.0/8,::1/128}" \
		$(BIN)/cadenya-server demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The console (console/, Preact + TypeScript, built by Vite) is committed built, inside the
# package (src/cadenya_server/console/static/). `make console` rebuilds it after a change;
# `make console-check` (run by `make test`) type-checks, rebuilds, and fails when the
# committed build is not the build of the sources.
CONSOLE_BUILD := src/cadenya_server/console/static

console:
	cd console && npm ci --no-audit --no-fund --loglevel=error && npx vite build --logLevel warn

console-check: console
	cd console && npx tsc --noEmit
	@if [ -n "$$(git status --porcelain -- $(CONSOLE_BUILD))" ]; then \
		git status --short -- $(CONSOLE_BUILD); \
		echo "the committed console build is not the build of console/: run make console and commit" >&2; \
		exit 1; \
	fi

test-sqlite: $(BIN)/.installed
	@echo "== the suite on SQLite =="
	CADENYA_TEST_DATABASE_URL= $(PYTEST)

# Runs when PostgreSQL answers; under CI (CI=true) an unreachable server fails the run.
test-postgres: $(BIN)/.installed
	@echo "== the suite on PostgreSQL =="
	@if $(BIN)/python -c "import psycopg,sys; psycopg.connect('$(POSTGRES_TEST_URL)', connect_timeout=3).close()" 2>/dev/null; then \
		CADENYA_TEST_DATABASE_URL=$(POSTGRES_TEST_URL) $(PYTEST); \
	elif [ "$$CI" = "true" ]; then \
		echo "PostgreSQL at $(POSTGRES_TEST_URL) is unreachable; CI requires it" >&2; exit 1; \
	else \
		echo "PostgreSQL at $(POSTGRES_TEST_URL) is unreachable: skipping its run (CI would fail)"; \
	fi

# The two databases' runs go side by side: most of a run waits on server processes and
# the network, not on the processor. Each run's output is printed whole when it ends.
test: lint console-check ## Lint, check the console's build, then every test on SQLite and PostgreSQL
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres

# 1M profiles on SQLite, then on PostgreSQL; e.g. BENCH_ARGS="--database sqlite --reuse".
bench: $(BIN)/.installed
	$(BIN)/python -m bench.search $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
