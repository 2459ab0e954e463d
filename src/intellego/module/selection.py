"""``select_features``: train stochastic gates in front of a frozen model and rank the features it needs.

The gated input is ``baselines + gates(inputs - baselines)``: a closed gate puts its feature (or group, with a
``mask``) at the baseline. The objective is the task loss rescaled so that "every gate open" scores 0 and
"every gate closed" scores 1, plus the gates' L0 penalty. With the default penalty (``reg_weight`` times the
summed probabilities of being open), a gate stays open when closing it costs more than ``reg_weight`` of the loss
the inputs explain, whatever the scale of that loss. Only the gates are trained: the model runs in evaluation
mode, its parameters receive no gradient, and its flags are restored on exit (also on error).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.hooks import HookScope, modules_of, walk_modules
from ..engines.perturb_eval import progress_bar
from ..errors import IntellegoError, describe, require
from .binary_concrete_stochastic_gates import BinaryConcreteStochasticGates
from .gaussian_stochastic_gates import GaussianStochasticGates
from .stochastic_gates_base import StochasticGatesBase

__all__ = ["select_features", "FeatureSelection"]

GATE_KINDS = {"binary_concrete": BinaryConcreteStochasticGates, "gaussian": GaussianStochasticGates}
Batch = tuple[Tensor, Tensor | None]


@dataclass
class FeatureSelection:
    """What :func:`select_features` found.

    ``ranking`` holds gate ids (feature indices, or group ids with a mask), most likely open first; ``probs``
    their probabilities of being open, in the same order. ``gates`` is the trained module (evaluation mode),
    ``history`` the mean objective of each epoch.

    Attributes:
        ranking: Gate ids, most likely open first.
        probs: Their probabilities of being open, same order.
        gates: The trained gates module, in evaluation mode.
        history: The mean objective of each epoch.
        epochs: Epochs run.
        stopped_early: Whether ``patience`` stopped the training.

    Example:
        >>> import torch
        >>> from intellego.module import GaussianStochasticGates
        >>> found = FeatureSelection(torch.tensor([2, 0, 1]), torch.tensor([0.9, 0.6, 0.1]),
        ...                          GaussianStochasticGates(3))
        >>> found.selected().tolist(), found.top(1).tolist()
        ([2, 0], [2])
    """

    ranking: Tensor
    probs: Tensor
    gates: StochasticGatesBase
    history: list[float] = field(default_factory=list)
    epochs: int = 0
    stopped_early: bool = False

    def selected(self, threshold: float = 0.5) -> Tensor:
        """Gate ids open with probability above ``threshold``, best first."""
        return self.ranking[self.probs > threshold]

    def top(self, k: int) -> Tensor:
        """The ``k`` highest-ranked gate ids."""
        return self.ranking[:k]


def select_features(
    model: Callable[..., Tensor],
    inputs: Tensor | Iterable[Any],
    targets: Tensor | None = None,
    *,
    mask: Tensor | None = None,
    gates: str | StochasticGatesBase = "binary_concrete",
    reg_weight: float = 0.02,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    baselines: float | Tensor = 0.0,
    batch_size: int = 256,
    lr: float = 0.1,
    max_epochs: int = 200,
    patience: int = 5,
    tol: float = 1e-3,
    generator: torch.Generator | None = None,
    show_progress: bool = False,
) -> FeatureSelection:
    """Train L0 gates in front of ``model`` (kept frozen) and rank the input features by how much it needs them.

    Args:
        model: the model (or any function of one batched tensor).
        inputs: a tensor ``(N, *shape)``, or a re-iterable data source (e.g. a ``DataLoader``) yielding
            tensors, ``(inputs,)`` or ``(inputs, targets)``.
        targets: targets for tensor ``inputs``. Without targets the model's own outputs on the clean inputs
            are the targets: the gates then find the features the model's predictions depend on.
        mask: integer gate ids broadcastable to one example (a leading dimension of 1 is allowed), grouping
            features; default: one gate per element.
        gates: ``"binary_concrete"``, ``"gaussian"`` or a gates module you built (trained in place).
        reg_weight: L0 weight for gates built here: a gate stays open when closing it costs more than this
            fraction of the loss the inputs explain.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``; default cross-entropy for integer targets, else
            mean squared error.
        baselines: the value a closed feature takes (scalar or broadcastable to one example).
        batch_size: rows per step for tensor inputs (a data loader brings its own batches).
        lr: Adam's learning rate for the gate parameters.
        max_epochs: stop after this many passes over the data.
        patience: stop earlier once the epoch's mean objective has not improved by ``tol`` for this many epochs.
        tol: the smallest improvement of the mean objective that counts.
        generator: ``torch.Generator`` for the gates' initialisation, their draws and the shuffling.
        show_progress: show a progress bar over epochs (tqdm when installed).

    Returns:
        A :class:`FeatureSelection`: the ranking of the gates, their probabilities and the trained gates.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(128, 6, generator=g)
        >>> model = torch.nn.Linear(6, 1)
        >>> _ = model.weight.data.copy_(torch.tensor([[0.0, 2.0, 0.0, 0.0, -3.0, 0.0]]))
        >>> result = select_features(model, x, gates="gaussian", generator=g)
        >>> sorted(result.selected().tolist()), result.epochs < 200
        ([1, 4], True)
    """
    _check_settings(batch_size, lr, max_epochs, patience, tol, reg_weight, generator)
    first_x, data = _data(inputs, targets, batch_size, generator)
    mask = _example_mask(mask, first_x)
    base = _baselines(baselines, first_x)
    module = _gates(gates, mask, first_x, reg_weight, generator)
    params = [p for p in module.parameters() if p.requires_grad]
    require(len(params) > 0, "the gates have no trainable parameters")

    with HookScope() as scope, torch.enable_grad():
        for owned in modules_of(model):
            for m in walk_modules(owned):
                scope.patch(m, "training", False)
        if data.needs_targets and isinstance(inputs, Tensor):  # the model's own outputs, once for all epochs
            data = _data(inputs, _own_all(model, first_x, batch_size), batch_size, generator)[1]
        own_targets = data.needs_targets
        loss = _Loss(model, loss_fn)
        opened, gap = _reference(model, loss, data, base, own_targets)
        inv_gap, offset = 1.0 / gap, opened / gap  # objective: (loss - opened) / gap + L0 penalty
        optimizer = torch.optim.Adam(params, lr=lr)
        module.train()
        bar = progress_bar(max_epochs, "select_features", show_progress)
        history: list[float] = []
        try:
            stopped = _until_flat(lambda: _epoch_objective(module, model, loss, data, base, optimizer, params,
                                                           (inv_gap, offset), own_targets),
                                  history, bar, max_epochs, patience, tol)
        finally:
            bar.close()
            module.eval()
            optimizer.zero_grad(set_to_none=True)
    probs = module.get_gate_active_probs()
    raw = module.get_gate_values(clamp=False)
    order = torch.argsort(raw, descending=True, stable=True)  # ties in probability broken by the raw means
    order = order[torch.argsort(probs[order], descending=True, stable=True)]
    return FeatureSelection(order, probs[order], module, history, len(history), stopped)


def _until_flat(epoch: Callable[[], float], history: list[float], bar: Any, max_epochs: int, patience: int,
                tol: float) -> bool:
    """Run ``epoch()`` (appending its objective to ``history``) until ``max_epochs``, or until the objective has
    not improved by ``tol`` for ``patience`` epochs; whether it stopped early."""
    best, since_best = math.inf, 0
    for _epoch in range(max_epochs):
        history.append(epoch())
        bar.update(1)
        if history[-1] < best - tol:
            best, since_best = history[-1], 0
        else:
            since_best += 1
            if since_best >= patience:
                return True
    return False


def _epoch_objective(module: StochasticGatesBase, model: Callable[..., Tensor], loss: Any, data: Any, base: Tensor,
                     optimizer: torch.optim.Optimizer, params: Sequence[Tensor], scale: tuple[float, float],
                     own_targets: bool) -> float:
    """One pass over the data with an Adam step per batch; the epoch's mean objective ``(loss - opened) / gap +
    L0 penalty`` (``scale`` is ``(1 / gap, opened / gap)``)."""
    inv_gap, offset = scale
    shifted = bool(base.dim() > 0 or base.item() != 0)
    total, steps = 0.0, 0
    for x, y in data.epoch():
        y = _own(model, x) if own_targets else cast(Tensor, y)
        if shifted:
            gated, reg = module(x - base)
            gated = gated + base
        else:
            gated, reg = module(x)
        objective = loss(model(gated), y) * inv_gap + (reg if reg.dim() == 0 else reg.sum())
        optimizer.zero_grad(set_to_none=True)
        objective.backward(inputs=params)
        optimizer.step()
        total, steps = total + float(objective.detach()) - offset, steps + 1
    return total / max(steps, 1)


def _check_settings(batch_size: int, lr: float, max_epochs: int, patience: int, tol: float, reg_weight: float,
                    generator: torch.Generator | None) -> None:
    for name, value in (("batch_size", batch_size), ("max_epochs", max_epochs), ("patience", patience)):
        require(isinstance(value, int) and not isinstance(value, bool) and value > 0,
                f"{name} must be a positive int, got {describe(value)}")
    require(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0, f"lr must be > 0, got {describe(lr)}")
    require(isinstance(tol, (int, float)) and tol >= 0, f"tol must be >= 0, got {describe(tol)}")
    require(isinstance(reg_weight, (int, float)) and math.isfinite(reg_weight) and reg_weight >= 0,
            f"reg_weight must be a finite number >= 0, got {describe(reg_weight)}")
    require(generator is None or isinstance(generator, torch.Generator),
            f"generator must be a torch.Generator or None, got {describe(generator)}")


class _Data:
    """Batches of ``(inputs, targets or None)``, one pass per ``epoch()``."""

    def __init__(self, epoch: Callable[[], Iterator[Batch]], needs_targets: bool) -> None:
        self.epoch, self.needs_targets = epoch, needs_targets


def _data(inputs: Any, targets: Tensor | None, batch_size: int,
          generator: torch.Generator | None) -> tuple[Tensor, _Data]:
    if isinstance(inputs, Tensor):
        require(inputs.dim() >= 2 and inputs.shape[0] > 0,
                f"inputs must be a batch (N, *shape) with N > 0, got {describe(inputs)}")
        require(inputs.is_floating_point(), f"inputs must be floating point, got {describe(inputs)}")
        x = inputs.detach()
        n = x.shape[0]
        if targets is not None:
            require(isinstance(targets, Tensor) and targets.dim() >= 1 and targets.shape[0] == n,
                    f"targets must be a tensor with one row per input row ({n}), got {describe(targets)}")
            targets = targets.detach()

        def epoch() -> Iterator[Batch]:
            order = torch.randperm(n, generator=generator,
                                   device=generator.device if generator is not None else "cpu").to(x.device)
            for start in range(0, n, batch_size):
                rows = order[start:start + batch_size]
                yield x[rows], None if targets is None else targets[rows]

        return x, _Data(epoch, targets is None)
    require(targets is None, "targets go with tensor inputs; a data loader yields (inputs, targets) batches")
    require(isinstance(inputs, Iterable) and iter(inputs) is not inputs,
            f"inputs must be a tensor or a re-iterable data source such as a DataLoader (a generator or iterator "
            f"runs out after one epoch), got {describe(inputs)}")
    first = next(iter(inputs), None)
    require(first is not None, "the data loader yielded no batches")
    x0, y0 = _split(first)

    def loader_epoch() -> Iterator[Batch]:
        for batch in inputs:
            yield _split(batch)

    return x0, _Data(loader_epoch, y0 is None)


def _split(batch: Any) -> Batch:
    if isinstance(batch, Tensor):
        x, y = batch, None
    elif isinstance(batch, (tuple, list)) and len(batch) in (1, 2) and isinstance(batch[0], Tensor):
        x, y = batch[0], (batch[1] if len(batch) == 2 else None)
    else:
        raise IntellegoError(f"a batch must be a tensor, (inputs,) or (inputs, targets), got {describe(batch)}")
    if not (x.dim() >= 2 and x.is_floating_point()):
        raise IntellegoError(f"batch inputs must be floating point of shape (batch, *shape), got {describe(x)}")
    if y is not None and not isinstance(y, Tensor):
        raise IntellegoError(f"batch targets must be a tensor, got {describe(y)}")
    return x.detach(), None if y is None else y.detach()


def _example_mask(mask: Tensor | None, x: Tensor) -> Tensor | None:
    if mask is None:
        return None
    require(isinstance(mask, Tensor), f"mask must be a tensor of gate ids, got {describe(mask)}")
    require(mask.dim() < x.dim() or mask.shape[0] == 1,
            f"mask of shape {tuple(mask.shape)} must describe one example of inputs shaped {tuple(x.shape)}: "
            f"select_features learns one set of gates for all examples")
    return mask.to(x.device)


def _baselines(baselines: float | Tensor, x: Tensor) -> Tensor:
    if isinstance(baselines, bool) or not isinstance(baselines, (int, float, Tensor)):
        raise IntellegoError(f"baselines must be a number or a tensor, got {describe(baselines)}")
    if not isinstance(baselines, Tensor):
        return torch.tensor(float(baselines), dtype=x.dtype, device=x.device)
    try:
        shape = torch.broadcast_shapes(baselines.shape, x.shape[1:])
    except RuntimeError:
        shape = None
    require(shape == x.shape[1:],
            f"baselines of shape {tuple(baselines.shape)} must broadcast to one example of shape {tuple(x.shape[1:])}")
    return baselines.detach().to(dtype=x.dtype, device=x.device)


def _gates(gates: str | StochasticGatesBase, mask: Tensor | None, x: Tensor, reg_weight: float,
           generator: torch.Generator | None) -> StochasticGatesBase:
    if isinstance(gates, StochasticGatesBase):
        module = gates
    else:
        require(gates in GATE_KINDS, f"gates must be one of {', '.join(GATE_KINDS)} or a gates module, "
                                     f"got {describe(gates)}")
        n_gates = math.prod(x.shape[1:]) if mask is None else int(mask.max()) + 1
        module = GATE_KINDS[gates](n_gates, mask=mask, reg_weight=reg_weight, generator=generator)  # type: ignore[operator]
        module = module.to(device=x.device, dtype=x.dtype)
    module._layout(x.shape)  # the gates must fit the inputs: a clear error now, before any model call
    return module


class _Loss:
    def __init__(self, model: Callable[..., Tensor], loss_fn: Callable[[Tensor, Tensor], Tensor] | None) -> None:
        self.model, self.loss_fn = model, loss_fn

    def __call__(self, out: Tensor, y: Tensor) -> Tensor:
        if not isinstance(out, Tensor):
            raise IntellegoError(f"the model must return a tensor, got {describe(out)}")
        if self.loss_fn is not None:
            value = self.loss_fn(out, y)
        elif not (y.is_floating_point() or y.is_complex()):
            value = F.cross_entropy(out, y)
        else:
            if y.numel() != out.numel():
                raise IntellegoError(f"targets of shape {tuple(y.shape)} do not match the model's outputs of shape "
                                     f"{tuple(out.shape)}; pass loss_fn= for another loss")
            value = F.mse_loss(out, y.reshape(out.shape).to(out.dtype))
        if not (isinstance(value, Tensor) and value.numel() == 1):
            raise IntellegoError(f"the loss must be a scalar tensor, got {describe(value)}")
        return value.reshape(())


def _own(model: Callable[..., Tensor], x: Tensor) -> Tensor:
    with torch.no_grad():
        out = model(x)
    if not isinstance(out, Tensor):
        raise IntellegoError(f"the model must return a tensor, got {describe(out)}")
    return out.detach()


def _own_all(model: Callable[..., Tensor], x: Tensor, batch_size: int) -> Tensor:
    return torch.cat([_own(model, x[start:start + batch_size]) for start in range(0, x.shape[0], batch_size)])


def _reference(model: Callable[..., Tensor], loss: _Loss, data: _Data, base: Tensor,
               own_targets: bool) -> tuple[float, float]:
    """The loss with every gate open and with every gate closed, on the first batch: ``(open, closed - open)``."""
    x, y = next(iter(data.epoch()))
    y = _own(model, x) if own_targets else cast(Tensor, y)
    with torch.no_grad():
        opened = float(loss(model(x), y))
        closed = float(loss(model(base.expand_as(x)), y))
    gap = closed - opened
    require(math.isfinite(gap) and gap > 1e-12 * max(1.0, abs(closed)),
            f"closing every gate does not raise the loss (open: {opened:.6g}, closed: {closed:.6g}): the model does "
            f"not use these inputs away from the baselines, so there is nothing to select")
    return opened, gap
