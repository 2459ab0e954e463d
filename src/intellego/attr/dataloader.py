"""``DataLoaderAttribution``: feature ablation against a metric computed over a whole data loader.

Each perturbation (a set of features set to their baselines in every batch) is scored by running the model
over the loader, folding the outputs with ``reduce`` and turning the result into a metric with
``to_metric``; features are attributed the metric's change. Unlike Captum, all perturbations of a pass share
one traversal of the loader by default, and the perturbed copies of a batch go through the model in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import copy
from typing import Any

import torch
from torch import Tensor

from ..core.inputs import unpack
from ..errors import IntellegoError, describe, require
from ._base import Attribution, public_call
from .ablation import FeatureAblation

__all__ = ["InputRole", "DataLoaderAttribution"]


class InputRole:
    """Roles of the elements a loader yields: attributed and passed to the model, passed only, or not passed."""

    need_attr = 0
    need_forward = 1
    no_forward = 2


def _concat(accum: Tensor | None, output: Tensor, inputs: Any) -> Tensor:
    """The default ``reduce``: outputs of all batches concatenated along the first dimension."""
    return output if accum is None else torch.cat([accum, output])


class DataLoaderAttribution(Attribution):
    """Feature ablation over a data loader with a custom reduction of the model outputs (e.g. a corpus metric).

    Args:
        attr_method: a ``FeatureAblation`` built on the model (its forward function is what runs per batch).

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from intellego.attr import DataLoaderAttribution, FeatureAblation
        >>> model = torch.nn.Linear(3, 1, bias=False)
        >>> loader = DataLoader(TensorDataset(torch.ones(8, 3)), batch_size=4)
        >>> total = lambda acc, out, inputs: out.sum() if acc is None else acc + out.sum()
        >>> attr = DataLoaderAttribution(FeatureAblation(model)).attribute(loader, reduce=total)
        >>> torch.allclose(attr[0], 8 * model.weight.detach())
        True
    """

    def __init__(self, attr_method: FeatureAblation) -> None:
        if type(attr_method) is not FeatureAblation:
            raise IntellegoError(f"DataLoaderAttribution wraps a FeatureAblation, got {describe(attr_method)}")
        super().__init__(attr_method.forward_func)
        self.attr_method = copy(attr_method)

    @public_call
    def attribute(self, dataloader: Any, input_roles: tuple[int, ...] | None = None, baselines: Any = None,
                  feature_mask: Any = None, reduce: Callable[..., Any] | None = None,
                  to_metric: Callable[[Any], Tensor] | None = None, perturbations_per_pass: int | None = None,
                  show_progress: bool = False, return_input_shape: bool = True, *,
                  batch_perturbations: bool = True) -> Any:
        """Compute the attributions.

        Args:
            dataloader: an iterable of batches (a tensor, or a tuple/list of elements of a fixed length).
            input_roles: one :class:`InputRole` per batch element (default: all ``need_attr``).
            baselines: per attributed element, a number or a tensor of first dimension 1. Default 0.
            feature_mask: per attributed element, integer feature ids of first dimension 1 (ids shared across
                elements form one feature). Default: every element of every attributed input is a feature.
            reduce: ``reduce(accum, output, perturbed_batch) -> accum`` folding the batches (default: concatenate
                the outputs).
            to_metric: turns the final ``accum`` into the tensor attributed (default: ``accum`` itself).
            perturbations_per_pass: perturbations evaluated per traversal of the loader; default all of them
                (one traversal; Captum's default is 1, one traversal per feature).
            show_progress: show a progress bar over the model calls.
            return_input_shape: spread the attributions over the inputs' shapes (one tensor per attributed
                element, each ``(n_metric, *element.shape[1:])``) instead of ``(n_metric, n_features)``.
            batch_perturbations: keyword-only; run the perturbed copies of a batch as one model call (needs a
                model that returns one output row per example; otherwise the copies run one by one).

        Returns:
            Attributions of the metric to the features.
        """
        first = next(iter(dataloader))
        was_tuple = isinstance(first, (tuple, list))
        items = tuple(first) if was_tuple else (first,)
        roles = tuple(input_roles) if input_roles else (InputRole.need_attr,) * len(items)
        require(len(roles) == len(items), f"input_roles {roles} must give one role per element the loader yields "
                f"({len(items)})")
        require(all(r in (0, 1, 2) for r in roles) and InputRole.need_attr in roles,
                f"input_roles must hold roles 0, 1 or 2 and at least one 0 (need_attr), got {roles}")
        attr_inputs = tuple(x for x, r in zip(items, roles) if r == InputRole.need_attr)
        for i, x in enumerate(attr_inputs):
            require(isinstance(x, Tensor) and x.dim() >= 1, f"attributed loader element {i} must be a tensor "
                    f"with a batch dimension, got {describe(x)}")
        fills = _baselines(baselines, attr_inputs)
        masks, n_features = _masks(feature_mask, attr_inputs)
        require(perturbations_per_pass is None or (isinstance(perturbations_per_pass, int)
                and perturbations_per_pass >= 1), f"perturbations_per_pass must be a positive int or None, "
                f"got {perturbations_per_pass!r}")
        state = _Pass(self.forward_func, dataloader, roles, fills, masks, reduce or _concat, to_metric,
                      batch_perturbations)
        method = copy(self.attr_method)
        method.forward_func = state
        device = attr_inputs[0].device
        unique = method.attribute(torch.ones(1, n_features, device=device),
                                  perturbations_per_eval=perturbations_per_pass or n_features + 1,
                                  show_progress=show_progress)
        unique = unique.reshape(-1, n_features)
        if not return_input_shape:
            return unique
        return unpack(tuple(unique[:, m.reshape(-1)].reshape(-1, *m.shape[1:]) for m in masks), was_tuple)


def _baselines(baselines: Any, xs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    given = baselines if isinstance(baselines, (tuple, list)) else (baselines,) * len(xs)
    require(len(given) == len(xs), f"baselines must give one value per attributed element ({len(xs)}), "
            f"got {len(given)}")
    out = []
    for i, (b, x) in enumerate(zip(given, xs)):
        b = torch.zeros((), dtype=x.dtype, device=x.device) if b is None else torch.as_tensor(b, device=x.device)
        require(b.dim() == 0 or (b.shape[0] == 1 and b.dim() == x.dim()), f"baselines[{i}] must be a number or "
                f"a tensor of first dimension 1 (shared by all batches), got {describe(b)} for input {describe(x)}")
        # a float baseline of an integer input stays float (x - 0.1, as FeatureAblation reads it on each batch)
        out.append(b if b.is_floating_point() and not x.is_floating_point() else b.to(x.dtype))
    return tuple(out)


def _masks(feature_mask: Any, xs: tuple[Tensor, ...]) -> tuple[tuple[Tensor, ...], int]:
    if feature_mask is None:
        masks, start = [], 0
        for x in xs:
            n = x[0].numel()
            masks.append(torch.arange(start, start + n, device=x.device).reshape(1, *x.shape[1:]))
            start += n
        return tuple(masks), start
    given = feature_mask if isinstance(feature_mask, (tuple, list)) else (feature_mask,)
    require(len(given) == len(xs), f"feature_mask must give one mask per attributed element ({len(xs)}), "
            f"got {len(given)}")
    out = []
    for i, (m, x) in enumerate(zip(given, xs)):
        ok = isinstance(m, Tensor) and not m.is_floating_point() and m.dim() == x.dim() and m.shape[0] == 1
        require(ok, f"feature_mask[{i}] must be an integer tensor of first dimension 1 (shared by all batches), "
                f"got {describe(m)} for input {describe(x)}")
        try:
            out.append(m.long().expand(1, *x.shape[1:]))
        except RuntimeError as err:
            raise IntellegoError(f"feature_mask[{i}] {describe(m)} does not broadcast to input {describe(x)}") from err
    ids = torch.unique(torch.cat([m.reshape(-1) for m in out]))
    require(int(ids.min()) >= 0, f"feature ids must be non-negative, got minimum {int(ids.min())}")
    return tuple(out), int(ids.max()) + 1


class _Pass:
    """The forward function seen by FeatureAblation: presence rows ``(k, n_features)`` -> metrics ``(k, ...)``,
    one traversal of the loader for all ``k`` rows."""

    def __init__(self, model: Callable[..., Any], loader: Any, roles: tuple[int, ...], fills: tuple[Tensor, ...],
                 masks: tuple[Tensor, ...], reduce: Callable[..., Any], to_metric: Callable[[Any], Tensor] | None,
                 batched: bool) -> None:
        self.model, self.loader, self.roles, self.fills, self.masks = model, loader, roles, fills, masks
        self.reduce, self.to_metric, self.batched = reduce, to_metric, batched

    def _perturbed(self, batch: tuple[Any, ...], keep: Tensor) -> list[tuple[Any, ...]]:
        """Per presence row, the batch with absent features set to the baselines."""
        out = []
        for row in keep:
            items, j = [], 0
            for x, role in zip(batch, self.roles):
                if role == InputRole.need_attr:
                    present = row[self.masks[j]].bool()
                    items.append(x if bool(present.all()) else torch.where(present, x, self.fills[j]))
                    j += 1
                else:
                    items.append(x)
            out.append(tuple(items))
        return out

    def _outputs(self, variants: list[tuple[Any, ...]]) -> list[Any]:
        def forwarded(v: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(x for x, r in zip(v, self.roles) if r != InputRole.no_forward)

        k = len(variants)
        if self.batched and k > 1:
            parts = [forwarded(v) for v in variants]
            if all(isinstance(x, Tensor) for x in parts[0]):
                size = parts[0][0].shape[0]
                y = self.model(*(torch.cat(xs) for xs in zip(*parts)))
                if isinstance(y, Tensor) and y.dim() >= 1 and y.shape[0] == k * size:
                    return list(y.split(size))
                self.batched = False  # not one row per example: evaluate the copies one by one from now on
        return [self.model(*forwarded(v)) for v in variants]

    def __call__(self, keep: Tensor) -> Tensor:
        accum: list[Any] = [None] * keep.shape[0]
        for batch in self.loader:
            batch = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
            require(len(batch) == len(self.roles), f"the loader yielded {len(batch)} elements in a batch, "
                    f"expected {len(self.roles)} as in its first batch")
            variants = self._perturbed(batch, keep)
            for i, (v, y) in enumerate(zip(variants, self._outputs(variants))):
                accum[i] = self.reduce(accum[i], y, v)
        metrics = [self.to_metric(a) if self.to_metric else a for a in accum]
        for m in metrics:
            require(isinstance(m, Tensor), f"the reduced metric must be a tensor, got {describe(m)}; "
                    "return one from reduce or to_metric")
        return torch.stack(metrics)
