# stonewarmer: `make run` (simulated warmer + dashboard) and `make test`.
# Both create .venv and install what they need; nothing is installed by hand.
# Another Python: `make test PYTHON=python3.13 VENV=.venv-3.13` (CI runs both: .ci/run).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SPEED  ?= 1
PORT   ?= 8080
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean venv system-deps

venv: $(STAMP)

# The service's dependencies at the versions a Pi gets (config/constraints.txt).
$(STAMP): pyproject.toml config/constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c config/constraints.txt -e '.[test,dev,mqtt,notify,plot,bench]'
	touch $@

# Debian packages the tests drive for real: Chromium (dashboard), Mosquitto (MQTT),
# systemd-analyze (unit file). Installed only where missing, and only as root.
system-deps:
	@sh .ci/system-deps

run: venv
	$(VENV)/bin/stonewarmer run --simulate --config config/stonewarmer.toml \
		--state-dir .state --port $(PORT) --speed $(SPEED)

test: venv system-deps
	$(PY) -m pytest -q

# Style, the layers (import contracts in pyproject.toml) and the types (strict on controller/core).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: venv
	$(VENV)/bin/stonewarmer bench

clean:
	rm -rf $(VENV) .venv-* .state .pytest_cache .ruff_cache .hypothesis artifacts
