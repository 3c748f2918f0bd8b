"""`python -m sa3d_blender <command>`: one module per command, each with add_arguments(parser) and run(args) -> dict.

With --json the command's result dict is printed as the last line (one JSON object), for scripts and CI.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import resource
import sys
import time

from ..core.errors import SA3DError

# command name -> module in this package; each module's docstring is its --help text
COMMANDS = {
    "make-scene": "make_scene",
    "train": "train",
    "render": "render",
    "segment": "segment",
    "extract": "extract",
    "eval": "eval",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sa3d_blender", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f".{module_name}", __name__)
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc)
        p.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line")
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def peak_memory_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    start = time.perf_counter()
    try:
        result = args._run(args)
    except SA3DError as exc:
        result = {"ok": False, "error": str(exc), "error_type": type(exc).__name__}
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    else:
        # a command that did part of its work (some objects failed) says so in its exit status
        failed = bool(result.get("failed"))
        result = {"ok": not failed, **result}
        code = 1 if failed else 0
    result["seconds"] = round(time.perf_counter() - start, 3)
    result["peak_memory_mb"] = round(peak_memory_mb(), 1)
    if args.json:
        print(json.dumps(result, default=str))
    return code
