#!/usr/bin/env bash
# Train the paper detector (YOLOv8-pose at half yolov8n's width, 1 class, 4 corner keypoints) on synthetic
# scenes, export it to ONNX at 320 px, choose its "no ECG found" threshold on a tuning set, train the ECG
# check on pages through that chain, score both on a held-out set and (optionally) put them in a bundle.
# Offline throughout. This is how the bundled detector and ECG check were made.
#
# One phase from random init on 3,500 photo and scan scenes (12% and 30% no-ECG negatives), 8 epochs. The
# width multiple 0.125 (yolov8n: 0.25) makes the network ~3x cheaper, so the recipe fits an hour on the
# project's 2-core CPUs (timings: train/README.md) and the runtime detector costs ~8 ms instead of ~20.
# Every step keeps what exists (delete a directory to redo it).
#
#   scripts/train_detector.sh                      # build/detector/*, runs/detector_w125, runs/verifier_w125
#   WIDTH= RUN=runs/detector scripts/train_detector.sh   # yolov8n's own width (~2x the training time)
#   BUNDLE=build/bundle CHECKPOINTS=runs/stage2 scripts/train_detector.sh   # also write a model bundle
set -euo pipefail
source "$(dirname "$0")/env.sh"
DATA=${DATA:-build/detector}
RUN=${RUN:-runs/detector_w125}
N_TRAIN=${N_TRAIN:-2000}   # photo 60%, scan 40%; 12% of each are no-ECG negatives
N_FT=${N_FT:-1500}         # more scenes: photo 60%, scan 40%; 30% negatives (what detectors get wrongest)
N_VAL=${N_VAL:-200}
N_TUNE=${N_TUNE:-400}      # threshold calibration and the ECG check's selection (a seed of its own)
N_TEST=${N_TEST:-600}      # held-out, new seed, >= 500 as the issue asks
EPOCHS=${EPOCHS:-8}
WIDTH=${WIDTH-0.125}       # channel multiple (empty: the yaml's own, 0.25 for yolov8n)
IMGSZ=${IMGSZ:-320}
SIZE=${SIZE:-800x600}      # scene size; the detector sees it letterboxed to IMGSZ
WORKERS=${WORKERS:-2}
VERIFIER=${VERIFIER:-runs/verifier_w125}
CLS_INPUT=${CLS_INPUT:-96x192}   # the classifier input of the bundle the ECG check goes into

synth() {  # name n seed style negatives
  [ -f "$DATA/$1/geometry.jsonl" ] && { echo "keep $DATA/$1"; return; }
  .venv/bin/edgeecg synth --out "$DATA/$1" --n "$2" --seed "$3" --style "$4" --negatives "$5" \
    --size "$SIZE" --workers "$WORKERS" --no-progress
}
synth train_photo $((N_TRAIN * 6 / 10)) 101 photo 0.12
synth train_scan $((N_TRAIN * 4 / 10)) 102 scan 0.12
synth ft_photo $((N_FT * 6 / 10)) 111 photo 0.3
synth ft_scan $((N_FT * 4 / 10)) 112 scan 0.3
synth val "$N_VAL" 201 mix 0.12
synth tune "$N_TUNE" 401 mix 0.15
synth test "$N_TEST" 303 mix 0.15

T=(.venv/bin/edgeecg-train detector train --val "$DATA/val" --imgsz "$IMGSZ" --workers "$WORKERS" --export)
[ -n "$WIDTH" ] && T+=(--width "$WIDTH")
[ -f "$RUN/detector.onnx" ] || "${T[@]}" --data "$DATA/train_photo" "$DATA/train_scan" "$DATA/ft_photo" \
  "$DATA/ft_scan" --out "$RUN" --epochs "$EPOCHS"
FINAL=$RUN
# The ECG check below turns away sheets that are not ECGs, so the detector's threshold only has to keep
# every ECG of the tuning set (it still rejects about half of the no-ECG scenes on its own).
.venv/bin/edgeecg-train detector calibrate --data "$DATA/tune" --model "$FINAL/detector.onnx" --max-ecg-rejected 0
# The ECG check sees what the classifier sees: the bundle's input size and pre-processing (warp, classical
# corners, refinement for the bundled model); ~3 min of pages through the chain, ~5 min of training.
[ -f "$VERIFIER/verifier.onnx" ] || .venv/bin/edgeecg-train verifier --data "$DATA/ft_photo" "$DATA/ft_scan" \
  --tune "$DATA/tune" --detector "$FINAL/detector.onnx" --out "$VERIFIER" --input-size "$CLS_INPUT" \
  --mode warp --corners classical
.venv/bin/edgeecg-train detector evaluate --data "$DATA/test" --model "$FINAL/detector.onnx" \
  --corners classical --verifier "$VERIFIER/verifier.onnx" || \
  echo "held-out targets not met (see above): train longer or on more scenes before shipping"

if [ -n "${BUNDLE:-}" ]; then
  .venv/bin/edgeecg-export --checkpoints "${CHECKPOINTS:?set CHECKPOINTS to the stage II run}" \
    --detector "$FINAL/detector.onnx" --verifier "$VERIFIER/verifier.onnx" --out "$BUNDLE"
fi
