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


def plain_loop(model: torch.nn.Module, data: Images) -> float:
    """Seconds for the same batches through IG in a loop, results gathered on the CPU."""
    ig, start, parts = IntegratedGradients(model), time.perf_counter(), []
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH)
    for x, y in loader:
        parts.append(ig.attribute(x, target=y, n_steps=STEPS).detach().cpu())
    torch.cat(parts)
    return time.perf_counter() - start


def wrapped(model: torch.nn.Module, data: Images) -> float:
    out = tempfile.mkdtemp(prefix="scale-bench-")
    try:
        start = time.perf_counter()
        attribute_dataset(IntegratedGradients(model), data, out=out, batch_size=BATCH,
                          attribute_kwargs={"n_steps": STEPS}, progress=False, num_threads=1)
        return time.perf_counter() - start
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


def render(n: int, rounds: int, loop: list[float], wrap: list[float], runs: dict[int, list[tuple[dict, float]]]) -> str:
    lo, wr = statistics.median(loop), statistics.median(wrap)
    lines = [f"## {SECTION}", "",
             f"Written by `python -m benchmarks.scale_throughput` ({n} examples, {rounds} interleaved rounds, medians; "
             f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, CPU only: no GPU was lent "
             "to this session). **The machine was heavily loaded by other jobs while this ran**, so absolute "
             "figures are noisy; the ratios are what to read.", "",
             "| run | examples/s | notes |", "|---|---|---|",
             f"| plain loop, 1 process, 1 thread | {n / lo:.1f} | DataLoader + IG per batch, results on CPU |",
             f"| attribute_dataset, 1 process, 1 thread | {n / wr:.1f} | overhead vs the loop: "
             f"{100 * (wr / lo - 1):+.1f}% (shards of 256 written with fsync + rename) |"]
    for nproc, results in sorted(runs.items()):
        total = statistics.median(r["total"] for r, _ in results)
        per = statistics.median(statistics.mean(p["examples_per_s"] for p in r["per_rank"]) for r, _ in results)
        wall = statistics.median(w for _, w in results)
        each = ", ".join(f"{r['total']:.0f}" for r, _ in results)
        lines.append(f"| torchrun --nproc-per-node {nproc} (Gloo), 1 thread/rank | {total:.1f} | "
                     f"{per:.1f} ex/s per rank; runs: {each} ex/s; {wall:.1f} s wall incl. process start |")
    lines += ["", "torchrun figures exclude process start (the report's examples over the slowest rank's loop time); "
              "repeats differ by up to 2x because other jobs load the same 2 cores, so each run is listed and the "
              "median is shown. Two ranks can at best double one rank here (2 cores); a GPU measurement is still "
              "to do.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--examples", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=5)
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
    loop, wrap = [], []
    for i in range(args.rounds):
        for fn, acc in ((plain_loop, loop), (wrapped, wrap)) if i % 2 == 0 else ((wrapped, wrap), (plain_loop, loop)):
            acc.append(fn(model, data))
        print(f"round {i}: loop {loop[-1]:.2f}s  wrapped {wrap[-1]:.2f}s", flush=True)
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
