# Set-up on a fresh machine happens here: `make demo` and `make test` need nothing else.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORE   := $(VENV)/.core-built
CORE_SRC := $(wildcard src/twload/engine/core/*.c src/twload/engine/core/*.h)
PYTHON ?= python3
# Debian packages (installed only when missing): the tests need the first list; the
# benchmarks' peers are the second, and a failure to get them only warns.
# gcc, libc6-dev and liburing-dev build the compiled core (without liburing it builds epoll only).
# clang and libclang-rt-14-dev (libFuzzer, ASan and UBSan runtimes for clang 14) for `make fuzz`.
DEBS     := nginx iproute2 nftables procps gcc libc6-dev liburing-dev clang libclang-rt-14-dev
DEBS_OPT := wrk apache2-utils hey

.PHONY: demo test lint debs bench clean core ctest fuzz

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

test: $(CORE) debs lint ctest fuzz
	$(BIN)/pytest

# The C response parser: its unit test (also part of the pytest suite), and libFuzzer with
# ASan + UBSan over it for FUZZ_SECONDS, seeded from fuzz/corpus; new inputs go to fuzz/build.
CORE_DIR      := src/twload/engine/core
FUZZ_BUILD    := fuzz/build
FUZZ_SECONDS  ?= 60
FUZZER        := $(FUZZ_BUILD)/fuzz_http1_parse

ctest: $(CORE)
	$(BIN)/pytest -q tests/unit/test_http1_parse_c.py

$(FUZZER): fuzz/fuzz_http1_parse.c $(CORE_DIR)/http1_parse.c $(CORE_DIR)/http1_parse.h
	mkdir -p $(FUZZ_BUILD)
	clang -std=c99 -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -I$(CORE_DIR) fuzz/fuzz_http1_parse.c $(CORE_DIR)/http1_parse.c -o $@

fuzz: debs $(FUZZER)
	mkdir -p $(FUZZ_BUILD)/corpus
	@echo "fuzzing the response parser for $(FUZZ_SECONDS) s (log: $(FUZZ_BUILD)/fuzz.log)"
	@$(FUZZER) $(FUZZ_BUILD)/corpus fuzz/corpus -dict=fuzz/http1.dict -max_len=16384 \
		-max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_BUILD)/ -print_final_stats=1 \
		>$(FUZZ_BUILD)/fuzz.log 2>&1 || { tail -n 80 $(FUZZ_BUILD)/fuzz.log; echo "fuzz: crash, input saved in $(FUZZ_BUILD)/"; exit 1; }
	@grep -E '^(Done|stat::(average_exec_per_sec|new_units_added|peak_rss_mb))' $(FUZZ_BUILD)/fuzz.log

bench: $(CORE) debs
	$(BIN)/python benchmarks/vs_wrk.py && $(BIN)/python benchmarks/open_loop.py && $(BIN)/python benchmarks/sim_million.py

clean:
	rm -rf $(VENV) twload-runs .pytest_cache build src/twload/engine/core/*.so $(FUZZ_BUILD)
