# banditjax: every target creates .venv and installs what it needs when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PYTHONUNBUFFERED := 1

.PHONY: install demo test test-slow test-all bench figures figures-quick clean

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

bench: $(STAMP)
	$(BIN)/banditjax bench

figures: $(STAMP)
	$(BIN)/python -m paper_figures

figures-quick: $(STAMP)
	$(BIN)/python -m paper_figures --quick

clean:
	rm -rf $(VENV) results .pytest_cache
