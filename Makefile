# Set-up on a fresh machine happens here: `make demo` and `make test` need nothing else.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTHON ?= python3
# Debian packages the tests use as real peers and tools (installed only when missing).
DEBS   := nginx wrk iproute2 nftables procps apache2-utils hey

.PHONY: demo test lint debs bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "WARNING: missing Debian packages:$$missing (not root; tests that need them will be skipped)"; \
	fi

demo: $(STAMP)
	$(BIN)/twload demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

test: $(STAMP) debs lint
	$(BIN)/pytest

bench: $(STAMP) debs
	$(BIN)/python benchmarks/vs_wrk.py && $(BIN)/python benchmarks/open_loop.py && $(BIN)/python benchmarks/sim_million.py

clean:
	rm -rf $(VENV) twload-runs .pytest_cache
