"""Side-by-side timing of intellego and Captum in one process: warm-up, interleaved repeats, medians.

A family adds its cases in ``benchmarks/cases_<family>.py`` as ``CASES: list[Case]`` (a function
``cases(quick: bool) -> list[Case]`` is also accepted). ``run.py`` collects them all.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Case:
    """One row of a benchmark table.

    ``ours`` and ``captum`` run the same job; ``floor`` is the physical floor (one batched forward+backward,
    or forward, over the same samples). ``extra`` holds more timed variants (e.g. Captum tuned).
    """

    section: str
    name: str
    setting: str
    ours: Callable[[], Any]
    captum: Callable[[], Any] | None
    floor: Callable[[], Any]
    extra: dict[str, Callable[[], Any]] = field(default_factory=dict)
    note: str = ""
    best_of_rounds: bool = False  # report each variant's fastest round rather than its median (see measure)
    cpu_clock: bool = False  # time the process's CPU time (time.process_time) instead of the wall clock
    spread: bool = False  # show the spread of the per-round ratio ours / Captum beside the median ratio


@dataclass
class Result:
    case: Case
    times: dict[str, float]
    samples: dict[str, list[float]] = field(default_factory=dict)  # every round's time of each variant

    @property
    def ratio_captum(self) -> float | None:
        c = self.times.get("captum")
        return self.times["ours"] / c if c else None

    @property
    def ratio_spread(self) -> tuple[float, float] | None:
        """The 25th and 75th percentiles of the per-round ratio ours / Captum (rounds are interleaved, so each
        round's pair ran under the same load); None without Captum or with fewer than four rounds."""
        ours, theirs = self.samples.get("ours", []), self.samples.get("captum", [])
        if len(theirs) < 4 or len(ours) != len(theirs):
            return None
        q = statistics.quantiles([a / b for a, b in zip(ours, theirs)], n=4)
        return q[0], q[2]

    @property
    def ratio_floor(self) -> float:
        return self.times["ours"] / self.times["floor"]


def _once(fn: Callable[[], Any], loops: int = 1, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per call of ``fn``, timed over ``loops`` back-to-back calls."""
    start = clock()
    for _ in range(loops):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (clock() - start) / loops


def measure(case: Case, repeats: int = 7, warmup: int = 1, budget_s: float = 20.0,
            fast_below_s: float = 0.02, block_s: float = 0.005) -> Result:
    """Median seconds per call of each variant, run in interleaved rounds so drift hits all of them alike.

    The order of the variants rotates from round to round (no variant always runs first, right after another
    case), and fast cases get more rounds (up to ``4 * repeats``) while they fit in the time budget. A variant
    faster than ``fast_below_s`` is timed like ``timeit`` within each round: one untimed call, then a block of
    back-to-back calls lasting about ``block_s``, whose mean is the sample. Otherwise a sub-millisecond call
    pays for the caches the variant before it evicted (Captum's calls run much more Python than ours, so this
    penalises whichever library runs after it); the medians are steady-state per-call times. Slow variants
    are timed one call at a time, where that cost is noise. A case with ``best_of_rounds`` reports each
    variant's fastest round instead: for calls of tens of microseconds on a shared, loaded machine, other
    processes only ever add time, and the median of a few rounds swings by several times. A case with
    ``cpu_clock`` times the process's CPU time rather than the wall clock: with one torch thread on a CPU (the
    backward pass runs in the calling thread) that is the work done, without the time spent waiting for a core
    on a machine loaded beyond its cores.
    """
    clock = time.process_time if case.cpu_clock and not torch.cuda.is_available() else time.perf_counter
    variants = {"ours": case.ours, "floor": case.floor, **case.extra}
    if case.captum is not None:
        variants["captum"] = case.captum
    loops = {}
    for k, fn in variants.items():
        first = min(_once(fn, 1, clock) for _ in range(warmup))
        loops[k] = 0 if first >= fast_below_s else max(1, min(20, int(block_s / max(first, 1e-6))))
    samples: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    start = time.perf_counter()
    for i in range(4 * repeats):
        order = names[i % len(names):] + names[:i % len(names)]
        for k in order:
            if loops[k]:
                variants[k]()
            samples[k].append(_once(variants[k], loops[k] or 1, clock))
        elapsed = time.perf_counter() - start
        if i + 1 >= repeats and (elapsed > budget_s / 4 or i >= 2 and elapsed > budget_s):
            break
    pick = min if case.best_of_rounds else statistics.median
    return Result(case, {k: pick(v) for k, v in samples.items()}, samples)


def floor_backward(model: torch.nn.Module, x: torch.Tensor, target: int | None = 0) -> Callable[[], Any]:
    """One forward+backward of ``model`` over ``x`` w.r.t. the input: the floor of a gradient method."""

    def run() -> Any:
        leaf = x.detach().requires_grad_(True)
        out = model(leaf)
        sel = out if target is None else out[:, target]
        return torch.autograd.grad(sel.sum(), leaf)

    return run


def floor_forward(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    """One batched forward over ``x`` without gradients: the floor of a perturbation method."""

    def run() -> Any:
        with torch.no_grad():
            return model(x)

    return run


def quiet(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` with its warnings silenced (a timed call must not pay for printing the same warning again)."""

    def run() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()

    return run
