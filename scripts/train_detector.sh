#!/usr/bin/env bash
# Train the paper detector (YOLOv8n-pose, 1 class, 4 corner keypoints) on synthetic scenes, export it to
# ONNX at 320 px, score it on a held-out set and (optionally) put it in a bundle. Offline throughout.
#
# Budget on the project's 2-core CPUs: about 1 hour with the defaults (synth ~5 min, training the rest).
# Shrink N_TRAIN or EPOCHS when the machine is shared; every step is resumable by hand (see each command).
#
#   scripts/train_detector.sh                      # build/detector/{train,val,test}, runs/detector
#   N_TRAIN=800 EPOCHS=6 scripts/train_detector.sh # a quicker, weaker detector
#   BUNDLE=build/bundle CHECKPOINTS=runs/stage2 scripts/train_detector.sh   # also write a model bundle
set -euo pipefail
source "$(dirname "$0")/env.sh"
PY=${PY:-.venv/bin/python}
DATA=${DATA:-build/detector}
RUN=${RUN:-runs/detector}
N_TRAIN=${N_TRAIN:-2000}   # photo 60%, scan 40%; ~12% of each are no-ECG negatives
N_VAL=${N_VAL:-200}
N_TEST=${N_TEST:-600}      # held-out, new seed, >= 500 as the issue asks
EPOCHS=${EPOCHS:-12}
IMGSZ=${IMGSZ:-320}
SIZE=${SIZE:-800x600}      # scene size; the detector sees it letterboxed to IMGSZ
WORKERS=${WORKERS:-2}

synth() {  # name n seed style negatives
  [ -f "$DATA/$1/geometry.jsonl" ] && { echo "keep $DATA/$1"; return; }
  .venv/bin/edgeecg synth --out "$DATA/$1" --n "$2" --seed "$3" --style "$4" --negatives "$5" \
    --size "$SIZE" --workers "$WORKERS" --no-progress
}
synth train_photo $((N_TRAIN * 6 / 10)) 101 photo 0.12
synth train_scan $((N_TRAIN * 4 / 10)) 102 scan 0.12
synth val "$N_VAL" 201 mix 0.12
synth test "$N_TEST" 301 mix 0.15

.venv/bin/edgeecg-train detector train --data "$DATA/train_photo" "$DATA/train_scan" --val "$DATA/val" \
  --out "$RUN" --imgsz "$IMGSZ" --epochs "$EPOCHS" --workers "$WORKERS" --export
.venv/bin/edgeecg-train detector evaluate --data "$DATA/test" --model "$RUN/detector.onnx" || \
  echo "held-out targets not met (see above): train longer or on more scenes before shipping"

if [ -n "${BUNDLE:-}" ]; then
  .venv/bin/edgeecg-export --checkpoints "${CHECKPOINTS:?set CHECKPOINTS to the stage II run}" \
    --detector "$RUN/weights/best.pt" --detector-imgsz "$IMGSZ" --out "$BUNDLE"
fi
