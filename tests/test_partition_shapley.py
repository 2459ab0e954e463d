"""PartitionShapley against slow obvious oracles on random games given as tables of coalition values.

- Owen values by their definition: the mean marginal contribution over all orders of the players in which
  every group of the hierarchy stays together (enumerating the permutations of 5 to 7 players).
- Games whose Harsanyi dividends have order <= 2 (a constant, one weight per player, one per pair): there the
  Owen values of any hierarchy are the Shapley values, computed here by the subset formula.
"""

from __future__ import annotations

import math
import random
from itertools import combinations, permutations

import pytest
import torch

import intellego.attr as ia
from intellego.attr.partition_shapley import balanced_hierarchy, owen_plan
from intellego.errors import IntellegoError

pytestmark = pytest.mark.usefixtures("one_thread")


def random_hierarchy(players: list[int], rng: random.Random) -> object:
    """A random tree over ``players`` (shuffled, so groups need not be contiguous), nodes of 1 to 4 children."""
    if len(players) == 1:
        return players[0] if rng.random() < 0.8 else [players[0]]
    players = rng.sample(players, len(players))
    k = rng.randint(2, min(4, len(players)))
    cuts = sorted(rng.sample(range(1, len(players)), k - 1))
    return [random_hierarchy(players[a:b], rng) for a, b in zip([0, *cuts], [*cuts, len(players)])]


def _groups(node: object) -> tuple[frozenset[int], list[frozenset[int]]]:
    """The leaves under ``node`` and the leaf sets of every internal node below it (itself included)."""
    if isinstance(node, int):
        return frozenset({node}), []
    parts = [_groups(child) for child in node]  # type: ignore[attr-defined]
    leaves = frozenset().union(*(p[0] for p in parts))
    return leaves, [g for p in parts for g in p[1]] + [leaves]


def owen_by_definition(v: torch.Tensor, n: int, hierarchy: object) -> torch.Tensor:
    """Mean marginal contributions over the orders that keep every group of ``hierarchy`` contiguous."""
    groups = [g for g in _groups(hierarchy)[1] if len(g) > 1]
    total, count = torch.zeros(n, dtype=torch.float64), 0
    for order in permutations(range(n)):
        pos = {p: i for i, p in enumerate(order)}
        if any(max(pos[p] for p in g) - min(pos[p] for p in g) != len(g) - 1 for g in groups):
            continue
        code = 0
        for p in order:
            total[p] += v[code | 1 << p] - v[code]
            code |= 1 << p
        count += 1
    return total / count


def shapley_by_subsets(v: torch.Tensor, n: int) -> torch.Tensor:
    """``phi_i = sum_S |S|! (n-|S|-1)! / n! (v(S + i) - v(S))`` over the subsets ``S`` without ``i``."""
    phi = torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            w = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for s in combinations(others, size):
                code = sum(1 << j for j in s)
                phi[i] += w * (v[code | 1 << i] - v[code])
    return phi


def table_model(v: torch.Tensor, n: int):  # noqa: ANN201
    """A model of presence rows ``(batch, n)`` in {0, 1}: the game's value of the coalition present."""
    weights = 2 ** torch.arange(n)
    return lambda x: v[(x.round().long() * weights).sum(1)]


def owen_values(v: torch.Tensor, n: int, hierarchy: object) -> torch.Tensor:
    return ia.PartitionShapley(table_model(v, n)).attribute(torch.ones(1, n, dtype=torch.float64),
                                                           hierarchy=hierarchy)[0]


def pairwise_game(n: int, gen: torch.Generator) -> torch.Tensor:
    """A random game with dividends of order <= 2 only."""
    c = torch.randn((), generator=gen, dtype=torch.float64)
    a = torch.randn(n, generator=gen, dtype=torch.float64)
    b = torch.randn(n, n, generator=gen, dtype=torch.float64).triu(1)
    codes = torch.arange(2**n)
    x = ((codes[:, None] >> torch.arange(n)) & 1).double()
    return c + x @ a + ((x @ b) * x).sum(1)


@pytest.mark.parametrize("seed", range(6))
def test_owen_values_equal_their_definition_on_random_games(seed):
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    n = 5 + seed % 3
    v = torch.randn(2**n, generator=gen, dtype=torch.float64)
    for hierarchy in (random_hierarchy(list(range(n)), rng), balanced_hierarchy(n)):
        owen = owen_values(v, n, hierarchy)
        torch.testing.assert_close(owen, owen_by_definition(v, n, hierarchy), rtol=1e-10, atol=1e-10)
    # not vacuous: on these games the hierarchy matters (Owen values are not the Shapley values)
    assert (owen - shapley_by_subsets(v, n)).abs().max() > 1e-3


@pytest.mark.parametrize("seed", range(6))
def test_owen_values_are_shapley_values_on_games_with_dividends_of_order_at_most_two(seed):
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    n = 5 + seed % 3
    v = pairwise_game(n, gen)
    exact = shapley_by_subsets(v, n)
    for hierarchy in (random_hierarchy(list(range(n)), rng), balanced_hierarchy(n), [[0, 1], list(range(2, n))]):
        torch.testing.assert_close(owen_values(v, n, hierarchy), exact, rtol=1e-10, atol=1e-10)
    # one third-order term across groups breaks the equality (the test can fail)
    v3 = v + torch.tensor([float(c & 0b111 == 0b111) for c in range(2**n)], dtype=torch.float64)
    assert (owen_values(v3, n, [[0, 1], list(range(2, n))]) - shapley_by_subsets(v3, n)).abs().max() > 0.1


def test_owen_plan_scores_each_coalition_once_and_its_size_is_polynomial():
    for n in (5, 10, 16):
        coalitions, coeff = owen_plan(balanced_hierarchy(n), n)
        codes = (coalitions.long() * 2 ** torch.arange(n)).sum(1)
        assert codes.unique().numel() == codes.numel()
        # efficiency from the plan alone: the coefficients of each coalition sum to +1 (all present), -1 (none)
        # or 0, whatever the game
        per_row = coeff.sum(1)
        full, empty = codes == 2**n - 1, codes == 0
        torch.testing.assert_close(per_row[full], torch.ones(1, dtype=torch.float64))
        torch.testing.assert_close(per_row[empty], -torch.ones(1, dtype=torch.float64))
        assert per_row[~(full | empty)].abs().max() < 1e-12


def shapley_estimate(v: torch.Tensor, n: int, hierarchy: object) -> torch.Tensor:
    return ia.PartitionShapley(table_model(v, n)).attribute(torch.ones(1, n, dtype=torch.float64),
                                                           hierarchy=hierarchy, estimate="shapley")[0]


@pytest.mark.parametrize("seed", range(4))
def test_shapley_estimate_is_exact_on_pairwise_games_efficient_and_closer_on_third_order_games(seed):
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    n = 6 + seed % 2
    hierarchy = random_hierarchy(list(range(n)), rng) if seed % 2 else balanced_hierarchy(n)
    v = pairwise_game(n, gen)
    torch.testing.assert_close(shapley_estimate(v, n, hierarchy), shapley_by_subsets(v, n), rtol=1e-9, atol=1e-9)
    noise = torch.randn(2**n, generator=gen, dtype=torch.float64)
    est = shapley_estimate(noise, n, hierarchy)
    assert math.isclose(float(est.sum()), float(noise[-1] - noise[0]), abs_tol=1e-9)
    # the games made of third-order dividends: never farther from the Shapley values than the Owen values,
    # summed over all triples (the quantity the estimate minimizes), and strictly closer for these hierarchies
    size = torch.tensor([bin(c).count("1") for c in range(2**n)])
    dividends = torch.randn(2**n, generator=gen, dtype=torch.float64) * (size == 3)
    codes = torch.arange(2**n)
    owen_err = est_err = 0.0
    for t in codes[size == 3].tolist():
        game = ((codes & t) == t).double()
        exact = ((t >> torch.arange(n)) & 1) / 3.0  # a unanimity game: 1 / 3 to each member
        owen_err += float((owen_values(game, n, hierarchy) - exact).pow(2).sum())
        est_err += float((shapley_estimate(game, n, hierarchy) - exact).pow(2).sum())
    assert est_err < owen_err - 1e-6
    mixed = (dividends[None] * ((codes[:, None] & codes[None]) == codes[None])).sum(1)  # v(S) = sum_T<=S d(T)
    torch.testing.assert_close(shapley_estimate(mixed, n, [list(range(n))]), shapley_by_subsets(mixed, n),
                               rtol=1e-9, atol=1e-9)  # one flat node: every coalition is scored, exact


def test_shapley_estimate_errors_before_any_model_call():
    calls = []
    f = lambda z: calls.append(1) or z.sum(1)  # noqa: E731
    with pytest.raises(IntellegoError, match="estimate must be one of"):
        ia.PartitionShapley(f).attribute(torch.ones(1, 4), estimate="exact")
    with pytest.raises(IntellegoError, match="at most 40 features"):
        ia.PartitionShapley(f).attribute(torch.ones(1, 41), estimate="shapley")
    assert calls == []
