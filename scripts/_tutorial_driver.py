"""Runs one tutorial program (see ``captum_tutorials.py``) in this process and pickles what each cell did.

Usage: ``python _tutorial_driver.py PROGRAM.json RESULT.pkl`` (the current directory is the tutorials folder).
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
import traceback
from typing import Any

import numpy as np


def numbers(value: Any) -> Any:
    """A picklable copy of ``value`` if it is a number (Python's or NumPy's), an array or a tensor (or a tuple/list of
    them), else None."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, np.generic) and value.dtype.kind in "fiu":  # a NumPy scalar (np.int64 from sum(array))
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


LIBRARIES = ("captum", "intellego")


def attributes(value: Any) -> dict[str, Any]:
    """The public attributes (instance attributes and properties) of an object of the library under test (an
    attribution result, a visualization record); nothing for other objects, classes and callables (models)."""
    if type(value).__module__.split(".")[0] not in LIBRARIES or isinstance(value, type) or callable(value):
        return {}
    names = {n for n in getattr(value, "__dict__", {}) if not n.startswith("_")}
    names |= {n for cls in type(value).__mro__ for n in getattr(cls, "__slots__", ()) if not n.startswith("_")}
    names |= {n for n in dir(type(value)) if not n.startswith("_") and isinstance(getattr(type(value), n), property)}
    out = {}
    for name in sorted(names):
        try:
            out[name] = getattr(value, name)
        except Exception:  # noqa: BLE001, S112 - a property that cannot be read has nothing to compare
            continue
    return out


def texts(value: Any) -> Any:
    """A string, or a non-empty list of strings, as an array of str; else None."""
    if isinstance(value, str):
        return np.array(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return np.array(value)
    return None


def mark(value: Any) -> tuple[int, int | None]:
    """What tells that a name changed: its object, and a list's length (a list filled by the cell's calls)."""
    return id(value), len(value) if isinstance(value, list) else None


def flatten(name: str, value: Any, out: dict[str, Any], depth: int = 0) -> None:
    """The numbers in ``value`` under ``name``; dicts, named tuples and dataclass-free containers of them are
    walked (``name.key``, ``name[i]``) a few levels deep, as a notebook displays them."""
    got = numbers(value)
    if got is not None:
        if np.size(got) <= 5_000_000:
            out[name] = got
        return
    if depth >= 4 or len(out) > 2000:
        return
    if isinstance(value, dict):
        for key, item in list(value.items())[:200]:
            flatten(f"{name}.{key}", item, out, depth + 1)
    elif isinstance(value, tuple) and hasattr(value, "_fields"):
        for key in value._fields:
            flatten(f"{name}.{key}", getattr(value, key), out, depth + 1)
    elif isinstance(value, (tuple, list)) and len(value) <= 200:
        for i, item in enumerate(value):
            flatten(f"{name}[{i}]", item, out, depth + 1)
    else:
        for key, item in attributes(value).items():
            text = texts(item)
            if text is not None:
                out[f"{name}.{key}"] = text
            else:
                flatten(f"{name}.{key}", item, out, depth + 1)


def snapshot(namespace: dict[str, Any], before: dict[str, tuple[int, int | None]]) -> dict[str, Any]:
    """The numbers among the names the cell bound, rebound or grew (a list), and in its displayed value
    (``Out``)."""
    out: dict[str, Any] = {}
    for name, value in namespace.items():
        if name.startswith("_") or before.get(name) == mark(value):
            continue
        flatten(name, value, out)
    if "_cell_out" in namespace:
        flatten("Out", namespace.pop("_cell_out"), out)
    return out


def split_display(cell: str, where: str) -> tuple[Any, Any]:
    """The cell compiled as its statements and, when it ends with an expression (what a notebook displays),
    that expression separately, so its value can be recorded."""
    tree = ast.parse(cell)
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr):
        return compile(tree, where, "exec"), None
    tree.body.pop()
    return compile(tree, where, "exec"), compile(ast.Expression(last.value), where, "eval")


class Stdout:
    """File descriptor 1 sent to one file for the whole program, read back cell by cell: a cell's prints are caught
    with those of C extensions and of the processes it starts (forked or spawned ranks, which inherit the
    descriptor). The file, not a pipe per cell: a fork server started in one cell serves the later ones."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - open for the whole program, closed in close()
        self.saved = os.dup(1)
        os.dup2(self.file.fileno(), 1)
        self.start = 0

    def read(self) -> str:
        """What was written since the last read."""
        sys.stdout.flush()
        end = os.fstat(1).st_size
        text = os.pread(1, end - self.start, self.start).decode(errors="replace")  # pread keeps the shared offset
        self.start = end
        return text

    def close(self) -> None:
        """Back to the original descriptor 1, with everything written copied there."""
        sys.stdout.flush()
        os.dup2(self.saved, 1)
        self.file.seek(0)
        shutil.copyfileobj(self.file, sys.stdout.buffer)
        sys.stdout.flush()
        self.file.close()


def run_cell(cell: str, i: int, namespace: dict[str, Any]) -> tuple[str, str]:
    """Runs one cell in ``namespace``; returns its status and error."""
    try:
        body, shown = split_display(cell, f"<cell {i}>")
        exec(body, namespace)  # noqa: S102
        if shown is not None:
            namespace["_cell_out"] = eval(shown, namespace)  # noqa: S307
        return "ok", ""
    except Exception as err:  # noqa: BLE001 - a failing cell is a result
        sys.stderr.write(f"--- cell {i}\n{traceback.format_exc()}")
        return "error", f"{type(err).__name__}: {err}"[:400]
    finally:
        try:
            import matplotlib.pyplot as plt
            plt.close("all")
        except ImportError:  # pragma: no cover
            pass


def main(program_path: str, result_path: str) -> None:
    with open(program_path) as fh:
        program = json.load(fh)
    namespace: dict[str, Any] = {"__name__": "__main__", "display": print}
    exec(compile(program["prelude"], "<prelude>", "exec"), namespace)  # noqa: S102
    results, stdout = [], Stdout()
    try:
        for i, cell in enumerate(program["cells"]):
            if i in program["skip"]:
                results.append({"status": "skipped", "error": "", "seconds": 0.0, "values": {}, "stdout": ""})
                continue
            before = {k: mark(v) for k, v in namespace.items()}
            start = time.perf_counter()
            status, error = run_cell(cell, i, namespace)
            results.append({"status": status, "error": error, "seconds": time.perf_counter() - start,
                            "values": snapshot(namespace, before), "stdout": stdout.read()[-200_000:]})
            with open(result_path, "wb") as fh:  # written after every cell: a crash keeps what ran
                pickle.dump(results, fh)
    finally:
        stdout.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
