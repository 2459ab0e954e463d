"""ProductBaselines in LLM attribution (Captum's Llama2 tutorial, cells 10 and 11): ours draws from torch's
generator, Captum's from Python's ``random``, so the two agree in expectation, not draw for draw. Given the same
draws (a callable baseline both libraries call in turn) the numbers are Captum's, and every draw is uniform over
the product of the choices."""

from __future__ import annotations

import itertools
import warnings

import captum.attr as ca
import pytest
import torch

import intellego.attr as ia
from _llm_models import random_lm, tokenizer

CHOICES = {("x", "y"): [("a", "dog"), ("the", "cat"), ("big", "mat")], "z": ["ran", "far"]}
VALUES = {"x": "the", "y": "big", "z": "sat"}
TEMPLATE = "{x} {y} cat {z} on the mat"


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _replayed(draws):
    """A callable baseline giving ``draws`` in turn (one per perturbed prompt, as ProductBaselines is called)."""
    it = iter(draws)
    return lambda: dict(next(it))


def _draws(n, seed):
    pb = ia.ProductBaselines(CHOICES, generator=torch.Generator().manual_seed(seed))
    return [pb() for _ in range(n)]


def test_same_draws_give_captums_numbers():
    """FeatureAblation, num_trials=3, features grouped as in the tutorial: each perturbed prompt takes the next
    draw, in Captum's order, so replaying one list of draws in both libraries gives the same attribution."""
    tok, model = tokenizer(), random_lm(2)
    mask = {"x": 0, "y": 0, "z": 1}
    draws = _draws(20, seed=4)
    res = []
    for mod in (ia, ca):
        inp = mod.TextTemplateInput(TEMPLATE, values=VALUES, baselines=_replayed(draws), mask=mask)
        llm = mod.LLMAttribution(mod.FeatureAblation(model), tok)
        res.append(llm.attribute(inp, target="and dog ran", num_trials=3, use_cached_outputs=False))
    torch.testing.assert_close(res[0].seq_attr.float(), res[1].seq_attr, rtol=2e-6, atol=2e-6)
    torch.testing.assert_close(res[0].token_attr.float(), res[1].token_attr, rtol=2e-6, atol=2e-6)


def test_shapley_values_agree_with_captum_in_expectation():
    """ShapleyValues scores each coalition once (Captum once per permutation step), so the draws fall on other
    prompts; Shapley values are linear in the coalition values, so the expectation of both is the mean over the 6
    baseline combinations of the attribution with that fixed baseline (Captum's, exact). 150 seeded trials of each
    library fall within 4.5 standard errors of it."""
    import random

    tok, model = tokenizer(), random_lm(2)
    mask = {"x": 0, "y": 0, "z": 1}

    def run(mod, baselines):
        inp = mod.TextTemplateInput(TEMPLATE, values=VALUES, baselines=baselines, mask=mask)
        return mod.LLMAttribution(mod.ShapleyValues(model), tok).attribute(
            inp, target="and dog ran", use_cached_outputs=False).seq_attr.double()

    exact = torch.stack([run(ca, {"x": xy[0], "y": xy[1], "z": z}) for xy, z in itertools.product(*CHOICES.values())])
    exact = exact.mean(0)
    torch.manual_seed(0)
    random.seed(0)
    for mod in (ia, ca):
        trials = torch.stack([run(mod, mod.ProductBaselines(CHOICES)) for _ in range(150)])
        se = trials.std(0) / 150**0.5
        assert ((trials.mean(0) - exact).abs() < 4.5 * se + 1e-6).all(), (mod.__name__, trials.mean(0), exact, se)


def test_product_baselines_draw_uniformly_from_the_product():
    """Every combination of the choices is drawn, each about equally often (6 combinations, 6000 draws: each
    count within 5 standard deviations of 1000), and a seeded generator repeats its draws."""
    draws = _draws(6000, seed=0)
    counts = {combo: 0 for combo in itertools.product(*CHOICES.values())}
    for d in draws:
        counts[((d["x"], d["y"]), d["z"])] += 1
    sd = (6000 * (1 / 6) * (5 / 6)) ** 0.5
    assert all(abs(c - 1000) < 5 * sd for c in counts.values()), counts
    assert _draws(20, seed=0) == draws[:20]
