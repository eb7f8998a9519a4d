#!/usr/bin/env bash
# Train the corner model (edgeecg-train corners, ~0.5 M parameters, ONNX): it places the sheet's corners
# from the sheet's own content where edge refinement finds no clear edge (a white sheet on a white scanner
# lid, a side in shadow). It learns from rough quads drawn around the scenes' true corners, so it does not
# depend on the detector: run it once, before scripts/train_detector.sh (whose calibration and held-out
# evaluation run the chain with it). This is how the bundled corner model was made.
# On the project's 2-core CPUs: with the first six sets only (3,300 scenes, 13,200 pages), 7.9 min in all
# from nothing, training 7.3 of it (12 epochs; 2026-11-27, step times printed as [time]). With the two
# photo and scan sets added on 2026-11-27 evening (7,690 scenes, 30,760 pages): 18.3 min for the corner
# model with the scenes made (idle CPUs, 21:13-21:31 UTC), the two new sets ~2.5 min more; that re-run
# wrote the bundled corners.onnx byte for byte (sha256 aade053d...).
# The runtime runs the model 3 times, each from the last one's corners (--passes, default 3; corners.json).
# Since 2026-12-07 the scenes are drawn with a third on weathered paper (--weathered 0.35: texture,
# wrinkles, creases, colour casts, faded print), the same seeds otherwise; the bundled model since then was
# trained so (12 epochs, ~6 min an epoch beside other work; docs/preprocessing.md "Corners on worn paper").
# WEATHERED=0 DATA=build/corner_scenes gives the plain-paper model before it.
#
#   scripts/train_corners.sh     # build/corner_scenes_w/*, runs/corners_w/corners.onnx
set -euo pipefail
source "$(dirname "$0")/env.sh"
DATA=${DATA:-build/corner_scenes_w}
CORNERS=${CORNERS:-runs/corners_w}
WEATHERED=${WEATHERED:-0.35}
WORKERS=${WORKERS:-2}
SIZE=800x600
# The detector's earlier scene sets (the same seeds, 4:3 frames), plus 500 clean pages that fill the
# picture, so that it learns when the frame is the sheet, and 4,000 photo and 1,000 scan scenes more: the
# sheets that run off the frame, whose hidden corners the warp needs, were where it erred (train/README.md).
scene_set train_photo 1200 101 photo 0.12 --weathered "$WEATHERED"
scene_set train_scan 800 102 scan 0.12 --weathered "$WEATHERED"
scene_set ft_photo 900 111 photo 0.3 --weathered "$WEATHERED"
scene_set ft_scan 600 112 scan 0.3 --weathered "$WEATHERED"
scene_set corner_clean 500 121 clean 0 --weathered "$WEATHERED"
scene_set val 200 201 mix 0.12 --weathered "$WEATHERED"
scene_set more_photo 4000 141 photo 0.12 --weathered "$WEATHERED"
scene_set more_scan 1000 142 scan 0.12 --weathered "$WEATHERED"
[ -f "$CORNERS/corners.onnx" ] || timed "corner model" .venv/bin/edgeecg-train corners --data "$DATA/train_photo" \
  "$DATA/train_scan" "$DATA/ft_photo" "$DATA/ft_scan" "$DATA/corner_clean" "$DATA/more_photo" "$DATA/more_scan" \
  --val "$DATA/val" --out "$CORNERS"
