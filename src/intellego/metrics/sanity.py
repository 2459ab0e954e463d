"""Model-parameter randomization sanity check (Adebayo et al., 2018).

An explanation that reflects what the model learned must change when the model's learned parameters are
replaced by random ones. The check re-initializes layers of a **deep copy** of the model (the caller's model is
never touched), explains the same inputs with the copy, and compares each randomized explanation with the
original one: a similarity that stays near 1 flags a method that ignores the model (an edge detector, or the
input itself, passes any model through unchanged).

* ``mode="cascading"``: randomize the layers one after another from the output down, cumulatively.
* ``mode="independent"``: randomize one layer at a time, the rest keeping their trained values.

Similarity is Spearman's rank correlation of the (absolute) attributions per example, or SSIM of the
channel-summed maps, or any callable ``similarity(a, b) -> (N,)`` on flattened ``(N, D)`` attributions.

Example:
    >>> import torch
    >>> from intellego.metrics import randomization_check
    >>> model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> def input_itself(model, inputs, target):   # ignores the model entirely
    ...     return inputs
    >>> result = randomization_check(model, input_itself, torch.randn(4, 6), target=0)
    >>> result.layers, bool(result.flagged().all())
    (['2', '0'], True)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.inputs import pack
from ..engines.sampling import gaussian_like
from ..errors import describe, require
from ._common import as_explainer, explain_batch

__all__ = ["SanityResult", "randomization_check", "spearman", "ssim", "randomize_layer", "parametrized_layers"]


@dataclass(frozen=True)
class SanityResult:
    """Similarities between the original and the randomized-model explanations.

    Attributes:
        mode: ``"cascading"`` or ``"independent"``.
        layers: The layer randomized at each step (cascading: on top of the ones before it).
        similarity: ``(steps, N)`` similarity per step and example.
        measure: Name of the similarity.

    Example:
        >>> result = SanityResult("cascading", ["fc2", "fc1"], torch.tensor([[0.9, 0.2], [0.1, 0.0]]), "spearman")
        >>> result.flagged().tolist()  # examples whose explanation stayed similar after randomization
        [False, False]
    """

    mode: str
    layers: list[str]
    similarity: Tensor
    measure: str

    @property
    def score(self) -> Tensor:
        """One similarity per example ``(N,)``: after the last cascading step (every listed layer randomized),
        or the mean over the layers in independent mode. Lower means the explanation depends more on the
        learned parameters."""
        return self.similarity[-1] if self.mode == "cascading" else self.similarity.mean(dim=0)

    def flagged(self, threshold: float = 0.5) -> Tensor:
        """Per example, whether the explanation stayed similar (``score`` above ``threshold``) although the
        model was randomized: the method fails the sanity check there."""
        return self.score > threshold

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """Mean similarity per randomization step, with matplotlib; returns the axes."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.gca()
        ax.plot(range(len(self.layers)), self.similarity.mean(1).cpu(), marker="o", **kwargs)
        ax.set_xticks(range(len(self.layers)), self.layers, rotation=45, ha="right")
        ax.set_ylabel(f"{self.measure} similarity")
        ax.set_ylim(-1.05 if self.measure == "spearman" else None, 1.05)
        return ax


def parametrized_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters, in registration order (input side first).

    Args:
        model: The model.

    Returns:
        The module names, as ``model.named_modules()`` gives them.

    Example:
        >>> parametrized_layers(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1)))
        ['0', '2']
    """
    return [name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]


def randomize_layer(layer: nn.Module, generator: torch.Generator | None = None) -> None:
    """Replace ``layer``'s own parameters, in place, by Gaussian draws with each parameter's standard deviation
    (0.1 where it has none); use it on a copy of the model only.

    Args:
        layer: The module whose own (not its children's) parameters are redrawn.
        generator: ``torch.Generator`` for reproducible draws.

    Example:
        >>> layer = torch.nn.Linear(3, 3)
        >>> before = layer.weight.clone()
        >>> randomize_layer(layer, torch.Generator().manual_seed(0))
        >>> bool((layer.weight != before).all())
        True
    """
    with torch.no_grad():
        for p in layer.parameters(recurse=False):
            std = float(p.std()) if p.numel() > 1 else 0.0
            p.copy_(gaussian_like(p, std if std > 0 else 0.1, generator))


def _ranks(x: Tensor) -> Tensor:
    """Ranks along dim 1 with ties sharing their average rank."""
    out = torch.empty_like(x, dtype=torch.float64)
    for i, row in enumerate(x):
        values, inverse, counts = torch.unique(row, return_inverse=True, return_counts=True)
        ends = counts.cumsum(0).double()
        out[i] = (ends - (counts.double() - 1) / 2)[inverse]
    return out


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation of the rows of two ``(N, D)`` tensors (average ranks for ties), ``(N,)``.

    Rows that are constant in one of the tensors have no defined correlation; they score 0.

    Args:
        a: ``(N, ...)`` values, flattened per row.
        b: ``(N, ...)`` values with as many elements per row.

    Returns:
        ``(N,)`` correlations in ``[-1, 1]``.

    Example:
        >>> round(spearman(torch.tensor([[1.0, 2, 3, 4]]), torch.tensor([[10.0, 20, 30, 5]])).item(), 6)
        -0.2
    """
    ra, rb = _ranks(a.reshape(a.shape[0], -1)), _ranks(b.reshape(b.shape[0], -1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    den = (ra.norm(dim=1) * rb.norm(dim=1))
    rho = torch.where(den > 0, (ra * rb).sum(1) / torch.where(den > 0, den, torch.ones_like(den)),
                      torch.zeros_like(den))
    return rho.to(a.dtype if a.is_floating_point() else torch.float32)


def ssim(a: Tensor, b: Tensor, window: int = 7, sigma: float = 1.5) -> Tensor:
    """Mean structural similarity of two batches of maps ``(N, H, W)`` (or ``(N, C, H, W)``, channels summed),
    each map scaled to ``[0, 1]`` first, ``(N,)``.

    Args:
        a: ``(N, H, W)`` or ``(N, C, H, W)`` maps.
        b: Maps of the same shape.
        window: Side of the Gaussian window.
        sigma: Standard deviation of the Gaussian window.

    Returns:
        ``(N,)`` similarities, 1 for identical maps.

    Example:
        >>> x = torch.rand(2, 16, 16)
        >>> torch.allclose(ssim(x, x), torch.ones(2))
        True
    """
    maps = []
    for t in (a, b):
        require(t.dim() in (3, 4), f"ssim needs maps of shape (N, H, W) or (N, C, H, W), got {describe(t)}")
        t = (t.sum(1) if t.dim() == 4 else t).double()
        low = t.flatten(1).amin(1).view(-1, 1, 1)
        span = t.flatten(1).amax(1).view(-1, 1, 1) - low
        maps.append(((t - low) / torch.where(span > 0, span, torch.ones_like(span))).unsqueeze(1))
    x, y = maps
    size = min(window, x.shape[-1], x.shape[-2])
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).to(x.device)
    kernel = (g[:, None] * g[None, :]).view(1, 1, size, size)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).to(a.dtype if a.is_floating_point() else torch.float32)


def _similarity(similarity: str | Callable[[Tensor, Tensor], Tensor]) -> tuple[str, Callable]:
    if callable(similarity):
        return getattr(similarity, "__name__", "custom"), similarity
    require(similarity in ("spearman", "ssim"),
            f"similarity must be 'spearman', 'ssim' or a callable (a, b) -> (N,), got {similarity!r}")
    return str(similarity), spearman if similarity == "spearman" else ssim


def _resolve_layers(model: nn.Module, layers: Sequence[str | nn.Module] | None) -> list[str]:
    if layers is None:
        found = parametrized_layers(model)
        require(bool(found), "the model has no parameters to randomize")
        return found
    by_module = {id(m): n for n, m in model.named_modules()}
    known = dict(model.named_modules())
    names: list[str] = []
    for layer in layers:
        name = by_module.get(id(layer)) if isinstance(layer, nn.Module) else layer
        require(isinstance(name, str) and name in known,
                f"layers entries must be submodules of the model or their names, got {describe(layer)}; "
                f"known layers with parameters: {parametrized_layers(model)[:12]}")
        names.append(str(name))
    return names


def randomization_check(
    model: nn.Module,
    method: Any,
    inputs: Any,
    target: Any = None,
    *,
    mode: str = "cascading",
    layers: Sequence[str | nn.Module] | None = None,
    similarity: str | Callable[[Tensor, Tensor], Tensor] = "spearman",
    absolute: bool = True,
    generator: torch.Generator | None = None,
) -> SanityResult:
    """Compare ``method``'s explanations of ``model`` with those of randomized copies of it.

    Args:
        model: The trained model; it is deep-copied before any change and is left exactly as it was.
        method: An attribution object built on ``model`` (e.g. ``Saliency(model)``; rebuilt on each copy), a pair
            ``(object, {attribute kwargs})``, or a callable ``fn(model, inputs, target) -> attributions``.
        inputs: A tensor or a tuple of tensors, batch first.
        target: Which output to explain (Captum's target formats).
        mode: ``"cascading"`` (output layer first, cumulatively) or ``"independent"`` (one layer at a time).
        layers: Layers (modules or names) to randomize; default: every module that owns parameters.
        similarity: ``"spearman"``, ``"ssim"`` (2-D maps) or a callable ``(a, b) -> (N,)``.
        absolute: Compare absolute attributions (as in the original study).
        generator: For reproducible random parameters.

    Returns:
        A :class:`SanityResult`; ``result.flagged()`` marks examples whose explanation did not change.

    Example:
        >>> from intellego.attr import Saliency
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> result = randomization_check(model, Saliency(model), torch.randn(3, 4), target=0,
        ...                              generator=torch.Generator().manual_seed(0))
        >>> result.layers
        ['2', '0']
    """
    require(isinstance(model, nn.Module), f"model must be a torch.nn.Module, got {describe(model)}")
    require(mode in ("cascading", "independent"), f"mode must be 'cascading' or 'independent', got {mode!r}")
    measure, sim = _similarity(similarity)
    names = _resolve_layers(model, layers)
    explain = as_explainer(method, model, getattr(method, "__name__", type(method).__name__))
    xs, _ = pack(inputs)

    def flat(m: nn.Module) -> Tensor:
        attrs = explain_batch(explain, m, inputs, target, measure)
        if measure == "ssim":
            require(len(attrs) == 1, "similarity='ssim' needs a single input tensor")
            out = attrs[0].detach()
        else:
            out = torch.cat([a.detach().reshape(a.shape[0], -1) for a in attrs], dim=1)
        return out.abs() if absolute else out

    reference = flat(model)
    order = names[::-1] if mode == "cascading" else names
    rows = []
    work = copy.deepcopy(model)
    for name in order:
        if mode == "independent":
            work = copy.deepcopy(model)
        randomize_layer(work.get_submodule(name), generator)
        rows.append(sim(reference, flat(work)).reshape(xs[0].shape[0]))
    return SanityResult(mode, order, torch.stack(rows), measure)
