"""Quadrature rules and the chunked path integral behind every Integrated-Gradients-like method.

``integrate(grad_fn, starts, ends, n_steps, method, rows_per_chunk)`` returns, per input tensor,
``sum_k w_k * grad_fn(start + a_k * (end - start))`` for the rule's nodes ``a_k`` and weights ``w_k``
(weights sum to one, so the result is the path-averaged gradient). ``grad_fn`` may return tensors of other
shapes than the inputs (gradients at a layer), as long as their first dimension follows the points' rows.
The points of several steps are stacked into one model call; chunks are cut along steps and, if one step
is too large, along examples too.

Example:
    >>> from intellego.engines.path import quadrature
    >>> alphas, weights = quadrature("riemann_trapezoid", 3)
    >>> alphas, weights
    ([0.0, 0.5, 1.0], [0.25, 0.5, 0.25])
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..core.batching import check_positive_int, chunks
from ..errors import IntellegoError, require

__all__ = ["QUADRATURES", "quadrature", "integrate", "walk", "GradFn"]

# grad_fn(points, ex_slice, k) -> gradients at the points; points stack k steps of the examples ex_slice.
GradFn = Callable[[tuple[Tensor, ...], slice, int], tuple[Tensor, ...]]


def _riemann(offset: float) -> Callable[[int], tuple[list[float], list[float]]]:
    def rule(n: int) -> tuple[list[float], list[float]]:
        return [(k + offset) / n for k in range(n)], [1.0 / n] * n

    return rule


def _trapezoid(n: int) -> tuple[list[float], list[float]]:
    require(n >= 2, f"n_steps must be at least 2 for method 'riemann_trapezoid', got {n}")
    h = 1.0 / (n - 1)
    weights = [h] * n
    weights[0] = weights[-1] = h / 2
    return [k * h for k in range(n)], weights


def _gauss_legendre(n: int) -> tuple[list[float], list[float]]:
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return [float(a) for a in (nodes + 1) / 2], [float(w) for w in weights / 2]


QUADRATURES: dict[str, Callable[[int], tuple[list[float], list[float]]]] = {
    "riemann_left": _riemann(0.0),
    "riemann_right": _riemann(1.0),
    "riemann_middle": _riemann(0.5),
    "riemann_trapezoid": _trapezoid,
    "gausslegendre": _gauss_legendre,
}


def quadrature(method: str, n_steps: int) -> tuple[list[float], list[float]]:
    """Nodes in [0, 1] and weights summing to one for ``method`` with ``n_steps`` points."""
    alphas, weights = _rule(method, n_steps)
    return list(alphas), list(weights)


def _rule(method: str, n_steps: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """:func:`quadrature` as the kept tuples (a chunk of all steps slices to the same tuple, so the tensors of
    :func:`_constants` are found without copying the rule)."""
    check_positive_int(n_steps, "n_steps", allow_none=False)
    if not isinstance(method, str) or method not in QUADRATURES:
        raise IntellegoError(f"method must be one of {sorted(QUADRATURES)}, got {method!r}")
    return _cached_rule(method, n_steps)


@functools.lru_cache(maxsize=64)
def _cached_rule(method: str, n_steps: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    alphas, weights = QUADRATURES[method](n_steps)
    return tuple(alphas), tuple(weights)


def integrate(
    grad_fn: GradFn,
    starts: tuple[Tensor, ...],
    ends: tuple[Tensor, ...],
    n_steps: int,
    method: str,
    rows_per_chunk: int,
) -> tuple[Tensor, ...]:
    """Weighted sum over the path nodes of ``grad_fn`` at ``start + a * (end - start)``, per tensor."""
    alphas, weights = _rule(method, n_steps)
    batch = starts[0].shape[0]
    totals: list[Tensor] = []  # shaped like the gradients (inputs, or a layer for layer methods)

    def add(points: tuple[Tensor, ...], ex: slice, st: slice) -> None:
        k = st.stop - st.start
        grads = grad_fn(points, ex, k)
        # (k,) @ (k, rest): one matrix product, the numbers of tensordot (the same mm), without its Python layer
        sums = [(_constants(tuple(weights[st]), g.dtype, g.device) @ g.reshape(k, g.numel() // k)).reshape(
            g.shape[0] // k, *g.shape[1:]) for g in grads]
        if not totals and k == n_steps and ex.stop - ex.start == batch:  # the whole job in one chunk
            totals.extend(sums)
            return
        if not totals:
            totals.extend(g.new_zeros((batch, *g.shape[1:])) for g in grads)
        for total, part in zip(totals, sums):
            total[ex] += part

    walk(add, starts, ends, alphas, rows_per_chunk)
    return tuple(totals) if totals else tuple(torch.zeros_like(e) for e in ends)


def walk(
    visit: Callable[[tuple[Tensor, ...], slice, slice], None],
    starts: tuple[Tensor, ...],
    ends: tuple[Tensor, ...],
    alphas: Sequence[float],
    rows_per_chunk: int,
    *,
    split_examples: bool = True,
) -> None:
    """The chunked step loop: ``visit(points, examples, steps)`` for the points ``start + a * (end - start)``
    of each chunk of steps (step-major, ``(k * n, ...)``), in order of the steps within each chunk of examples.

    A chunk holds as many whole steps as fit ``rows_per_chunk``; if one step is too large, examples are cut
    too (unless ``split_examples`` is False: a visitor that carries state from one step to the next needs
    every example in each call).
    """
    batch = starts[0].shape[0]
    steps_per_chunk = max(1, rows_per_chunk // max(batch, 1))
    split = split_examples and steps_per_chunk == 1
    for ex in chunks(batch, min(batch, rows_per_chunk) if split else batch):
        whole = ex.stop - ex.start == batch  # no slicing: one chunk of examples
        s = starts if whole else tuple(t[ex] for t in starts)
        d = tuple(e - t for e, t in zip(ends, starts)) if whole else tuple(e[ex] - t[ex] for e, t in zip(ends, starts))
        for st in chunks(len(alphas), steps_per_chunk):
            a = _constants(tuple(alphas[st]), d[0].dtype, d[0].device)
            visit(tuple(_stack_points(si, di, a) for si, di in zip(s, d)), ex, st)


@functools.lru_cache(maxsize=64)
def _constants(values: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """``torch.tensor(values)``, built once per rule, chunk, dtype and device (the nodes and weights of a
    quadrature; internal, only read)."""
    return torch.tensor(values, dtype=dtype, device=device)


def _stack_points(start: Tensor, delta: Tensor, alphas: Tensor) -> Tensor:
    """``(k * n, ...)`` tensor of ``start + a * delta`` for each alpha, step-major."""
    shape = (-1,) + (1,) * start.dim()
    points = torch.addcmul(start.unsqueeze(0), alphas.to(start.dtype).reshape(shape), delta.unsqueeze(0))
    return points.reshape(-1, *start.shape[1:])
