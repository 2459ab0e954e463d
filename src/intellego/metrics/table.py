"""One call that scores a table of attribution methods against the metrics on a data set.

:func:`evaluate` runs every method on every batch, scores the attributions with each metric and returns a
tidy :class:`MetricTable` (one row per method and metric: mean, standard deviation, count, which direction is
better), printable as Markdown and drawable as a figure. :func:`demo_table` does it for the shipped demo model.

Example:
    >>> import torch
    >>> from intellego.attr import Saliency
    >>> from intellego.metrics import evaluate
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    >>> x, y = torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 0, 1, 0, 1])
    >>> table = evaluate(model, (x, y), {"saliency": Saliency(model)}, metrics=["infidelity", "deletion"],
    ...                  progress=False, generator=torch.Generator().manual_seed(0))
    >>> [row["metric"] for row in table.rows]
    ['infidelity', 'deletion']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.batching import check_positive_int, chunks
from ..engines.perturb_eval import progress_bar
from ..errors import IntellegoError, describe, require
from ._common import Explainer, as_explainer, explain_batch
from .curves import faithfulness_curve
from .infidelity import infidelity, noise_perturbation
from .localization import pointing_game, relevance_mass, relevance_rank
from .sanity import randomization_check
from .sensitivity import sensitivity_max

__all__ = ["MetricTable", "evaluate", "METRICS", "blur", "demo_table"]

# name -> (better direction, needs ground-truth masks, short description)
METRICS: dict[str, tuple[str, bool, str]] = {
    "infidelity": ("lower", False, "normalized infidelity under Gaussian input noise"),
    "sensitivity": ("lower", False, "max relative change of the explanation under small input noise"),
    "deletion": ("lower", False, "area under the MoRF deletion curve (softmax probability)"),
    "insertion": ("higher", False, "area under the MoRF insertion curve (softmax probability)"),
    "pointing_game": ("higher", True, "most relevant pixel inside the object mask"),
    "relevance_mass": ("higher", True, "share of positive relevance inside the object mask"),
    "relevance_rank": ("higher", True, "share of the top-|mask| pixels inside the object mask"),
    "randomization": ("lower", False, "rank correlation with the explanation of the fully randomized model"),
}


@dataclass
class MetricTable:
    """Tidy results: ``rows`` is a list of dicts with keys ``method, metric, mean, std, n, better``.

    Attributes:
        rows: One dict per method and metric.
        values: ``(method, metric)`` -> the per-example scores.

    Example:
        >>> table = MetricTable([{"method": "IG", "metric": "deletion", "mean": 0.25, "std": 0.1, "n": 8,
        ...                       "better": "lower"}])
        >>> table.get("IG", "deletion"), table.to_markdown().splitlines()[0]
        (0.25, '| method | deletion ↓ |')
    """

    rows: list[dict[str, Any]]
    values: dict[tuple[str, str], Tensor] = field(default_factory=dict, repr=False)

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r["method"] for r in self.rows))

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(r["metric"] for r in self.rows))

    def get(self, method: str, metric: str) -> float:
        """The mean of ``metric`` for ``method``."""
        for r in self.rows:
            if r["method"] == method and r["metric"] == metric:
                return float(r["mean"])
        raise IntellegoError(f"no result for method {method!r} and metric {metric!r}; methods {self.methods}, "
                             f"metrics {self.metrics}")

    def to_markdown(self, digits: int = 3) -> str:
        """Methods as rows, metrics as columns (arrow: which direction is better), means."""
        better = {r["metric"]: r["better"] for r in self.rows}
        head = ["method", *(f"{m} {'↓' if better[m] == 'lower' else '↑'}" for m in self.metrics)]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(self.metrics)) + "|"]
        for method in self.methods:
            cells = [f"{self.get(method, m):.{digits}f}" for m in self.metrics]
            lines.append("| " + " | ".join([method, *cells]) + " |")
        return "\n".join(lines)

    def to_pandas(self) -> Any:
        """The rows as a ``pandas.DataFrame`` (pandas is optional)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("MetricTable.to_pandas needs pandas: pip install pandas") from err
        return pd.DataFrame(self.rows)

    def plot(self, path: str | os.PathLike | None = None) -> Any:
        """A figure with one bar chart per metric (matplotlib, imported lazily); saved when ``path`` is given."""
        from ..viz import figure as _figure

        metrics = self.metrics
        cols = min(4, len(metrics))
        rows_n = -(-len(metrics) // cols)
        fig, axes = _figure.new_figure(None, False, (3.0 * cols, 3.2 * rows_n), nrows=rows_n, ncols=cols,
                                       squeeze=False)
        for ax in axes.flat[len(metrics):]:
            ax.set_visible(False)
        for ax, metric in zip(axes.flat, metrics):
            rows = [r for r in self.rows if r["metric"] == metric]
            ax.bar(range(len(rows)), [r["mean"] for r in rows], yerr=[r["std"] for r in rows], capsize=2)
            ax.set_xticks(range(len(rows)), [r["method"] for r in rows], rotation=60, ha="right", fontsize=7)
            ax.set_title(f"{metric} ({rows[0]['better']} is better)", fontsize=8)
        fig.tight_layout()
        if path is not None:
            _figure.save_figure(fig, path)
        return fig

    def __str__(self) -> str:
        return self.to_markdown()


def blur(images: Tensor, size: int = 9) -> Tensor:
    """A blurred copy of ``(N, C, H, W)`` images (two box filters), the default reference of the curves.

    Args:
        images: ``(N, C, H, W)`` images.
        size: Side of the box filter (odd; at most the image's side).

    Returns:
        The blurred images, same shape.

    Example:
        >>> x = torch.zeros(1, 1, 9, 9)
        >>> x[0, 0, 4, 4] = 1.0
        >>> y = blur(x, 3)
        >>> y.shape == x.shape and 0 < float(y[0, 0, 4, 4]) < 1 and abs(float(y.sum()) - 1) < 0.1
        True
    """
    k = min(size, images.shape[-1], images.shape[-2]) | 1
    out = images
    for _ in range(2):
        out = F.avg_pool2d(out, k, 1, k // 2, count_include_pad=False)
    return out


def _split_data(data: Any) -> tuple[Tensor, Tensor, Tensor | None]:
    if hasattr(data, "images") and hasattr(data, "labels"):
        return data.images, data.labels, getattr(data, "masks", None)
    if isinstance(data, (tuple, list)) and len(data) in (2, 3) and all(isinstance(d, Tensor) for d in data):
        return data[0], data[1], data[2] if len(data) == 3 else None
    raise IntellegoError("data must have .images, .labels (and .masks), or be a tuple (inputs, targets) or "
                         f"(inputs, targets, masks) of tensors, got {describe(data)}")


@dataclass
class _Batch:
    model: nn.Module
    method: Any
    explain: Explainer
    name: str
    x: Tensor
    target: Tensor
    masks: Tensor | None
    attributions: Tensor
    options: dict[str, Any]
    generator: torch.Generator | None


def _pixel_mask(x: Tensor) -> Tensor | None:
    return torch.arange(x.shape[-2] * x.shape[-1], device=x.device).view(1, 1, *x.shape[-2:]) if x.dim() == 4 \
        else None


def _curve(b: _Batch, mode: str) -> Tensor:
    base = b.options["baselines"]
    if isinstance(base, str):
        base = blur(b.x) if b.x.dim() == 4 else None
    attr = b.attributions.abs() if b.options["absolute"] else b.attributions
    return faithfulness_curve(b.model, b.x, attr, b.target, base, None, b.options["n_steps"], _pixel_mask(b.x),
                              mode=mode, softmax=True).auc


def _sensitivity(b: _Batch) -> Tensor:
    def explanation(inputs: Tensor, target: Any = None) -> Any:
        return explain_batch(b.explain, b.model, inputs, target, b.name)[0]

    return sensitivity_max(explanation, b.x, perturb_radius=b.options["perturb_radius"],
                           n_perturb_samples=b.options["n_perturb_samples"], target=b.target, generator=b.generator)


def _masks(b: _Batch) -> Tensor:
    if b.masks is None:
        raise IntellegoError("localization metrics need ground-truth masks: pass data with .masks or a tuple "
                             "(inputs, targets, masks)")
    return b.masks


_SCORERS: dict[str, Callable[[_Batch], Tensor]] = {
    "infidelity": lambda b: infidelity(b.model, noise_perturbation(b.options["perturb_stdev"]), b.x, b.attributions,
                                       target=b.target, n_perturb_samples=b.options["n_perturb_samples"],
                                       normalize=True, generator=b.generator),
    "sensitivity": _sensitivity,
    "deletion": lambda b: _curve(b, "deletion"),
    "insertion": lambda b: _curve(b, "insertion"),
    "pointing_game": lambda b: pointing_game(b.attributions, _masks(b), absolute=b.options["absolute"]),
    "relevance_mass": lambda b: relevance_mass(b.attributions, _masks(b), absolute=b.options["absolute"]),
    "relevance_rank": lambda b: relevance_rank(b.attributions, _masks(b), absolute=b.options["absolute"]),
    "randomization": lambda b: randomization_check(b.model, b.method, b.x, b.target, generator=b.generator,
                                                   absolute=b.options["absolute"]).score,
}


def evaluate(
    model: nn.Module,
    data: Any,
    methods: Mapping[str, Any],
    metrics: Sequence[str] | None = None,
    *,
    batch_size: int = 32,
    n_perturb_samples: int = 10,
    perturb_stdev: float = 0.01,
    perturb_radius: float = 0.02,
    n_steps: int = 20,
    baselines: Any = "blur",
    absolute: bool = True,
    progress: bool = True,
    generator: torch.Generator | None = None,
) -> MetricTable:
    """Score every method with every metric on ``data``.

    Args:
        model: The model explained (never modified; the randomization check works on copies).
        data: An object with ``.images``, ``.labels`` (targets) and optionally ``.masks`` (e.g. ``make_shapes``),
            or a tuple ``(inputs, targets)`` / ``(inputs, targets, masks)``.
        methods: Name -> attribution object built on ``model``, ``(object, {attribute kwargs})``, or a callable
            ``fn(model, inputs, target) -> attributions``.
        metrics: Names from :data:`METRICS` (default: all; the localization ones only when there are masks).
        batch_size: Examples per batch.
        n_perturb_samples: Samples of infidelity and sensitivity.
        perturb_stdev: Noise of the infidelity perturbations.
        perturb_radius: Radius of the sensitivity perturbations.
        n_steps: Steps of the deletion and insertion curves (pixels move as wholes for images).
        baselines: Reference of the curves: ``"blur"`` (blurred image) or anything
            :func:`~intellego.metrics.faithfulness_curve` takes.
        absolute: Rank and localize absolute attributions.
        progress: Show a progress bar over the batches x methods x metrics on stderr (tqdm when installed, a
            plain counter otherwise).
        generator: For reproducible perturbations and random parameters.

    Returns:
        A :class:`MetricTable`.

    Example:
        >>> from intellego.attr import Saliency
        >>> from intellego.data import make_shapes
        >>> from intellego.models import load_shapes_cnn
        >>> model = load_shapes_cnn()
        >>> table = evaluate(model, make_shapes(4, seed=0), {"Saliency": Saliency(model)},
        ...                  ["deletion", "relevance_mass"], n_steps=4, progress=False)
        >>> table.methods, table.metrics
        (['Saliency'], ['deletion', 'relevance_mass'])
    """
    inputs, targets, masks = _split_data(data)
    require(len(methods) > 0, "methods must name at least one method")
    check_positive_int(batch_size, "batch_size", allow_none=False)
    if metrics is None:
        metrics = [m for m, (_, needs_mask, _) in METRICS.items() if masks is not None or not needs_mask]
    for m in metrics:
        require(m in METRICS, f"unknown metric {m!r}; choose from {sorted(METRICS)}")
        require(masks is not None or not METRICS[m][1],
                f"metric {m!r} needs ground-truth masks: pass data with .masks or (inputs, targets, masks)")
    explainers = {name: as_explainer(method, model, name) for name, method in methods.items()}
    options = dict(n_perturb_samples=n_perturb_samples, perturb_stdev=perturb_stdev, perturb_radius=perturb_radius,
                   n_steps=n_steps, baselines=baselines, absolute=absolute)
    slices = list(chunks(inputs.shape[0], batch_size))
    bar = progress_bar(len(slices) * len(methods) * len(metrics), "evaluate (methods x metrics)", progress)
    values: dict[tuple[str, str], list[Tensor]] = {(n, m): [] for n in methods for m in metrics}
    try:
        for sl in slices:
            for name, method in methods.items():
                x, t = inputs[sl], targets[sl]
                attrs = explain_batch(explainers[name], model, x, t, name)[0].detach()
                batch = _Batch(model, method, explainers[name], name, x, t, None if masks is None else masks[sl],
                               attrs, options, generator)
                for metric in metrics:
                    values[(name, metric)].append(_SCORERS[metric](batch).detach().float().cpu())
                    bar.update(1)
    finally:
        bar.close()
    return _tidy(values)


def _tidy(values: Mapping[tuple[str, str], Iterable[Tensor]]) -> MetricTable:
    rows, stacked = [], {}
    for (method, metric), parts in values.items():
        v = torch.cat(list(parts))
        stacked[(method, metric)] = v
        rows.append({"method": method, "metric": metric, "mean": float(v.mean()),
                     "std": float(v.std()) if v.numel() > 1 else 0.0, "n": int(v.numel()),
                     "better": METRICS[metric][0]})
    return MetricTable(rows, stacked)


def _edge_detector(model: nn.Module, inputs: Tensor, target: Any) -> Tensor:
    """Sobel gradient magnitude of the image: a 'method' that never looks at the model."""
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=inputs.dtype)
    k = k.view(1, 1, 3, 3).repeat(inputs.shape[1], 1, 1, 1)
    gx = F.conv2d(inputs, k, padding=1, groups=inputs.shape[1])
    gy = F.conv2d(inputs, k.transpose(2, 3), padding=1, groups=inputs.shape[1])
    return (gx * gx + gy * gy).sqrt()


def demo_table(n: int = 32, seed: int = 0, *, progress: bool = False, path: str | os.PathLike | None = None,
               metrics: Sequence[str] | None = None) -> MetricTable:
    """The metrics table of the gradient methods and a model-blind control (an edge detector) on the demo CNN.

    ``n`` fresh ``make_shapes`` images; a few seconds on one CPU core at the default size. With ``path`` the
    bar-chart figure is written there too (needs matplotlib). ``print(demo_table())`` shows the table.

    Args:
        n: Number of images.
        seed: Seed of the images.
        progress: Show a progress bar.
        path: Also write the bar-chart figure there.
        metrics: Names from :data:`METRICS` (default: all of them).

    Returns:
        The :class:`MetricTable`.

    Example:
        >>> table = demo_table(n=2, metrics=["deletion"])
        >>> table.metrics, len(table.methods), table.values[("Saliency", "deletion")].shape
        (['deletion'], 5, torch.Size([2]))
    """
    from ..attr import InputXGradient, IntegratedGradients, NoiseTunnel, Saliency
    from ..data import make_shapes
    from ..models import load_shapes_cnn

    model = load_shapes_cnn()
    data = make_shapes(n, seed=seed)
    methods: dict[str, Any] = {
        "Saliency": Saliency(model),
        "InputXGradient": InputXGradient(model),
        "IntegratedGradients": (IntegratedGradients(model), {"n_steps": 16}),
        "SmoothGrad": (NoiseTunnel(Saliency(model)), {"nt_samples": 8, "stdevs": 0.1,
                                                     "generator": torch.Generator().manual_seed(seed)}),
        "edge detector (control)": _edge_detector,
    }
    table = evaluate(model, data, methods, metrics, batch_size=n, n_perturb_samples=5, progress=progress,
                     generator=torch.Generator().manual_seed(seed))
    if path is not None:
        table.plot(Path(path))
    return table
