"""The worker boundary through a real worker process: round trips, structured errors, training, cancel, crash, restart."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from sa3d_blender.core.errors import Cancelled
from sa3d_blender.core.field import field_checkpoint
from sa3d_blender.worker.client import Job, WorkerClient, WorkerDied, WorkerError, WorkerStartError

REPO = Path(__file__).resolve().parents[1]
# one torch thread per worker: the test machine is shared
WORKER_ENV = {"SA3D_THREADS": "1"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    worker = WorkerClient(device="cpu", job_dir=tmp_path_factory.mktemp("jobs"), extra_env=WORKER_ENV)
    yield worker
    worker.stop()


def poll_until(client: WorkerClient, job: Job, reached: Callable[[Job], bool], timeout: float = 60.0) -> None:
    """Poll (as Blender's modal timer does) until `job`'s progress satisfies `reached`."""
    deadline = time.monotonic() + timeout
    while not reached(job):
        assert time.monotonic() < deadline, f"progress not reached within {timeout} s: {job}"
        assert not job.finished, f"job ended early: {job.state} {job.error}"
        started = time.monotonic()
        client.poll()
        assert time.monotonic() - started < 0.5, "poll() blocked"
        time.sleep(0.05)


def training_iterations(job: Job) -> bool:
    return job.stage == "train" and job.message.startswith("PSNR")


def test_ping_round_trip_reports_the_worker_process(client):
    result = client.call("ping")
    assert result["pid"] == client.ready_info["pid"] != os.getpid()
    assert result["device"] == "cpu"
    assert result["torch"].startswith("2.")
    assert Path(result["python"]).name.startswith("python")


def test_load_dataset_returns_every_camera_of_the_tiny_scene(client, tiny_scene):
    frames = json.loads((tiny_scene / "transforms.json").read_text())["frames"]
    result = client.call("load_dataset", path=str(tiny_scene))
    assert len(result["names"]) == len(result["c2w"]) == len(result["fx"]) == len(frames)
    assert sorted(result["train"] + result["test"]) == list(range(len(frames)))
    assert result["objects"], "the tiny scene has ground-truth objects"
    assert len(result["bbox"]) == 2 and all(lo < hi for lo, hi in zip(*result["bbox"]))


def test_bad_dataset_path_is_a_dataset_error_naming_it_and_the_worker_survives(client, tmp_path):
    missing = tmp_path / "no_such_scene"
    pid = client.ready_info["pid"]
    with pytest.raises(WorkerError) as info:
        client.call("load_dataset", path=str(missing))
    assert info.value.error_type == "DatasetError"
    assert str(missing) in str(info.value)
    assert client.alive
    assert client.call("ping")["pid"] == pid


def test_unknown_method_is_a_clear_error(client):
    with pytest.raises(WorkerError, match="unknown worker method 'fly'.*ping") as info:
        client.call("fly")
    assert info.value.error_type == "SA3DError"


@pytest.mark.slow
def test_train_writes_a_loadable_checkpoint_with_progress_in_order(client, tiny_scene, tmp_path):
    checkpoint = tmp_path / "field.pt"
    updates: list[tuple[float, str]] = []
    result = client.call("train", dataset=str(tiny_scene), checkpoint=str(checkpoint), iterations=30,
                         progress=lambda job: updates.append((job.fraction, job.stage)))
    assert result["iterations"] == 30
    assert result["checkpoint"] == str(checkpoint) and checkpoint.is_file()
    assert 8.0 < result["train_psnr"] < 60.0 and 8.0 < result["test_psnr"] < 60.0
    fractions = [f for f, _ in updates]
    assert fractions == sorted(fractions) and all(0.0 <= f <= 1.0 for f in fractions)
    assert [s for _, s in updates if s == "train"] and updates[-1][1] == "save"
    field, cameras, extra = field_checkpoint.load_field(checkpoint)
    assert len(cameras) == len(client.call("load_dataset", path=str(tiny_scene))["names"])
    assert math.isclose(extra["test_psnr"], result["test_psnr"])
    assert client.call("load_field", checkpoint=str(checkpoint), dataset=str(tiny_scene))["grid_shape"] == list(field.shape)


@pytest.mark.slow
def test_cancel_mid_training_leaves_no_checkpoint_and_the_worker_usable(client, tiny_scene, tmp_path):
    checkpoint = tmp_path / "cancelled.pt"
    job = client.submit("train", dataset=str(tiny_scene), checkpoint=str(checkpoint), seconds=120)
    poll_until(client, job, training_iterations)
    started = time.monotonic()
    client.cancel(job)
    with pytest.raises(Cancelled):
        client.wait(job, timeout=60)
    assert time.monotonic() - started < 30
    assert job.state == "cancelled" and isinstance(job.error, WorkerError)
    assert list(tmp_path.iterdir()) == []
    assert client.call("ping")["pid"] == client.ready_info["pid"]


@pytest.mark.slow
def test_killed_worker_fails_its_job_with_worker_died_and_can_start_again(tmp_path, tiny_scene):
    worker = WorkerClient(device="cpu", job_dir=tmp_path / "jobs", extra_env=WORKER_ENV)
    try:
        job = worker.submit("train", dataset=str(tiny_scene), checkpoint=str(tmp_path / "f.pt"), seconds=120)
        poll_until(worker, job, lambda j: j.stage == "train")
        old_pid = worker.ready_info["pid"]
        os.kill(old_pid, signal.SIGKILL)
        with pytest.raises(WorkerDied, match=r"train.*killed by signal SIGKILL") as info:
            worker.wait(job, timeout=30)
        assert job.state == "error" and job.error is info.value
        assert str(worker.log_path) in str(info.value)
        assert not worker.alive
        worker.start()
        assert worker.call("ping")["pid"] not in (old_pid, None)
        assert not (tmp_path / "f.pt").exists()
    finally:
        worker.stop()


def test_worker_python_that_does_not_exist_is_named_in_the_error(tmp_path):
    python = tmp_path / "envs" / "nothing" / "bin" / "python"
    with pytest.raises(WorkerStartError, match="does not exist") as info:
        WorkerClient(python=python).start()
    assert str(python) in str(info.value)


def test_worker_python_without_torch_is_named_in_the_error():
    python = Path(getattr(sys, "_base_executable", ""))
    probe = subprocess.run([str(python), "-c", "import torch"], capture_output=True)
    if not python.is_file() or probe.returncode == 0:
        pytest.skip("needs an interpreter without torch next to the test venv")
    with pytest.raises(WorkerStartError, match="cannot import torch") as info:
        WorkerClient(python=python, startup_timeout=30).start()
    assert str(python) in str(info.value)


def test_worker_that_never_reports_ready_is_a_start_error_after_the_timeout(tmp_path):
    silent = tmp_path / "silent-python"
    silent.write_text("#!/bin/sh\nexec sleep 60\n")
    silent.chmod(0o755)
    worker = WorkerClient(python=silent, job_dir=tmp_path / "jobs", startup_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(WorkerStartError, match=r"did not report ready within 1 s") as info:
        worker.start()
    assert time.monotonic() - started < 10
    assert str(silent) in str(info.value) and not worker.alive


def test_submit_returns_at_once_while_the_worker_is_still_starting(tmp_path):
    worker = WorkerClient(device="cpu", job_dir=tmp_path / "jobs", extra_env=WORKER_ENV)
    try:
        started = time.monotonic()
        job = worker.submit("ping")
        assert time.monotonic() - started < 0.5, "submit waited for the worker to import torch"
        assert worker.starting and not worker.ready_info
        deadline = time.monotonic() + 120
        while not job.finished:
            assert time.monotonic() < deadline
            polled = time.monotonic()
            worker.poll()
            assert time.monotonic() - polled < 0.5, "poll() blocked"
            time.sleep(0.05)
        assert job.state == "done" and job.result["pid"] == worker.ready_info["pid"]
        assert not worker.starting
    finally:
        worker.stop()


def test_a_worker_that_hangs_at_start_fails_the_job_sent_to_it(tmp_path):
    silent = tmp_path / "silent-python"
    silent.write_text("#!/bin/sh\nexec sleep 60\n")
    silent.chmod(0o755)
    worker = WorkerClient(python=silent, job_dir=tmp_path / "jobs", startup_timeout=1.0)
    job = worker.submit("ping")
    deadline = time.monotonic() + 10
    while not job.finished:
        assert time.monotonic() < deadline, "the start timeout never failed the job"
        worker.poll()
        time.sleep(0.05)
    assert isinstance(job.error, WorkerStartError) and "did not report ready within 1 s" in str(job.error)
    assert str(silent) in str(job.error) and not worker.alive


def test_garbage_printed_on_stdout_before_the_worker_does_not_break_the_client(tmp_path):
    # an interpreter wrapper that chats on stdout (as conda activation hooks do)
    wrapper = tmp_path / "chatty-python"
    wrapper.write_text(f'#!/bin/sh\necho "activating environment..."\necho "{{not json"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    worker = WorkerClient(python=wrapper, device="cpu", job_dir=tmp_path / "jobs", extra_env=WORKER_ENV)
    try:
        assert worker.call("ping")["pid"] == worker.ready_info["pid"]
    finally:
        worker.stop()
    assert not worker.alive


def test_worker_exits_when_its_parent_dies(tmp_path):
    parent_code = (
        "import sys, time\n"
        "from sa3d_blender.worker.client import WorkerClient\n"
        f"w = WorkerClient(device='cpu', job_dir={str(tmp_path / 'jobs')!r}, extra_env={WORKER_ENV!r})\n"
        "w.start()\n"
        "print(w.ready_info['pid'], flush=True)\n"
        "time.sleep(300)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        worker_pid = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 20
    while process_running(worker_pid):
        assert time.monotonic() < deadline, f"worker {worker_pid} still running 20 s after its parent was killed"
        time.sleep(0.1)


def process_running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
