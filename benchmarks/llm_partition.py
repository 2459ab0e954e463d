"""PartitionShapley vs ShapleyValueSampling at equal error, counted in model forwards (scored prompts).

On a 10-word template and the real-architecture models of ``cases_llm_hf`` (float64), the exact Shapley values
come from ``ShapleyValues`` (all 1024 coalitions). PartitionShapley (balanced binary hierarchy over the words)
is deterministic: its error against the exact values and its number of scored prompts are one point.
ShapleyValueSampling's error (root mean square over 8 seeds) is measured at growing ``n_samples``; the prompts it
needs for PartitionShapley's error are read off by log-log interpolation. The section is merged into
docs/benchmarks.md.

Usage: ``python -m benchmarks.llm_partition [--out docs/benchmarks.md]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import torch

import intellego.attr as ia

from .run import ROOT, merge_sections

sys.path.insert(0, str(ROOT / "tests"))
warnings.filterwarnings("ignore")

WORDS = ["the", "big", "red", "cat", "sat", "on", "a", "small", "mat", "in"]
TARGET = " the kitchen"
SEEDS = 8


def _attr(model, tok, method, **kw):  # noqa: ANN001, ANN003, ANN202
    calls = []
    inp = ia.TextTemplateInput(" ".join(["{}"] * len(WORDS)), values=WORDS)
    res = ia.LLMAttribution(method(model), tok).attribute(inp, target=TARGET,
                                                          _inspect_forward=lambda *a: calls.append(1), **kw)
    return res.seq_attr, len(calls)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def measure(name: str, model, tok) -> tuple[str, ...]:  # noqa: ANN001
    exact, n_exact = _attr(model, tok, ia.ShapleyValues)
    owen, n_owen = _attr(model, tok, ia.PartitionShapley)
    e_owen = _rel(owen, exact)
    curve = []
    for s in (1, 2, 4, 8, 16, 32, 64, 128):
        errs, n = [], 0
        for seed in range(SEEDS):
            svs, n = _attr(model, tok, ia.ShapleyValueSampling, n_samples=s,
                           generator=torch.Generator().manual_seed(seed))
            errs.append(_rel(svs, exact) ** 2)
        curve.append((n, math.sqrt(sum(errs) / SEEDS)))
    need = _needed(curve, e_owen)
    ratio = f"{need / n_owen:.1f}x" if need else f"> {curve[-1][0] / n_owen:.1f}x"
    svs_txt = ", ".join(f"{n}: {e:.3g}" for n, e in curve)
    return (name, f"{n_exact}", f"{n_owen}", f"{e_owen:.3g}", f"{need:.0f}" if need else f"> {curve[-1][0]}",
            ratio, svs_txt)


def _needed(curve: list[tuple[int, float]], target: float) -> float | None:
    """Prompts at which the sampling error falls to ``target`` (log-log interpolation; None beyond the curve)."""
    for (n0, e0), (n1, e1) in zip(curve, curve[1:]):
        if e0 <= target:
            return float(n0)
        if e1 <= target:
            f = (math.log(e0) - math.log(target)) / (math.log(e0) - math.log(e1))
            return math.exp(math.log(n0) + f * (math.log(n1) - math.log(n0)))
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from _hf_models import gpt2, llama, tokenizer

    tok = tokenizer()
    rows = [measure(n, m().double(), tok) for n, m in (("GPT-2", gpt2), ("Llama", llama))]
    head = ["model", "exact (ShapleyValues) prompts", "PartitionShapley prompts", "PartitionShapley error",
            "ShapleyValueSampling prompts at that error", "fewer prompts", "ShapleyValueSampling (prompts: error)"]
    lines = ["## LLM attribution: PartitionShapley vs ShapleyValueSampling at equal error", "",
             f"10-word template, target '{TARGET.strip()}', float64 models as above; error = relative L2 distance of "
             f"`seq_attr` to the exact Shapley values (ShapleyValueSampling: root mean square over {SEEDS} seeds). "
             "Written by `python -m benchmarks.llm_partition`.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    old = out.read_text()
    out.write_text(merge_sections(old, old.split("\n## ")[0] + "\n\n" + text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
