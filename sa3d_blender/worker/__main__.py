"""`python -m sa3d_blender.worker --device auto --job-dir DIR`: the torch worker process WorkerClient starts."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import protocol

log = logging.getLogger("sa3d_blender.worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sa3d_blender.worker", description=__doc__)
    parser.add_argument("--device", default="auto", help="auto, cuda, mps or cpu")
    parser.add_argument("--job-dir", type=Path, default=None, help="folder for arrays exchanged with the client")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        import torch
    except ImportError as exc:
        log.error("this Python (%s) cannot import torch: %s", sys.executable, exc)
        return protocol.EXIT_NO_TORCH

    from ..core.errors import SA3DError
    from .handlers import WorkerSession
    from .server import WorkerServer, protect_stdout

    out = protect_stdout()
    try:
        session = WorkerSession(args.device, args.job_dir)
    except SA3DError as exc:
        log.error("cannot start the worker: %s", exc)
        return protocol.EXIT_STARTUP_FAILED
    ready = {"pid": os.getpid(), "python": sys.executable, "torch": torch.__version__, "device": str(session.device)}
    WorkerServer(session, out).serve(sys.stdin.buffer, ready)
    # torch's interpreter teardown takes 1-2 s and every reply is already written: leave at once
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
