"""Segment every object of a prompts file and save meshes + a .blend (arguments after `--`):

    blender -b --python-exit-code 1 -P scripts/sa3d_batch.py -- --dataset D --prompts P.json --out O
    python scripts/sa3d_batch.py -- --dataset D --prompts P.json --out O          (bpy wheel)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sa3d_blender.blender import batch  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(batch.main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []))
