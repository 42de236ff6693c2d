# `make run` starts the whole stack; `make test` runs the suite. Both build .venv first, from the
# hash-pinned lock file, on a machine with nothing but Python 3.11 and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The project's bytecode, written ahead. PYTHONDONTWRITEBYTECODE=1 (the dev environment, the
# image) stops Python caching it, and the worker's sandbox imports workflows/ afresh for every
# workflow run: without .pyc each run compiled them from source (docs/PERFORMANCE.md). Reading .pyc
# is still allowed; one older than its source is ignored (the source compiled in memory), so it is
# refreshed before each target that runs the worker; compileall skips what is up to date.
PACKAGES := schemas workflows activities workers clients crypto store database service benchmarks
BYTECODE := $(BIN)/python -m compileall -q $(PACKAGES)

.PHONY: run test lint fmt lock demo histories bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BYTECODE)
	touch $(STAMP)

run: $(STAMP)
	$(BYTECODE)
	$(BIN)/safeshare dev

test: $(STAMP)
	$(BYTECODE)
	$(BIN)/python -m pytest

# The benchmarks against the real dev server (not part of `make test`): writes
# benchmarks/results/latest.json and the table in docs/PERFORMANCE.md. BENCH_SCALE=0.1 for a quick run.
bench: $(STAMP)
	$(BYTECODE)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check .

fmt: $(STAMP)
	$(BIN)/ruff format .

demo: $(STAMP)
	$(BIN)/safeshare demo

# Record a new set of histories under tests/histories/$(NAME) after a deliberate, patched change;
# every set, old and new, is replayed by every test run.
histories: $(STAMP)
	test -n "$(NAME)" || (echo "usage: make histories NAME=v2-what-changed" && exit 2)
	$(BIN)/python -m tests.record_histories $(NAME)

# Re-pin after changing dependencies in pyproject.toml (needs pip-tools in .venv).
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --extra test --extra install --extra bench \
		--no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	# What the worker image installs: the runtime dependencies only (Dockerfile).
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --extra install \
		--no-emit-index-url --no-emit-find-links -o requirements-runtime.lock pyproject.toml

clean:
	rm -rf $(VENV) .pytest_cache
	find $(PACKAGES) tests -name __pycache__ -type d -prune -exec rm -rf {} +
