# The two commands of the README: `make demo` and `make test`.
# Each creates the virtualenv (.venv) when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch 2.13.0 lies on this machine's disk; elsewhere pip takes it from PyPI.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: demo test venv clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check $(FIND_LINKS) -e ".[dev]"
	touch $@

venv: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/pgu train --task cartpole --preset ppo --env-steps 20000

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) pgu_results .pytest_cache .hypothesis
