#!/usr/bin/env bash
# Train the paper detector (YOLOv8-pose at half yolov8n's width, 1 class, 4 corner keypoints) on synthetic
# scenes, export it to ONNX at 320 px, train the verifier behind it, export the detector again for the
# rect letterbox (a 4:3 photo as 320x256), choose its "no ECG found" threshold together with the check on a
# tuning set, score the chain on a held-out set and (optionally) put it in a bundle. Offline throughout.
# This is how the bundled detector was made. It needs the corner model: run scripts/train_corners.sh first.
#
# One phase from random init on 3,500 photo and scan scenes (12% and 30% no-ECG negatives) whose frames
# come in every shape from 3:4 portrait to 2.6:1 (real scans and screenshots are 2:1 and wider) and 30% of
# whose pages carry neither header nor calibration pulse (a scan cropped to the grid). On the project's
# 2-core CPUs (2026-11-27, from nothing, after scripts/train_corners.sh; step times printed as [time]):
# 18.5 min in all: detector 13.8 (8 epochs), the verifier 3.8 (pages of 2,100 scenes through the chain,
# 12 epochs), scenes, exports, calibration and the held-out evaluation under 1. With the corner model's
# script, 26.4 min. Every step keeps what exists (delete a directory to redo it).
#
#   scripts/train_corners.sh && scripts/train_detector.sh   # build/scenes/*, runs/detector2, runs/verifier2
#   BUNDLE=build/bundle CHECKPOINTS=runs/stage2 scripts/train_detector.sh   # also write a model bundle
#   ONE_PHASE= WIDTH= ASPECT= BARE= DATA=build/detector RUN=runs/detector VERIFIER=runs/verifier \
#     scripts/train_detector.sh   # the earlier two-phase yolov8n recipe (4:3 scenes): ~2 h, 2.2x slower
#                                 # at run time, no better on the held-out scenes (train/README.md); its
#                                 # verifier now also learns from train_neg
set -euo pipefail
source "$(dirname "$0")/env.sh"
DATA=${DATA:-build/scenes}
RUN=${RUN:-runs/detector2}
N_TRAIN=${N_TRAIN:-2000}   # phase 1: photo 60%, scan 40%; 12% of each are no-ECG negatives
N_FT=${N_FT:-1500}         # phase 2: photo 60%, scan 40%; 30% negatives
N_VAL=${N_VAL:-200}
N_TUNE=${N_TUNE:-400}      # threshold calibration (a seed of its own)
N_TEST=${N_TEST:-600}      # held-out, new seed, >= 500 as the issue asks
N_NEG=${N_NEG:-600}        # no-ECG scenes for the verifier's training
EPOCHS=${EPOCHS:-8}
FT_EPOCHS=${FT_EPOCHS:-5}
WIDTH=${WIDTH-0.125}      # channel multiple (empty: the yaml's own, 0.25 for yolov8n)
ONE_PHASE=${ONE_PHASE-1}   # 1: one phase on all four scene sets; empty: phase 2 fine-tunes on the last two
IMGSZ=${IMGSZ:-320}
SIZE=${SIZE:-800x600}      # scene size; the detector sees it letterboxed to IMGSZ
WORKERS=${WORKERS:-2}
VERIFIER=${VERIFIER:-runs/verifier2}
CORNERS=${CORNERS:-runs/corners}
CLS_INPUT=${CLS_INPUT:-96x192}   # the verifier's page size (the runtime makes its page at this size)
PAGE_SIZE=${PAGE_SIZE:-128x256}  # the bundled classifier's input: the pages the chain makes for it

[ -f "$CORNERS/corners.onnx" ] || { echo "no corner model at $CORNERS: run scripts/train_corners.sh first" >&2; exit 2; }
# Training scenes only: frame shapes (ASPECT, e.g. 0.75-2.6) and pages without header or calibration pulse
# (BARE); the tuning, validation and held-out sets stay 4:3 with the renderer's own page mix.
ASPECT=${ASPECT-0.75-2.6}
BARE=${BARE-0.3}
VARY=()
[ -n "${ASPECT:-}" ] && VARY+=(--aspect "$ASPECT")
[ -n "${BARE:-}" ] && VARY+=(--bare-pages "$BARE")
scene_set train_photo $((N_TRAIN * 6 / 10)) 101 photo 0.12 "${VARY[@]}"
scene_set train_scan $((N_TRAIN * 4 / 10)) 102 scan 0.12 "${VARY[@]}"
scene_set ft_photo $((N_FT * 6 / 10)) 111 photo 0.3 "${VARY[@]}"
scene_set ft_scan $((N_FT * 4 / 10)) 112 scan 0.3 "${VARY[@]}"
scene_set val "$N_VAL" 201 mix 0.12
scene_set tune "$N_TUNE" 401 mix 0.15
scene_set test "$N_TEST" 303 mix 0.15
# No-ECG scenes for the verifier alone: trained on the 450 negatives of the ft sets it let 3.7% of 300
# fresh negatives (another seed) through, with these 600 more 1.0%.
scene_set train_neg "$N_NEG" 131 mix 1.0 "${VARY[@]}"

T=(.venv/bin/edgeecg-train detector train --val "$DATA/val" --imgsz "$IMGSZ" --workers "$WORKERS" --export)
[ -n "$WIDTH" ] && T+=(--width "$WIDTH")
# THREADS=2: torch threads for the detector's training (ultralytics takes cores - 1, i.e. 1 here): ~1.2x
# faster on 2 cores (an epoch of 600 scenes 36 s against 45 s); the weights then differ in their last bits
# from the shipped run, which used ultralytics' choice.
[ -n "${THREADS:-}" ] && T+=(--threads "$THREADS")
SETS=("$DATA/train_photo" "$DATA/train_scan")
[ -n "$ONE_PHASE" ] && { SETS+=("$DATA/ft_photo" "$DATA/ft_scan"); FT_EPOCHS=0; }
[ -f "$RUN/detector.onnx" ] || timed detector "${T[@]}" --data "${SETS[@]}" --out "$RUN" --epochs "$EPOCHS"
FINAL=$RUN
if [ "$FT_EPOCHS" -gt 0 ]; then
  FINAL=${RUN}_ft
  [ -f "$FINAL/detector.onnx" ] || "${T[@]}" --data "$DATA/ft_photo" "$DATA/ft_scan" "$DATA/train_scan" \
    --out "$FINAL" --epochs "$FT_EPOCHS" --init "$RUN/weights/best.pt" --lr0 0.003 --warmup-epochs 0.3
fi
# A first threshold for the detector alone, keeping every ECG of the tuning set: the verifier's training
# pages below are made with it.
.venv/bin/edgeecg-train detector calibrate --data "$DATA/tune" --model "$FINAL/detector.onnx" --max-ecg-rejected 0
# The verifier sees what the classifier sees: the bundle's input size and pre-processing (warp, classical
# corners, refinement for the bundled model).
[ -f "$VERIFIER/verifier.onnx" ] || timed "verifier" .venv/bin/edgeecg-train verifier --data "$DATA/ft_photo" "$DATA/ft_scan" \
  "$DATA/train_neg" --tune "$DATA/tune" --detector "$FINAL/detector.onnx" --out "$VERIFIER" --input-size "$CLS_INPUT" \
  --mode warp --corners classical
# What ships: the same weights with a dynamic input, letterboxed "rect" (padded only to the stride), as
# good on the tuning scenes as the square input they were trained on and a fifth cheaper on a 4:3 photo.
DET=$FINAL/detector_rect.onnx
[ -f "$DET" ] || timed "rect export" .venv/bin/edgeecg-train detector export --weights "$FINAL/weights/best.pt" --out "$DET" \
  --imgsz "$IMGSZ" --letterbox rect
# With the verifier behind it the detector only has to find the sheet: its threshold drops as far as the
# pair still rejects 95% of the tuning set's no-ECG scenes (real photos, which the detector scores far
# lower than our scenes, then reach the check rather than being turned away by the detector).
timed calibration .venv/bin/edgeecg-train detector calibrate --data "$DATA/tune" --model "$DET" --max-ecg-rejected 0 \
  --verifier "$VERIFIER/verifier.onnx" --corner-model "$CORNERS/corners.onnx" --page-size "$PAGE_SIZE"
timed evaluation .venv/bin/edgeecg-train detector evaluate --data "$DATA/test" --model "$DET" --corners classical \
  --verifier "$VERIFIER/verifier.onnx" --corner-model "$CORNERS/corners.onnx" --page-size "$PAGE_SIZE" || \
  echo "held-out targets not met (see above): train longer or on more scenes before shipping"

if [ -n "${BUNDLE:-}" ]; then
  .venv/bin/edgeecg-export --checkpoints "${CHECKPOINTS:?set CHECKPOINTS to the stage II run}" \
    --detector "$DET" --verifier "$VERIFIER/verifier.onnx" \
    --corner-model "$CORNERS/corners.onnx" --out "$BUNDLE"
fi
