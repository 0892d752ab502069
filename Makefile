# The two commands of the README: `make demo` and `make test`.
# Each creates the virtualenv (.venv) when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch 2.13.0 lies on this machine's disk; elsewhere pip takes it from PyPI.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: demo test test-fast venv clean postgres browser

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check $(FIND_LINKS) -e ".[dev]"
	touch $@

venv: $(BIN)/.installed

# The main job on the embedded default (a local Ray, the SQLite registry pgu_results/registry.db):
# a `paper`-space search on the bandit (a few minutes on 2 cores), then the stored best.
demo: $(BIN)/.installed
	$(BIN)/pgu search --task bandit --space paper --trials 8 --max-concurrent 2 --env-steps 3000 \
	    --top-k 2 --selection-seeds 2 --test-seeds 3 --name demo-bandit-paper-$$(date +%Y%m%d-%H%M%S)
	$(BIN)/pgu best --task bandit --space paper

# The registry tests start a real PostgreSQL server: install Debian's package when it is missing.
postgres:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)

# The dashboard test renders optuna-dashboard in a real headless browser: Debian's chromium.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# Two pytest workers (pytest-xdist), a test file each at a time (module-scoped fixtures stay in one
# worker), the heaviest files first (tests/conftest.py orders them; --no-loadscope-reorder keeps that).
test: $(BIN)/.installed postgres browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=10

# For development: everything but the slow, cluster and PostgreSQL tests (about 5 minutes on 2 cores).
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "not slow and not cluster and not postgres"

clean:
	rm -rf $(VENV) pgu_results .pytest_cache .hypothesis
