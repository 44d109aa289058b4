# banditjax: every target creates .venv and installs what it needs when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PYTHONUNBUFFERED := 1

.PHONY: install demo test test-slow test-all bench bench-gpu figures figures-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/banditjax run experiments/configs/quickstart.toml --out results/quickstart --force
	@echo "results: results/quickstart/results.parquet  (one row per run and recorded round)"
	@echo "plot:    results/quickstart/regret.png"

# Tests run on every core (pytest-xdist): most of their time is single-threaded XLA compilation.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -n auto -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n auto

# Every learner family at 1,000 and 10,000 runs against the NumPy references: about 10 minutes on
# 2 cores. Writes bench/results.md and bench/results.json.
bench: $(STAMP)
	$(BIN)/banditjax bench

# The accelerator: UCB1, Thompson, LinUCB, LDB-DF at 10^4, 10^5, 10^6 runs (then more families)
# inside a 200 s budget. No virtualenv and no install (GPU machines may have no network): the
# python3 on PATH must already hold jax + its CUDA plugin, flax, optax, chex, numpy, pandas,
# pyarrow, tqdm, PyYAML. Writes bench/gpu.md and bench/gpu.json.
bench-gpu:
	PYTHONPATH=. $(PYTHON) -m experiments bench --gpu

figures: $(STAMP)
	$(BIN)/python -m paper_figures

figures-quick: $(STAMP)
	$(BIN)/python -m paper_figures --quick

clean:
	rm -rf $(VENV) results .pytest_cache
