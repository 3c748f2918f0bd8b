"""The worker's environment set-up (worker/environment.py, behind Preferences > Set Up Worker and scripts/setup_env.sh),
offline: a small local wheel stands in for torch & co, so CI does not download them twice."""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from addon_manifest.bpy_sandbox import INSTALL_EXTENSION, run_bpy, stock_blender_python
from addon_manifest.build import build_extension
from sa3d_blender.core.errors import Cancelled
from sa3d_blender.worker import environment
from sa3d_blender.worker.environment import SetupError, create_venv, extract_checked, venv_python

PROBE = "sa3d_probe"


def build_wheel(folder: Path, name: str = PROBE, version: str = "1.0") -> Path:
    """A minimal pure-Python wheel (one module that knows its version), built by hand: no network, no build tools."""
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n".encode(),
             f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\n" for path, data in files.items())
    files[f"{name}-{version}.dist-info/RECORD"] = (record + f"{name}-{version}.dist-info/RECORD,,\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    build_wheel(folder)
    return folder


def offline(wheels: Path) -> list[str]:
    return ["--no-index", "--find-links", str(wheels)]


def test_creates_a_venv_with_the_packages_reports_progress_and_is_reused(wheels, tmp_path):
    updates = []
    python = create_venv(tmp_path / "venv", [f"{PROBE}==1.0"], lambda f, m: updates.append((f, m)),
                         pip_options=offline(wheels))
    assert python == venv_python(tmp_path / "venv")
    done = subprocess.run([str(python), "-c", f"import {PROBE}; print({PROBE}.VERSION)"], capture_output=True, text=True)
    assert done.stdout.strip() == "1.0", done.stderr
    fractions = [f for f, _ in updates]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(updates) >= 3
    assert any(PROBE in message for _, message in updates)  # pip's "Processing ..." lines name what is installed
    assert not (tmp_path / "venv.partial").exists()
    # complete for these requirements: reused as it is (no pip run, even with no package source)
    again = []
    assert create_venv(tmp_path / "venv", [f"{PROBE}==1.0"], lambda f, m: again.append(m)) == python
    assert again == [f"worker environment ready: {tmp_path / 'venv'}"]


def test_a_package_that_cannot_be_installed_is_named_and_nothing_is_left(wheels, tmp_path):
    with pytest.raises(SetupError, match="package sa3d-no-such-package==9.9 could not be installed"):
        create_venv(tmp_path / "venv", [f"{PROBE}==1.0", "sa3d-no-such-package==9.9"], pip_options=offline(wheels))
    assert list(tmp_path.iterdir()) == []


def test_cancel_stops_pip_and_removes_the_half_made_environment(wheels, tmp_path):
    with pytest.raises(Cancelled):
        create_venv(tmp_path / "venv", [f"{PROBE}==1.0"], cancelled=lambda: True, pip_options=offline(wheels))
    assert list(tmp_path.iterdir()) == []


def test_too_little_disk_space_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(SetupError, match=r"not enough disk space in .*GB free"):
        create_venv(tmp_path / "venv", [PROBE], min_free_bytes=2**62)
    assert list(tmp_path.iterdir()) == []


def test_weights_are_installed_only_with_the_expected_sha256(tmp_path):
    payload = b"not really a checkpoint"
    archive = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("pkg-1.0/checkpoints/mobile_sam.pt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    dest = tmp_path / "weights" / "mobile_sam.pt"
    with pytest.raises(SetupError, match="has sha256 .*expected 0000"):
        extract_checked(archive, "checkpoints/mobile_sam.pt", "0000", dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert extract_checked(archive, "checkpoints/mobile_sam.pt", hashlib.sha256(payload).hexdigest(), dest).read_bytes() == payload
    with pytest.raises(SetupError, match="no file ending in checkpoints/other.pt"):
        extract_checked(archive, "checkpoints/other.pt", "0000", tmp_path / "other.pt")


def test_requirements_files_follow_includes(tmp_path):
    (tmp_path / "base.txt").write_text("# comment\ntorch==2.14.1\n\nnumpy>=1.26  # pinned\n")
    (tmp_path / "dev.txt").write_text("-r base.txt\npytest\n")
    assert environment.read_requirements(tmp_path / "dev.txt") == ["torch==2.14.1", "numpy>=1.26", "pytest"]
    assert "torch==2.14.1" in environment.read_requirements()  # the worker's own list, shipped in the zip


SETUP_SNIPPET = INSTALL_EXTENSION + """
prefs = sys.modules[ADDON + ".sa3d_blender.blender.preferences"]
before = prefs.worker_settings(bpy.context).python
try:
    bpy.ops.sa3d.setup_worker(requirements=BAD, pip_options=PIP, with_weights=False)
    bad = "no error"
except RuntimeError as error:
    bad = str(error)
after_bad = prefs.worker_settings(bpy.context).python
bpy.ops.sa3d.setup_worker(requirements=GOOD, pip_options=PIP, with_weights=False)
report({"before": before, "bad": bad, "after_bad": after_bad, "after": prefs.worker_settings(bpy.context).python,
        "venv": str(sys.modules[ADDON + ".sa3d_blender.blender.op_setup_worker"].worker_venv_folder())})
"""


def test_set_up_worker_button_in_a_stock_blender_makes_the_worker_python(wheels, tmp_path):
    """The Preferences operator, in a Python with only bpy, installs the (local) requirements into the extension's
    user folder, and from then on the automatic Worker Python is that venv; a failing package changes nothing."""
    (tmp_path / "good.txt").write_text(f"{PROBE}==1.0\n")
    (tmp_path / "bad.txt").write_text("sa3d-no-such-package==9.9\n")
    zip_path = build_extension(tmp_path / "dist")
    user = tmp_path / "user"
    user.mkdir()
    result = run_bpy("import sys\n" + SETUP_SNIPPET, user, python=stock_blender_python(), repo_on_path=False,
                     timeout=300, variables={"ZIP": str(zip_path), "GOOD": str(tmp_path / "good.txt"),
                                             "BAD": str(tmp_path / "bad.txt"), "PIP": " ".join(offline(wheels))})
    assert "sa3d-no-such-package==9.9 could not be installed" in result["bad"]
    assert result["after_bad"] == result["before"]
    assert result["after"] == str(venv_python(Path(result["venv"]))) != result["before"]
    assert Path(result["venv"]).is_relative_to(user)
    done = subprocess.run([result["after"], "-c", f"import {PROBE}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
