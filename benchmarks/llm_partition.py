"""PartitionShapley vs ShapleyValueSampling at equal error, counted in model forwards (scored prompts).

On a 10-word template and the real-architecture models of ``cases_llm_hf`` (float64), random weights and the same
two architectures trained for a few seconds on procedurally generated text (``_hf_models.trained``), the exact
Shapley values come from ``ShapleyValues`` (all 1024 coalitions). PartitionShapley (balanced binary hierarchy
over the words) is deterministic: its error against the exact values and its number of scored prompts are one
point. ShapleyValueSampling's error (root mean square over 8 seeds) is measured at growing ``n_samples``; the
prompts it needs for PartitionShapley's error are read off by log-log interpolation. Beside it, the same figure
from the game's table of 1024 coalition values (no sampling noise in the read-off: the expected squared error of
``m`` permutations is ``E|Delta_pi - phi|^2 / m``, the expectation over 4000 uniform permutations), and the share
of the game's Harsanyi dividend mass of order 1, 2 and >= 3 (Owen values equal Shapley values on games without
dividends of order >= 3). A second table repeats the read-off over 3 templates x 2 targets x 2 model seeds.
The sections are merged into docs/benchmarks.md.

Usage: ``python -m benchmarks.llm_partition [--quick] [--out docs/benchmarks.md]``.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import intellego.attr as ia
from intellego.attr.partition_shapley import ESTIMATES, balanced_hierarchy, owen_plan, shapley_plan

from .run import ROOT, merge_sections

sys.path.insert(0, str(ROOT / "tests"))
warnings.filterwarnings("ignore")

WORDS = ["the", "big", "red", "cat", "sat", "on", "a", "small", "mat", "in"]
TARGET = " the kitchen"
SEEDS = 8
GAMES = {  # templates (10 words) and two targets each, for the second table
    "cat": (WORDS, [TARGET, " the park"]),
    "paris": (["paris", "is", "the", "capital", "of", "france", "and", "berlin", "is", "the"], [" capital of", " sea"]),
    "ann": (["ann", "likes", "red", "apples", "and", "bob", "likes", "green", "pears", "so"], [" we walk", " the dog"]),
}


def _template(words: list[str]) -> ia.TextTemplateInput:
    return ia.TextTemplateInput(" ".join(["{}"] * len(words)), values=words)


def _attr(model, tok, method, **kw):  # noqa: ANN001, ANN003, ANN202
    calls = []
    res = ia.LLMAttribution(method(model), tok).attribute(_template(WORDS), target=TARGET,
                                                          _inspect_forward=lambda *a: calls.append(1), **kw)
    return res.seq_attr, len(calls)


def _rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


def game_table(model: Any, tok: Any, words: list[str], target: str) -> Tensor:
    """The target's log-probability for every coalition of words (index: bit ``i`` set = word ``i`` present),
    scored through LLMAttribution's own forward (the prompts the methods score)."""
    inp, n = _template(words), len(words)
    llm = ia.LLMAttribution(ia.ShapleyValues(model), tok)
    forward = llm._make_forward(inp, llm._get_target_tokens(inp, target), True, None)
    codes = torch.arange(2**n)
    return forward(((codes[:, None] >> torch.arange(n)) & 1).double())[:, 0].double()


def dividends(v: Tensor) -> Tensor:
    """Harsanyi dividends (Moebius transform) of the table ``v``: ``v(S) = sum over T in S of d(T)``."""
    d, n = v.clone(), int(math.log2(v.numel()))
    codes = torch.arange(v.numel())
    for i in range(n):
        has = (codes >> i) & 1 == 1
        d[has] -= d[codes[has] ^ (1 << i)]
    return d


def _orders(v: Tensor) -> Tensor:
    return torch.tensor([bin(c).count("1") for c in range(v.numel())])


def order_shares(v: Tensor) -> tuple[float, float, float]:
    """Shares of the dividend mass ``sum |d(T)|`` (T non-empty) in order 1, 2 and >= 3."""
    d, size = dividends(v).abs(), _orders(v)
    total = float(d[size > 0].sum())
    return float(d[size == 1].sum()) / total, float(d[size == 2].sum()) / total, float(d[size >= 3].sum()) / total


def table_values(v: Tensor) -> tuple[Tensor, dict[str, Tensor], int]:
    """Exact Shapley values, PartitionShapley's values per estimate (default hierarchy) and its prompts, from the
    table."""
    d, size, n = dividends(v), _orders(v), int(math.log2(v.numel()))
    codes = torch.arange(v.numel())
    phi = torch.stack([(d / size.clamp(min=1))[(codes >> i) & 1 == 1].sum() for i in range(n)])
    coalitions, coeff = owen_plan(balanced_hierarchy(n), n)
    rows = v[(coalitions.long() * 2 ** torch.arange(n)).sum(1)]
    plans = {"owen": coeff, "shapley": shapley_plan(coalitions, coeff)}
    return phi, {e: plans[e].T @ rows for e in ESTIMATES}, coalitions.shape[0]


def expected_prompts(v: Tensor, phi: Tensor, error: float, perms: int = 4000) -> float:
    """Prompts (``1 + n m``) ShapleyValueSampling needs for an expected squared relative error of ``error**2``:
    ``m = E|Delta_pi - phi|^2 / (error |phi|)^2`` over uniform permutations ``pi`` (fixed seed)."""
    n, gen = phi.numel(), torch.Generator().manual_seed(0)
    order = torch.stack([torch.randperm(n, generator=gen) for _ in range(perms)])
    code, prev = torch.zeros(perms, dtype=torch.long), v[0].expand(perms)
    delta = torch.zeros(perms, n, dtype=torch.float64)
    for k in range(n):
        code = code | (1 << order[:, k])
        delta[torch.arange(perms), order[:, k]] = v[code] - prev
        prev = v[code]
    spread = float(((delta - phi) ** 2).sum(1).mean())
    return 1 + n * spread / (error * float(phi.norm())) ** 2


def measure(name: str, model: Any, tok: Any, seeds: int) -> list[tuple[str, ...]]:
    """One row per PartitionShapley estimate: prompts, error, ShapleyValueSampling's prompts at that error."""
    exact, n_exact = _attr(model, tok, ia.ShapleyValues)
    v = game_table(model, tok, WORDS, TARGET)
    phi = table_values(v)[0]
    torch.testing.assert_close(phi, exact, rtol=1e-7, atol=1e-9)  # the table is the game the methods play
    curve = []
    for s in (1, 2, 4, 8, 16, 32, 64, 128, 256):
        errs, n = [], 0
        for seed in range(seeds):
            svs, n = _attr(model, tok, ia.ShapleyValueSampling, n_samples=s,
                           generator=torch.Generator().manual_seed(seed))
            errs.append(_rel(svs, exact) ** 2)
        curve.append((n, math.sqrt(sum(errs) / seeds)))
    shares = " / ".join(f"{s:.2f}" for s in order_shares(v))
    rows = []
    for estimate in ESTIMATES:
        part, n_part = _attr(model, tok, ia.PartitionShapley, estimate=estimate)
        err = _rel(part, exact)
        need = _needed(curve, err)
        ratio = f"{need / n_part:.1f}x" if need else f"> {curve[-1][0] / n_part:.1f}x"
        expected = expected_prompts(v, phi, err)
        first = estimate == ESTIMATES[0]
        needed = f"{need:.0f}" if need else f"> {curve[-1][0]}"
        rows.append((name if first else "", f"{n_exact}" if first else "", f'"{estimate}"', f"{n_part}", f"{err:.3g}",
                     needed, ratio, f"{expected:.0f} ({expected / n_part:.1f}x)", shares if first else "",
                     ", ".join(f"{n}: {e:.3g}" for n, e in curve) if first else "as above"))
    return rows


def _needed(curve: list[tuple[int, float]], target: float) -> float | None:
    """Prompts at which the sampling error falls to ``target`` (log-log interpolation; None beyond the curve)."""
    for (n0, e0), (n1, e1) in zip(curve, curve[1:]):
        if e0 <= target:
            return float(n0)
        if e1 <= target:
            f = (math.log(e0) - math.log(target)) / (math.log(e0) - math.log(e1))
            return math.exp(math.log(n0) + f * (math.log(n1) - math.log(n0)))
    return None


def spread_row(name: str, make: Callable[[int], Any], tok: Any, model_seeds: tuple[int, ...]) -> tuple[str, ...]:
    """Fewer prompts (table read-off) per estimate and dividend shares over the templates, targets, model seeds."""
    ratios: dict[str, list[float]] = {e: [] for e in ESTIMATES}
    shares = []
    for seed in model_seeds:
        model = make(seed)
        for words, targets in GAMES.values():
            for target in targets:
                v = game_table(model, tok, words, target)
                phi, part, k = table_values(v)
                for e in ESTIMATES:
                    ratios[e].append(expected_prompts(v, phi, _rel(part[e], phi)) / k)
                shares.append(order_shares(v))
    mean = [statistics.mean(s[i] for s in shares) for i in range(3)]
    cells = [f"{statistics.median(r):.1f}x ({min(r):.1f}x - {max(r):.1f}x), {sum(x >= 10 for x in r)} >= 10x"
             for r in ratios.values()]
    return (name, f"{len(shares)}", *cells, " / ".join(f"{s:.2f}" for s in mean))


def _table(head: list[str], rows: list[tuple[str, ...]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows)]


HEAD = ["model", "exact (ShapleyValues) prompts", "PartitionShapley estimate", "prompts", "error",
        "ShapleyValueSampling prompts at that error", "fewer prompts", "same, from the game's table",
        "dividend mass, order 1 / 2 / >=3", "ShapleyValueSampling (prompts: error)"]
SPREAD_HEAD = ["model", "games", *(f'fewer prompts, "{e}": median (min - max), games' for e in ESTIMATES),
               "dividend mass, order 1 / 2 / >=3 (mean)"]
NOTES = """
- Why the ratio differs so much: Owen values equal Shapley values on every game whose Harsanyi dividends have
  order <= 2 (a pair's dividend is split 1/2-1/2 by any hierarchy; tested against an enumerating oracle in
  tests/test_partition_shapley.py) and differ only in how dividends of order >= 3 across groups are split, a
  bias no prompt count removes. The dividend column measures that share of each game (sum of |d(T)| by order
  over the 1024 coalitions): 98% at order >= 3 on the random GPT-2, 44% on the random Llama, which is where
  PartitionShapley is close to the exact values. Trained for a few seconds on procedurally generated text the
  games are not more pairwise but less (96-98% at order >= 3): the target's probability needs the prompt as a
  whole (a word removed leaves an ungrammatical prompt; removing the word with its space instead of leaving a
  doubled space moved all four models further to order >= 3 on this template: >= 87%).
- `estimate="shapley"` (new): the same 76 prompts combined to estimate the Shapley values rather than the Owen
  values: exact on games of order <= 2 and efficient like the Owen values, least squared error over the games
  made of one third-order dividend (not fitted to these games). On the benchmark game it gives 27x instead of
  11x on the random Llama, 4.1x instead of 2.9x and 3.2x instead of 1.9x on the trained models, and 4.4x
  instead of 5.1x on the random GPT-2; the spread table's medians rise on all four kinds, and on 32 more games
  (model seed 3, 8- and 12-word templates, read off their tables) it was closer to the exact values on 28 and
  farther on 3 (one equal to 2 digits). The default stays the Owen values, which is what the method's name
  promises; the estimate is an option.
- Tried and not kept (18 games per model kind, random and trained, table read-off): other hierarchies (halves
  split the other way, first split at 3/4/6/7, ternary splits, a flat root over 3/4/5 groups, two flat halves,
  flat groups of <= 3 at the bottom) and averages of the Owen values of 2 to 9 contiguous hierarchies (shared
  coalitions counted once). None beat the balanced binary default on all four kinds: e.g. two flat halves (124
  prompts) 37x vs 12x geometric mean on the random GPT-2 but 7x vs 9x on the random Llama. A flat root over
  five pairs (192 prompts) was better in geometric mean and median on all four kinds, but a flat root over 3 or
  4 groups was not, and a flat root's prompts grow as 2^groups: a property of 10 = 5 x 2 words, not a default
  for long templates. Averages lower the error too slowly for their extra prompts (the ratio goes as
  1 / (error^2 x prompts)).
- The single game is one among many: the spread table ranges over two orders of magnitude on the random GPT-2,
  and the 8-seed read-off differs from the table's expectation by up to 1.4x (random Llama, "owen": 10.9x
  measured, 7.7x expected), which is sampling noise of 8 seeds.
- The >= 10x target: met on the random Llama ("shapley" 27x measured, 23x expected; "owen" 10.9x measured but
  7.7x expected), not on the random GPT-2 (at most 5.1x) nor on the trained models (at most 4.1x). Over the
  spread table's games: 10 of 12 on the random Llama with "shapley" (6 with "owen"), 3-4 of 12 on the random
  GPT-2, 0-2 of 12 on the trained models. Prompt counts do not depend on machine load; the run takes 6-10 min on
  2 shared, loaded cores.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--quick", action="store_true", help="2 seeds, one model seed in the spread table")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from _hf_models import gpt2, llama, tokenizer, trained

    tok = tokenizer()
    seeds, model_seeds = (2, (0,)) if args.quick else (SEEDS, (0, 1))
    kinds: list[tuple[str, Callable[[int], Any]]] = [
        ("GPT-2, random weights", lambda s: gpt2(seed=s)), ("Llama, random weights", lambda s: llama(seed=s)),
        ("GPT-2, trained", lambda s: trained("gpt2", s)), ("Llama, trained", lambda s: trained("llama", s))]
    kinds = [(name, functools.cache(lambda s, make=make: make(s).double())) for name, make in kinds]
    rows = [row for name, make in kinds for row in measure(name, make(0), tok, seeds)]
    spread = [spread_row(name, make, tok, model_seeds) for name, make in kinds]
    lines = ["## LLM attribution: PartitionShapley vs ShapleyValueSampling at equal error", "",
             f"10-word template, target '{TARGET.strip()}', float64 models as above (trained: the same configs after "
             "300 AdamW steps, seeded, on procedurally generated sentences, `_hf_models.trained`); error = relative "
             f"L2 distance of `seq_attr` to the exact Shapley values (ShapleyValueSampling: root mean square over "
             f"{seeds} seeds). Written by `python -m benchmarks.llm_partition`.", "", *_table(HEAD, rows), "",
             f"Spread over {len(GAMES)} templates x 2 targets x {len(model_seeds)} model seeds (read off each game's "
             "table of 1024 coalition values as in the 'same, from the game's table' column):", "",
             *_table(SPREAD_HEAD, spread), NOTES]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    old = out.read_text()
    out.write_text(merge_sections(old, old.split("\n## ")[0] + "\n\n" + text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
