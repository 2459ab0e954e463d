"""``PartitionShapley``: Owen values over a hierarchy of features (Owen, 1977), exact, in polynomial time.

The features are grouped in a tree (default: balanced halves of the features in order; for a text template,
its segments). At every node the children play a Shapley game among themselves, and a child's game is the
parent's averaged over the coalitions of its siblings, down to the single features. The values sum to
``f(inputs) - f(baselines)`` (efficiency) and equal every feature's own effect on additive models, like exact
Shapley values, but a balanced binary tree over ``n`` features needs at most ``2 n^2`` coalitions instead of
``2^n``, and no sampling noise. Interactions between features of different groups are shared along the tree
rather than over all orders, which is the difference from Shapley values.

With ``estimate="shapley"`` the same coalitions estimate the Shapley values instead: the combination that is
exact on every game whose Harsanyi dividends have order <= 2 (as the Owen values are), efficient, and of least
squared error over the games made of one third-order dividend (:func:`shapley_plan`).

The coalitions are planned first (each one once), then evaluated in chunks through the same batched evaluator
as ``ShapleyValues``, and combined with one matrix product.
"""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations
from typing import Any

import torch
from torch import Tensor

from ..core.hooks import HookScope
from ..core.inputs import unpack
from ..engines.perturb import plan_features
from ..errors import IntellegoError, describe, require
from ._base import PerturbationAttribution, public_call
from ._perturbation import prepare, settled_plan

__all__ = ["PartitionShapley", "balanced_hierarchy", "owen_plan", "shapley_plan"]

Hierarchy = Any  # a feature index, or a list of hierarchies
MAX_CHILDREN = 12  # a node's children play an exact Shapley game: 2**(children - 1) sibling coalitions
MAX_SHAPLEY_FEATURES = 40  # estimate="shapley" solves a least-squares problem over the n^3 / 6 triples
ESTIMATES = ("owen", "shapley")


def balanced_hierarchy(n: int) -> Hierarchy:
    """Features ``0 .. n-1`` split in halves recursively: ``balanced_hierarchy(4) == [[0, 1], [2, 3]]``."""
    def split(lo: int, hi: int) -> Hierarchy:
        if hi - lo == 1:
            return lo
        mid = (lo + hi + 1) // 2
        return [split(lo, mid), split(mid, hi)]

    require(isinstance(n, int) and n >= 1, f"the number of features must be a positive int, got {describe(n)}")
    return split(0, n)


def _leaves(node: Hierarchy, n: int) -> list[int]:
    if isinstance(node, int) and not isinstance(node, bool):
        require(0 <= node < n, f"hierarchy names feature {node}, but there are {n} features (0 .. {n - 1})")
        return [node]
    require(isinstance(node, (list, tuple)) and 1 <= len(node) <= MAX_CHILDREN,
            f"a hierarchy node is a feature index or a list of 1 to {MAX_CHILDREN} nodes, got {describe(node)}")
    return [leaf for child in node for leaf in _leaves(child, n)]


def owen_plan(hierarchy: Hierarchy, n: int) -> tuple[Tensor, Tensor]:
    """The coalitions to evaluate ``(k, n)`` (bool, True = present) and the coefficients ``(k, n)`` such that
    the Owen values are ``coeff.T @ values``.

    Example:
        >>> import torch
        >>> coalitions, coeff = owen_plan([[0, 1], 2], 3)
        >>> values = coalitions.double() @ torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)  # additive
        >>> (coeff.T @ values).tolist()
        [1.0, 2.0, 4.0]
    """
    leaves = _leaves(hierarchy, n)
    require(sorted(leaves) == list(range(n)),
            f"the hierarchy must name each of the {n} features exactly once, got {sorted(leaves)}")
    leaf_terms: dict[int, dict[int, float]] = {}
    _descend(hierarchy, {0: 1.0}, leaf_terms)
    codes: dict[int, int] = {}
    entries: list[tuple[int, int, float]] = []
    for i, terms in leaf_terms.items():
        for ctx, w in terms.items():
            for code, sign in ((ctx | 1 << i, w), (ctx, -w)):
                entries.append((codes.setdefault(code, len(codes)), i, sign))
    coeff = torch.zeros(len(codes), n, dtype=torch.float64)
    for row, col, w in entries:
        coeff[row, col] += w
    coalitions = torch.tensor([[(code >> j) & 1 for j in range(n)] for code in codes], dtype=torch.bool)
    return coalitions.reshape(len(codes), n), coeff


def _unanimity(coalitions: Tensor, order: int) -> tuple[Tensor, Tensor]:
    """The games with one dividend on a set of ``order`` features, at ``coalitions`` ``(k, games)``, and their
    Shapley values ``(n, games)`` (1 / order on each member)."""
    n = coalitions.shape[1]
    sets = torch.combinations(torch.arange(n), order) if order else torch.zeros(1, 0, dtype=torch.long)
    member = torch.zeros(sets.shape[0], n, dtype=torch.float64)
    member.scatter_(1, sets, 1.0)
    present = coalitions.double() @ member.T == order  # (k, games): the whole set is in the coalition
    return present.double(), member.T / max(order, 1)


def shapley_plan(coalitions: Tensor, coeff: Tensor) -> Tensor:
    """Coefficients on an Owen plan's coalitions that estimate Shapley values: exact on games whose dividends
    have order <= 2 and efficient (as the Owen coefficients ``coeff``), of least squared error summed over the
    games with one third-order dividend, and among those the closest to ``coeff``.

    Example:
        >>> import torch
        >>> coalitions, coeff = owen_plan([[0, 1], 2], 3)
        >>> codes = (coalitions.long() * torch.tensor([1, 2, 4])).sum(1)
        >>> values = torch.tensor([0.0, 0, 0, 0, 0, 0, 0, 1], dtype=torch.float64)[codes]  # x0 * x1 * x2
        >>> (coeff.T @ values).tolist(), [round(v, 6) for v in (shapley_plan(coalitions, coeff).T @ values).tolist()]
        ([0.25, 0.25, 0.5], [0.333333, 0.333333, 0.333333])
    """
    n = coalitions.shape[1]
    if n < 3:
        return coeff
    kept = torch.cat([_unanimity(coalitions, order)[0] for order in range(3)], 1)  # (k, games of order <= 2)
    _, sv, vh = torch.linalg.svd(kept.T, full_matrices=True)
    rank = int((sv > sv[0] * 1e-10).sum())
    free = vh[rank:].T  # (k, f): changes of a feature's coefficients that keep every game of order <= 2 exact
    if free.shape[1] == 0:
        return coeff
    third, phi3 = _unanimity(coalitions, 3)
    gap = phi3 - coeff.T @ third  # (n, triples): the Owen coefficients' error on each third-order game
    step = torch.linalg.lstsq(third.T @ free, gap.T, driver="gelsd").solution  # (f, n)
    change = free @ step
    return coeff + change - change.mean(1, keepdim=True)  # the same shift for every feature keeps efficiency


def _bits(node: Hierarchy) -> int:
    return 1 << node if isinstance(node, int) else sum(_bits(c) for c in node)


def _descend(node: Hierarchy, terms: dict[int, float], out: dict[int, dict[int, float]]) -> None:
    """``terms`` is the node's game as ``{context: weight}``: ``v_node(S) = sum w * v(context | S)``."""
    if isinstance(node, int):
        out[node] = terms
        return
    kids = [_bits(c) for c in node]
    m = len(kids)
    weights = [math.factorial(s) * math.factorial(m - 1 - s) / math.factorial(m) for s in range(m)]
    for j, child in enumerate(node):
        others = kids[:j] + kids[j + 1:]
        game: dict[int, float] = defaultdict(float)
        for size in range(m):
            for group in combinations(others, size):
                extra = sum(group)
                for ctx, w in terms.items():
                    game[ctx | extra] += w * weights[size]
        _descend(child, dict(game), out)


class PartitionShapley(PerturbationAttribution):
    """Owen values: Shapley values along a hierarchy of the features (see the module docstring).

    Example:
        >>> import torch
        >>> from intellego.attr import PartitionShapley
        >>> f = lambda x: x[:, 0] + 2 * x[:, 1] + x[:, 2] * x[:, 3]
        >>> PartitionShapley(f).attribute(torch.tensor([[1.0, 1.0, 1.0, 1.0]])).tolist()
        [[1.0, 2.0, 0.5, 0.5]]
    """

    @public_call
    def attribute(
        self,
        inputs: Any,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: Any = None,
        hierarchy: Any = None,
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        *,
        memory_budget: int | None = None,
        estimate: str = "owen",
    ) -> Any:
        """Compute the attributions.

        Args:
            {INPUTS}
            {BASELINES}
            {TARGET}
            {ADDITIONAL_FORWARD_ARGS}
            {FEATURE_MASK}
            hierarchy: nested lists of feature indices (the ids of ``feature_mask``, or the input elements in
                order), each feature once; default :func:`balanced_hierarchy`.
            {PERTURBATIONS_PER_EVAL}
            {SHOW_PROGRESS}
            {MEMORY_BUDGET}
            estimate: keyword-only; ``"owen"``: the Owen values of the hierarchy (exact); ``"shapley"``: the
                Shapley values estimated from the same prompts (:func:`shapley_plan`), up to 40 features.

        Returns:
            Attributions shaped like ``inputs`` (``(*O, *input.shape[1:])`` for other output shapes ``O``).
        """
        require(estimate in ESTIMATES, f"estimate must be one of {ESTIMATES}, got {describe(estimate)}")
        with HookScope(), torch.no_grad():
            xs, was_tuple, ev = prepare(self, inputs, baselines, target, additional_forward_args,
                                        perturbations_per_eval, memory_budget, show_progress)
            plan = settled_plan(ev, xs, feature_mask, plan_features(xs, feature_mask))
            n = plan.n_features
            try:
                coalitions, coeff = owen_plan(balanced_hierarchy(n) if hierarchy is None else hierarchy, n)
            except IntellegoError as err:
                raise IntellegoError(f"hierarchy: {err}") from None
            if estimate == "shapley":
                require(n <= MAX_SHAPLEY_FEATURES, f'estimate="shapley" takes at most {MAX_SHAPLEY_FEATURES} '
                        f"features (a least-squares problem over their triples), got {n}")
                coeff = shapley_plan(coalitions, coeff)
            coalitions = coalitions.to(xs[0].device)

            def removed(sl: slice) -> tuple[Tensor, ...]:
                return plan.removed(~coalitions[sl])

            values = ev.run(coalitions.shape[0], removed)
            values = values if values.is_floating_point() else values.double()
            flat = values.reshape(coalitions.shape[0], -1)
            phi = (coeff.to(flat.device, flat.dtype).T @ flat).reshape(n, *values.shape[1:])
            return unpack(plan.combine(phi, per_example=not ev.aggregate), was_tuple)

