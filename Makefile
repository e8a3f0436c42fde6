# Set-up on a fresh machine happens here: `make demo` and `make test` need nothing else.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTHON ?= python3
# Debian packages (installed only when missing): the tests need the first list; the
# benchmarks' peers are the second, and a failure to get them only warns.
DEBS     := nginx iproute2 nftables procps
DEBS_OPT := wrk apache2-utils hey

.PHONY: demo test lint debs bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

debs:
	@missing=""; for p in $(DEBS) $(DEBS_OPT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "WARNING: missing Debian packages:$$missing (not root; tests that need them will be skipped)"; exit 0; \
	fi; \
	echo "installing Debian packages:$$missing"; \
	apt-get update -qq; \
	for p in $$missing; do \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$p >/dev/null \
			|| case " $(DEBS_OPT) " in *" $$p "*) echo "WARNING: could not install $$p (benchmarks only)";; *) exit 1;; esac; \
	done

demo: $(STAMP)
	$(BIN)/twload demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: $(STAMP) debs lint
	$(BIN)/pytest

bench: $(STAMP) debs
	$(BIN)/python benchmarks/vs_wrk.py && $(BIN)/python benchmarks/open_loop.py && $(BIN)/python benchmarks/sim_million.py

clean:
	rm -rf $(VENV) twload-runs .pytest_cache
