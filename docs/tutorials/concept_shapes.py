"""TCAV tutorial on the shapes data: which concepts does the demo CNN use for the class "circle"?

Run: ``python docs/tutorials/concept_shapes.py`` (about 5 s on one CPU core). docs/concept.md shows its output.
"""

from __future__ import annotations

import math

import torch

from intellego.concept import TCAV, Concept, significance_table
from intellego.data import make_shapes
from intellego.models import load_shapes_cnn

model = load_shapes_cnn()  # 4 classes: circle, square, triangle, cross


def recolour(seed: int, rgb: tuple[float, float, float]) -> torch.Tensor:
    """Shapes of every class, with the object painted in one colour."""
    data = make_shapes(60, seed=seed)
    return torch.where(data.masks, torch.tensor(rgb)[None, :, None, None], data.images)


def on_stripes(seed: int) -> torch.Tensor:
    """Shapes of every class on a vertical grey stripe background."""
    data = make_shapes(60, seed=seed)
    x = (torch.arange(32) + 0.5) / 32
    stripes = (0.5 + 0.5 * torch.sin(2 * math.pi * 4 * x)).expand(60, 3, 32, 32)
    return torch.where(data.masks, data.images, stripes)


def only_circles(seed: int) -> torch.Tensor:
    data = make_shapes(240, seed=seed)
    return data.images[data.labels == 0]


# A concept is an id, a name and an iterable of input batches (a DataLoader works too).
circles = Concept(0, "circles", [only_circles(3)])
red = Concept(1, "red", [recolour(1, (0.9, 0.1, 0.1))])
striped = Concept(2, "striped", [on_stripes(2)])
control = Concept(3, "random", [make_shapes(60, seed=99).images])  # a random set posing as a concept
randoms = [Concept(10 + i, f"random{i}", [make_shapes(60, seed=100 + i).images]) for i in range(12)]

test = make_shapes(200, seed=7)
inputs = test.images[test.labels == 0]  # circles; target=0 is the circle logit

tcav = TCAV(model, ["conv2", "conv3"])  # CAVs in memory only: nothing is written to disk

# 1. Captum's interface: scores for experimental sets (a concept against a random set).
scores = tcav.interpret(inputs, [[circles, randoms[0]], [red, randoms[0]]], target=0)
for key, per_layer in scores.items():
    for layer, s in per_layer.items():
        sign = [round(v, 3) for v in s["sign_count"].tolist()]
        print(f"set {key:>5} {layer}: sign_count {sign}, magnitude {[round(v, 3) for v in s['magnitude'].tolist()]}")

# 2. Significance: every concept against 12 random concepts, t-test against random-vs-random scores,
#    Bonferroni-corrected over the 4 concepts x 2 layers.
results = tcav.significance(inputs, [circles, red, striped, control], randoms, target=0)
print(significance_table(results))

significant_circles = results["0"]["conv3"].significant
significant_random = any(r.significant for r in results["3"].values())
