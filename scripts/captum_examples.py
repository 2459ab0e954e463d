"""Run the examples in Captum's docstrings (``Examples::`` blocks) against intellego and against Captum, offline.

A developer check, like ``scripts/captum_tutorials.py``: nothing of Captum is written into this repository. The
docstrings are read at run time from the installed Captum package (in the dev environment as an oracle): every
public object of captum.attr, captum.metrics, captum.robust, captum.concept, captum.influence and captum.module,
and its methods, whose docstring has an ``Examples::`` block. Its ``>>>`` / ``...`` lines (and the unprompted
continuation lines of a statement left open) make one program, one cell per top-level statement. The placeholder
names the examples use (``ImageClassifier``, ``SimpleClassifier``, ``tokenizer``, ...) are our stand-ins
(``scripts/_example_standins.py``); the public names the example uses are imported from its package, the RNGs
are seeded, and each program runs twice through ``_tutorial_driver.py``: as written (Captum) and with the imports
rewritten to intellego, as a porting user does. The numbers each statement makes are compared like the
tutorials' (``captum_tutorials.compare``).

Usage::

    python scripts/captum_examples.py [--only IntegratedGradients.attribute,...] [--list] [--verbose]
        [--out report.md]
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import re
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _example_standins import PER_EXAMPLE  # noqa: E402
from captum_suite import rewrite  # noqa: E402
from captum_tutorials import Run, compare, run_plan, status  # noqa: E402

PACKAGES = ("captum.attr", "captum.metrics", "captum.robust", "captum.concept", "captum.influence",
            "captum.module", "captum.attr.visualization")
VIZ = "captum.attr.visualization"  # a module attribute of captum.attr (users import it as such), not a path
SECTION = re.compile(r"^\s*(?:Examples?|Basic usage)::?\s*$", re.M)
PROMPT = re.compile(r"^\s*(?:>>>|\.\.\.)(?: |$)?(.*)$")
OPEN = ("never closed", "unexpected EOF", "expected an indented block", "incomplete input")


def package_module(package: str) -> Any:
    if package == VIZ:
        return importlib.import_module("captum.attr").visualization
    return importlib.import_module(package)


def public_names() -> dict[str, str]:
    """Every public name of the packages (defined in Captum, where a module has no ``__all__``) -> its package."""
    out: dict[str, str] = {}
    for package in PACKAGES:
        module = package_module(package)
        names = getattr(module, "__all__", None) or [
            n for n in dir(module)
            if not n.startswith("_") and str(getattr(getattr(module, n), "__module__", "")).startswith("captum")]
        for name in names:
            out.setdefault(name, package)
    return out


def import_line(name: str, package: str) -> str:
    if package == VIZ:
        return f"from captum.attr import visualization as _viz\n{name} = _viz.{name}"
    return f"from {package} import {name}"


def documented(package: str, name: str) -> list[tuple[str, str]]:
    """(owner, docstring) of a public object and of the methods Captum defines on it (not torch's)."""
    obj = getattr(package_module(package), name)
    docs = [(name, inspect.getdoc(obj) or "")]
    if inspect.isclass(obj):
        for attr, member in inspect.getmembers(obj, inspect.isfunction):
            if (not attr.startswith("_") or attr == "__init__") and member.__module__.startswith("captum"):
                docs.append((f"{name}.{attr}", inspect.getdoc(member) or ""))
    return docs


def is_open(code: str) -> bool:
    """Whether ``code`` ends inside a statement (an open bracket or a block header without its body)."""
    try:
        ast.parse(code)
    except SyntaxError as err:
        return any(reason in str(err.msg) for reason in OPEN)
    return False


def example_code(doc: str) -> str | None:
    """The code of the docstring's ``Examples::`` block: its prompted lines, and the unprompted lines that continue
    a statement left open (Captum writes long calls so); None without such a block."""
    found = SECTION.search(doc)
    if found is None:
        return None
    lines: list[str] = []
    for line in doc[found.end():].splitlines():
        prompted = PROMPT.match(line)
        if prompted:
            lines.append(prompted.group(1))
        elif line.strip() and lines and is_open("\n".join(lines)):
            lines.append(line.strip())
    return "\n".join(lines) if lines else None


def examples() -> dict[str, tuple[str, str]]:
    """owner -> (package, code) for every example block; an example repeated in another docstring is run once,
    under its first owner."""
    out: dict[str, tuple[str, str]] = {}
    seen: set[str] = set()
    for name, package in public_names().items():
        for owner, doc in documented(package, name):
            code = example_code(doc)
            if code is not None and code not in seen:
                seen.add(code)
                out[owner] = (package, code)
    return out


def statements(code: str) -> list[str]:
    """One cell per top-level statement (decorators and comments above it included); the whole code as one cell
    when it does not parse (the driver then reports the syntax error)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return [code]
    lines, cells, start = code.splitlines(), [], 0
    for node in tree.body:
        end = node.end_lineno or node.lineno
        cells.append("\n".join(lines[start:end]))
        start = end
    return cells


def prelude(owner: str, code: str, names: dict[str, str]) -> str:
    """Imports (the public names the example uses, from their packages), the seeded RNGs, then the stand-ins."""
    used = set(re.findall(r"\b\w+\b", code))
    imports = [import_line(n, names[n]) for n in sorted(used & set(names))]
    bound = [f"{a} = {b}" for a, b in PER_EXAMPLE.get(owner, {}).items()]
    return "\n".join(["import os, random", "import numpy as np", "import torch", "from torch import Tensor",
                      "import matplotlib.pyplot as plt",
                      *imports, "random.seed(0)", "np.random.seed(0)", "torch.manual_seed(0)",
                      "from _example_standins import *", *bound, ""])


def ported(text: str) -> str:
    """A porting user's import rewrite: ``captum_suite.rewrite``, and Lime's linear-model wrappers from
    intellego as well (the suite's rewrite keeps Captum's for the tests' plumbing)."""
    return re.sub(r"\bcaptum\._utils\.models\b", "intellego._utils.models", rewrite(text))


def plan(owner: str, code: str, names: dict[str, str], library: str) -> dict[str, Any]:
    cells, first = statements(code), prelude(owner, code, names)
    if library == "intellego":
        cells, first = [ported(c) for c in cells], ported(first)
    return {"prelude": first, "cells": cells, "skip": [], "notebook": owner}


def run_both(owner: str, code: str, names: dict[str, str], timeout: int, verbose: bool) -> dict[str, Run]:
    runs = {}
    for library in ("intellego", "captum"):
        work = Path(tempfile.mkdtemp(prefix=f"ex_{library}_"))
        try:
            runs[library] = run_plan(plan(owner, code, names, library), work, work, library, timeout,
                                     f"{owner} ({library})" if verbose else None)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return runs


def summary(owner: str, ours: Run, theirs: Run) -> list[str]:
    compared, diffs = compare(ours, theirs)
    broken = [i for i, (a, b) in enumerate(zip(ours.cells, theirs.cells))
              if a["status"] == b["status"] == "error"]
    lines = [f"## {owner}", f"- intellego: {status(ours, 'statements', 160)}",
             f"- Captum: {status(theirs, 'statements', 160)}",
             f"- values compared: {compared}, differing: {len(diffs)}"]
    if broken:
        lines.append(f"- failing in both (the example itself): statements {broken}")
    return lines + [f"  - {d}" for d in diffs[:20]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="owners (Class.method or function), comma-separated")
    parser.add_argument("--list", action="store_true", help="print each example's program and stop")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per example and library")
    parser.add_argument("--jobs", type=int, default=1, help="examples run at once")
    parser.add_argument("--out", type=Path, help="write the report (markdown) here as well")
    parser.add_argument("--verbose", action="store_true", help="print each run's stderr")
    args = parser.parse_args(argv)
    names, found = public_names(), examples()
    only = [o.strip() for o in args.only.split(",") if o.strip()] or list(found)
    if args.list:
        for owner in only:
            print(f"===== {owner} ({found[owner][0]})\n" + "\n---\n".join(statements(found[owner][1])))
        return 0

    def one(owner: str) -> list[str]:
        runs = run_both(owner, found[owner][1], names, args.timeout, args.verbose)
        lines = summary(owner, runs["intellego"], runs["captum"])
        print("\n".join(lines), flush=True)
        return lines

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        report = [line for lines in pool.map(one, only) for line in [*lines, ""]]
    if args.out:
        args.out.write_text("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
