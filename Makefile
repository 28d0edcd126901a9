# RewardLab developer entry points. Every target sets up what it needs by itself.
#   make train   install, then train the default task on the CPU and leave a run directory
#   make test    install the test extras, then lint and run the whole test suite (what CI runs)

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TASK   ?= cartpole_balance
RUN_DIR ?= runs/$(TASK)
# Pytest selection; CI runs every tier that needs neither ROS 2 nor a GPU.
PYTEST_ARGS ?= -m "not ros and not gpu"

export MUJOCO_GL ?= egl

.PHONY: install install-test system-deps train test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Offscreen rendering needs EGL (Mesa's software rasterizer works without a GPU).
system-deps:
	@ldconfig -p | grep -q 'libEGL.so.1' || { \
	  echo "installing EGL/Mesa for offscreen rendering"; \
	  apt-get update -qq && apt-get install -y -qq libegl1 libgl1-mesa-dri libglvnd0; }

install: $(BIN)/python system-deps
	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python system-deps
	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --quiet -e ".[test]"

train: install
	$(BIN)/rewardlab train task=$(TASK) run_dir=$(RUN_DIR)
	$(BIN)/rewardlab eval run_dir=$(RUN_DIR) episodes=20

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS) --durations=15

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
