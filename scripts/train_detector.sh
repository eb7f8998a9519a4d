#!/usr/bin/env bash
# Train the paper detector (YOLOv8n-pose, 1 class, 4 corner keypoints) on synthetic scenes, export it to
# ONNX at 320 px, train the ECG check and the corner model behind it, export the detector again for the
# rect letterbox (a 4:3 photo as 320x256: a fifth less work), choose its "no ECG found" threshold together
# with the check on a tuning set, score the chain on a held-out set and (optionally) put it in a bundle.
# Offline throughout. This is how the bundled detector was made.
#
# Two phases: (1) from random init on photo and scan scenes (12% no-ECG negatives), (2) fine-tuning from
# phase 1's best.pt on new scenes with 30% negatives (negatives were what phase 1 got wrongest), lower lr.
# On the project's 2-core CPUs: synth ~3 min, phase 1 ~67 min (8 epochs), phase 2 ~36 min (5 epochs),
# calibration, the ECG check (verifier) and evaluation ~12 min, the corner model ~23 min. Every step keeps what exists (delete a
# directory to redo it).
#
#   scripts/train_detector.sh        # build/detector/*, runs/detector{,_ft}, runs/verifier, runs/corners
#                                    # (the bundle takes runs/detector_ft/detector_rect.onnx)
#   N_TRAIN=800 EPOCHS=6 FT_EPOCHS=0 scripts/train_detector.sh   # a quicker, weaker detector (no phase 2)
#   ONE_PHASE=1 WIDTH=0.125 RUN=runs/detector_w125 VERIFIER=runs/verifier_w125 scripts/train_detector.sh
#       # half yolov8n's width, one phase on all 3,500 scenes: ~45 min of training, better synthetic boxes,
#       # a 2x faster detector, but less confident on real photos (train/README.md)
#   BUNDLE=build/bundle CHECKPOINTS=runs/stage2 scripts/train_detector.sh   # also write a model bundle
set -euo pipefail
source "$(dirname "$0")/env.sh"
DATA=${DATA:-build/detector}
RUN=${RUN:-runs/detector}
N_TRAIN=${N_TRAIN:-2000}   # phase 1: photo 60%, scan 40%; 12% of each are no-ECG negatives
N_FT=${N_FT:-1500}         # phase 2: photo 60%, scan 40%; 30% negatives
N_VAL=${N_VAL:-200}
N_TUNE=${N_TUNE:-400}      # threshold calibration (a seed of its own)
N_TEST=${N_TEST:-600}      # held-out, new seed, >= 500 as the issue asks
EPOCHS=${EPOCHS:-8}
FT_EPOCHS=${FT_EPOCHS:-5}
WIDTH=${WIDTH:-}           # channel multiple (empty: the yaml's own, 0.25 for yolov8n)
ONE_PHASE=${ONE_PHASE:-}   # 1: one phase on all four scene sets, no fine-tuning phase
IMGSZ=${IMGSZ:-320}
SIZE=${SIZE:-800x600}      # scene size; the detector sees it letterboxed to IMGSZ
WORKERS=${WORKERS:-2}
VERIFIER=${VERIFIER:-runs/verifier}
CORNERS=${CORNERS:-runs/corners}
N_CLEAN=${N_CLEAN:-500}
CLS_INPUT=${CLS_INPUT:-96x192}   # the ECG check's page size (the runtime makes its page at this size)
PAGE_SIZE=${PAGE_SIZE:-128x256}  # the bundled classifier's input: the pages the chain makes for it

synth() {  # name n seed style negatives [more synth options]
  [ -f "$DATA/$1/geometry.jsonl" ] && { echo "keep $DATA/$1"; return; }
  .venv/bin/edgeecg synth --out "$DATA/$1" --n "$2" --seed "$3" --style "$4" --negatives "$5" \
    --size "$SIZE" --workers "$WORKERS" --no-progress "${@:6}"
}
# Training scenes only: frame shapes (ASPECT, e.g. 0.75-2.6) and pages without header or calibration pulse
# (BARE); the tuning, validation and held-out sets stay 4:3 with the renderer's own page mix.
VARY=()
[ -n "${ASPECT:-}" ] && VARY+=(--aspect "$ASPECT")
[ -n "${BARE:-}" ] && VARY+=(--bare-pages "$BARE")
synth train_photo $((N_TRAIN * 6 / 10)) 101 photo 0.12 "${VARY[@]}"
synth train_scan $((N_TRAIN * 4 / 10)) 102 scan 0.12 "${VARY[@]}"
synth ft_photo $((N_FT * 6 / 10)) 111 photo 0.3 "${VARY[@]}"
synth ft_scan $((N_FT * 4 / 10)) 112 scan 0.3 "${VARY[@]}"
synth val "$N_VAL" 201 mix 0.12
synth tune "$N_TUNE" 401 mix 0.15
synth corner_clean "$N_CLEAN" 121 clean 0   # the corner model also learns pages that fill the picture
synth test "$N_TEST" 303 mix 0.15

T=(.venv/bin/edgeecg-train detector train --val "$DATA/val" --imgsz "$IMGSZ" --workers "$WORKERS" --export)
[ -n "$WIDTH" ] && T+=(--width "$WIDTH")
SETS=("$DATA/train_photo" "$DATA/train_scan")
[ -n "$ONE_PHASE" ] && { SETS+=("$DATA/ft_photo" "$DATA/ft_scan"); FT_EPOCHS=0; }
[ -f "$RUN/detector.onnx" ] || "${T[@]}" --data "${SETS[@]}" --out "$RUN" --epochs "$EPOCHS"
FINAL=$RUN
if [ "$FT_EPOCHS" -gt 0 ]; then
  FINAL=${RUN}_ft
  [ -f "$FINAL/detector.onnx" ] || "${T[@]}" --data "$DATA/ft_photo" "$DATA/ft_scan" "$DATA/train_scan" \
    --out "$FINAL" --epochs "$FT_EPOCHS" --init "$RUN/weights/best.pt" --lr0 0.003 --warmup-epochs 0.3
fi
# A first threshold for the detector alone, keeping every ECG of the tuning set: the ECG check's training
# pages below are made with it.
.venv/bin/edgeecg-train detector calibrate --data "$DATA/tune" --model "$FINAL/detector.onnx" --max-ecg-rejected 0
# The ECG check sees what the classifier sees: the bundle's input size and pre-processing (warp, classical
# corners, refinement for the bundled model); ~3 min of pages through the chain, ~6 min of training.
[ -f "$VERIFIER/verifier.onnx" ] || .venv/bin/edgeecg-train verifier --data "$DATA/ft_photo" "$DATA/ft_scan" \
  --tune "$DATA/tune" --detector "$FINAL/detector.onnx" --out "$VERIFIER" --input-size "$CLS_INPUT" \
  --mode warp --corners classical
# The corner model places the corners where refinement finds no clear edges (white on a white lid): pages
# of rough quads around the training scenes' true corners, ~1 min to build, ~22 min of training.
[ -f "$CORNERS/corners.onnx" ] || .venv/bin/edgeecg-train corners --data "$DATA/train_photo" \
  "$DATA/train_scan" "$DATA/ft_photo" "$DATA/ft_scan" "$DATA/corner_clean" --val "$DATA/val" --out "$CORNERS"
# What ships: the same weights with a dynamic input, letterboxed "rect" (padded only to the stride), as
# good on the tuning scenes as the square input they were trained on and a fifth cheaper on a 4:3 photo.
DET=$FINAL/detector_rect.onnx
[ -f "$DET" ] || .venv/bin/edgeecg-train detector export --weights "$FINAL/weights/best.pt" --out "$DET" \
  --imgsz "$IMGSZ" --letterbox rect
# With the ECG check behind it the detector only has to find the sheet: its threshold drops as far as the
# pair still rejects 95% of the tuning set's no-ECG scenes (real photos, which the detector scores far
# lower than our scenes, then reach the check rather than being turned away by the detector).
.venv/bin/edgeecg-train detector calibrate --data "$DATA/tune" --model "$DET" --max-ecg-rejected 0 \
  --verifier "$VERIFIER/verifier.onnx" --corner-model "$CORNERS/corners.onnx" --page-size "$PAGE_SIZE"
.venv/bin/edgeecg-train detector evaluate --data "$DATA/test" --model "$DET" --corners classical \
  --verifier "$VERIFIER/verifier.onnx" --corner-model "$CORNERS/corners.onnx" --page-size "$PAGE_SIZE" || \
  echo "held-out targets not met (see above): train longer or on more scenes before shipping"

if [ -n "${BUNDLE:-}" ]; then
  .venv/bin/edgeecg-export --checkpoints "${CHECKPOINTS:?set CHECKPOINTS to the stage II run}" \
    --detector "$DET" --verifier "$VERIFIER/verifier.onnx" \
    --corner-model "$CORNERS/corners.onnx" --out "$BUNDLE"
fi
