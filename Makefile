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

# The main job: expert -> demonstrations -> BC, GAIL, DAC -> table + learning curves (~5 min).
GK := $(BIN)/gailkit
demo: install
	rm -rf $(DEMO_DIR)  # the demo's own output folder: every run starts clean
	$(GK) expert train --env CartPole-v1 --out $(DEMO_DIR)/expert
	$(GK) demos collect --expert $(DEMO_DIR)/expert --episodes 10 --out $(DEMO_DIR)/cartpole_demos.npz
	$(GK) imitate bc   --env CartPole-v1 --demos $(DEMO_DIR)/cartpole_demos.npz --out $(DEMO_DIR)/bc
	$(GK) imitate gail --env CartPole-v1 --demos $(DEMO_DIR)/cartpole_demos.npz --out $(DEMO_DIR)/gail --steps 100000
	$(GK) imitate dac  --env CartPole-v1 --demos $(DEMO_DIR)/cartpole_demos.npz --out $(DEMO_DIR)/dac --steps 30000 --eval-every 5000
	$(GK) report --runs bc=$(DEMO_DIR)/bc gail=$(DEMO_DIR)/gail dac=$(DEMO_DIR)/dac \
		--plot $(DEMO_DIR)/curves.png --json $(DEMO_DIR)/table.json --title "CartPole-v1, 10 expert episodes"

# worksteal: each worker starts on half the tests, in file order (a module's fixtures mostly run once), and an
# idle worker takes tests from the other's queue (per file, the suite's longest files left one worker idle)
test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist worksteal -q

bench: install
	OMP_NUM_THREADS=1 $(BIN)/python scripts/bench_buffers.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
