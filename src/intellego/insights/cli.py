"""The command line (``intellego``, ``python -m intellego.insights``): the explorer on the demo models and data.

Starts the local web app, prints its URL (with the session token) and serves until interrupted; with
``--export PATH`` it writes the offline HTML export instead and exits.

Usage: ``intellego [--data shapes|tabular|tokens|llm] [--host 127.0.0.1] [--port 8765] [--export PATH]``.
``intellego attribute ...`` runs the dataset attribution command of :mod:`intellego.scale` instead.
"""

from __future__ import annotations

import argparse
import errno
import sys

from ..errors import IntellegoError
from .example import DEMOS, build

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["attribute"]:
        from ..scale.__main__ import main as attribute_main

        return attribute_main(args_in[1:])
    parser = argparse.ArgumentParser(prog="intellego", description="The intellego insights explorer on the shipped "
                                     "demo model and data: serve it locally, or write an offline HTML export.")
    parser.add_argument("--data", choices=DEMOS, default="shapes", help="which demo model and data set")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free port; default 8765)")
    parser.add_argument("--export", metavar="PATH", help="write a self-contained HTML export and exit")
    parser.add_argument("--samples", type=int, default=256, help="demo samples to generate")
    parser.add_argument("--count", type=int, default=8, help="samples per run in the export")
    parser.add_argument("--methods", default=None,
                        help="comma-separated methods for the export (default: the first three available)")
    parser.add_argument("--debug", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    visualizer = build(args.data, n=args.samples)
    if args.export:
        runs = None if args.methods is None else [{"method": m.strip()} for m in args.methods.split(",") if m]
        try:
            path = visualizer.export(args.export, runs=runs, count=args.count)
        except IntellegoError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {path}")
        return 0
    try:
        visualizer.serve(blocking=True, debug=args.debug, port=args.port, host=args.host)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"port {args.port} is in use; using a free port instead")
        visualizer.serve(blocking=True, debug=args.debug, port=0, host=args.host)
    return 0
