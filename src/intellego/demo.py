"""``make demo``: the shipped demo model explained end to end.

Steps: load the shipped shapes CNN and a fresh procedurally generated test set, print its accuracy,
attribute a handful of images with Integrated Gradients and Saliency and print how much attribution mass
falls inside each object's ground-truth mask; then, where those parts are installed, print the metrics
table, write the comparison figure, and start the Insights explorer (``--no-serve`` stops before it).

Usage: ``python -m intellego.demo [--n 64] [--out out/] [--no-serve] [--port 8765] [--export insights.html]``
(``make demo ARGS="--export out/insights.html"`` writes the explorer's offline export instead of serving).
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import torch

from .attr import IntegratedGradients, Saliency
from .data import SHAPE_CLASSES, make_shapes
from .models import load_shapes_cnn

__all__ = ["mass_inside", "main"]


def mass_inside(attributions: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Fraction of positive attribution mass (summed over channels) inside each mask, per example."""
    heat = attributions.sum(1, keepdim=True).clamp(min=0)
    total = heat.flatten(1).sum(1).clamp(min=1e-12)
    return (heat * masks).flatten(1).sum(1) / total


def _attribution_report(n: int, seed: int) -> None:
    data = make_shapes(n, seed=seed)
    model = load_shapes_cnn()
    with torch.no_grad():
        pred = model(data.images).argmax(1)
    accuracy = (pred == data.labels).float().mean().item()
    print(f"Shapes CNN on {n} fresh images (seed {seed}): accuracy {accuracy:.1%}")
    x, y, m = data.images[:16], data.labels[:16], data.masks[:16]
    area = m.flatten(1).float().mean(1)
    print(f"Object area: {area.mean():.1%} of the image on average (a blind map would put that much inside).")
    print(f"{'method':22s} {'mass inside mask':>16s} {'time':>8s}")
    for name, method, kwargs in [
        ("IntegratedGradients", IntegratedGradients(model), {"n_steps": 32}),
        ("Saliency", Saliency(model), {}),
    ]:
        start = time.perf_counter()
        attr = method.attribute(x, target=y, **kwargs)
        took = time.perf_counter() - start
        inside = mass_inside(attr, m)
        print(f"{name:22s} {inside.mean().item():>16.1%} {took * 1e3:>6.0f}ms")
    print("Classes:", ", ".join(SHAPE_CLASSES))


def _optional(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="test images to generate")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out", default="out", help="folder for the figure and the static export")
    parser.add_argument("--no-serve", action="store_true", help="do not start the Insights app")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--export", metavar="PATH", help="write the explorer's offline HTML export and exit")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    _attribution_report(args.n, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from .metrics import demo_table

    print("\nFaithfulness and localization of each method on the demo model:")
    print(demo_table())
    if _optional("matplotlib"):
        from .viz import demo_figure

        path = demo_figure(out / "comparison.png")
        print(f"\nWrote the method comparison figure to {path}")
    else:
        print("\n(matplotlib is not installed: pip install 'intellego[viz]' for the comparison figure)")
    from .insights.cli import main as insights_main

    if args.export:
        return int(insights_main(["--export", args.export]) or 0)
    if args.no_serve:
        return 0
    return int(insights_main(["--port", str(args.port)]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
