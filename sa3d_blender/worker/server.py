"""The worker process's loop: read requests from stdin, run one job at a time, stream progress and results to stdout.

A reader thread keeps reading stdin while a job runs, so a cancel request reaches the job's progress callback.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import traceback
from typing import BinaryIO

import torch

from ..core.errors import Cancelled, SA3DError
from . import protocol
from .handlers import WorkerSession

log = logging.getLogger(__name__)

# after stdin closes (the parent died) a job that never reaches a progress point must not keep the process alive
ORPHAN_GRACE_SECONDS = 10.0
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def protect_stdout() -> BinaryIO:
    """The original stdout as a binary stream for protocol lines; fd 1 and sys.stdout then point at stderr.

    Libraries that print (or C code writing to fd 1) end up in the worker log instead of corrupting the protocol.
    """
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "wb", buffering=0)


def error_reply(job_id: int, exc: BaseException) -> bytes:
    """The error message for `exc`: SA3D errors keep their message, anything else adds its traceback."""
    if isinstance(exc, Cancelled):
        return protocol.error(job_id, protocol.CANCELLED, str(exc) or "cancelled")
    if isinstance(exc, SA3DError):
        return protocol.error(job_id, type(exc).__name__, str(exc))
    trace = "".join(traceback.format_exception(exc))
    if isinstance(exc, OUT_OF_MEMORY):
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "allocation failed"
        message = f"out of GPU memory: {first_line}; release the worker or use a smaller SAM"
        return protocol.error(job_id, type(exc).__name__, message, trace)
    return protocol.error(job_id, type(exc).__name__, f"{type(exc).__name__}: {exc}", trace)


class WorkerServer:
    def __init__(self, session: WorkerSession, out: BinaryIO):
        self._session = session
        self._out = out
        self._write_lock = threading.Lock()
        self._requests: queue.Queue[dict | None] = queue.Queue()
        self._state_lock = threading.Lock()
        self._current: int | None = None
        self._cancel = threading.Event()
        self._cancelled_before_start: set[int] = set()

    def send(self, line: bytes) -> None:
        with self._write_lock:
            self._out.write(line)

    def serve(self, stdin: BinaryIO, ready: dict) -> None:
        """Announce `ready`, then run requests until shutdown or until stdin closes."""
        threading.Thread(target=self._read_requests, args=(stdin,), name="sa3d-worker-stdin", daemon=True).start()
        self.send(protocol.encode({"type": protocol.READY, **ready}))
        while (request := self._requests.get()) is not None:
            self._run(request)
        self._refuse_queued()

    # --- reader thread ----------------------------------------------------------------------------------------------
    def _read_requests(self, stdin: BinaryIO) -> None:
        for line in stdin:
            message = protocol.decode(line)
            if message is None or not isinstance(message.get("method"), str):
                log.warning("ignoring a line that is not a request: %r", line[:200])
                continue
            if message["method"] == protocol.CANCEL:
                self._cancel_job((message.get("params") or {}).get("job"))
            elif message["method"] == protocol.SHUTDOWN:
                log.info("shutdown requested")
                self._stop()
                return
            else:
                self._requests.put(message)
        log.info("stdin closed (the client is gone): stopping")
        self._stop()
        orphan_exit = threading.Timer(ORPHAN_GRACE_SECONDS, os._exit, args=(0,))
        orphan_exit.daemon = True
        orphan_exit.start()

    def _cancel_job(self, job_id) -> None:
        with self._state_lock:
            if job_id == self._current:
                self._cancel.set()
            else:
                self._cancelled_before_start.add(job_id)

    def _stop(self) -> None:
        with self._state_lock:
            self._cancel.set()
        self._requests.put(None)

    # --- main thread ------------------------------------------------------------------------------------------------
    def _run(self, request: dict) -> None:
        job_id, method, params = request.get("id"), request["method"], request.get("params") or {}
        with self._state_lock:
            if job_id in self._cancelled_before_start:
                self._cancelled_before_start.discard(job_id)
                self.send(protocol.error(job_id, protocol.CANCELLED, f"{method} cancelled before it started"))
                return
            self._current = job_id
            self._cancel.clear()

        def progress(fraction: float, stage: str, message: str = "") -> None:
            if self._cancel.is_set():
                raise Cancelled(f"{method} cancelled")
            self.send(protocol.progress(job_id, min(max(float(fraction), 0.0), 1.0), stage, message))

        try:
            if not isinstance(params, dict):
                raise SA3DError(f"request {job_id}: params must be a JSON object, got {type(params).__name__}")
            log.info("job %s: %s", job_id, method)
            self.send(protocol.result(job_id, self._session.call(method, params, progress)))
            log.info("job %s: %s done", job_id, method)
        except Exception as exc:  # every failure goes back to the client as data, never as a dead worker
            log.info("job %s: %s failed: %s: %s", job_id, method, type(exc).__name__, exc)
            if isinstance(exc, OUT_OF_MEMORY):
                self._session.release()
            self.send(error_reply(job_id, exc))
        finally:
            with self._state_lock:
                self._current = None

    def _refuse_queued(self) -> None:
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            if request is not None:
                self.send(protocol.error(request.get("id"), protocol.CANCELLED, "the worker is shutting down"))
