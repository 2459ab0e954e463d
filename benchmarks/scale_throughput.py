"""Throughput of ``intellego.scale.attribute_dataset``: 1 and 2 processes, and its overhead over a plain loop.

Usage: ``python -m benchmarks.scale_throughput [--examples 1024] [--rounds 5] [--out docs/benchmarks.md]``.
Writes (or replaces) the "Scale-out" section of ``docs/benchmarks.md``. The job: Integrated Gradients
(16 steps) on a small CNN over 3x32x32 images, batch 32, one torch thread per process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from intellego.attr import IntegratedGradients
from intellego.scale import attribute_dataset

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Scale-out (intellego.scale): IG, 16 steps, small CNN 3x32x32, batch 32"
BATCH, STEPS = 32, 16


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(), torch.nn.Linear(512, 10)).eval()


class Images(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 3, 32, 32, generator=g)
        self.y = torch.randint(0, 10, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


def plain_loop(model: torch.nn.Module, data: Images) -> tuple[float, float]:
    """Wall and CPU seconds for the same batches through IG in a loop, results gathered on the CPU."""
    ig, start, cpu, parts = IntegratedGradients(model), time.perf_counter(), time.process_time(), []
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH)
    for x, y in loader:
        parts.append(ig.attribute(x, target=y, n_steps=STEPS).detach().cpu())
    torch.cat(parts)
    return time.perf_counter() - start, time.process_time() - cpu


def wrapped(model: torch.nn.Module, data: Images) -> tuple[float, float]:
    """Wall and CPU seconds of attribute_dataset on the same job (shards written, then deleted)."""
    out = tempfile.mkdtemp(prefix="scale-bench-")
    try:
        start, cpu = time.perf_counter(), time.process_time()
        attribute_dataset(IntegratedGradients(model), data, out=out, batch_size=BATCH,
                          attribute_kwargs={"n_steps": STEPS}, progress=False, num_threads=1)
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        shutil.rmtree(out)


def worker(out: str, n: int, result: str) -> None:
    """One rank of the torchrun job; rank 0 writes the report figures to ``result``."""
    report = attribute_dataset(IntegratedGradients(make_model()), Images(n), out=out, batch_size=BATCH,
                               attribute_kwargs={"n_steps": STEPS}, progress=False)
    if report.rank == 0:
        Path(result).write_text(json.dumps({"total": report.examples_per_s, "per_rank": report.per_rank}))


def torchrun(nproc: int, n: int) -> tuple[dict, float]:
    tmp = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}", "OMP_NUM_THREADS": "1"}
    cmd = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc-per-node", str(nproc), "-m",
           "benchmarks.scale_throughput", "--worker", str(tmp / "out"), "--examples", str(n),
           "--result", str(tmp / "r.json")]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - start
    figures = json.loads((tmp / "r.json").read_text())
    shutil.rmtree(tmp)
    return figures, wall


def _overhead(wrap: list[float], loop: list[float]) -> str:
    """Median of the per-round ratios wrapper / loop, as a percentage, and every round's, sorted."""
    ratios = sorted(w / x for w, x in zip(wrap, loop, strict=True))
    spread = ", ".join(f"{100 * (r - 1):+.1f}%" for r in ratios)
    return f"{100 * (statistics.median(ratios) - 1):+.1f}% (rounds: {spread})"


def _verdict(wrap: list[float], loop: list[float]) -> str:
    ratios = sorted(w / x - 1 for w, x in zip(wrap, loop, strict=True))
    med, lo, hi = statistics.median(ratios), ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
    within = "within" if abs(med) <= 0.05 else "NOT within"
    return (f"Overhead of the wrapper over the plain loop: median CPU-time ratio {100 * med:+.1f}%, {within} the 5% "
            f"target; the middle half of the rounds spans {100 * lo:+.1f}% to {100 * hi:+.1f}%, so under this load "
            "the figure is a median of noisy rounds, not a tight bound.")


def render(n: int, rounds: int, loop: list[tuple[float, float]], wrap: list[tuple[float, float]],
           runs: dict[int, list[tuple[dict, float]]]) -> str:
    lo, wr = statistics.median(t for t, _ in loop), statistics.median(t for t, _ in wrap)
    wall = _overhead([t for t, _ in wrap], [t for t, _ in loop])
    cpu = _overhead([c for _, c in wrap], [c for _, c in loop])
    lines = [f"## {SECTION}", "",
             f"Written by `python -m benchmarks.scale_throughput` ({n} examples, {rounds} interleaved rounds, medians; "
             f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, CPU only: no GPU was lent "
             "to this session, so there is no GPU figure). **The machine was loaded by 7 other engineers' tests and "
             "benchmarks on the same 2 cores while this ran**, so absolute figures are noisy; read the ratios and "
             "the spreads.", "",
             "| run | examples/s | notes |", "|---|---|---|",
             f"| plain loop, 1 process, 1 thread | {n / lo:.1f} | DataLoader + IG per batch, results on CPU |",
             f"| attribute_dataset, 1 process, 1 thread | {n / wr:.1f} | overhead vs the loop, median of the "
             f"per-round ratios: CPU time {cpu}; wall time {wall}; shards of 256 written with fsync + rename |"]
    for nproc, results in sorted(runs.items()):
        total = statistics.median(r["total"] for r, _ in results)
        per = statistics.median(statistics.mean(p["examples_per_s"] for p in r["per_rank"]) for r, _ in results)
        start = statistics.median(w for _, w in results)
        each = ", ".join(f"{r['total']:.0f}" for r, _ in results)
        lines.append(f"| torchrun --nproc-per-node {nproc} (Gloo), 1 thread/rank | {total:.1f} | "
                     f"{per:.1f} ex/s per rank; runs: {each} ex/s; {start:.1f} s wall incl. process start |")
    lines += ["", _verdict([c for _, c in wrap], [c for _, c in loop])]
    lines += ["", "Each round runs the plain loop and the wrapper back to back (alternating which goes first), so both "
              "see the same load. Wall-time ratios swing by tens of percent with the other jobs' bursts; the process's "
              "CPU time (one torch thread, so it counts only this job's work, not the time it waits for a core) is "
              "the figure to judge the wrapper's overhead by; the fsync of each shard is wall time only. torchrun "
              "figures exclude process start (all examples over the slowest rank's loop time); 1- and 2-process "
              "runs alternate and every run is listed. Two ranks can at best double one rank here (2 cores, both "
              "also used by other jobs).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--examples", type=int, default=512)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker, args.examples, args.result)
        return 0
    torch.set_num_threads(1)
    model, data = make_model(), Images(args.examples)
    plain_loop(model, data)  # warm-up
    loop: list[tuple[float, float]] = []
    wrap: list[tuple[float, float]] = []
    for i in range(args.rounds):
        for fn, acc in ((plain_loop, loop), (wrapped, wrap)) if i % 2 == 0 else ((wrapped, wrap), (plain_loop, loop)):
            acc.append(fn(model, data))
        print(f"round {i}: loop {loop[-1]}  wrapped {wrap[-1]}", flush=True)
    runs: dict[int, list[tuple[dict, float]]] = {1: [], 2: []}
    for _ in range(3):
        for nproc in (1, 2):
            runs[nproc].append(torchrun(nproc, args.examples))
            print(f"torchrun {nproc}: {runs[nproc][-1][0]['total']:.1f} ex/s", flush=True)
    from .run import merge_sections

    section = render(args.examples, args.rounds, loop, wrap, runs)
    out = Path(args.out)
    text = merge_sections(out.read_text(), out.read_text().split("\n## ", 1)[0] + "\n" + section) \
        if out.exists() else section
    out.write_text(text)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
