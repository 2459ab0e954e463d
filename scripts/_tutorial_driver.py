"""Runs one tutorial program (see ``captum_tutorials.py``) in this process and pickles what each cell did.

Usage: ``python _tutorial_driver.py PROGRAM.json RESULT.pkl`` (the current directory is the tutorials folder).
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import sys
import time
import traceback
from typing import Any

import numpy as np


def numbers(value: Any) -> Any:
    """A picklable copy of ``value`` if it is a number, an array or a tensor (or a tuple/list of them), else None."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "fciub":
        return value.copy()
    if torch is not None and isinstance(value, torch.Tensor) and not value.is_complex():
        return value.detach().cpu().double().numpy().copy() if value.is_floating_point() else \
            value.detach().cpu().numpy().copy()
    if isinstance(value, (tuple, list)) and value and len(value) <= 16:
        parts = [numbers(v) for v in value]
        if all(p is not None for p in parts):
            shapes = {np.shape(p) for p in parts}
            return np.stack([np.asarray(p, dtype=float) for p in parts]) if len(shapes) == 1 else None
    return None


def snapshot(namespace: dict[str, Any], before: dict[str, int]) -> dict[str, Any]:
    """The numbers among the names the cell bound or rebound (by identity)."""
    out = {}
    for name, value in namespace.items():
        if name.startswith("_") or before.get(name) == id(value):
            continue
        got = numbers(value)
        if got is not None and np.size(got) <= 5_000_000:
            out[name] = got
    return out


def main(program_path: str, result_path: str) -> None:
    with open(program_path) as fh:
        program = json.load(fh)
    namespace: dict[str, Any] = {"__name__": "__main__", "display": print}
    exec(compile(program["prelude"], "<prelude>", "exec"), namespace)  # noqa: S102
    results = []
    for i, cell in enumerate(program["cells"]):
        if i in program["skip"]:
            results.append({"status": "skipped", "error": "", "seconds": 0.0, "values": {}})
            continue
        before = {k: id(v) for k, v in namespace.items()}
        start, out = time.perf_counter(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(cell, f"<cell {i}>", "exec"), namespace)  # noqa: S102
            status, error = "ok", ""
        except Exception as err:  # noqa: BLE001 - a failing cell is a result
            status, error = "error", f"{type(err).__name__}: {err}"[:400]
            sys.stderr.write(f"--- cell {i}\n{traceback.format_exc()}")
        try:
            import matplotlib.pyplot as plt
            plt.close("all")
        except ImportError:  # pragma: no cover
            pass
        results.append({"status": status, "error": error, "seconds": time.perf_counter() - start,
                        "values": snapshot(namespace, before), "stdout": out.getvalue()[-4000:]})
        with open(result_path, "wb") as fh:  # written after every cell: a crash keeps what ran
            pickle.dump(results, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
