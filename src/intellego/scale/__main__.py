"""``intellego attribute`` / ``python -m intellego.scale``: attribute a dataset, under torchrun or alone.

Usage: ``intellego attribute --method integrated_gradients --model pkg.mod:make_model --data pkg.mod:make_data
--out DIR [--batch-size 32] [--shard-size N] [--layer NAME] [--method-args JSON] [--attribute-args JSON]
[--stats] [--no-store] [--reduce all_reduce]``. Launch with ``torchrun --nproc-per-node N -m intellego.scale ...``
for N ranks.
Factories are called without arguments; the model is put in eval mode on ``cuda:LOCAL_RANK`` when CUDA is
available (CPU otherwise). Rank 0 prints the summary line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

import torch

from .. import attr
from ..errors import IntellegoError, require

__all__ = ["main", "method_class", "load_factory"]


def method_class(name: str) -> Any:
    """The intellego.attr class named ``name`` (``integrated_gradients`` or ``IntegratedGradients``)."""
    wanted = name.replace("_", "").lower()
    for candidate in getattr(attr, "__all__", dir(attr)):
        cls = getattr(attr, candidate, None)
        if candidate.lower() == wanted and isinstance(cls, type) and callable(getattr(cls, "attribute", None)):
            return cls
    raise IntellegoError(f"--method: no attribution class {name!r} in intellego.attr")


def load_factory(spec: str, what: str) -> Any:
    """Call the factory ``module:function`` and return what it builds."""
    require(spec.count(":") == 1, f"--{what} must be 'module:function', got {spec!r}")
    module_name, func = spec.split(":")
    try:
        factory = getattr(importlib.import_module(module_name), func)
    except (ImportError, AttributeError) as exc:
        raise IntellegoError(f"--{what} {spec!r}: {exc}") from exc
    require(callable(factory), f"--{what} {spec!r} is not callable")
    return factory()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="intellego attribute", description="Attribute every example of a dataset "
                                "into resumable shards; run under torchrun for several ranks.")
    p.add_argument("--method", required=True, help="attribution class, e.g. integrated_gradients")
    p.add_argument("--model", required=True, help="module:factory returning the torch.nn.Module")
    p.add_argument("--data", required=True, help="module:factory returning a dataset (map-style or iterable)")
    p.add_argument("--out", required=True, help="output directory (rerun with the same one to resume)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--shard-size", type=int, default=None, help="examples per shard file (default 8 batches)")
    p.add_argument("--layer", default=None, help="submodule name, for layer and neuron methods")
    p.add_argument("--method-args", default="{}", help="JSON keyword arguments for the method's constructor")
    p.add_argument("--attribute-args", default="{}", help="JSON keyword arguments for attribute()")
    p.add_argument("--stats", action="store_true", help="also reduce CommonStats overall and per class")
    p.add_argument("--no-store", action="store_true", help="keep only the statistics (needs --stats)")
    p.add_argument("--reduce", choices=["shards", "all_reduce"], default="shards",
                   help="how --stats are reduced: fold the shard files in order, or torch.distributed.all_reduce")
    p.add_argument("--threads", type=int, default=None, help="torch threads per rank (default: cores / ranks)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for a usage error)."""
    from . import attribute_dataset

    args = _parser().parse_args(argv)
    try:
        cls = method_class(args.method)
        model = load_factory(args.model, "model")
        require(isinstance(model, torch.nn.Module), f"--model must build a torch.nn.Module, got {type(model)}")
        device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', '0')}") if torch.cuda.is_available() else None
        model = model.eval() if device is None else model.eval().to(device)
        dataset = load_factory(args.data, "data")
        pos = (model,) if args.layer is None else (model, model.get_submodule(args.layer))
        method = cls(*pos, **json.loads(args.method_args))
        stats = attr.CommonStats() if args.stats else None
        report = attribute_dataset(method, dataset, out=args.out, batch_size=args.batch_size,
                                   shard_size=args.shard_size, attribute_kwargs=json.loads(args.attribute_args),
                                   device=device, store=not args.no_store, stats=stats, reduce=args.reduce,
                                   progress=False if args.no_progress else None, num_threads=args.threads)
    except (IntellegoError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report.rank == 0:
        print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
