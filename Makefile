# `make demo` and `make test` work on a fresh clone: they create .venv when it is missing,
# install torch first (a plain `torch` requirement would pull a CUDA build), then gailkit.
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR   ?= demo
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.gailkit-installed

.PHONY: demo test install bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $@

# The main job: expert -> demonstrations -> summary (imitation agents join here as they land).
demo: install
	$(BIN)/gailkit expert train --env CartPole-v1 --out $(DEMO_DIR)/expert
	$(BIN)/gailkit demos collect --expert $(DEMO_DIR)/expert --episodes 10 --out $(DEMO_DIR)/cartpole_demos.npz
	$(BIN)/gailkit demos collect --expert $(DEMO_DIR)/expert --episodes 10 \
		--env gailkit/CartPoleFixedHorizon-v1 --out $(DEMO_DIR)/cartpole_fixed_demos.npz
	$(BIN)/gailkit demos info $(DEMO_DIR)/cartpole_demos.npz --env CartPole-v1
	@echo "demo outputs in $(DEMO_DIR)/: expert/ (card.json, policy.safetensors, tb/), *_demos.npz"

test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 -q

bench: install
	OMP_NUM_THREADS=1 $(BIN)/python scripts/bench_buffers.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
