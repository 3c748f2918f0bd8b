"""Start and drive the torch worker process from Blender, the batch command or tests; imports only the stdlib.

`poll()` never blocks (for Blender's modal timer); `wait()` and `call()` block (batch, tests).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.errors import Cancelled, SA3DError
from . import protocol

log = logging.getLogger(__name__)

# the folder that holds the sa3d_blender package: the worker imports the same code as this client
PACKAGE_PARENT = Path(__file__).resolve().parents[2]
LOG_NAME = "worker.log"
STDERR_TAIL_LINES = 20
_EOF = object()  # queued by the stdout reader when the worker's stdout closes
LAST_WORDS_SECONDS = 2.0  # how long to wait for the replies still in the pipe once the process has exited


class WorkerError(SA3DError):
    """A request failed inside the worker; error_type is the worker-side exception class name."""

    def __init__(self, message: str, error_type: str = "WorkerError", traceback: str | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.traceback = traceback


class WorkerDied(WorkerError):
    """The worker process exited or was killed while jobs were running."""

    def __init__(self, message: str):
        super().__init__(message, error_type="WorkerDied")


class WorkerStartError(WorkerError):
    """The worker could not be started: bad interpreter, interpreter without torch/sa3d_blender, startup timeout."""

    def __init__(self, message: str):
        super().__init__(message, error_type="WorkerStartError")


class WorkerCancelled(WorkerError, Cancelled):
    """A job stopped by cancel(); both a WorkerError (job.error) and a Cancelled (what wait() raises)."""

    def __init__(self, message: str):
        super().__init__(message, error_type=protocol.CANCELLED)


@dataclass
class Job:
    id: int
    method: str
    state: str = "running"  # "running" | "done" | "error" | "cancelled"
    fraction: float = 0.0
    stage: str = ""
    message: str = ""
    result: dict | None = None
    error: WorkerError | None = None

    @property
    def finished(self) -> bool:
        return self.state != "running"


class WorkerClient:
    """One worker process (started on demand) and the jobs sent to it; use from one thread."""

    def __init__(self, python: str | Path | None = None, device: str = "auto", job_dir: Path | None = None,
                 extra_env: dict | None = None, startup_timeout: float = 120.0):
        self.python = Path(python).expanduser() if python else Path(sys.executable)
        self.device = device
        self._own_job_dir = job_dir is None
        self.job_dir = Path(job_dir) if job_dir is not None else Path(tempfile.mkdtemp(prefix="sa3d_jobs_"))
        self.extra_env = dict(extra_env or {})
        self.startup_timeout = startup_timeout
        self.ready_info: dict = {}  # the worker's ready message (pid, torch, device); empty until it is ready
        self.start_error: WorkerStartError | None = None  # why the last start failed
        self._ready_deadline: float | None = None  # while starting: when it counts as hung
        self._proc: subprocess.Popen | None = None
        self._messages: queue.Queue = queue.Queue()
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._log_offset = 0
        _LIVE_CLIENTS.add(self)

    # --- process ----------------------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.job_dir / LOG_NAME

    @property
    def starting(self) -> bool:
        """The process runs but has not reported ready yet (importing torch can take a minute on a cold disk)."""
        return self.alive and not self.ready_info

    def launch(self) -> None:
        """Start the worker process without waiting for it: requests sent meanwhile wait in its stdin, and poll() or
        wait() pick up its ready message (or its start failure, which then fails the jobs sent to it)."""
        if self.alive:
            return
        self._finish_process("exited")
        self._check_interpreter()
        self.job_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")]))
        env.update({k: str(v) for k, v in self.extra_env.items()})
        command = [str(self.python), "-m", "sa3d_blender.worker", "--device", self.device, "--job-dir", str(self.job_dir)]
        with open(self.log_path, "ab") as stderr:
            self._log_offset = stderr.tell()
            try:
                proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env)
            except OSError as exc:
                raise WorkerStartError(f"cannot run the worker Python {self.python}: {exc.strerror or exc}") from None
        self._proc, self._messages, self.ready_info = proc, queue.Queue(), {}
        self._ready_deadline = time.monotonic() + self.startup_timeout
        threading.Thread(target=_read_lines, args=(proc.stdout, self._messages), name="sa3d-worker-stdout",
                         daemon=True).start()

    def start(self) -> None:
        """Start the worker and block until it is ready; WorkerStartError when it cannot start."""
        self.launch()
        while self.starting:
            self._receive(block=True)
        if not self.ready_info:
            raise self.start_error

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit (it cancels its running job), then terminate / kill it; what is still running then
        fails with WorkerDied. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.stdin.write(protocol.request(protocol.CONTROL_ID, protocol.SHUTDOWN, {}))
                proc.stdin.close()
            except OSError:
                pass  # already gone
            for ending in (None, proc.terminate, proc.kill):
                if ending is not None:
                    ending()
                try:
                    proc.wait(timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._finish_process("was stopped")

    def _check_interpreter(self) -> None:
        if not self.python.exists():
            raise WorkerStartError(f"worker Python {self.python} does not exist: set the path of a Python with torch")
        if self.python.is_dir() or not os.access(self.python, os.X_OK):
            raise WorkerStartError(f"worker Python {self.python} is not an executable file")

    def _start_failure(self, code: int) -> str:
        if code == protocol.EXIT_NO_TORCH:
            problem = "cannot import torch: choose a Python environment with torch installed"
        elif code == protocol.EXIT_STARTUP_FAILED:
            problem = "could not set up the worker"
        else:
            problem = f"exited during startup ({_describe_exit(code)})"
        return f"worker Python {self.python} {problem}{self._stderr_tail()}"

    def _startup_timed_out(self) -> list[Job]:
        message = f"worker Python {self.python} did not report ready within {self.startup_timeout:g} s"
        self._kill(self._proc)
        return self._finish_process("", start_failure=message + self._stderr_tail())

    def _kill(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def _stderr_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = text.strip().splitlines()[-STDERR_TAIL_LINES:]
        return f"; last lines of {self.log_path}:\n" + "\n".join(lines) if lines else f" (nothing in {self.log_path})"

    # --- jobs -------------------------------------------------------------------------------------------------------
    def submit(self, method: str, **params) -> Job:
        """Send a request (launching the worker if needed, without waiting for it) and return its Job at once."""
        self.launch()
        job = Job(id=next(self._ids), method=method)
        self._jobs[job.id] = job
        self._send(protocol.request(job.id, method, params))
        return job

    def poll(self) -> list[Job]:
        """Apply every message received so far, without blocking; the jobs whose state or progress changed."""
        changed: dict[int, Job] = {}
        while (jobs := self._receive(block=False)) is not None:
            changed.update((job.id, job) for job in jobs)
        return list(changed.values())

    def wait(self, job: Job, progress: Callable[[Job], None] | None = None, timeout: float | None = None) -> dict:
        """Block until `job` ends: its result, or raise its WorkerError (WorkerDied, WorkerCancelled, ...)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not job.finished:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WorkerError(f"{job.method} (job {job.id}) did not finish within {timeout:g} s; it is still "
                                  "running: cancel it or stop the worker", error_type="Timeout")
            for changed in self._receive(block=True, timeout=remaining) or []:
                if changed is job and progress is not None and not job.finished:
                    progress(job)
        if job.error is not None:
            raise job.error
        return job.result

    def call(self, method: str, progress: Callable[[Job], None] | None = None, timeout: float | None = None,
             **params) -> dict:
        return self.wait(self.submit(method, **params), progress, timeout)

    def cancel(self, job: Job) -> None:
        """Ask the worker to stop `job` at its next progress point; it then ends in state "cancelled"."""
        if not job.finished and self.alive:
            self._send(protocol.request(protocol.CONTROL_ID, protocol.CANCEL, {"job": job.id}))

    def cancel_all(self) -> None:
        """Cancel every job that has not finished (the Blender file they belonged to is gone)."""
        for job in list(self._jobs.values()):
            self.cancel(job)

    # --- messages ---------------------------------------------------------------------------------------------------
    def _receive(self, block: bool, timeout: float | None = None) -> list[Job] | None:
        """Apply the next message, waiting up to `timeout` (None: until one comes) when `block`; the jobs it changed,
        or None when nothing came. A worker that is not ready by its startup deadline is killed and its jobs fail."""
        starting = self.starting
        if starting:
            left = max(0.0, self._ready_deadline - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        try:
            item = self._messages.get(timeout=timeout) if block else self._messages.get_nowait()
        except queue.Empty:
            if starting and time.monotonic() >= self._ready_deadline:
                return self._startup_timed_out()
            return None
        return self._apply(item)

    def _send(self, line: bytes) -> None:
        try:
            self._proc.stdin.write(line)
            self._proc.stdin.flush()
        except (OSError, ValueError):
            # the worker is gone; its stdout EOF (queued by the reader) fails the running jobs with the reason
            log.debug("could not write to the worker: it has exited")

    def _apply(self, item) -> list[Job]:
        if item is _EOF:
            return self._finish_process("exited", eof_seen=True)
        message = protocol.decode(item)
        if message is not None and message.get("type") == protocol.READY:
            self.ready_info, self._ready_deadline = message, None
            log.info("worker ready: pid %s, torch %s, device %s", message.get("pid"), message.get("torch"),
                     message.get("device"))
            return []
        job = self._jobs.get(message.get("id")) if message is not None else None
        if job is None:
            log.warning("ignoring a worker line that belongs to no job: %r", item[:200])
            return []
        kind = message.get("type")
        if kind == protocol.PROGRESS:
            job.fraction = float(message.get("fraction", job.fraction))
            job.stage = str(message.get("stage", job.stage))
            job.message = str(message.get("message", ""))
        elif kind == protocol.RESULT:
            job.state, job.result, job.fraction = "done", message.get("result") or {}, 1.0
        elif kind == protocol.ERROR:
            self._fail(job, _error_from(message))
        else:
            log.warning("ignoring a worker message of unknown type %r", kind)
            return []
        if job.finished:
            del self._jobs[job.id]
        return [job]

    def _fail(self, job: Job, error: WorkerError) -> None:
        job.error = error
        job.state = "cancelled" if isinstance(error, Cancelled) else "error"
        job.message = str(error)

    def _finish_process(self, how: str, eof_seen: bool = False, start_failure: str | None = None) -> list[Job]:
        """Once the process has ended: apply the replies it still sent, then fail the jobs it left running (with a
        WorkerStartError, kept as start_error, when it never became ready)."""
        proc = self._proc
        if proc is None:
            return []
        self._proc = None
        code = proc.wait()
        _close(proc.stdin)
        changed: dict[int, Job] = {}
        deadline = time.monotonic() + LAST_WORDS_SECONDS
        while not eof_seen:
            try:
                item = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            eof_seen = item is _EOF
            if not eof_seen:
                changed.update((job.id, job) for job in self._apply(item))
        running = list(self._jobs.values())
        if not self.ready_info:
            self.start_error = WorkerStartError(start_failure or self._start_failure(code))
            error = self.start_error
        else:
            error = WorkerDied(f"the worker process (pid {proc.pid}) {how} while running "
                               f"{', '.join(j.method for j in running)} ({_describe_exit(code)}){self._stderr_tail()}")
        self._ready_deadline = None
        for job in running:
            self._fail(job, error)
            changed[job.id] = job
        self._jobs.clear()
        return list(changed.values())


def _error_from(message: dict) -> WorkerError:
    error_type = str(message.get("error_type") or "WorkerError")
    text = str(message.get("message") or error_type)
    if error_type == protocol.CANCELLED:
        return WorkerCancelled(text)
    return WorkerError(text, error_type=error_type, traceback=message.get("traceback"))


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _read_lines(stream, messages: queue.Queue) -> None:
    with stream:
        for line in stream:
            messages.put(line)
    messages.put(_EOF)


def _close(stream) -> None:
    try:
        stream.close()
    except OSError:
        pass  # a broken pipe on flush: the process is gone anyway


_LIVE_CLIENTS: weakref.WeakSet[WorkerClient] = weakref.WeakSet()


@atexit.register
def _stop_all_workers() -> None:
    for client in list(_LIVE_CLIENTS):
        client.stop(timeout=2.0)
        if client._own_job_dir:
            shutil.rmtree(client.job_dir, ignore_errors=True)
