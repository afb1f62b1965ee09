# Every target bootstraps itself: a Python >= 3.12, then uv (pinned with hashes in
# scripts/uv-requirements.txt, installed into .tools/), then .venv from uv.lock
# (`uv sync --locked`: exactly the locked versions, every file checked against its hash).
# `python3.12` on PATH may be a pyenv shim that refuses to run, so candidates are tried
# until one really is 3.12+.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := .tools
UV := $(TOOLS)/bin/uv
PYTHON_CANDIDATES := python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) \
	/usr/local/bin/python3.12 /usr/bin/python3.12 python3.13 \
	$(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) python3
PYTHON ?= $(shell for p in $(PYTHON_CANDIDATES); do \
	"$$p" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { echo "$$p"; break; }; \
	done)
# Two workers on the 2-core machines CI uses; override with PYTEST_WORKERS=N (0: serial).
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadgroup)
# uv must never fetch a Python of its own, and must use the venv it is given.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_NO_PROGRESS := 1

.PHONY: venv test test-fast test-setup demo demo-local lint fmt bench docs screenshots lock clean

venv: $(STAMP)

$(UV): scripts/uv-requirements.txt
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.12 found (tried: $(PYTHON_CANDIDATES))" >&2; exit 1; }
	@test -x $(TOOLS)/bin/python || "$(PYTHON)" -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
		-r scripts/uv-requirements.txt
	@touch $(UV)

$(STAMP): pyproject.toml uv.lock $(UV)
	$(UV) sync --locked --extra dev --python "$(PYTHON)" --quiet
	@touch $(STAMP)

# Refresh the lock after changing pyproject.toml (keeps every other pin as it is).
# Upgrade one dependency: `make lock UPGRADE=anthropic`; everything: `make lock UPGRADE=all`.
lock: $(UV)
	$(UV) lock --python "$(PYTHON)" $(if $(UPGRADE),$(if $(filter all,$(UPGRADE)),--upgrade,--upgrade-package $(UPGRADE)))

test: lint test-setup
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

# The inner loop: everything but the tests marked slow (CI runs them all).
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

# Best effort (never fails): systemd-analyze and the like for the tests that use them.
test-setup:
	-@bash scripts/test-setup.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# The same with the local analyzer model (fetched by `make test-setup` or
# `engram models fetch`): a real LLM in-process, nothing leaves the machine.
demo-local: $(STAMP)
	$(BIN)/python scripts/demo.py --analyzer local

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The generated references (configuration and CLI) from the code.
docs: $(STAMP)
	$(BIN)/python -m engram.docs_gen

# The README's pictures of `engram ui`: the browser tests take them on a seeded store.
screenshots: $(STAMP)
	ENGRAM_SCREENSHOTS=docs/images $(BIN)/python -m pytest tests/test_ui_browser.py -p no:randomly -q

clean:
	rm -rf $(VENV) $(TOOLS) .demo .pytest_cache .ruff_cache .mypy_cache
