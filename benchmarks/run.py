"""``make bench``: run every ``benchmarks/cases_*.py`` and write ``docs/benchmarks.md``.

Usage: ``python -m benchmarks.run [--quick] [--only SUBSTRING] [--out docs/benchmarks.md]``.

A ``cases_*`` module may also define ``TABLES: dict[str, Callable[[bool], str]]``: section headings mapped to
functions ``(quick) -> markdown`` for tables that are not timings (completeness, say); ``--only`` selects them
by heading.

A full run (no ``--only``) also runs the standalone benchmarks of :data:`STANDALONE` (each a module with its own
``main``, e.g. several processes or a retraining oracle); ``--only`` runs one of them when it names it. Every run
merges its sections into the existing file: sections it did not run are kept as they were.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import platform
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch

from .harness import Case, Result, measure

ROOT = Path(__file__).resolve().parent.parent

# standalone benchmarks: module -> (arguments of a full run, arguments of a --quick run); None: it writes the
# default docs/benchmarks.md itself and is skipped when --out names another file
STANDALONE: dict[str, tuple[list[str], list[str]] | None] = {
    "influence_lds": None,
    "scale_throughput": ([], ["--examples", "128", "--rounds", "3"]),
    "llm_partition": ([], ["--quick"]),
}


def collect(quick: bool, only: str = "", module_name: str = "*") -> list[Case]:
    """Every module's cases (``module_name``: only ``cases_<module_name>.py``); a ``cases(quick, only)`` that
    takes ``only`` may skip building what it excludes."""
    out: list[Case] = []
    for path in sorted(Path(__file__).parent.glob(f"cases_{module_name}.py")):
        module = importlib.import_module(f"benchmarks.{path.stem}")
        if not hasattr(module, "cases"):
            out.extend(module.CASES)
        elif "only" in inspect.signature(module.cases).parameters:
            out.extend(module.cases(quick, only=only))
        else:
            out.extend(module.cases(quick))
    return out


def collect_tables(only: str, module_name: str = "*") -> dict[str, Callable[[bool], str]]:
    """The non-timing tables of every ``cases_*`` module whose heading contains ``only``."""
    out: dict[str, Callable[[bool], str]] = {}
    for path in sorted(Path(__file__).parent.glob(f"cases_{module_name}.py")):
        module = importlib.import_module(f"benchmarks.{path.stem}")
        out.update({k: v for k, v in getattr(module, "TABLES", {}).items() if only.lower() in k.lower()})
    return out


def _ratio(r: Result) -> str:
    if not r.ratio_captum:
        return "n/a"
    spread = r.ratio_spread if r.case.spread else None
    return f"{r.ratio_captum:.2f}" + (f" ({spread[0]:.2f}-{spread[1]:.2f})" if spread else "")


def _fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def render(results: list[Result], quick: bool, tables: dict[str, str] | None = None) -> str:
    import captum

    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m benchmarks.run`). intellego and Captum run the same job in one",
        "process: one warm-up, then interleaved rounds in rotating order, medians reported. A call under 20 ms is",
        "timed as `timeit` does, inside each round: one untimed call, then the mean of a ~5 ms block of calls, so",
        "the table shows steady-state per-call times rather than the cost of the caches the variant before it",
        "evicted (slower calls are timed one at a time). *Floor* is the physical floor: one",
        "batched forward+backward (gradient methods) or forward (perturbation methods) over the same samples.",
        "Ratios below 1.0 against Captum mean intellego is faster. On a CPU the floor is not a strict lower",
        "bound: one forward over tens of thousands of rows runs slower than the same rows in cache-sized chunks,",
        "which is why some large jobs come out below 1.0 against it. Timings use one torch thread (`--threads`)",
        "so that both libraries see the same, steadier machine; no GPU was lent to the session that wrote this.",
        "",
        f"- Machine: {platform.machine()}, {torch.get_num_threads()} threads, "
        f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}",
        f"- torch {torch.__version__}, captum {captum.__version__}, Python {platform.python_version()}",
        f"- Mode: {'quick (reduced sizes)' if quick else 'full'}",
        "",
    ]
    by_section: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_section[r.case.section].append(r)
    for section, rows in by_section.items():
        extras = sorted({k for r in rows for k in r.case.extra})
        head = ["method", "setting", "intellego", "Captum", *extras, "floor", "ours / Captum", "ours / floor"]
        lines += [f"## {section}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            t = r.times
            cells = [r.case.name, r.case.setting, _fmt(t["ours"]), _fmt(t["captum"]) if "captum" in t else "n/a",
                     *[_fmt(t[k]) if k in t else "" for k in extras], _fmt(t["floor"]),
                     _ratio(r), f"{r.ratio_floor:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
        notes = [f"- {r.case.name}: {r.case.note}" for r in rows if r.case.note]
        lines += ["", *notes, ""] if notes else [""]
    for heading, body in (tables or {}).items():
        lines += [f"## {heading}", "", body.rstrip("\n"), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", default="",
                        help="run only cases whose section or name contains this; their sections replace the same "
                             "sections of --out, the rest of the file is kept")
    parser.add_argument("--module", default="*",
                        help="collect only benchmarks/cases_MODULE.py (every module builds its cases before --only "
                             "filters them)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: steadier timings on a shared machine, same for both libraries)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    only = args.only.lower()
    cases = [c for c in collect(args.quick, args.only, args.module) if only in (c.section + " " + c.name).lower()]
    results = []
    for case in cases:
        result = measure(case, repeats=args.repeats)
        rc = f"{result.ratio_captum:.2f}" if result.ratio_captum else "n/a"
        print(f"{case.section[:40]:40s} {case.name:28s} vs captum {rc:>6s}  vs floor {result.ratio_floor:.2f}",
              flush=True)
        results.append(result)
    tables = {heading: make(args.quick) for heading, make in collect_tables(args.only, args.module).items()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if cases or tables or not out.exists():
        fresh = render(results, args.quick, tables)
        out.write_text(merge_sections(out.read_text(), fresh) if out.exists() else fresh)
        print(f"wrote {out} (sections run now replaced, the others kept)")
    for name in standalone(only) if args.module == "*" else []:
        run_standalone(name, out, args.quick)
    return 0


def standalone(only: str) -> list[str]:
    """The standalone benchmarks a run covers: all of them on a full run, else those ``--only`` names."""
    return [name for name in STANDALONE if not only or only in name]


def run_standalone(name: str, out: Path, quick: bool) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    spec = STANDALONE[name]
    if spec is None:
        if out.resolve() != (ROOT / "docs" / "benchmarks.md").resolve():
            print(f"skipped {name}: it writes docs/benchmarks.md itself, not {out}")
            return
        argv = ["--quick"] if quick else []
    else:
        argv = [*(spec[1] if quick else spec[0]), "--out", str(out)]
    print(f"running {name} {' '.join(argv)}", flush=True)
    module.main(argv)


def _split_sections(text: str) -> tuple[str, dict[str, str]]:
    """The header (everything before the first ``## ``) and each ``## `` section keyed by its heading."""
    head, *parts = text.split("\n## ")
    return head, {part.split("\n", 1)[0]: "## " + part for part in parts}


def merge_sections(old: str, new: str) -> str:
    """``old`` with the sections that ``new`` has replaced in place (new sections appended, header from ``new``).

    ``--only`` runs a few cases; merging keeps the tables of every other case as they were.
    """
    _, old_sections = _split_sections(old)
    head, new_sections = _split_sections(new)
    merged = {**old_sections, **{k: _merge_rows(old_sections.get(k), v) for k, v in new_sections.items()}}
    body = [merged[k].rstrip("\n") + "\n" for k in [*old_sections, *(k for k in new_sections if k not in old_sections)]]
    return head.rstrip("\n") + "\n\n" + "\n".join(body)


def _merge_rows(old: str | None, new: str) -> str:
    """A section rerun in part (``--only`` matched some of its rows): its fresh rows replace the rows with the
    same method and setting and its notes the notes of the same method; the other rows and notes stay. A section
    whose columns changed is replaced whole."""
    if old is None:
        return new
    old_lines, new_lines = old.rstrip("\n").split("\n"), new.rstrip("\n").split("\n")
    header = [ln for ln in old_lines if ln.startswith("| method")]
    if not header or header != [ln for ln in new_lines if ln.startswith("| method")]:
        return new

    def key(line: str) -> tuple[str, ...]:
        return tuple(c.strip() for c in line.split("|")[1:3])

    rows = {key(ln): ln for ln in new_lines if ln.startswith("| ") and not ln.startswith("| method")}
    merged = [rows.pop(key(ln), ln) if ln.startswith("| ") and not ln.startswith("| method") else ln
              for ln in old_lines]
    table_end = max(i for i, ln in enumerate(merged) if ln.startswith("|")) + 1
    def method(note: str) -> str:
        return note.split(":", 1)[0]

    notes = {method(ln): ln for ln in new_lines if ln.startswith("- ")}
    tail = [notes.pop(method(ln), ln) if ln.startswith("- ") else ln for ln in merged[table_end:]]
    tail += list(notes.values())
    if tail and tail[0] != "":
        tail = ["", *tail]  # a blank line between the table and its notes
    return "\n".join(merged[:table_end] + list(rows.values()) + tail) + "\n"


if __name__ == "__main__":
    sys.exit(main())
