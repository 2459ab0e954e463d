"""Tutorial: is an explanation any good? Evaluating attribution methods with intellego.metrics.

Three questions, three kinds of metric, on the shipped shapes CNN whose images come with object masks:
faithfulness (does removing the most relevant pixels first destroy the prediction fastest? deletion and
insertion curves, infidelity), robustness (does the explanation change under tiny input noise? sensitivity)
and localization (does the relevance fall on the object? relevance mass). ``evaluate`` puts every method
against every metric in one table. Runs in well under a minute:

    .venv/bin/python docs/tutorials/metrics_evaluation.py      # writes docs/img/metrics_curves.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import torch

from intellego.attr import IntegratedGradients, Occlusion, Saliency
from intellego.data import make_shapes
from intellego.metrics import blur, deletion_curve, evaluate, infidelity, insertion_curve, noise_perturbation
from intellego.models import load_shapes_cnn

IMG = Path(__file__).resolve().parent.parent / "img"


def main(out: Path = IMG, n: int = 8) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    model = load_shapes_cnn()
    data = make_shapes(n, seed=1)
    x, y = data.images, data.labels
    gen = torch.Generator().manual_seed(0)
    methods = {
        "Integrated Gradients": (IntegratedGradients(model), {"n_steps": 16}),
        "Saliency": Saliency(model),
        "Occlusion 8x8": (Occlusion(model), {"sliding_window_shapes": (3, 8, 8), "strides": (3, 4, 4)}),
    }

    # 1. Faithfulness curves by hand for two methods: remove (or insert) pixels, most relevant first, into a
    #    blurred copy, and follow the softmax probability of the true class.
    def prob(inputs):
        return model(inputs).softmax(dim=1)

    ig = IntegratedGradients(model).attribute(x, target=y, n_steps=16)
    sal = Saliency(model).attribute(x, target=y)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    areas = {}
    for name, attr in (("Integrated Gradients", ig), ("Saliency", sal)):
        for ax, curve_fn in zip(axes, (deletion_curve, insertion_curve)):
            curve = curve_fn(prob, x, attr.abs(), target=y, baselines=blur(x), n_steps=16)
            curve.plot(ax=ax, label=f"{name} (area {curve.auc.mean():.2f})")
            areas[(name, curve.mode)] = float(curve.auc.mean())
    for ax, title in zip(axes, ("deletion: lower is better", "insertion: higher is better")):
        ax.set_title(title)
        ax.set_ylabel("p(true class)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "metrics_curves.png", dpi=100)
    plt.close(fig)

    # 2. Infidelity: how well attributions predict the output change under random input noise (lower: better).
    infid = infidelity(model, noise_perturbation(0.01), x, ig, target=y, n_perturb_samples=8, generator=gen)
    print(f"Integrated Gradients infidelity: {infid.mean():.2e}")

    # 3. Everything against everything: one tidy table (its markdown is in docs/tutorials.md).
    table = evaluate(model, data, methods, ["deletion", "insertion", "sensitivity", "relevance_mass"],
                     n_perturb_samples=3, n_steps=16, progress=False, generator=gen)
    print(table.to_markdown())
    return {"areas": areas, "infidelity": infid, "table": table}


if __name__ == "__main__":
    main()
