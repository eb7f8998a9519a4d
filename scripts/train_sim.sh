#!/usr/bin/env bash
# The bundled default model, end to end, on CPU (2 cores) or a GPU where present. Every step resumes.
# Data: our own simulator only. Figures and timings: README "Bundled default model".
set -euo pipefail
source "$(dirname "$0")/env.sh"
# On a GPU machine, e.g.: WORKERS=14 TRAIN_ARGS="--set input_height=256 --set input_width=512 --set workers=12"
# The findings' auxiliary outputs are off (config: aux_findings): with them stage I stalled on its starting
# plateau on the project's 2 cores (train/README.md); a GPU run may try --set aux_findings=0.1.
PY=${PY:-.venv/bin}                 # where the edgeecg commands are
RUN=${RUN:-runs/default}
read -r -a EXTRA <<< "${TRAIN_ARGS:-}"  # --set overrides for stage I, stage II and the evaluation (after theirs)
S="$PY/edgeecg synth --workers ${WORKERS:-2} --size 1024x768 --no-progress"
stage1_set() {  # dir n style seed: stage I learns the simulator's findings too, so its sets need that column
  if [ -f "$1/labels.csv" ] && ! head -n 1 "$1/labels.csv" | grep -q findings; then
    echo "$1 was made before synth wrote the findings column: making it again" >&2
    rm -rf "$1"
  fi
  [ -f "$1/labels.csv" ] || $S --out "$1" --n "$2" --style "$3" --seed "$4"
}
stage1_set data/s1_clean 1500 clean 101
stage1_set data/s1_scan 2500 scan 102
for x in b:211 c:221 d:231 e:241 f:251 g:261 h:271 i:281 j:291 k:301 l:311 m:321 n:331 o:341 p:351 q:361 r:371; do  # stage I's other pages (train/configs/fresh.yaml)
  stage1_set "data/s1_clean_${x%:*}" 1500 clean "${x#*:}"
  stage1_set "data/s1_scan_${x%:*}" 2500 scan "$((${x#*:} + 1))"
done
[ -f data/s2_photo/labels.csv ] || $S --out data/s2_photo --n 2000 --style photo --seed 201
[ -f data/test_photo/labels.csv ] || $S --out data/test_photo --n 1000 --style photo --seed 901  # held out
# Stage I, one pass from random init over all 72,000 pages (train/configs/fresh.yaml's sets) on one 12-epoch
# cosine at a peak lr of 1e-3 under bfloat16 (train/configs/single.yaml, layered over default.yaml and
# fresh.yaml). It replaced three passes (72 epochs over the first 3,600 pages, then 6 and 3 over all of them)
# that took ~10 min longer: train/README.md ("One pass").
$PY/edgeecg-train stage1 --config train/configs/default.yaml --config train/configs/fresh.yaml \
  --config train/configs/single.yaml --out "$RUN" ${EXTRA[@]+"${EXTRA[@]}"}
# Stage II: 5 folds from the stage I weights, a tenth of stage I's peak lr for 4 epochs (the folds' best
# epochs came early at 5e-4 over 8, and from a stronger stage I at 2e-4; train/README.md "Stage II"). The
# photos go through the runtime's own chain (the detector, verifier and corner model of
# scripts/train_detector.sh and train_corners.sh, classical corners, refinement, warp, CLAHE; the check turns
# pages as serving does and rejects none here), so the members learn the corner errors they will meet when
# served; stage I used ground-truth corners.
DET=${DET_ONNX:-runs/detector2/detector_rect.onnx}
CORNERS=${CORNERS_ONNX:-runs/corners/corners.onnx}
VER=${VERIFIER_ONNX:-runs/verifier2/verifier.onnx}  # turns pages (upside down, a quarter) as serving does
RT=(--set preprocess=edgeecg --set runtime_detector="$DET" --set runtime_mode=warp --set runtime_corners=classical
    --set runtime_refine=true --set runtime_corner_model="$CORNERS" --set runtime_verifier="$VER")
$PY/edgeecg-train stage2 --config train/configs/default.yaml --out "$RUN" --init "$RUN/stage1/best.safetensors" \
  --set lr=1e-4 --set epochs=4 --set aux_findings=0 "${RT[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
$PY/edgeecg-train evaluate --config train/configs/default.yaml --out "$RUN" --test data/test_photo "${RT[@]}" \
  ${EXTRA[@]+"${EXTRA[@]}"}
