#!/usr/bin/env bash
# The bundled default model, part 2: export scripts/train_default.sh's members (plus the paper detector and
# ECG check of scripts/train_detector.sh and the corner model of scripts/train_corners.sh) into
# edgeecg/assets/default, evaluate the installed bundle through the runtime (detector, corners and warp: no
# ground-truth geometry) on the held-out photo set, and write that table
# into the manifest. Assets stay <= 40 MB: members with int8-stored weights (FP32 compute, parity-checked
# on pages); the detector is the very ONNX file stage II pre-processed its photos with (FP32).
set -euo pipefail
source "$(dirname "$0")/env.sh"
PY=.venv/bin
RUN=${RUN:-runs/default}
DET=${DET_ONNX:-runs/detector2/detector_rect.onnx}
OUT=${OUT:-edgeecg/assets/default}
VER=${VERIFIER_ONNX:-runs/verifier2/verifier.onnx}
CORNERS=${CORNERS_ONNX:-runs/corners/corners.onnx}
$PY/edgeecg-export --checkpoints "$RUN/stage2/ensemble" --detector "$DET" --verifier "$VER" --corner-model "$CORNERS" \
  --variants int8w --fused --parity-data data/test_photo --out "$OUT"
$PY/edgeecg eval data/test_photo --bundle "$OUT" --out "$RUN/eval_runtime" --json > "$RUN/eval_runtime.json"
$PY/python scripts/record_bundle_metrics.py "$OUT" "$RUN/eval_runtime.json" \
  --recipe "scripts/train_corners.sh && scripts/train_detector.sh && scripts/train_default.sh && scripts/export_default.sh" --test-data data/test_photo
du -sh edgeecg/assets
