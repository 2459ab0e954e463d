"""Run Captum's own tutorials (the notebooks of a Captum checkout) against intellego and against Captum, offline.

A developer check, like ``scripts/captum_suite.py``: nothing of Captum is written into this repository. The
``tutorials/`` folder of a Captum checkout (its notebooks, the small models and data it ships) is extracted into a
temporary directory; each notebook's code cells run in order in one namespace, twice, in two processes: once as
written (Captum, installed in the dev environment as an oracle) and once with the imports rewritten to intellego
(``captum_suite.rewrite``), which is what a porting user does. Cells that download data or models, or need
packages that cannot be installed here (torchvision, torchtext, the Hugging Face hub), are replaced by offline
equivalents of ours: one spec module per notebook in ``scripts/captum_tutorial_specs/`` (see its ``__init__``).
After every cell the numbers the cell made (tensors, arrays, floats) are recorded, and the two runs are compared
value by value; so are the numbers each cell printed (its stdout, the processes it started included), paired line by
line where the text around them matches (``_tutorial_prints``).

Usage::

    python scripts/captum_tutorials.py /path/to/captum [--only Titanic_Basic_Interpret,...] [--keep]
        [--timeout 900] [--out report.md] [--verbose]

The path may be a working tree or a git repository without one (its ``HEAD`` is read with ``git archive``). Only
notebooks with a spec run. The results are summarised in docs/porting.md ("Captum's tutorials").
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from _tutorial_prints import compare as compare_prints  # noqa: E402
from captum_suite import rewrite  # noqa: E402

DRIVER = HERE / "_tutorial_driver.py"


def extract(checkout: Path, dest: Path) -> Path:
    """The checkout's ``tutorials/`` folder under ``dest``; returns its path. From a git directory, files whose
    contents the clone lacks (large blobs of a partial mirror) are left out and listed on stderr."""
    if (checkout / "tutorials").is_dir():
        shutil.copytree(checkout / "tutorials", dest / "tutorials")
        return dest / "tutorials"
    git = ["git", "--git-dir", str(checkout)]
    listing = subprocess.run([*git, "ls-tree", "-r", "HEAD", "tutorials"], check=True, capture_output=True,
                             text=True).stdout
    for line in listing.splitlines():
        meta, path = line.split("\t", 1)
        blob = subprocess.run([*git, "cat-file", "blob", meta.split()[2]], capture_output=True)
        if blob.returncode:
            print(f"not in the clone, left out: {path}", file=sys.stderr)
            continue
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        (dest / path).write_bytes(blob.stdout)
    return dest / "tutorials"


def code_cells(notebook: Path) -> list[str]:
    """The notebook's code cells, in order, with IPython magics and shell lines commented out."""
    cells = json.loads(notebook.read_text())["cells"]
    out = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        out.append("\n".join(f"# {line}" if line.lstrip().startswith(("%", "!")) else line
                             for line in source.splitlines()))
    return out


def spec_of(stem: str) -> Any:
    return importlib.import_module(f"captum_tutorial_specs.{stem.lower()}")


def specs_available() -> list[str]:
    folder = HERE / "captum_tutorial_specs"
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def edited(replacement: Any, cell: str, index: int) -> str:
    """A spec's replacement for a cell: code, or a function of the notebook's cell returning code (an edit of the
    cell's own text, which must change it)."""
    if not callable(replacement):
        return str(replacement)
    out = replacement(cell)
    if out == cell:
        raise ValueError(f"the spec's edit of code cell {index} changed nothing: the notebook is not as expected")
    return str(out)


def program(stem: str, tutorials: Path, library: str) -> dict[str, Any]:
    """The cells to run (with the spec's replacements, rewritten for intellego when ``library`` says so)."""
    spec = spec_of(stem)
    path = next(p for p in tutorials.glob("*.ipynb") if p.stem.lower() == stem)
    cells = code_cells(path)
    replace: dict[int, Any] = getattr(spec, "REPLACE", {})
    cells = [edited(replace[i], cell, i) if i in replace else cell for i, cell in enumerate(cells)]
    prelude = getattr(spec, "PRELUDE", "")
    if library == "intellego":
        cells = [rewrite(cell) if "captum" in cell else cell for cell in cells]
        prelude = rewrite(prelude) if "captum" in prelude else prelude
    return {"prelude": prelude, "cells": cells, "skip": sorted(getattr(spec, "SKIP", ())),
            "notebook": path.name}


@dataclass
class Run:
    library: str
    cells: list[dict[str, Any]] = field(default_factory=list)  # status, error, seconds, values
    crashed: str | None = None


def run_one(stem: str, tutorials: Path, library: str, timeout: int, verbose: bool = False) -> Run:
    work = Path(tempfile.mkdtemp(prefix=f"tut_{library}_", dir=tutorials.parent))
    return run_plan(program(stem, tutorials, library), tutorials, work, library, timeout,
                    f"{stem} ({library})" if verbose else None)


def run_plan(plan: dict[str, Any], cwd: Path, work: Path, library: str, timeout: int,
             verbose_label: str | None = None) -> Run:
    """One program (``prelude``, ``cells``, ``skip``) run by the driver in a fresh process in ``cwd``; ``work``
    holds the plan and the result. With a ``verbose_label`` the run's stderr (the failing cells' tracebacks) is
    printed under it."""
    plan_path, result = work / "program.json", work / "result.pkl"
    plan_path.write_text(json.dumps(plan))
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONUNBUFFERED="1",  # prints reach the driver's file in order, not from a forked copy's buffer
               PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(HERE), os.environ.get("PYTHONPATH", "")]))
    try:
        proc = subprocess.run([sys.executable, str(DRIVER), str(plan_path), str(result)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Run(library, crashed=f"timed out after {timeout} s")
    if verbose_label is not None and proc.stderr:
        print(f"--- {verbose_label}: stderr\n{proc.stderr}", file=sys.stderr, flush=True)
    if not result.exists():
        return Run(library, crashed=(proc.stderr or proc.stdout)[-2000:])
    with result.open("rb") as fh:
        return Run(library, cells=pickle.load(fh))


def compare(ours: Run, theirs: Run, rtol: float = 1e-4, atol: float = 1e-5,
            not_compared: frozenset[str] = frozenset()) -> tuple[int, list[str]]:
    """How many recorded values were compared (cells both ran without error) and one line per value that
    differs; names in ``not_compared`` (a spec's ``NOT_COMPARED``: wall-clock times) are left out."""
    import numpy as np

    compared, lines = 0, []
    for i, (a, b) in enumerate(zip(ours.cells, theirs.cells)):
        if a["status"] != "ok" or b["status"] != "ok":
            continue
        names = sorted(set(a["values"]) & set(b["values"]) - not_compared)
        compared += len(names)
        for name in names:
            x, y = np.asarray(a["values"][name]), np.asarray(b["values"][name])
            if x.shape != y.shape:
                lines.append(f"cell {i} `{name}`: shape {x.shape} here, {y.shape} in Captum")
            elif x.dtype.kind in "fciub" and not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
                gap = float(np.nanmax(np.abs(x.astype(float) - y.astype(float)))) if x.size else 0.0
                lines.append(f"cell {i} `{name}`: max abs difference {gap:.3g}")
            elif x.dtype.kind == "U" and not np.array_equal(x, y):
                lines.append(f"cell {i} `{name}`: text {str(x)[:80]!r} here, {str(y)[:80]!r} in Captum")
    return compared, lines


def printed(ours: Run, theirs: Run, spec: Any) -> tuple[str, list[str]]:
    """The summary line and the differing lines of the numbers the cells printed (cells both ran, also those that
    raised after printing; numbers in text matching the spec's ``PRINTS_IGNORED`` are left out)."""
    ignored = getattr(spec, "PRINTS_IGNORED", "")
    compared = differing = unpaired = 0
    lines = []
    for i, (a, b) in enumerate(zip(ours.cells, theirs.cells)):
        if "skipped" in (a["status"], b["status"]):
            continue
        count, diffs, alone = compare_prints(a.get("stdout", ""), b.get("stdout", ""), ignored)
        compared, unpaired = compared + count, unpaired + alone
        differing += sum(n for _, n, _ in diffs)
        lines += [f"cell {i}: {text} ({n} differ, max abs difference {gap:.3g})" for text, n, gap in diffs]
        if alone:
            lines.append(f"cell {i}: {alone} printed lines with numbers without a counterpart in the other run")
    return f"- printed numbers compared: {compared}, differing: {differing}, unpaired lines: {unpaired}", lines


def status(run: Run, unit: str = "cells", width: int | None = None) -> str:
    """``"12/14 cells ran; failed 3: ..."`` (the first failure, cut to ``width`` characters), or the crash."""
    if run.crashed:
        return f"crashed: {run.crashed.strip().splitlines()[-1] if run.crashed.strip() else '?'}"
    ok = sum(c["status"] == "ok" for c in run.cells)
    failed = [f"{i}: {c['error']}" for i, c in enumerate(run.cells) if c["status"] == "error"]
    return f"{ok}/{len(run.cells)} {unit} ran" + (f"; failed {failed[0][:width]}" if failed else "")


def summary(stem: str, ours: Run, theirs: Run) -> list[str]:
    lines = [f"## {stem}", f"- intellego: {status(ours)}", f"- Captum: {status(theirs)}"]
    spec = spec_of(stem)
    compared, diffs = compare(ours, theirs, not_compared=frozenset(getattr(spec, "NOT_COMPARED", ())))
    lines.append(f"- values compared: {compared}, differing: {len(diffs)}")
    lines += [f"  - {d}" for d in diffs[:20]]
    head, prints = printed(ours, theirs, spec)
    return lines + [head] + [f"  - {p}" for p in prints[:20]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a Captum checkout (working tree or git directory)")
    parser.add_argument("--only", default=",".join(specs_available()), help="notebook stems, comma-separated")
    parser.add_argument("--library", choices=("both", "intellego", "captum"), default="both")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per notebook and library")
    parser.add_argument("--out", type=Path, help="write the report (markdown) here as well")
    parser.add_argument("--keep", action="store_true", help="keep the extracted tutorials and print the path")
    parser.add_argument("--verbose", action="store_true", help="print each run's stderr (the failing cells' "
                        "tracebacks)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="captum_tutorials_"))
    report: list[str] = []
    try:
        tutorials = extract(args.checkout.resolve(), work)
        for stem in [s.strip().lower() for s in args.only.split(",") if s.strip()]:
            libs = ("intellego", "captum") if args.library == "both" else (args.library,)
            runs = {lib: run_one(stem, tutorials, lib, args.timeout, args.verbose) for lib in libs}
            empty = Run("none", crashed="not run")
            lines = summary(stem, runs.get("intellego", empty), runs.get("captum", empty))
            report += [*lines, ""]
            print("\n".join(lines), flush=True)
    finally:
        if args.keep:
            print(f"extracted tutorials kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.out:
        args.out.write_text("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
