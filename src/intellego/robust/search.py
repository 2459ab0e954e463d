"""Searches for the smallest attack parameter that flips a prediction: Captum's one-answer-per-batch search and a
vectorized per-example search (every example gets its own minimal parameter; examples that need the same
parameter value share one attack call and all candidates of a round share one model call).

The parameter values follow Captum's arithmetic exactly (``arg_min, arg_min + step, ...`` accumulated in floating
point; binary midpoints ``lo + ((hi - lo) // step // 2) * step``), so both searches visit the same values.

Example:
    >>> from intellego.robust.search import grid
    >>> grid(0.0, 1.0, 0.25)
    [0.0, 0.25, 0.5, 0.75]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..core.inputs import pack, unpack
from ..errors import IntellegoError, describe
from .engine import take_rows

__all__ = ["grid", "midpoint", "Problem", "per_example_linear", "per_example_binary"]


def grid(lo: float, hi: float, step: float) -> list[float]:
    """``lo, lo + step, ...`` below ``hi``, accumulated the way Captum's linear search does."""
    values, cur = [], lo
    while cur < hi:
        values.append(cur)
        cur += step
    return values


def midpoint(lo: float, hi: float, step: float) -> float:
    """The next value a binary search tries between ``lo`` and ``hi`` (Captum's rule)."""
    k = ((hi - lo) // step) // 2
    if k == 0 and lo + step < hi:
        k = 1
    return lo + k * step


@dataclass
class Problem:
    """One per-example search: how to attack some rows at one value and which of them are still correct.

    ``attack(rows, value)`` returns ``(model_inputs, attacked)`` for the examples ``rows`` (a long tensor);
    ``correct(outputs, rows)`` returns one bool per row; ``forward(model_inputs, rows)`` runs the model on a
    stack of blocks whose rows are ``rows`` (concatenated).
    """

    n: int
    attempts: int
    attack: Callable[[Tensor, float], tuple[tuple[Tensor, ...], tuple[Tensor, ...]]]
    forward: Callable[[tuple[Tensor, ...], Tensor], Any]
    correct: Callable[[Any, Tensor], Tensor]
    device: torch.device


def _run_blocks(problem: Problem, blocks: Sequence[tuple[Tensor, float]]) -> list[tuple[Tensor, tuple[Tensor, ...]]]:
    """Attack every ``(rows, value)`` block ``attempts`` times, run all of them through the model in one call and
    return, per block, which rows were fooled by some attempt and the first fooling attacked rows."""
    pieces, attacked_all, rows_all = [], [], []
    for rows, value in blocks:
        for _ in range(problem.attempts):
            model_in, attacked = problem.attack(rows, value)
            pieces.append(model_in)
            attacked_all.append(attacked)
            rows_all.append(rows)
    stacked = tuple(torch.cat(parts) for parts in zip(*pieces))
    all_rows = torch.cat(rows_all)
    with torch.no_grad():
        out = problem.forward(stacked, all_rows)
    ok = problem.correct(out, all_rows)
    results, start, k = [], 0, 0
    for rows, _value in blocks:
        hit = torch.zeros(rows.numel(), dtype=torch.bool, device=rows.device)
        first = tuple(a.clone() for a in attacked_all[k])
        for _ in range(problem.attempts):
            fooled_now = ~ok[start:start + rows.numel()].to(rows.device) & ~hit
            for f, a in zip(first, attacked_all[k]):
                f[fooled_now] = a[fooled_now]
            hit |= fooled_now
            start += rows.numel()
            k += 1
        results.append((hit, first))
    return results


def per_example_linear(problem: Problem, values: Sequence[float], per_call: int,
                       found_inputs: list[Tensor]) -> Tensor:
    """Each example's first value in ``values`` that fools the model (NaN if none); the attacked rows that did it
    are written into ``found_inputs``. ``per_call`` values are tried per model call."""
    params = torch.full((problem.n,), math.nan, dtype=torch.float64)
    active = torch.arange(problem.n)
    for start in range(0, len(values), per_call):
        if active.numel() == 0:
            break
        group = values[start:start + per_call]
        results = _run_blocks(problem, [(active, v) for v in group])
        done = torch.zeros(active.numel(), dtype=torch.bool)
        for v, (hit, attacked) in zip(group, results):
            new = hit.cpu() & ~done
            rows = active[new]
            params[rows] = v
            for t, a in zip(found_inputs, attacked):
                t[rows.to(t.device)] = a[new.to(a.device)]
            done |= new
        active = active[~done]
    return params


def per_example_binary(problem: Problem, lo: float, hi: float, step: float, found_inputs: list[Tensor]) -> Tensor:
    """Captum's binary search run for every example at once: each round groups the examples by their next
    midpoint, attacks each group once per attempt and evaluates all groups in one model call."""
    n = problem.n
    lows, highs = [lo] * n, [hi] * n
    params = torch.full((n,), math.nan, dtype=torch.float64)
    active = [i for i in range(n) if hi > lo]
    while active:
        mids = {i: midpoint(lows[i], highs[i], step) for i in active}
        groups: dict[float, list[int]] = {}
        for i in active:
            groups.setdefault(mids[i], []).append(i)
        blocks = [(torch.tensor(rows), value) for value, rows in groups.items()]
        results = _run_blocks(problem, blocks)
        still = []
        for (rows, value), (hit, attacked) in zip(blocks, results):
            hit_list = hit.tolist()
            for j, i in enumerate(rows.tolist()):
                if hit_list[j]:
                    highs[i] = value
                    if math.isnan(params[i]) or params[i] > value:
                        params[i] = value
                        for t, a in zip(found_inputs, attacked):
                            t[i] = a[j]
                if math.isclose(lows[i], value):
                    continue
                if not hit_list[j]:
                    lows[i] = value
                if highs[i] > lows[i]:
                    still.append(i)
        active = still
    return params


def structure(value: Any, name: str) -> tuple[tuple[Tensor, ...], bool]:
    """A tensor or a tuple of tensors, else a named error (the per-example search needs rows to index)."""
    try:
        return pack(value, name)
    except IntellegoError:
        raise IntellegoError(f"per_example=True needs {name} that are a tensor or a tuple of tensors (rows are "
                             f"indexed), got {describe(value)}") from None


def rows_of(values: tuple[Any, ...], rows: Tensor, n: int) -> tuple[Any, ...]:
    """Every per-example entry of ``values`` restricted to ``rows``."""
    return tuple(take_rows(v, rows, n) for v in values)


def as_output(values: Sequence[Tensor], was_tuple: bool) -> Any:
    return unpack(list(values), was_tuple)
