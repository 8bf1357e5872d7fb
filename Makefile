# Every target creates .venv and installs what it needs, so a fresh clone needs only `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo demo-record clean browser redis bench-gateway

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP) browser redis
	$(BIN)/python -m pytest -q

# Best effort, never fails: the HTML report's browser test needs chromium (it skips, saying so,
# without). As root with apt-get, install it; `apt-get update` only when the install fails.
APT_CHROMIUM := DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends chromium
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing chromium for the browser test of the HTML report"; \
	    $(APT_CHROMIUM) >/dev/null 2>&1 || { timeout 300 apt-get update -q >/dev/null 2>&1 && \
	      $(APT_CHROMIUM) >/dev/null 2>&1; } || echo "make: could not install chromium"; \
	  else echo "make: chromium not found; the browser test of the HTML report will skip"; fi; } \
	  || true

# Best effort, never fails: the shared-state tests start a real redis-server on loopback (they
# skip, saying so, without one). As root with apt-get, install Debian's redis-server package.
APT_REDIS := DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends redis-server
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing redis-server for the shared-state tests"; \
	    $(APT_REDIS) >/dev/null 2>&1 || { timeout 300 apt-get update -q >/dev/null 2>&1 && \
	      $(APT_REDIS) >/dev/null 2>&1; } || echo "make: could not install redis-server"; \
	  else echo "make: redis-server not found; the Redis tests will skip"; fi; } \
	  || true

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Replays the example's recordings: offline, no simulator, no key.
demo: $(STAMP)
	$(BIN)/python example_project/demo.py

# Re-records example_project/tests/cassettes from the simulator (port 8900), then checks them.
demo-record: $(STAMP)
	$(BIN)/python example_project/demo.py --record

# The gateway benches (issue 12). LiteLLM is not our dependency: it goes into the bench's own
# venv, pinned (a release known to work here), with this package installed editable beside it.
# GATEWAY_PATH: a tree whose pytest_modelgate/gateway/ to use first (a worktree not merged yet).
LITELLM_VENV := bench/.venv-litellm
LITELLM_VERSION ?= 1.110.2
GATEWAY_PATH ?=
$(LITELLM_VENV)/.installed: pyproject.toml
	test -x $(LITELLM_VENV)/bin/python || $(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet 'litellm==$(LITELLM_VERSION)'
	$(LITELLM_VENV)/bin/python -m pip install --quiet -e .
	touch $@

bench-gateway: $(LITELLM_VENV)/.installed
	PYTHONPATH=$(GATEWAY_PATH) $(LITELLM_VENV)/bin/python bench/gateway_overhead.py
	PYTHONPATH=$(GATEWAY_PATH) $(LITELLM_VENV)/bin/python bench/gateway_load.py

clean:
	rm -rf $(VENV) $(LITELLM_VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
