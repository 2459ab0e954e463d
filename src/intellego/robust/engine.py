"""The numerical pieces of the gradient attacks: the attack loss, input gradients, steps, projections and starts.

Everything works on a tuple of input tensors (one entry per model input) and returns new tensors; nothing here
touches the caller's tensors or the model. The public classes in :mod:`intellego.robust` validate arguments
and call these functions.

Example:
    >>> import torch
    >>> from intellego.robust.engine import linf_step, project
    >>> x0 = torch.zeros(1, 3)
    >>> x1 = linf_step((x0,), (torch.tensor([[2.0, -1.0, 0.0]]),), 0.5, (None,), 0.0)
    >>> project(x0, x1[0], 0.3, "Linf").tolist()
    [[0.30000001192092896, -0.30000001192092896, 0.0]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.targets import Readout, make_readout
from ..errors import IntellegoError, describe, require

__all__ = ["TargetLoss", "take_rows", "input_gradients", "linf_step", "l2_step", "project", "random_start",
           "fooled", "target_indices", "check_number", "check_steps", "check_bounds", "pack_masks", "NORMS"]

NORMS = ("Linf", "L2")


# ---------------------------------------------------------------------------------------------------- checks


def check_number(value: Any, name: str, *, positive: bool = False) -> float:
    """A finite, non-negative (or positive) real number, else a named error."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_complex():
        value, ok = float(value.item()), True
    require(ok and math.isfinite(value) and (value > 0 if positive else value >= 0),
            f"{name} must be a finite {'positive' if positive else 'non-negative'} number, got {describe(value)}")
    return float(value)


def check_steps(value: Any, name: str = "step_num", *, minimum: int = 0) -> int:
    """A whole number of steps (``>= minimum``)."""
    require(isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
            f"{name} must be an int >= {minimum}, got {describe(value)}")
    return int(value)


def check_bounds(lower: Any, upper: Any) -> tuple[float, float]:
    """``lower_bound <= upper_bound``, both real numbers (infinite allowed)."""
    for name, v in (("lower_bound", lower), ("upper_bound", upper)):
        require(isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v),
                f"{name} must be a real number (inf allowed), got {describe(v)}")
    require(lower <= upper, f"lower_bound ({lower}) must not exceed upper_bound ({upper})")
    return float(lower), float(upper)


def pack_masks(mask: Any, inputs: tuple[Tensor, ...]) -> tuple[Tensor | None, ...]:
    """One mask per input (None: every element may change), each broadcastable to its input's shape."""
    if mask is None:
        return (None,) * len(inputs)
    masks = tuple(mask) if isinstance(mask, (tuple, list)) else (mask,)
    require(len(masks) == len(inputs),
            f"mask has {len(masks)} tensors but inputs has {len(inputs)}; give one mask per input tensor")
    out: list[Tensor | None] = []
    for i, (m, x) in enumerate(zip(masks, inputs)):
        label = "mask" if len(inputs) == 1 else f"mask[{i}]"
        if m is None:
            out.append(None)
            continue
        require(isinstance(m, Tensor), f"{label} must be a tensor, got {describe(m)}")
        try:
            shape = torch.broadcast_shapes(m.shape, x.shape)
        except RuntimeError:
            shape = None
        require(shape == x.shape, f"{label} of shape {tuple(m.shape)} does not broadcast to the input of shape "
                                  f"{tuple(x.shape)}")
        out.append(m.to(device=x.device, dtype=x.dtype))
    return tuple(out)


# ------------------------------------------------------------------------------------------------------ loss


def take_rows(value: Any, rows: Tensor | None, batch: int) -> Any:
    """``value`` for the examples ``rows``: tensors and lists with one entry per example are indexed, anything
    else (a fixed class index, a lookup table) passes through."""
    if rows is None:
        return value
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == batch:
        return value[rows.to(value.device)]
    if isinstance(value, list) and len(value) == batch:
        return [value[i] for i in rows.tolist()]
    return value


class TargetLoss:
    """The loss an attack increases (untargeted) or decreases (targeted), one value per example.

    With ``loss_func`` it is ``loss_func(outputs, target)``. Without, it is the negative log-likelihood of the
    target, for logits and probabilities alike: ``-log(p[target])`` when every output lies in ``[0, 1]``
    (probabilities; Captum's default loss) and ``-log_softmax(outputs, dim=1)[target]`` otherwise (logits; a
    one-column output is a binary logit, ``-logsigmoid``). The choice is made on the first output and kept for
    the whole attack.
    """

    def __init__(self, loss_func: Callable[..., Tensor] | None, target: Any, batch: int) -> None:
        self.loss_func, self.target, self.batch = loss_func, target, batch
        self.readout: Readout | None = None if loss_func is not None else make_readout(target, batch)
        self.probabilities: bool | None = None
        # one class index per example, for the fused cross-entropy / gather path on (N, C) outputs
        self.labels: Tensor | None = None
        if self.readout is not None and self.readout.func is None:
            if self.readout.per_example is not None and self.readout.per_example.shape[1] == 1:
                self.labels = self.readout.per_example[:, 0]
            elif self.readout.index is not None and len(self.readout.index) == 1:
                self.labels = torch.full((batch,), self.readout.index[0], dtype=torch.long)
        self.checked = False

    def rows(self, rows: Tensor | None) -> TargetLoss:
        """The loss for the examples ``rows`` of the batch (same probabilities/logits decision)."""
        if rows is None:
            return self
        sub = TargetLoss.__new__(TargetLoss)
        sub.loss_func, sub.batch, sub.probabilities = self.loss_func, int(rows.numel()), self.probabilities
        sub.target = take_rows(self.target, rows, self.batch)
        sub.readout, sub.checked = None, self.checked
        sub.labels = None if self.labels is None else self.labels[rows.to(self.labels.device)]
        if self.readout is not None:
            per = self.readout.per_example
            sub.readout = self.readout if per is None else Readout(None, per[rows.to(per.device)], None, "target")
        return sub

    def __call__(self, outputs: Any) -> Tensor:
        if self.loss_func is not None:
            loss = self.loss_func(outputs, self.target)
            if not isinstance(loss, Tensor):
                raise IntellegoError(f"loss_func must return a tensor, got {describe(loss)}")
            return loss
        if not isinstance(outputs, Tensor):
            raise IntellegoError(f"the default loss needs a model that returns a tensor, got {describe(outputs)}; "
                                 "pass loss_func= or a forward_func that returns one")
        if self.probabilities is None:
            self.probabilities = bool(((outputs >= 0) & (outputs <= 1)).all())
        readout = cast(Readout, self.readout)  # set whenever loss_func is None
        labels = self.labels
        if labels is not None and outputs.dim() == 2 and outputs.shape[1] > 1:
            if not self.checked:  # the read-out's range checks, once
                readout(outputs)
                self.checked = True
            if labels.device != outputs.device:
                labels = self.labels = labels.to(outputs.device)
            if self.probabilities:
                return -torch.log(outputs.gather(1, labels[:, None])[:, 0])
            return F.cross_entropy(outputs, labels, reduction="none")
        if self.probabilities:
            return -torch.log(readout(outputs))
        if outputs.dim() < 2 or outputs.shape[1] == 1:
            return -F.logsigmoid(readout(outputs))
        return -readout(torch.log_softmax(outputs, dim=1))


def input_gradients(
    forward: Callable[..., Any], xs: Sequence[Tensor], args: tuple[Any, ...], loss: Callable[[Any], Tensor]
) -> tuple[tuple[Tensor, ...], Any]:
    """Gradients of ``sum(loss(forward(*xs, *args)))`` with respect to ``xs``, and the (detached) output."""
    with torch.enable_grad():
        leaves = tuple(x.detach().requires_grad_(True) for x in xs)
        out = forward(*leaves, *args)
        value = loss(out)
        if not value.requires_grad:
            raise IntellegoError("the attack loss does not depend on the inputs (no gradient flows); check that "
                                 "the model uses its inputs and that gradients are not disabled inside it")
        grads = torch.autograd.grad(value.sum(), leaves, allow_unused=True)
    grads = tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, leaves))
    return grads, out.detach() if isinstance(out, Tensor) else out


# ----------------------------------------------------------------------------------------------------- steps


def linf_step(xs: Sequence[Tensor], grads: Sequence[Tensor], size: float, masks: Sequence[Tensor | None],
              zero_thresh: float) -> tuple[Tensor, ...]:
    """``x + size * sign(g) * mask``; elements whose gradient is at most ``zero_thresh`` in size stay put."""
    out = []
    for x, g, m in zip(xs, grads, masks):
        # hardshrink zeroes |g| <= zero_thresh in one kernel
        s = (F.hardshrink(g, zero_thresh) if zero_thresh > 0 else g).sign()
        if m is not None:
            s = s.mul_(m)
        out.append(torch.add(x, s, alpha=size))
    return tuple(out)


def l2_step(xs: Sequence[Tensor], grads: Sequence[Tensor], size: float,
            masks: Sequence[Tensor | None]) -> tuple[Tensor, ...]:
    """``x + size * g / ||g||`` per example and per input tensor (the masked gradient is normalised, so the step
    has length ``size`` inside the mask). A zero gradient gives no step."""
    out = []
    for x, g, m in zip(xs, grads, masks):
        if m is not None:
            g = g * m
        norm = g.reshape(g.shape[0], -1).norm(dim=1).clamp_min(torch.finfo(g.dtype).tiny)
        out.append(x + (size / norm).reshape((-1,) + (1,) * (g.dim() - 1)) * g)
    return tuple(out)


def project(center: Tensor, x: Tensor, radius: float, norm: str) -> Tensor:
    """``x`` moved into the ``norm`` ball of ``radius`` around ``center`` (per example)."""
    if norm == "Linf":
        return center + (x - center).clamp(-radius, radius)
    return center + torch.renorm(x - center, 2, 0, radius)


def random_start(x: Tensor, radius: float, norm: str, mask: Tensor | None,
                 generator: torch.Generator | None) -> Tensor:
    """A uniform draw from the ``norm`` ball of ``radius`` around ``x`` (times ``mask``), drawn on ``x``'s device
    and in its dtype (or on the generator's device, then moved)."""
    device = generator.device if generator is not None else x.device
    if norm == "Linf":
        delta = (torch.rand(x.shape, generator=generator, dtype=x.dtype, device=device) * 2 - 1) * radius
    else:
        u = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device)
        flat = u.reshape(u.shape[0], -1)
        d = flat.shape[1]
        r = torch.rand(u.shape[0], generator=generator, dtype=x.dtype, device=device) ** (1.0 / max(d, 1)) * radius
        delta = (flat * (r / flat.norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny))[:, None]).reshape(x.shape)
    delta = delta.to(x.device)
    return x + (delta if mask is None else delta * mask)


# ------------------------------------------------------------------------------------------------- success


def target_indices(target: Any, batch: int, device: torch.device) -> Tensor:
    """One class index per example from an int, a list or a tensor target (for success checks)."""
    if isinstance(target, Tensor) and not target.is_floating_point() and target.numel() in (1, batch):
        return target.reshape(-1).to(device).expand(batch) if target.numel() == 1 else target.reshape(-1).to(device)
    if isinstance(target, int) and not isinstance(target, bool):
        return torch.full((batch,), target, dtype=torch.long, device=device)
    if isinstance(target, list) and len(target) == batch and all(isinstance(t, int) for t in target):
        return torch.tensor(target, dtype=torch.long, device=device)
    raise IntellegoError(f"target must be class indices (an int, a list of ints or an integer tensor with one "
                         f"entry per example) to tell whether an example is fooled, got {describe(target)}")


def fooled(outputs: Any, labels: Tensor, targeted: bool) -> Tensor:
    """Whether each example's prediction (``argmax`` over dim 1) moved off ``labels`` (or onto them, targeted)."""
    require(isinstance(outputs, Tensor) and outputs.dim() == 2,
            f"telling whether an example is fooled needs (N, classes) model outputs, got {describe(outputs)}")
    pred = outputs.argmax(1)
    return pred == labels if targeted else pred != labels


# ------------------------------------------------------------------------------------------------------ loop

GradFn = Callable[[tuple[Tensor, ...], "Tensor | None"], tuple[tuple[Tensor, ...], Any]]
StepFn = Callable[[tuple[Tensor, ...], tuple[Tensor, ...], "Tensor | None"], tuple[Tensor, ...]]


def pgd_loop(grad_fn: GradFn, step_fn: StepFn, centers: tuple[Tensor, ...], xs: tuple[Tensor, ...], *,
             steps: int, radius: float, norm: str, bound: Callable[[Tensor], Tensor],
             labels: Tensor | None = None, targeted: bool = False,
             final: Callable[[tuple[Tensor, ...], Tensor], Any] | None = None,
             box: tuple[tuple[Tensor, Tensor], ...] | None = None,
             ) -> tuple[tuple[Tensor, ...], Tensor | None]:
    """``steps`` projected steps from ``xs``: ``x <- bound(project(step(x, grad)))``.

    ``grad_fn(xs, rows)`` returns the loss gradients and the model output for the examples ``rows`` (None: all);
    ``step_fn(xs, grads, rows)`` takes one step. With ``labels`` (early stopping), an example stops at the first
    point whose prediction is fooled and only the others go on through the model; ``final(xs, rows)`` then
    gives the output at the last points, and the second return value says which examples were fooled.
    ``box`` (L-inf only): per input, the elementwise ``(low, high)`` of the ball intersected with the bounds, so
    projection and bounds are one clamp (valid when the centers lie within the bounds).
    """

    def settle(cs: tuple[Tensor, ...], stepped: tuple[Tensor, ...], bx: Any) -> tuple[Tensor, ...]:
        if bx is not None:
            return tuple(torch.clamp(x, lo, hi).detach() for x, (lo, hi) in zip(stepped, bx))
        return tuple(bound(project(c, x, radius, norm)).detach() for c, x in zip(cs, stepped))

    if labels is None:
        for _ in range(steps):
            grads, _ = grad_fn(xs, None)
            xs = settle(centers, step_fn(xs, grads, None), box)
        return xs, None
    n = centers[0].shape[0]
    out = [x.detach().clone() for x in xs]
    done = torch.zeros(n, dtype=torch.bool, device=labels.device)
    active = torch.arange(n, device=labels.device)
    cur, cen, lab, bx = xs, centers, labels, box
    for _ in range(steps):
        grads, o = grad_fn(cur, active)
        hit = fooled(o, lab, targeted)
        if bool(hit.any()):
            rows, keep = active[hit], ~hit
            done[rows] = True
            for t, x in zip(out, cur):
                t[rows] = x[hit]
            active, lab = active[keep], lab[keep]
            cur, cen, grads = (tuple(x[keep] for x in v) for v in (cur, cen, grads))
            if bx is not None:
                bx = tuple((lo[keep], hi[keep]) for lo, hi in bx)
            if active.numel() == 0:
                return tuple(out), done
        cur = settle(cen, step_fn(cur, grads, active), bx)
    if final is not None and active.numel() > 0:
        done[active[fooled(final(cur, active), lab, targeted)]] = True
    for t, x in zip(out, cur):
        t[active] = x
    return tuple(out), done
