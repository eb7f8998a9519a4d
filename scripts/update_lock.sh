#!/usr/bin/env bash
# Move the test lock forward: run the suite against the newest versions (EDGEECG_DEPS=latest, in .venv-latest)
# and, only when it is green, write what that venv holds to requirements/test-lock.txt. Review the diff,
# then commit it with the code that needed it.
set -euo pipefail
cd "$(dirname "$0")/.."
# with the ray extra too, so that its pins stay in the lock for `scripts/test.sh -m slow`
EDGEECG_DEPS=latest EDGEECG_WITH_RAY=1 bash scripts/test.sh "$@"
{
  echo "# The test environment scripts/test.sh installs: every package pinned, transitive ones included."
  echo "# Written by scripts/update_lock.sh after a green run on $(uname -m), Python $(.venv-latest/bin/python -c 'import platform; print(platform.python_version())'), $(date -u +%F)."
  echo "# Platform-specific pins (nvidia-*, triton) only apply where pip would install those packages."
  .venv-latest/bin/python -m pip freeze --all --exclude-editable | grep -v '^edgeecg'
} > requirements/test-lock.txt
echo "wrote requirements/test-lock.txt ($(grep -vc '^#' requirements/test-lock.txt) packages)"
