"""Attacks beyond Captum with the same interface: ``APGD`` (APGD-CE), ``CWL2`` (Carlini-Wagner L2) and
``DeepFool``. Each is a :class:`~intellego.robust.Perturbation` whose ``perturb`` takes the inputs (a tensor or a
tuple), class-index targets, ``additional_forward_args`` and a ``mask``, and returns the same structure.

Example:
    >>> import torch
    >>> from intellego.robust import DeepFool
    >>> model = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    ...     _ = model.bias.zero_()
    >>> x = torch.tensor([[0.5, 0.3]])  # class 0; the boundary is x0 = 0
    >>> adv = DeepFool(model).perturb(x, target=0, overshoot=0.0)
    >>> round(adv[0, 0].item(), 3), adv[0, 1].item(), model(adv).argmax(1).item()
    (-0.0, 0.30000001192092896, 1)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._docs import fill_docs
from ..core.hooks import keep_buffers
from ..core.inputs import pack_args, unpack
from ..errors import require
from .engine import NORMS, check_number, check_steps, pack_masks, take_rows, target_indices
from .engine_extra import Flat, apgd, cw_l2, deepfool
from .perturbation import GradientAttack

__all__ = ["APGD", "CWL2", "DeepFool"]


class _FlatAttack(GradientAttack):
    """Shared set-up: flatten the inputs, masks and arguments; a ``logits(v, rows)`` closure for the loops."""

    def __init__(self, forward_func: Callable[..., Any], lower_bound: float = float("-inf"),
                 upper_bound: float = float("inf")) -> None:
        super().__init__(forward_func, None, lower_bound, upper_bound)

    def _setup(self, inputs: Any, target: Any, additional_forward_args: Any, mask: Any) -> tuple[
            Flat, Tensor, Tensor, Tensor | None, Callable[[Tensor, Tensor], Tensor], bool]:
        xs, was_tuple = self._inputs(inputs)
        masks = pack_masks(mask, xs)
        n = xs[0].shape[0]
        labels = target_indices(target, n, xs[0].device)
        flat = Flat(xs)
        x = flat.flat(tuple(t.detach() for t in xs))
        m = None if all(k is None for k in masks) else flat.flat(tuple(
            torch.ones_like(t) if k is None else k.expand_as(t) for t, k in zip(xs, masks)))
        args = pack_args(additional_forward_args)

        def logits(v: Tensor, rows: Tensor) -> Tensor:
            out = self.forward_func(*flat.split(v), *(take_rows(a, rows, n) for a in args))
            require(isinstance(out, Tensor) and out.dim() == 2,
                    f"{type(self).__name__} needs a model that returns (N, classes) logits, got "
                    f"{type(out).__name__ if not isinstance(out, Tensor) else tuple(out.shape)}")
            return out

        return flat, x, labels, m, logits, was_tuple


@fill_docs
class APGD(_FlatAttack):
    """APGD-CE: PGD on the cross-entropy with a momentum step and a per-example step size that halves when the
    loss stops improving (checkpoints at 22%, then every 19%, 16%, ... down to 6% of the steps), with restarts
    from random points on the ball's surface. Needs no step size.

    Returns, per example, the first point that fools the model, else the highest-loss point found.

    Example:
        >>> import torch
        >>> from intellego.robust import APGD
        >>> model = torch.nn.Linear(4, 3)
        >>> x = torch.rand(6, 4)
        >>> adv = APGD(model, 0.0, 1.0).perturb(x, radius=0.1, step_num=10, target=model(x).argmax(1),
        ...                                     generator=torch.Generator().manual_seed(0))
        >>> bool(((adv - x).abs().amax(1) <= 0.1 + 1e-6).all())
        True
    """

    def perturb(self, inputs: Any, radius: float, step_num: int, target: Any, additional_forward_args: Any = None,
                targeted: bool = False, norm: str = "Linf", mask: Any = None, *, restarts: int = 1,
                rho: float = 0.75, generator: torch.Generator | None = None) -> Any:
        """Attack within the ``norm`` ball of ``radius`` for ``step_num`` steps (``restarts`` runs, each only on the
        examples not fooled yet).

        Args:
            {ATTACK_INPUTS}
            radius: The radius of the ball around ``inputs``.
            step_num: The number of steps per run.
            {ATTACK_TARGET}
            {ADDITIONAL_FORWARD_ARGS}
            targeted: Minimise the cross-entropy of ``target`` instead.
            norm: ``"Linf"`` or ``"L2"``.
            {ATTACK_MASK}
            restarts: Runs from random points on the ball's surface, each on the examples not fooled yet.
            rho: The fraction of improving steps below which the step size halves at a checkpoint.
            {GENERATOR}

        Returns:
            The perturbed inputs, same structure as ``inputs``.
        """
        radius = check_number(radius, "radius")
        step_num = check_steps(step_num, minimum=1)
        require(norm in NORMS, f"norm must be 'Linf' or 'L2', got {norm!r}")
        restarts = check_steps(restarts, "restarts", minimum=1)
        rho = check_number(rho, "rho")
        require(rho <= 1, f"rho must be in [0, 1], got {rho}")
        flat, x, labels, m, logits, was_tuple = self._setup(inputs, target, additional_forward_args, mask)
        lo, hi = self.lower_bound, self.upper_bound
        result = x.clone()
        todo = torch.arange(x.shape[0], device=x.device)
        with keep_buffers(self.forward_func):
            for _ in range(restarts):
                sub, sub_m = x[todo], None if m is None else m[todo]
                start = (sub + radius * _surface(sub, norm, sub_m, generator)).clamp(lo, hi)
                rows = todo

                def sub_logits(v: Tensor, r: Tensor, _rows: Tensor = rows) -> Tensor:
                    return logits(v, _rows[r])

                adv, done = apgd(sub_logits, sub, labels[todo], sub_m, eps=radius, steps=step_num, norm=norm,
                                 rho=rho, lo=lo, hi=hi, targeted=targeted, start=start)
                result[todo] = adv
                todo = todo[~done]
                if todo.numel() == 0:
                    break
        return unpack([t.detach() for t in flat.split(result)], was_tuple)


def _surface(x: Tensor, norm: str, mask: Tensor | None, generator: torch.Generator | None) -> Tensor:
    """Random directions of norm 1 (per example), drawn on the generator's device and moved to ``x``'s."""
    device = generator.device if generator is not None else x.device
    if norm == "Linf":
        t = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device) * 2 - 1
        if mask is not None:
            t = t * mask
        return t / t.abs().amax(1, keepdim=True).clamp_min(1e-12)
    t = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)
    if mask is not None:
        t = t * mask
    return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)


@fill_docs
class CWL2(_FlatAttack):
    """Carlini-Wagner L2 with a fixed trade-off ``c`` (no binary search over ``c``, as in torchattacks): Adam in
    tanh space, so every point lies within the bounds (which must be finite).

    Returns, per example, the closest (L2) fooling point found, else the input unchanged.

    Example:
        >>> import torch
        >>> from intellego.robust import CWL2
        >>> model = torch.nn.Linear(4, 3)
        >>> x = torch.rand(6, 4)
        >>> adv = CWL2(model, 0.0, 1.0).perturb(x, target=model(x).argmax(1), c=10.0, step_num=5, lr=0.05)
        >>> adv.shape, bool(((adv >= 0) & (adv <= 1)).all())
        (torch.Size([6, 4]), True)
    """

    def perturb(self, inputs: Any, target: Any, additional_forward_args: Any = None, targeted: bool = False,
                mask: Any = None, *, c: float = 1.0, kappa: float = 0.0, step_num: int = 50, lr: float = 0.01,
                abort_early: bool = False) -> Any:
        """Minimise ``||x' - x||^2 + c * max(margin, -kappa)`` for ``step_num`` Adam steps of rate ``lr``; the margin is
        the target logit minus the best other (untargeted), or the reverse (targeted). ``abort_early``: an example
        stops when its objective rose since the last check (every tenth of the steps); off by default, as it
        stops examples right after they cross the boundary, before the distance shrinks again (torchattacks stops
        the whole batch when the summed objective rises).

        Args:
            {ATTACK_INPUTS}
            {ATTACK_TARGET}
            {ADDITIONAL_FORWARD_ARGS}
            {TARGETED}
            {ATTACK_MASK}
            c: Weight of the margin term against the squared distance.
            kappa: Confidence: how far past the boundary the margin counts.
            step_num: Adam steps.
            lr: Adam's learning rate.
            abort_early: Stop an example when its objective rose since the last check.

        Returns:
            The closest fooling points found (the inputs themselves where none was found), same structure.
        """
        c = check_number(c, "c")
        kappa = check_number(kappa, "kappa")
        step_num = check_steps(step_num, minimum=1)
        lr = check_number(lr, "lr", positive=True)
        flat, x, labels, m, logits, was_tuple = self._setup(inputs, target, additional_forward_args, mask)
        with keep_buffers(self.forward_func):
            best, _ = cw_l2(logits, x, labels, m, c=c, kappa=kappa, steps=step_num, lr=lr, lo=self.lower_bound,
                            hi=self.upper_bound, targeted=targeted, abort_early=abort_early)
        return unpack([t.detach() for t in flat.split(best)], was_tuple)


@fill_docs
class DeepFool(_FlatAttack):
    """DeepFool (L2, untargeted): repeated steps to the nearest decision boundary of the linearised model, then
    an overshoot of ``1 + overshoot`` on the total perturbation. For a linear model one step is the exact minimal
    L2 perturbation.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(2, 2)
        >>> x = torch.randn(3, 2)
        >>> adv = DeepFool(model).perturb(x, target=model(x).argmax(1))
        >>> bool((model(adv).argmax(1) != model(x).argmax(1)).all())
        True
    """

    def perturb(self, inputs: Any, target: Any, additional_forward_args: Any = None, mask: Any = None, *,
                step_num: int = 50, overshoot: float = 0.02, num_classes: int | None = None) -> Any:
        """Move each example off its ``target`` class.

        Args:
            {ATTACK_INPUTS}
            target: Each example's true or predicted label (an int, a list or a tensor of class indices).
            {ADDITIONAL_FORWARD_ARGS}
            {ATTACK_MASK}
            step_num: At most this many linearisation steps.
            overshoot: The total perturbation is scaled by ``1 + overshoot`` to cross the boundary.
            num_classes: Consider only this many highest-scoring classes as candidates (all by default).

        Returns:
            The perturbed inputs, same structure as ``inputs``.
        """
        step_num = check_steps(step_num, minimum=1)
        overshoot = check_number(overshoot, "overshoot")
        require(num_classes is None or (isinstance(num_classes, int) and num_classes >= 2),
                f"num_classes must be an int >= 2 or None, got {num_classes!r}")
        flat, x, labels, m, logits, was_tuple = self._setup(inputs, target, additional_forward_args, mask)
        with keep_buffers(self.forward_func):
            adv, _ = deepfool(logits, x, labels, m, steps=step_num, overshoot=overshoot, lo=self.lower_bound,
                              hi=self.upper_bound, num_classes=num_classes)
        return unpack([t.detach() for t in flat.split(adv)], was_tuple)
