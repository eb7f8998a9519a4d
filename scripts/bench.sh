#!/usr/bin/env bash
# The benchmark suite in one command: pytest-benchmark JSON under build/bench/ and the Markdown table
# benchmarks/RESULTS.md (machine, CPU, versions, this command, ratios against the issue 7 targets).
#
#   scripts/bench.sh                      # everything (GPU groups skip cleanly without a GPU)
#   scripts/bench.sh -k "ensemble"        # extra pytest arguments select or tune
#   EDGEECG_BENCH_ARCH=convnext_base EDGEECG_BENCH_INPUT=384x384 scripts/bench.sh
#
# Settings: EDGEECG_BENCH_* (benchmarks/benchsuite.py BenchSettings.from_env); models are built once and
# cached in build/bench-models/. Run it on an idle machine: other work on the cores skews every figure.
# Exit status: pytest's (the report is written whenever the JSON exists).
set -uo pipefail
source "$(dirname "$0")/env.sh"
export OMP_NUM_THREADS="${EDGEECG_BENCH_THREADS:-2}"
EDGEECG_BENCH_COMMAND="scripts/bench.sh"
[ $# -gt 0 ] && EDGEECG_BENCH_COMMAND+="$(printf ' %q' "$@")"
export EDGEECG_BENCH_COMMAND
PY="${PYTHON:-.venv/bin/python}"
OUT="${EDGEECG_BENCH_OUT:-build/bench}"
RESULTS="${EDGEECG_BENCH_RESULTS:-benchmarks/RESULTS.md}"
JSON="$OUT/results-$(date -u +%Y%m%dT%H%M%SZ).json"
mkdir -p "$OUT"

"$PY" -m pytest benchmarks -p no:cacheprovider --benchmark-only --benchmark-json="$JSON" \
    --benchmark-columns=median,iqr,rounds --benchmark-sort=name "$@"
status=$?
if [ -s "$JSON" ]; then
    "$PY" benchmarks/report.py "$JSON" --out "$RESULTS"
    echo "raw figures: $JSON"
fi
exit $status
