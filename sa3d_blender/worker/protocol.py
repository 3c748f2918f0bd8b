"""The JSON-lines wire format between WorkerClient and the worker process: one JSON object per line, stdlib only."""

from __future__ import annotations

import json

# message types the worker sends
READY = "ready"
PROGRESS = "progress"
RESULT = "result"
ERROR = "error"

# control methods the client sends; they carry id 0 and never get a reply of their own
CONTROL_ID = 0
CANCEL = "cancel"
SHUTDOWN = "shutdown"

# exit codes of a worker that could not start (the client turns them into WorkerStartError messages)
EXIT_NO_TORCH = 3
EXIT_STARTUP_FAILED = 4

# error_type of a job stopped by a cancel request (the name of sa3d_blender.core.errors.Cancelled)
CANCELLED = "Cancelled"


def encode(message: dict) -> bytes:
    """One protocol line; Paths and other non-JSON scalars travel as strings."""
    return (json.dumps(message, default=str, separators=(",", ":")) + "\n").encode("utf-8")


def decode(line: bytes | str) -> dict | None:
    """The message on `line`, or None when the line is not a protocol message (e.g. a library printing to stdout)."""
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return message if isinstance(message, dict) else None


def request(job_id: int, method: str, params: dict) -> bytes:
    return encode({"id": job_id, "method": method, "params": params})


def progress(job_id: int, fraction: float, stage: str, message: str) -> bytes:
    return encode({"id": job_id, "type": PROGRESS, "fraction": fraction, "stage": stage, "message": message})


def result(job_id: int, value: dict) -> bytes:
    return encode({"id": job_id, "type": RESULT, "result": value})


def error(job_id: int, error_type: str, message: str, traceback: str | None = None) -> bytes:
    return encode({"id": job_id, "type": ERROR, "error_type": error_type, "message": message, "traceback": traceback})
