"""CAV fitting engine: seeded stratified splits, L2-regularised logistic regression solved exactly, class means.

Concept activations have far more features than examples (a conv layer: 16,384 features, 100 examples), so the
logistic regression is solved in the span of the training examples: the optimal weight vector of an
L2-penalised linear model is a combination of the (centred) examples, ``w = X^T beta``, so given the ``n x n``
Gram matrix the problem has ``n + 1`` unknowns and Newton's method solves it to machine precision in a few
steps. The cost is one Gram matrix (``n^2 F``) instead of thousands of SGD epochs
over ``F`` features, and the optimum is unique, so the weights depend on nothing but the data and the split.

Example:
    >>> import torch
    >>> from intellego.concept._fit import logistic_ovr, mean_difference
    >>> x = torch.tensor([[0.0, 1.0], [0.2, 0.9], [2.0, 0.9], [2.2, 1.0]], dtype=torch.float64)
    >>> y = torch.tensor([3, 3, 5, 5])
    >>> w, b, classes = logistic_ovr(x, y, alpha=0.01)
    >>> classes, bool(w[1, 0] > 0), torch.equal(w[0], -w[1])
    ([3, 5], True, True)
    >>> mean_difference(x, y)[0].tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import require

__all__ = ["stratified_split", "logistic_binary", "logistic_ovr", "class_means", "mean_difference", "take_rows",
           "linear_accuracy"]


def stratified_split(labels: Tensor, test_ratio: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Indices ``(train, test)``: ``int(test_ratio * n_c)`` random examples of each class go to the test part."""
    require(0.0 <= test_ratio < 1.0, f"test_split_ratio must be in [0, 1), got {test_ratio!r}")
    train, test = [], []
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=generator)]
        k = int(test_ratio * idx.numel())
        test.append(idx[:k])
        train.append(idx[k:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(test)).values


def _newton(loss_grad_step: Any, theta: Tensor, max_iter: int, tol: float) -> Tensor:
    """Damped Newton: ``loss_grad_step(theta) -> (loss, slope_fn, step)``; backtracking on the Armijo rule."""
    value, _, step, decrement = loss_grad_step(theta)
    for _ in range(max_iter):
        if decrement <= tol * max(1.0, float(value)):
            break
        t = 1.0
        while t > 1e-10:
            trial = theta - t * step
            new_value, _, new_step, new_decrement = loss_grad_step(trial)
            if new_value <= value - 1e-4 * t * decrement:
                break
            t *= 0.5
        if t <= 1e-10:
            break
        theta, value, step, decrement = trial, new_value, new_step, new_decrement
    return theta


def _primal(x: Tensor, s: Tensor, alpha: float, max_iter: int, tol: float) -> tuple[Tensor, Tensor]:
    """Newton on ``(w, b)`` directly: for ``F <= n``."""
    n, f = x.shape
    design = torch.cat([x, torch.ones(n, 1, dtype=x.dtype, device=x.device)], dim=1)
    penalty = torch.full((f + 1,), float(alpha), dtype=x.dtype, device=x.device)
    penalty[-1] = 0.0

    def lgs(th: Tensor) -> tuple[Tensor, None, Tensor, float]:
        m = s * (design @ th)
        p = torch.sigmoid(-m)
        value = F.softplus(-m).mean() + 0.5 * (penalty * th * th).sum()
        grad = design.T @ (-s * p) / n + penalty * th
        hess = (design.T * (p * (1 - p))) @ design / n + torch.diag(penalty)
        hess.diagonal().add_(1e-12)
        step = torch.linalg.solve(hess, grad)
        return value, None, step, float(grad @ step)

    theta = _newton(lgs, torch.zeros(f + 1, dtype=x.dtype, device=x.device), max_iter, tol)
    return theta[:-1], theta[-1]


def _dual(gram: Tensor, s: Tensor, alpha: float, max_iter: int, tol: float) -> tuple[Tensor, Tensor]:
    """Newton on ``(beta, b)`` with ``w = X^T beta`` given the Gram matrix ``K = X X^T``: for ``F > n``.

    With margins ``m = K beta + b``, the Newton equations are ``K (D K / n + alpha I) d_beta + K D 1 d_b / n =
    K (g / n + alpha beta)`` and ``1^T D (K d_beta + 1 d_b) = 1^T g``; dropping the leading ``K`` gives an
    invertible system whose solution also solves them, even when ``K`` is singular.
    """
    n = gram.shape[0]
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
    system = torch.empty(n + 1, n + 1, dtype=gram.dtype, device=gram.device)

    def lgs(th: Tensor) -> tuple[Tensor, None, Tensor, float]:
        beta, b = th[:-1], th[-1]
        kb = gram @ beta
        m = s * (kb + b)
        p = torch.sigmoid(-m)
        g = -s * p
        d = p * (1 - p)
        value = F.softplus(-m).mean() + 0.5 * alpha * (beta @ kb)
        r = g / n + alpha * beta
        grad = torch.cat([gram @ r, (g.sum() / n).reshape(1)])
        system[:n, :n] = d[:, None] * gram / n + alpha * eye
        system[:n, n] = d / n
        system[n, :n] = d @ gram
        system[n, n] = d.sum() + 1e-12
        step = torch.linalg.solve(system, torch.cat([r, g.sum().reshape(1)]))
        return value, None, step, float(grad @ step)

    theta = _newton(lgs, torch.zeros(n + 1, dtype=gram.dtype, device=gram.device), max_iter, tol)
    return theta[:-1], theta[-1]


def logistic_binary(x: Tensor, positive: Tensor, alpha: float, max_iter: int = 100,
                    tol: float = 1e-14) -> tuple[Tensor, Tensor]:
    """``(w, b)`` minimising ``mean(log(1 + exp(-s_i (w.x_i + b)))) + alpha/2 |w|^2``, ``s_i = +-1`` by ``positive``.

    Solved for the centred data, in float64 for the small Newton systems. With more features than examples the
    Gram matrix is formed in the data's own dtype and centred in place of the data (no copy of ``x``), and
    ``w = (x - mean)^T beta``.
    """
    require(alpha > 0, f"alpha (the L2 penalty) must be positive, got {alpha!r}")
    s = positive.to(torch.float64) * 2 - 1
    mean = x.mean(0)
    n, f = x.shape
    if f <= n:
        w, b = _primal((x - mean).to(torch.float64), s, alpha, max_iter, tol)
        w = w.to(x.dtype)
    else:
        gram = (x @ x.T).to(torch.float64)
        row = gram.mean(0)
        gram = gram - row[:, None] - row[None, :] + row.mean()
        beta, b = _dual(gram, s, alpha, max_iter, tol)
        beta = beta.to(x.dtype)
        w = beta @ x - beta.sum() * mean
    return w, (b.to(x.dtype) - w @ mean)


def logistic_ovr(x: Tensor, labels: Tensor, alpha: float, max_iter: int = 100,
                 tol: float = 1e-14) -> tuple[Tensor, Tensor, list[int]]:
    """One-vs-rest logistic regressions: ``(weights C x F, biases C, classes)``, classes sorted.

    Two classes give one regression and the rows ``[-w, w]`` (the layout of Captum's default classifier).
    """
    classes = torch.unique(labels)
    require(classes.numel() >= 2, f"a CAV needs examples of at least two concepts, got labels {classes.tolist()}")
    if classes.numel() == 2:
        w, b = logistic_binary(x, labels == classes[1], alpha, max_iter, tol)
        return torch.stack([-w, w]), torch.stack([-b, b]), [int(c) for c in classes]
    fits = [logistic_binary(x, labels == c, alpha, max_iter, tol) for c in classes]
    return (torch.stack([w for w, _ in fits]), torch.stack([b for _, b in fits]), [int(c) for c in classes])


def class_means(parts: Sequence[Tensor], labels: Tensor, rows: Tensor, classes: Tensor) -> Tensor:
    """Mean of the ``rows`` of each class over row-blocks ``parts`` (stacked, they are the data), ``C x F``.

    One matrix product per block with a ``C x n`` averaging matrix: the data are read once and never copied.
    """
    n = labels.shape[0]
    chosen = torch.zeros(n, dtype=torch.bool, device=labels.device)
    chosen[rows] = True
    member = (labels[None, :] == classes[:, None]) & chosen[None, :]
    counts = member.sum(1, keepdim=True)
    require(bool((counts > 0).all()), f"every class needs at least one training example, got counts "
            f"{counts.flatten().tolist()} for classes {classes.tolist()}")
    avg = member.to(parts[0].dtype) / counts
    out, start = None, 0
    for part in parts:
        term = avg[:, start:start + part.shape[0]].to(part.device) @ part
        out = term if out is None else out + term
        start += part.shape[0]
    return cast(Tensor, out)


def mean_difference(x: Tensor | Sequence[Tensor], labels: Tensor,
                    rows: Tensor | None = None) -> tuple[Tensor, Tensor, list[int]]:
    """FastCAV: each class mean minus the mean of the class means, ``(weights C x F, biases C, classes)``.

    ``x`` is the data or a list of row-blocks of it; ``rows`` (default all) selects the examples to use. The bias
    centres the decision rule ``argmax_c w_c . x + b_c`` at the mean of the class means.
    """
    parts = [x] if isinstance(x, Tensor) else list(x)
    classes = torch.unique(labels)
    require(classes.numel() >= 2, f"a CAV needs examples of at least two concepts, got labels {classes.tolist()}")
    rows = torch.arange(labels.shape[0], device=labels.device) if rows is None else rows
    means = class_means(parts, labels, rows, classes)
    centre = means.mean(0)
    w = means - centre
    return w, -(w @ centre), [int(c) for c in classes]


def take_rows(parts: Sequence[Tensor], rows: Tensor) -> Tensor:
    """``torch.cat(parts)[rows]`` for sorted ``rows``, gathering straight from the blocks (one copy)."""
    first = parts[0]
    out = torch.empty((rows.numel(), *first.shape[1:]), dtype=first.dtype, device=first.device)
    start = 0
    for part in parts:
        stop = start + part.shape[0]
        lo, hi = torch.searchsorted(rows, torch.tensor([start, stop], device=rows.device)).tolist()
        if hi > lo:
            torch.index_select(part, 0, (rows[lo:hi] - start).to(part.device), out=out[lo:hi])
        start = stop
    return out


def linear_accuracy(x: Tensor | Sequence[Tensor], labels: Tensor, rows: Tensor, weights: Tensor, bias: Tensor,
                    classes: list[int]) -> Tensor:
    """Share of the ``rows`` whose ``argmax`` of ``x @ weights.T + bias`` is their label (NaN for no rows)."""
    if rows.numel() == 0:
        return torch.tensor(float("nan"))
    parts = [x] if isinstance(x, Tensor) else list(x)
    scores = take_rows(parts, rows) @ weights.T.to(parts[0].device) + bias
    pred = torch.tensor(classes, device=scores.device)[scores.argmax(1)]
    return (pred == labels[rows].to(scores.device)).float().mean()
