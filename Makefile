# `make test` and `make demo` set up everything in .venv from this repository's own files.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.dsnet-installed

.PHONY: install test test-fast demo lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first (CPU wheel) unless a torch is already importable, so pip never pulls a CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Everything except the tests marked `slow` (subprocess training runs, torchrun).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

SHARED ?= ../shared
DEMO_CONFIG := benchmarks/configs/dsnet-head64_1xb8-1.8k_camvid-192x256.yaml

# The model table, then a 2-minute CPU training run on the real CamVid sample (../shared) with
# validation, checkpoints, logs and plots under runs/demo.
demo: $(STAMP)
	$(BIN)/dsnet list
	$(BIN)/dsnet info dsnet_head128 --size 1024 2048
	$(BIN)/dsnet train $(DEMO_CONFIG) --work-dir runs/demo --overwrite data.root=$(SHARED)/data/camvid \
		train.iters=60 optim.warmup_iters=10 train.log_interval=10 train.val_interval=60 train.progress=true

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
