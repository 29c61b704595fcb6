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

# --durations=25: CI's log names the slowest tests, so a slow one stays visible (the suite must stay under 10 min).
# -n: one pytest-xdist worker per core of a 2-core machine (each runs one torch thread), a test file per
# worker at a time so module fixtures are built once; most of the suite's time is single-threaded Python
# (exports, NNCF, process start-up), so two workers take about 0.6 of the time of one.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25

# Everything except the tests marked `slow` (subprocess training runs, torchrun).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow"

DEMO_CONFIG := demo/dsnet-head64_1xb8-cpu1.25min_camvid-mini-192x256.yaml
DEMO := runs/demo

# Needs nothing outside this repository: the model table and the shipped weights, then dsnet_head64
# trained for a few minutes on the CamVid images shipped in demo/camvid-mini (CC BY-NC 4.0) and evaluated
# (the engine at work); then the model shipped with the package (camvid-cpu60min, an hour of CPU training;
# these val images were part of its training data) predicts the demo val images, is exported to OpenVINO
# and its backends are timed. Everything lands in runs/demo.
demo: $(STAMP)
	$(BIN)/dsnet list
	$(BIN)/dsnet weights
	$(BIN)/dsnet train $(DEMO_CONFIG) --work-dir $(DEMO) --overwrite
	$(BIN)/dsnet eval $(DEMO_CONFIG) --weights $(DEMO)/best.safetensors -o $(DEMO)/eval/val.json --overwrite
	$(BIN)/dsnet predict dsnet_head64 --weights camvid-cpu60min demo/camvid-mini/images/val \
		-o $(DEMO)/predict --color --overlay --overwrite
	$(BIN)/dsnet export dsnet_head64 --weights camvid-cpu60min --format openvino \
		--size 240 320 -o $(DEMO)/export/dsnet_head64.xml --overwrite
	$(BIN)/dsnet bench dsnet_head64 --size 240 320 --weights camvid-cpu60min --backends eager,fold_channels_last,openvino \
		--seconds 1 -o $(DEMO)/bench.json --overwrite
	@echo "demo outputs: $(DEMO)/ (train.log, curves.png, class_iou.png, best.safetensors), $(DEMO)/eval/val.{json,png},"
	@echo "              camvid-cpu60min's $(DEMO)/predict/{labels,color,overlay}/, $(DEMO)/export/dsnet_head64.{xml,bin}, $(DEMO)/bench.json"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
