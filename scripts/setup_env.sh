#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment and the MobileSAM weights, then prints the venv path.
# The work is done by sa3d_blender/worker/environment.py, the same code as the add-on's Preferences > Set Up Worker.
# The venv lives outside the checkout, keyed by the requirements' hash, so fresh clones (CI) reuse it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SA3D_CACHE:-$HOME/.cache/sa3d_blender}"
key="$(cat "$root/requirements.txt" "$root/sa3d_blender/worker/requirements.txt" | sha256sum | cut -c1-12)"
venv="${SA3D_VENV:-$cache/venv-$key}"
python="${SA3D_BASE_PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3

PYTHONPATH="$root" "$python" -m sa3d_blender.worker.environment --venv "$venv" \
  --requirements "$root/requirements.txt" --weights "$cache/weights/mobile_sam.pt"
