# Set-up on a fresh machine happens here: `make demo` and `make test` need nothing else.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORE   := $(VENV)/.core-built
CORE_SRC := $(wildcard src/twload/engine/core/*.c src/twload/engine/core/*.h)
PYTHON ?= python3
# Debian packages (installed only when missing): the tests need the first list; the
# benchmarks' peers are the second, and a failure to get them only warns.
# gcc, libc6-dev and liburing-dev build the compiled core (without liburing it builds epoll only);
# chromium opens the HTML report in its browser test.
DEBS     := nginx iproute2 nftables procps gcc libc6-dev liburing-dev chromium
DEBS_OPT := wrk apache2-utils hey

.PHONY: demo test lint debs bench clean core

# debs first (order-only): the core's build looks for liburing.h
$(STAMP): pyproject.toml setup.py | debs
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

# The compiled core again whenever a C file changes (pip install -e . built it the first time).
$(CORE): $(STAMP) $(CORE_SRC)
	$(BIN)/python setup.py -q build_ext --inplace
	touch $(CORE)

core: $(CORE)

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

demo: $(CORE)
	$(BIN)/twload demo

lint: $(CORE)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: $(CORE) debs lint
	$(BIN)/pytest

bench: $(CORE) debs
	$(BIN)/python benchmarks/vs_wrk.py && $(BIN)/python benchmarks/open_loop.py && $(BIN)/python benchmarks/sim_million.py

clean:
	rm -rf $(VENV) twload-runs .pytest_cache build src/twload/engine/core/*.so
