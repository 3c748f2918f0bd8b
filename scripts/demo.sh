#!/usr/bin/env bash
# The main job, end to end on the built-in demo scene:
#   render the scene with Blender -> train the radiance field -> SA3D every object from automatic clicks on one view
#   (IoU vs ground truth, single-view SAM baseline, meshes + F-score) -> Blender batch: cameras + meshes in a .blend.
# Usage: bash scripts/demo.sh [OUT_DIR]   (default out/demo; SA3D_TRAIN_SECONDS sets the training budget, default 240)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/setup_env.sh")"
py="$venv/bin/python"
out="$(mkdir -p "${1:-$root/out/demo}" && cd "${1:-$root/out/demo}" && pwd)"
seconds="${SA3D_TRAIN_SECONDS:-240}"
cd "$root"

step() { echo; echo "=== $* ==="; }

step "1/4 demo scene (Blender, Cycles) -> $out/scene"
if [ -f "$out/scene/transforms.json" ]; then
  echo "reusing $out/scene"
else
  "$py" -m sa3d_blender make-scene "$out/scene" --preset demo --json | tee "$out/make_scene.json"
fi

step "2/4 radiance field, ${seconds} s of training -> $out/field.pt"
"$py" -m sa3d_blender train "$out/scene" --out "$out/field.pt" --seconds "$seconds" --json | tee "$out/train.json"

step "3/4 SA3D on every object from clicks on one training view -> $out/eval"
"$py" -m sa3d_blender eval --field "$out/field.pt" --dataset "$out/scene" --out "$out/eval" --json | tee "$out/eval.json"

step "4/4 Blender batch: cameras + object meshes -> $out/blender"
"$py" scripts/sa3d_batch.py -- --dataset "$out/scene" --prompts "$out/eval/prompts.json" --field "$out/field.pt" \
  --out "$out/blender" | tee "$out/batch.json"

"$py" - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
last = lambda name: json.loads((out / name).read_text().strip().splitlines()[-1])
train, ev, batch = last("train.json"), last("eval.json"), last("batch.json")
print("\n=== summary ===")
print(f"field: test PSNR {train['test_psnr']:.2f} dB after {train['iterations']} iterations ({train['train_seconds']:.0f} s)")
print(f"SA3D, mean over objects: test-view IoU {ev['mean']['iou']:.3f} (single-view SAM {ev['mean']['baseline_iou']:.3f}), "
      f"mesh F-score at 1 % of each object's diagonal {ev['mean']['fscore']:.3f} (0.5 %: {ev['mean']['fscore_fine']:.3f})")
print(f"comparison image: {ev['comparison_png']}")
print(f"meshes: {out / 'eval' / 'meshes'}")
for key in ("blend", "preview"):
    if key in batch:
        print(f"{key}: {batch[key]}")
PY
