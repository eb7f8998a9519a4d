#!/usr/bin/env bash
# The bundled verifier (edgeecg-train verifier), from pages of REAL records and from no-ECG scenes and
# photos, on worn paper as well as plain, at any resolution. It needs the real-record sets of
# scripts/train_default.sh (data/r2_photo, r1_scan, r1_clean, val9_photo, r1_val9_scan) and the bundle's
# detector (runs/shipped_pre, made by scripts/bundle_parts.py there). Every step keeps what exists.
#
# - Positives: 1,000 pages each of the fold 1-8 photos, scans and clean printouts (evenly spaced, so every
#   third record), each once as drawn and once on weathered paper (`edgeecg.synth.artefacts.weathered`:
#   other grid colours, casts, texture, strong wrinkles and creases, fading), every copy rescaled by a
#   random factor in 0.35-1.6 before the runtime chain, so the verdict cannot hang on the input's size.
#   Since 2026-12-07 each comes a third time heavily handled (`--worn 1`: `edgeecg.synth.artefacts.heavy_wear`,
#   folds into panels, crumpled texture, a turn of up to 8 degrees with black corners, grey noise up to
#   sigma 50, a strong colour temperature: the strengths ecg-image-kit's generator documents).
# - Negatives: 1,500 no-ECG scenes (tables, letters, graph paper, desks; frames 3:4 to 2.6:1), weathered
#   too, and 24 random crops of each of 8 real photos (scikit-image samples, public domain or CC0:
#   scripts/no_ecg_photos.py).
# - Threshold, on validation data only: fold-9 photos and scans, 400 no-ECG scenes of their own seed (and
#   their weathered copies) and 8 other real photos: the lowest cut that rejects 97% of those negatives,
#   so ECGs from printers and cameras the tuning set never showed keep the most room (`--cut lowest`).
# On the 2 cores here (2026-12-07, beside a classifier training): 25.6 min, 12 epochs, without the heavily
# handled copies; with them (runs/verifier4, the other pages cached) 47 min, 36 of them training; the
# threshold alone (--calibrate-only, on the cached pages) ~20 s.
set -euo pipefail
source "$(dirname "$0")/env.sh"
OUT=${OUT:-runs/verifier4}
PRE=${PRE:-runs/shipped_pre}
DATA=build/scenes3 SIZE=1024x768 WORKERS=${WORKERS:-2}
[ -f "$PRE/detector.onnx" ] || .venv/bin/python scripts/bundle_parts.py --out "$PRE"
[ -d build/no_ecg_photos/train ] || .venv/bin/python scripts/no_ecg_photos.py --out build/no_ecg_photos
scene_set train_neg 1500 3131 mix 1.0 --aspect 0.75-2.6
scene_set tune_neg 400 3401 mix 1.0
scene_set test_neg 400 3303 mix 1.0   # held out: scripts/eval_pages.py
TUNE=(--tune data/val9_photo data/r1_val9_scan "$DATA/tune_neg" --tune-photos build/no_ecg_photos/dev)
RULE=(--cut lowest --min-negatives-rejected 0.97)
[ -f "$OUT/verifier.onnx" ] || timed "verifier" .venv/bin/edgeecg-train verifier \
  --data data/r2_photo data/r1_scan data/r1_clean "$DATA/train_neg" --photos build/no_ecg_photos/train \
  "${TUNE[@]}" --detector "$PRE/detector.onnx" --out "$OUT" --limit 1000 --input-size 96x192 --worn 1
# Training picks its epoch with the default (widest-gap) threshold, as the bundled check was made; its shipped
# threshold then comes from the rule above (the widest-gap cut sat at 0.23, far from the negatives' 97% point
# at 0.036, where ECGs from other generators that score low still pass).
.venv/bin/edgeecg-train verifier --calibrate-only "${TUNE[@]}" --detector "$PRE/detector.onnx" --out "$OUT" \
  --limit 1000 --input-size 96x192 --worn 1 "${RULE[@]}"
# into a copy of the bundle, then the acceptance table (docs/preprocessing.md)
[ -n "${BUNDLE_OUT:-}" ] && .venv/bin/edgeecg-export --bundle edgeecg/assets/default --verifier "$OUT/verifier.onnx" \
  --out "$BUNDLE_OUT" && .venv/bin/python scripts/eval_pages.py --bundle "$BUNDLE_OUT"
