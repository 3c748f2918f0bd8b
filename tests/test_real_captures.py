"""Real photographs (../shared/data/real, beside the repository): a reduced LLFF capture trains through the CLI in a
fresh process to a held-out PSNR floor within a peak-memory bound, segments, and evaluates against hand-style
annotations; the phone capture's lens and size load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from sa3d_blender.core.data.datasets import load_dataset
from sa3d_blender.core.segment.segmenters import load_segmenter

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"


def real(name: str) -> Path:
    path = REAL / name
    assert path.is_dir(), f"the real captures are expected in {REAL} (see ../shared/data/real/README.md)"
    return path


def reduced_llff(source: Path, out: Path, every: int, folder: str = "images_8") -> Path:
    """Every `every`-th view of an LLFF capture, its images linked (not copied) from `folder`."""
    rows = np.load(source / "poses_bounds.npy")
    images = sorted((source / folder).iterdir())
    keep = np.arange(0, len(rows), every)
    (out / folder).mkdir(parents=True)
    np.save(out / "poses_bounds.npy", rows[keep])
    for k in keep:
        (out / folder / images[k].name).symlink_to(images[k])
    return out


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def run_cli(*args: str, timeout: float = 900) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "sa3d_blender", *args, "--json"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_reduced_flower_trains_and_segments_within_a_memory_bound(tmp_path):
    scene = reduced_llff(real("flower"), tmp_path / "flower", every=2)  # 17 views: 14 train, 3 held out
    field = tmp_path / "field.pt"
    result = run_cli("train", str(scene), "--out", str(field), "--iterations", "700")
    assert result["scene_type"] == "forward" and result["working_size"] == [504, 378]
    assert result["test_psnr"] >= 20.0, result  # measured 21.7 dB (700 iterations, 2 cores)
    # the whole process: python, torch, 14 views of 504x378 and the field
    # measured 1463-1585 MB alone, once 2570 MB in a full suite run (not reproduced): the bound leaves room for that
    assert result["peak_memory_mb"] < 3000, result

    # three clicks on the flower cluster of one training view; SA3D renders at 65 536 px per view (295x221 here)
    clicks = [[320, 190], [290, 250], [410, 210]]
    out = tmp_path / "segment"
    segmented = run_cli("segment", "--field", str(field), "--dataset", str(scene), "--out", str(out),
                        "--cache", str(tmp_path / "cache"), "--view", "image002", "--name", "flowers",
                        *[f"--click={x},{y}" for x, y in clicks])
    assert segmented["failed"] == {} and segmented["objects"]["flowers"]["used_views"] >= 10, segmented
    assert segmented["peak_memory_mb"] < 3000, segmented
    for view in ("image000", "image016", "image032"):
        mask = read_png(out / "masks" / "flowers" / f"{view}.png") > 0
        assert mask.shape == (378, 504)  # the image file's size, not SA3D's
        # the cluster fills the middle of every held-out view, and is far from the whole frame
        assert 0.03 < mask.mean() < 0.5, (view, mask.mean())
        assert mask[150:260, 250:420].mean() > 0.5, view
        assert read_png(out / "overlays" / "flowers" / f"{view}.png").shape == (378, 504, 3)

    # the capture annotated as users annotate one: binary masks of the object on a training view (SAM from the same
    # clicks) and on two held-out views (the masks segment wrote), at images_4's size (twice the images read), no
    # mesh; `eval` places its own clicks and must find the same object there
    annotate(scene, "flowers", {"image002": sam_mask(scene / "images_8" / "image002.png", clicks),
                                "image000": read_png(out / "masks" / "flowers" / "image000.png") > 0,
                                "image016": read_png(out / "masks" / "flowers" / "image016.png") > 0})
    evaluated = run_cli("eval", "--field", str(field), "--dataset", str(scene), "--out", str(tmp_path / "eval"),
                        "--cache", str(tmp_path / "cache"))
    flowers = evaluated["objects"]["flowers"]
    assert flowers["reference_view"] == "image002" and flowers["scored_on"] == "test", flowers
    assert flowers["iou"] >= 0.85 and "fscore" not in flowers and flowers["appearance_psnr_texture"] > 12, flowers
    assert "fscore" not in evaluated["mean"] and evaluated["peak_memory_mb"] < 3000, evaluated
    assert (tmp_path / "eval" / "image000_comparison.png").is_file()


def sam_mask(image_path: Path, clicks) -> np.ndarray:
    """MobileSAM's best-scored mask of the clicks on one image: how annotation tools make masks."""
    model = load_segmenter("mobile_sam", device="cpu")
    image = np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float32) / 255
    result = model.predict(model.embed(image), np.array(clicks, float), np.ones(len(clicks), dtype=np.int64))
    return result.masks[int(np.argmax(result.scores))]


def annotate(scene: Path, name: str, masks: dict[str, np.ndarray]) -> None:
    """ground_truth.json for `name`: its own 0/255 masks by view, written at twice their size."""
    (scene / "annotations").mkdir()
    files = {}
    for view, mask in masks.items():
        files[view] = f"annotations/{name}_{view}.png"
        Image.fromarray(np.kron(mask, np.ones((2, 2), bool)).astype(np.uint8) * 255).save(scene / files[view])
    (scene / "ground_truth.json").write_text(json.dumps({"version": 1, "objects": [{"name": name, "masks": files}]}))


def test_phone_capture_loads_with_its_lens_at_the_working_size():
    dataset = load_dataset(real("fox"))
    assert dataset.format == "instant_ngp" and len(dataset.cameras) == 67
    assert (dataset.cameras.width[0], dataset.cameras.height[0]) == (1080, 1920)
    np.testing.assert_allclose(dataset.cameras.distortion[0], [0.0578421, -0.0805099, 0, 0, -0.000980296, 0.00015575])
    work = dataset.at_pixel_budget()
    assert work.cameras.width[0] * work.cameras.height[0] <= 250_000
    image = work.load_image(5)
    assert image.shape == (work.cameras.height[5], work.cameras.width[5], 3)
    # the reduced camera sees a world point where the full camera does, scaled
    point = dataset.cameras.c2w[5, :3, 3] - 3.0 * dataset.cameras.c2w[5, :3, 2]
    full_xy, _ = dataset.cameras.project(5, point[None])
    work_xy, _ = work.cameras.project(5, point[None])
    np.testing.assert_allclose(work_xy, full_xy * [work.cameras.width[5] / 1080, work.cameras.height[5] / 1920], atol=1e-6)
