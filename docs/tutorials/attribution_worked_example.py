"""Tutorial: Integrated Gradients vs Occlusion on the shipped shapes CNN, and every way of drawing a map.

The shipped demo model (``intellego.models.load_shapes_cnn``) tells circles, squares, triangles and crosses
apart. We explain one image it gets right and one it gets wrong with Integrated Gradients and with Occlusion
under a large and a small window, then draw one map as a heat map, a blended heat map, by sign (positive,
negative, absolute value), as a masked image and by alpha scaling. Runs in a few seconds on a CPU:

    .venv/bin/python docs/tutorials/attribution_worked_example.py      # writes docs/img/worked_*.png

``tests/test_docs_tutorials.py`` runs it, so the pictures in docs/tutorials.md are the ones this code draws.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window

import torch

from intellego.attr import IntegratedGradients, Occlusion
from intellego.data import make_shapes
from intellego.models import load_shapes_cnn
from intellego.viz import compare_methods, visualize_image_attr_multiple

IMG = Path(__file__).resolve().parent.parent / "img"


def main(out: Path = IMG) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    model = load_shapes_cnn()  # eval mode, 4 classes
    data = make_shapes(256, seed=0)  # procedurally drawn 3x32x32 images with their object masks
    with torch.no_grad():
        probs = model(data.images).softmax(dim=1)
    pred = probs.argmax(dim=1)

    # 1. One correct and one incorrect prediction.
    right = int((pred == data.labels).nonzero()[0])
    wrong = int((pred != data.labels).nonzero()[0])
    pick = torch.tensor([right, wrong])
    x, target = data.images[pick], pred[pick]  # explain what the model predicted
    for i, name in zip(pick.tolist(), ("correct", "incorrect")):
        print(f"{name}: image {i}, a {data.classes[data.labels[i]]}, predicted {data.classes[pred[i]]} "
              f"({probs[i].max():.2f})")

    # 2. Integrated Gradients (from a black image) and Occlusion with an 8x8 and a 3x3 grey patch.
    ig = IntegratedGradients(model)
    ig_attr, delta = ig.attribute(x, baselines=0.0, target=target, n_steps=64, return_convergence_delta=True)
    print(f"IG completeness gap: {delta.abs().max():.4f}")  # sum of attributions = f(x) - f(baseline), nearly
    occlusion = Occlusion(model)
    large = occlusion.attribute(x, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), baselines=0.5, target=target)
    small = occlusion.attribute(x, sliding_window_shapes=(3, 3, 3), strides=(3, 1, 1), baselines=0.5, target=target)

    # 3. Side by side: rows are the two images, columns the methods (blended over the input, positive part).
    methods = {"Integrated Gradients": ig_attr, "Occlusion 8x8": large, "Occlusion 3x3": small}
    compare_methods(model, x, methods, target, sign="positive", class_names=data.classes,
                    title="Why did the model say that?", path=out / "worked_methods.png")

    # 4. The incorrect one: the evidence for the predicted class next to the evidence for the true class.
    predicted, true_class = int(pred[wrong]), int(data.labels[wrong])
    for_pred = ig.attribute(x[1:], baselines=0.0, target=predicted, n_steps=64)
    for_true = ig.attribute(x[1:], baselines=0.0, target=true_class, n_steps=64)
    compare_methods(model, x[1:], {f"IG for {data.classes[predicted]} (predicted)": for_pred,
                                   f"IG for {data.classes[true_class]} (true)": for_true},
                    sign="all", class_names=data.classes, path=out / "worked_incorrect.png")

    # 5. One map, every drawing: heat map, blended heat map, the three signs, masking and alpha scaling.
    a, image = ig_attr[0].permute(1, 2, 0).numpy(), x[0].permute(1, 2, 0).numpy()
    styles = [("heat_map", "all"), ("blended_heat_map", "all"), ("heat_map", "positive"), ("heat_map", "negative"),
              ("heat_map", "absolute_value"), ("masked_image", "positive"), ("alpha_scaling", "positive")]
    fig, _ = visualize_image_attr_multiple(a, image, [m for m, _ in styles], [s for _, s in styles],
                                           titles=[f"{m}\n{s}" for m, s in styles], fig_size=(16, 3),
                                           use_pyplot=False)
    fig.savefig(out / "worked_styles.png", dpi=100, bbox_inches="tight")

    # 6. How much of each map lies on the object (the masks come with the data): the small window is sharper.
    mask = data.masks[pick].expand_as(x)
    on_object = {name: float((m.clamp(min=0) * mask).sum() / m.clamp(min=0).sum()) for name, m in methods.items()}
    for name, share in on_object.items():
        print(f"{name}: {share:.0%} of the positive attribution on the object")
    return {"right": right, "wrong": wrong, "delta": float(delta.abs().max()), "on_object": on_object,
            "ig_sums": (float(for_pred.sum()), float(for_true.sum())), "pictures": sorted(out.glob("worked_*.png"))}


if __name__ == "__main__":
    main()
