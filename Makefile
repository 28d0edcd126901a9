# RewardLab developer entry points. Every target sets up what it needs by itself.
#   make train   install, then train the default task on the CPU and leave a run directory
#   make test    install the test extras, then run every tier: ruff, pyright, the main test suite
#                and the ROS 2 suite (what CI runs); each tier runs whatever another's result, and
#                the target fails if any failed

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TASK   ?= cartpole_balance
RUN_DIR ?= runs/$(TASK)
# Extra key=value words for `make train` (e.g. TRAIN_ARGS="num_envs=32 total_steps=50000").
TRAIN_ARGS ?=
# Pytest selection; CI runs every tier that needs neither ROS 2 nor a GPU.
PYTEST_ARGS ?= -m "not ros and not gpu"
# The ROS 2 tier runs in a second venv: rclpy and message packages from PyPI (their start-up hook
# re-executes Python with LD_LIBRARY_PATH set, which we keep out of .venv), seeing .venv's packages
# through a .pth file so that torch, mujoco, cyclonedds ... are not installed twice.
VENV_ROS ?= .venv-ros
ROS_BIN   = $(VENV_ROS)/bin
ROS_PYTHON ?= python3.11
ROS_PYTEST_ARGS ?= -m "ros and not gpu"
ROS_PACKAGES = ros-rclpy ros-rmw-fastrtps-cpp ros-builtin-interfaces ros-std-msgs ros-sensor-msgs \
  ros-geometry-msgs ros-trajectory-msgs colcon-core colcon-python-setup-py colcon-ros

export MUJOCO_GL ?= egl

# MetaWorld's Sawyer scenes (the metaworld_* tasks read its asset files; RewardLab never imports
# it). --no-deps: metaworld pins mujoco==3.3.0, which pip cannot install beside our mujoco>=4.0,
# so it cannot be a pyproject extra (docs/metaworld.md). Empty METAWORLD= skips it.
METAWORLD ?= metaworld==3.1.1

# The tiers of `make test`, in any order: each is its own process and shares no state with another.
TIERS ?= lint typecheck main ros

.PHONY: install install-test install-ros system-deps train test test-main test-ros lint typecheck \
  tier-lint tier-typecheck tier-main tier-ros clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Offscreen rendering needs EGL (Mesa's software rasterizer works without a GPU).
system-deps:
	@ldconfig -p | grep -q 'libEGL.so.1' || { \
	  echo "installing EGL/Mesa for offscreen rendering"; \
	  apt-get update -qq && apt-get install -y -qq libegl1 libgl1-mesa-dri libglvnd0; }
	@# untrusted reward code runs only in a bubblewrap sandbox (docs/security.md)
	@command -v bwrap >/dev/null && ldconfig -p | grep -q 'libseccomp.so.2' || { \
	  echo "installing bubblewrap and libseccomp for the reward sandbox"; \
	  apt-get update -qq && apt-get install -y -qq bubblewrap libseccomp2 util-linux; }

install: $(BIN)/python system-deps
	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --quiet -e .
	$(if $(METAWORLD),$(BIN)/pip install --quiet --no-deps "$(METAWORLD)")

install-test: $(BIN)/python system-deps
	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --quiet -e ".[test]"
	$(if $(METAWORLD),$(BIN)/pip install --quiet --no-deps "$(METAWORLD)")

train: install
	$(BIN)/rewardlab train task=$(TASK) run_dir=$(RUN_DIR) $(TRAIN_ARGS)
	$(BIN)/rewardlab eval run_dir=$(RUN_DIR) episodes=20

lint: install-test
	$(MAKE) --no-print-directory tier-lint

# pyright (pinned in the test extra; [tool.pyright] in pyproject.toml) sees .venv and .venv-ros.
typecheck: install-ros
	$(MAKE) --no-print-directory tier-typecheck

# .venv-ros: python3.11 (the ROS wheels are cp311) + the ROS wheels + a .pth onto .venv's packages.
install-ros: install-test
	@test -x $(ROS_BIN)/python || $(ROS_PYTHON) -m venv $(VENV_ROS)
	$(ROS_BIN)/pip install --quiet $(ROS_PACKAGES)
	@main=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	ros=$$($(ROS_BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	echo "import site; site.addsitedir('$$main')" > "$$ros/zz_rewardlab_main_venv.pth"
	$(ROS_BIN)/python -c "import rclpy, rewardlab.deploy, cyclonedds"

test-main: install-test
	$(MAKE) --no-print-directory tier-main

test-ros: install-ros
	$(MAKE) --no-print-directory tier-ros

# Every tier runs, whatever the others' results; the target fails if any tier failed.
test: install-ros
	@failed=""; for tier in $(TIERS); do \
	  echo "=== make test: tier $$tier"; start=$$(date +%s); \
	  if $(MAKE) --no-print-directory tier-$$tier; then result=ok; else result=FAILED; failed="$$failed $$tier"; fi; \
	  echo "=== make test: tier $$tier $$result ($$(( $$(date +%s) - start )) s)"; \
	done; \
	if [ -n "$$failed" ]; then echo "=== make test: failed tiers:$$failed"; exit 1; fi; \
	echo "=== make test: every tier ok ($(TIERS))"

# The tiers themselves, without the installs (the targets above run those first).
tier-lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

tier-typecheck:
	$(BIN)/python .ci/typecheck.py

tier-main:
	$(BIN)/python -m pytest $(PYTEST_ARGS) --durations=15

tier-ros:
	$(ROS_BIN)/python -m pytest $(ROS_PYTEST_ARGS) --durations=10

clean:
	rm -rf $(VENV) $(VENV_ROS) .pytest_cache .ruff_cache
