#!/usr/bin/env bash
# Install edgeecg with every extra the tests need into .venv, then run lint and the default test suite.
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p build
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch/torchvision pinned to the wheels this project is built and tested with (CPU works).
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q -e '.[train,dev]'
# ultralytics pulls GUI opencv-python beside the headless build; put headless back on top.
.venv/bin/python -m pip install -q --force-reinstall --no-deps opencv-python-headless
.venv/bin/ruff check edgeecg train export benchmarks tests scripts conftest.py
.venv/bin/ruff format --check edgeecg train export benchmarks tests scripts conftest.py
.venv/bin/python -m pytest "$@"
