#!/usr/bin/env bash
# The bundled default model, part 3: export scripts/train_default.sh's members with the pre-processing models
# stage II learned through (runs/shipped_pre: the shipped detector and corner model, written out by
# scripts/bundle_parts.py) and the verifier of scripts/train_verifier.sh (part 2) into edgeecg/assets/default, score the installed bundle through the runtime
# (detector, corners, warp, CLAHE, verifier: no ground-truth geometry) on fold 9 of PTB-XL as photos, and
# write that table into the manifest. Assets stay <= 40 MB: members with int8-stored weights (FP32 compute,
# parity-checked on the fold-9 photos).
set -euo pipefail
source "$(dirname "$0")/env.sh"
PY=.venv/bin
RUN=${RUN:-runs/default}
PRE=${PRE:-runs/shipped_pre}
OUT=${OUT:-edgeecg/assets/default}
VAL=${VAL:-data/val9_photo}
# the verifier scripts/train_verifier.sh makes (as shipped since 2026-12-07), else the one stage II ran with
VERIFIER=${VERIFIER:-runs/verifier3/verifier.onnx}
[ -f "$VERIFIER" ] || VERIFIER=$PRE/verifier.onnx
$PY/edgeecg-export --checkpoints "$RUN/stage2/ensemble" --detector "$PRE/detector.onnx" --verifier "$VERIFIER" \
  --corner-model "$PRE/corners.onnx" --variants int8w --fused --parity-data "$VAL" --out "$OUT"
$PY/edgeecg eval "$VAL" --bundle "$OUT" --out "$RUN/eval_runtime" --json > "$RUN/eval_runtime.json"
# The test-only real sets (../shared/realdata: never trained or tuned on), recorded beside the validation.
REAL=()
if [ -d ../shared/realdata/records ]; then
  $PY/python scripts/eval_realdata.py --bundle "$OUT" --out "$RUN/eval_realdata" --json > "$RUN/eval_realdata.json"
  REAL=(--realdata "$RUN/eval_realdata.json")
fi
$PY/python scripts/record_bundle_metrics.py "$OUT" "$RUN/eval_runtime.json" \
  --recipe "scripts/train_default.sh && scripts/export_default.sh" --test-data "$VAL" "${REAL[@]}"
du -sh edgeecg/assets
