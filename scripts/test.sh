#!/usr/bin/env bash
# Install edgeecg with every extra the tests need into a venv, then run lint and the default test suite.
#
# By default every package is installed at the exact version of requirements/test-lock.txt (each transitive
# package pinned), so a fresh machine next month reproduces today's green run, in .venv.
# EDGEECG_DEPS=latest runs the same suite against the newest versions the registry serves, in .venv-latest
# (kept apart, so the locked .venv is never disturbed): drift is seen on purpose, not by accident.
# scripts/update_lock.sh does that and, when it is green, writes the new lock.
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p build
deps=${EDGEECG_DEPS:-locked}
case "$deps" in
  locked)
    venv=.venv
    # PIP_CONSTRAINT (not -c) also reaches the isolated build environment of the editable install.
    export PIP_CONSTRAINT="$PWD/requirements/test-lock.txt"
    upgrade=()
    torch=("torch==2.14.1" "torchvision==0.29.1") ;;
  latest)
    venv=.venv-latest
    upgrade=(--upgrade --upgrade-strategy eager)
    torch=(torch torchvision) ;;
  *) echo "EDGEECG_DEPS must be 'locked' (default) or 'latest', not '$deps'" >&2; exit 2 ;;
esac
# no wheel cache: a fresh venv is ~7.5 GB already (torch's CUDA wheels), and CI disks can be small
export PIP_NO_CACHE_DIR=1
if [ ! -x "$venv/bin/python" ]; then
  free_gb=$(df -Pk . | awk 'NR==2 {print int($4 / 1048576)}')
  [ "$free_gb" -ge 9 ] || echo "test.sh: only ${free_gb} GB free here; a new $venv needs about 8 GB" >&2
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q "${upgrade[@]}" pip
# torch first: the CPU-capable wheels this project is built and tested with (the lock pins the same).
"$venv/bin/python" -m pip install -q "${upgrade[@]}" "${torch[@]}"
extras=train,serve,dev
# the slow tests include scale-out on a local Ray cluster: the (large) ray extra only when they are asked for
case " $* " in *slow*) extras+=",ray" ;; esac
[ "${EDGEECG_WITH_RAY:-0}" = 1 ] && [[ $extras != *ray* ]] && extras+=",ray"
"$venv/bin/python" -m pip install -q "${upgrade[@]}" -e ".[$extras]"
# ultralytics pulls GUI opencv-python beside the headless build; put headless back on top.
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps opencv-python-headless
echo "test environment: $deps ($("$venv/bin/python" -c 'import numpy, onnxruntime, torch; print(f"numpy {numpy.__version__}, onnxruntime {onnxruntime.__version__}, torch {torch.__version__}")'))"
"$venv/bin/ruff" check edgeecg train export benchmarks tests scripts conftest.py
"$venv/bin/ruff" format --check edgeecg train export benchmarks tests scripts conftest.py
"$venv/bin/python" scripts/lint_imports.py   # the layering contracts of pyproject.toml
"$venv/bin/python" -m pytest "$@"
