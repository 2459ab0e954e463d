"""``make demo``: the shipped demo model explained end to end.

Steps: load the shipped shapes CNN and a fresh procedurally generated test set, print its accuracy,
attribute a handful of images with Integrated Gradients and Saliency and print how much attribution mass
falls inside each object's ground-truth mask; then, where those parts are installed, print the metrics
table, write the comparison figure, and start the Insights explorer (``--no-serve`` stops before it).
Each step is announced as ``[k/4]``; the slow ones show a progress bar on stderr (tqdm when installed, a
plain counter otherwise): over the methods and metrics of the table, or the elapsed time of the figure and
the export.

Usage: ``python -m intellego.demo [--n 64] [--out out/] [--no-serve] [--port 8765] [--export insights.html]``
(``make demo ARGS="--export out/insights.html"`` writes the explorer's offline export instead of serving).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ._docs import fill_docs
from .attr import IntegratedGradients, Occlusion, Saliency
from .data import SHAPE_CLASSES, make_shapes
from .engines.perturb_eval import progress_bar
from .models import load_shapes_cnn
from .viz.compare import Comparison, compare_methods

__all__ = ["mass_inside", "shapes_comparison", "demo_figure", "main"]


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
    methods = [("IntegratedGradients", IntegratedGradients(model), {"n_steps": 32}), ("Saliency", Saliency(model), {})]
    rows, bar = [], progress_bar(len(methods), "attributing", enabled=True)
    try:
        for name, method, kwargs in methods:
            start = time.perf_counter()
            inside = mass_inside(method.attribute(x, target=y, **kwargs), m)
            rows.append(f"{name:22s} {inside.mean().item():>16.1%} {(time.perf_counter() - start) * 1e3:>6.0f}ms")
            bar.update(1)
    finally:
        bar.close()
    print(f"{'method':22s} {'mass inside mask':>16s} {'time':>8s}", *rows, sep="\n")
    print("Classes:", ", ".join(SHAPE_CLASSES))


def _step(k: int, title: str, total: int = 4) -> None:
    print(f"\n[{k}/{total}] {title}", flush=True)


@contextlib.contextmanager
def _ticking(desc: str) -> Iterator[None]:
    """The elapsed time of a step that has no units to count, refreshed twice a second on stderr."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        start = time.perf_counter()
        yield
        sys.stderr.write(f"{desc}: done in {time.perf_counter() - start:.0f} s\n")
        return
    bar = tqdm(total=None, desc=desc, bar_format="{desc}: {elapsed} elapsed")
    stop = threading.Event()
    ticker = threading.Thread(target=lambda: [bar.refresh() for _ in iter(lambda: stop.wait(0.5), True)],
                              daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
        bar.close()


def _optional(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@fill_docs
def shapes_comparison(path: str | os.PathLike | None = "compare_shapes.png", n_images: int = 4, seed: int = 0,
                      model: Callable | None = None) -> Comparison:
    """The demo figure: Integrated Gradients, Saliency and occlusion with a large and a small window on
    ``n_images`` images of the shipped shapes data, attributing each image's true class.

    Args:
        {PATH}
        n_images: Rows: images of ``make_shapes(n_images, seed=seed)``.
        seed: Seed of the images.
        model: The model to explain (default: the shipped ``ShapesCNN``, :func:`intellego.models.load_shapes_cnn`).

    Returns:
        The :class:`~intellego.viz.compare.Comparison`.

    Example:
        >>> result = shapes_comparison(None, n_images=1)
        >>> sorted(result.maps)[:2], result.maps["Saliency"].shape
        (['Integrated Gradients', 'Occlusion 4x4'], (1, 32, 32))
    """
    if model is None:
        model = load_shapes_cnn()
    data = make_shapes(n_images, seed=seed)
    methods: dict[str, Any] = {
        "Integrated Gradients": (IntegratedGradients(model), {"n_steps": 32}),
        "Saliency": Saliency(model),
    }
    side = data.images.shape[-1]
    for w in (max(2, side // 4), max(1, side // 8)):
        methods[f"Occlusion {w}x{w}"] = (Occlusion(model), {"sliding_window_shapes": (3, w, w),
                                                             "strides": (3, max(1, w // 2), max(1, w // 2))})
    return compare_methods(model, data.images, methods, target=data.labels, class_names=data.classes,
                           title="Which pixels decide the class?", path=path)


def demo_figure(path: str | os.PathLike = "comparison.png", n_images: int = 4, seed: int = 0,
                model: Callable | None = None) -> Path:
    """Write :func:`shapes_comparison`'s figure to ``path`` (any suffix matplotlib saves) and return the path.

    Args:
        path: Where to write the figure.
        n_images: Rows of the figure.
        seed: Seed of the images.
        model: The model to explain (default: the shipped shapes CNN).

    Returns:
        The path written.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as d:
        ...     demo_figure(pathlib.Path(d) / "comparison.png", n_images=1).stat().st_size > 1000
        True
    """
    result = shapes_comparison(None, n_images=n_images, seed=seed, model=model)
    return result.save(path)


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
    _step(1, "Attributions on the shipped model")
    _attribution_report(args.n, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from .metrics import demo_table

    _step(2, "Faithfulness and localization of each method on the demo model (the slowest step)")
    print(demo_table(progress=True))
    _step(3, "The method comparison figure")
    if _optional("matplotlib"):
        with _ticking("drawing"):
            path = demo_figure(out / "comparison.png")
        print(f"Wrote the method comparison figure to {path}")
    else:
        print("(matplotlib is not installed: pip install 'intellego[viz]' for the comparison figure)")
    from .insights.cli import main as insights_main

    if args.export:
        _step(4, f"The explorer's offline export: {args.export}")
        with _ticking("exporting"):
            return int(insights_main(["--export", args.export]) or 0)
    if args.no_serve:
        _step(4, "The Insights explorer: skipped (--no-serve)")
        return 0
    _step(4, "The Insights explorer (Ctrl-C stops it)")
    return int(insights_main(["--port", str(args.port)]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
