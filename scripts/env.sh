# Sourced by the scripts here: run from the repository root, with the environment every tool needs on these
# machines (torch's thread waits, no network for Albumentations and ultralytics, ultralytics' settings file
# kept inside build/). The tests get the same from the root conftest.py.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export OMP_WAIT_POLICY=PASSIVE NO_ALBUMENTATIONS_UPDATE=1 YOLO_OFFLINE=1 YOLO_AUTOINSTALL=False
export YOLO_CONFIG_DIR="$PWD/build/yolo-config"
# timed LABEL CMD...: run CMD and say how long it took (the recipes report their step times this way).
timed() {
  local t0=$SECONDS rc=0
  "${@:2}" || rc=$?
  echo "[time] $1: $(((SECONDS - t0) / 60)) min $(((SECONDS - t0) % 60)) s" >&2
  return $rc
}
# scene_set NAME N SEED STYLE NEGATIVES [more synth options]: the `edgeecg synth` scene set $DATA/NAME at
# $SIZE with $WORKERS processes, kept when it exists (delete the directory to make it again).
scene_set() {
  [ -f "$DATA/$1/geometry.jsonl" ] && { echo "keep $DATA/$1"; return; }
  .venv/bin/edgeecg synth --out "$DATA/$1" --n "$2" --seed "$3" --style "$4" --negatives "$5" \
    --size "$SIZE" --workers "$WORKERS" --no-progress "${@:6}"
}
