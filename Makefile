# One-command set-up: every target creates/updates .venv itself.
# GPU users: make TORCH="torch --index-url https://download.pytorch.org/whl/cu124" install
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
SHARED_DATA := $(wildcard ../shared/data/lesion2d)
export UNISEGDIFF_DATA ?= $(if $(SHARED_DATA),$(abspath ../shared/data/lesion2d),$(abspath data))
export WANDB_MODE ?= offline
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install test test-slow demo benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	WANDB_MODE=disabled $(BIN)/python -m pytest

test-slow: $(STAMP)
	WANDB_MODE=disabled $(BIN)/python -m pytest -m slow

demo: $(STAMP)
	$(BIN)/unisegdiff fit --config configs/unisegdiff/demo_condition.yaml
	$(BIN)/unisegdiff fit --config configs/unisegdiff/demo.yaml
	$(BIN)/unisegdiff test --config configs/unisegdiff/demo.yaml --ckpt_path runs/demo/staged/last.ckpt
	$(BIN)/python -m unisegdiff.demo_summary runs/demo --command $(BIN)/unisegdiff

PROFILE ?= quick
benchmark: $(STAMP)
	$(BIN)/python bench/benchmark.py --profile $(PROFILE) --data "$(UNISEGDIFF_DATA)"

clean:
	rm -rf $(VENV) lightning_logs runs reports/.tmp
