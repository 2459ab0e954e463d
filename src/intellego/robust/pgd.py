"""``PGD``: projected gradient descent in an L-inf or L2 ball (Madry et al., 2018).

Example:
    >>> import torch
    >>> from intellego.robust import PGD
    >>> model = torch.nn.Linear(4, 3)
    >>> x = torch.rand(5, 4)
    >>> adv = PGD(model, lower_bound=0.0, upper_bound=1.0).perturb(x, radius=0.1, step_size=0.02, step_num=10,
    ...                                                            target=0, norm="L2")
    >>> bool(((adv - x).flatten(1).norm(dim=1) <= 0.1 + 1e-6).all()), bool(((adv >= 0) & (adv <= 1)).all())
    (True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor

from .._docs import fill_docs
from ..core.hooks import keep_buffers
from ..core.inputs import pack_args, unpack
from ..errors import require
from .engine import (
    NORMS,
    TargetLoss,
    check_number,
    check_steps,
    input_gradients,
    linf_step,
    pack_masks,
    pgd_loop,
    random_start,
    take_rows,
    target_indices,
)
from .engine import (
    l2_step as l2_grad_step,
)
from .fgsm import FGSM
from .perturbation import GradientAttack

__all__ = ["PGD", "L2_STEPS"]

L2_STEPS = ("normalized", "sign")


@fill_docs
class PGD(GradientAttack):
    """Projected Gradient Descent: repeated gradient steps, each projected back into the ball of ``radius``
    around the inputs and into the bounds.

    L-inf steps are ``step_size * sign(grad)``. L2 steps are ``step_size * grad / ||grad||`` (per example and
    input tensor), the standard L2 PGD; Captum takes sign steps and projects them, which moves along the ball's
    corners and finds fewer adversarial examples. ``l2_step="sign"`` reproduces Captum's numbers.

    Args:
        {FORWARD_FUNC}
        {LOSS_FUNC}
        {LOWER_BOUND}
        {UPPER_BOUND}

    Attributes:
        bound: the clamp into the bounds (replaceable, as in Captum).
        fgsm: an :class:`FGSM` on the same model; its ``zero_thresh`` applies to the sign steps.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(3, 2)
        >>> x = torch.rand(4, 3)
        >>> adv = PGD(model).perturb(x, radius=0.1, step_size=0.02, step_num=5, target=0)
        >>> bool(((adv - x).abs() <= 0.1 + 1e-6).all())
        True
    """

    def __init__(self, forward_func: Callable[..., Any], loss_func: Callable[..., Tensor] | None = None,
                 lower_bound: float = float("-inf"), upper_bound: float = float("inf")) -> None:
        super().__init__(forward_func, loss_func, lower_bound, upper_bound)
        self.fgsm = FGSM(forward_func, loss_func)

    def perturb(self, inputs: Any, radius: float, step_size: float, step_num: int, target: Any,
                additional_forward_args: Any = None, targeted: bool = False, random_start: bool = False,
                norm: str = "Linf", mask: Any = None, *, l2_step: str = "normalized", early_stop: bool = False,
                restarts: int = 1, generator: torch.Generator | None = None) -> Any:
        """``step_num`` gradient steps of ``step_size``, each projected into the ``norm`` ball of ``radius``.

        Args:
            {ATTACK_INPUTS}
            radius: The radius of the ball around ``inputs`` that the perturbed inputs stay in.
            step_size: The length of one step (L-inf: per element; L2: per example and input tensor).
            step_num: The number of steps.
            {ATTACK_TARGET}
            {ADDITIONAL_FORWARD_ARGS}
            {TARGETED}
            random_start: Start from a random point of the ball instead of ``inputs``.
            norm: ``"Linf"`` or ``"L2"``.
            {ATTACK_MASK}
            l2_step: Keyword-only, beyond Captum: ``"normalized"`` (default) or ``"sign"`` (Captum's L2 steps).
            early_stop: stop each example at the first step where its prediction is fooled (``argmax`` differs
                from ``target``, or equals it when targeted); needs class-index targets and ``(N, C)`` outputs.
                Finished examples leave the batch, so later steps run on fewer rows.
            restarts: run the attack up to this many times from random starts (needs ``random_start=True``);
                each restart attacks only the examples not fooled yet.
            generator: the ``torch.Generator`` for random starts (reproducible; the global RNG otherwise).

        Returns:
            The perturbed inputs, same structure as ``inputs``, detached.

        Example:
            >>> import torch
            >>> model = torch.nn.Linear(3, 2)
            >>> x = torch.zeros(4, 3)
            >>> adv = PGD(model).perturb(x, radius=0.2, step_size=0.05, step_num=10, target=0, norm="L2")
            >>> bool((adv.norm(dim=1) <= 0.2 + 1e-6).all())
            True
        """
        radius = check_number(radius, "radius")
        step_size = check_number(step_size, "step_size")
        step_num = check_steps(step_num)
        require(norm in NORMS, f"norm must be 'Linf' or 'L2', got {norm!r}")
        require(l2_step in L2_STEPS, f"l2_step must be 'normalized' or 'sign', got {l2_step!r}")
        restarts = check_steps(restarts, "restarts", minimum=1)
        require(restarts == 1 or random_start,
                f"restarts={restarts} needs random_start=True (restarts from the same point repeat the same attack)")
        require(generator is None or isinstance(generator, torch.Generator),
                f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        xs, was_tuple = self._inputs(inputs)
        masks = pack_masks(mask, xs)
        n = xs[0].shape[0]
        args = pack_args(additional_forward_args)
        loss = TargetLoss(self.loss_func, target, n)
        stop = early_stop or restarts > 1
        labels = target_indices(target, n, xs[0].device) if stop else None
        size = -step_size if targeted else step_size
        thresh = self.fgsm.zero_thresh
        sign_steps = norm == "Linf" or l2_step == "sign"

        def grads(cur: tuple[Tensor, ...], rows: Tensor | None) -> tuple[tuple[Tensor, ...], Any]:
            if rows is None:
                return input_gradients(self.forward_func, cur, args, loss)
            return input_gradients(self.forward_func, cur, tuple(take_rows(a, rows, n) for a in args),
                                   loss.rows(rows))

        def step(cur: tuple[Tensor, ...], g: tuple[Tensor, ...], rows: Tensor | None) -> tuple[Tensor, ...]:
            m = masks if rows is None else tuple(take_rows(k, rows, n) for k in masks)
            return linf_step(cur, g, size, m, thresh) if sign_steps else l2_grad_step(cur, g, size, m)

        def final(cur: tuple[Tensor, ...], rows: Tensor) -> Any:
            with torch.no_grad():
                return self.forward_func(*cur, *(take_rows(a, rows, n) for a in args))

        box = self._box(xs, radius) if norm == "Linf" else None
        with keep_buffers(self.forward_func):
            if not stop:
                start = self._start(xs, xs, radius, norm, masks, random_start, generator)
                result, _ = pgd_loop(grads, step, xs, start, steps=step_num, radius=radius, norm=norm,
                                     bound=self.bound, box=box)
                return unpack(result, was_tuple)
            best = self._restarts(xs, masks, cast(Tensor, labels), box, (grads, step, final), radius=radius, norm=norm,
                                  step_num=step_num, restarts=restarts, random=random_start, targeted=targeted,
                                  generator=generator)
            return unpack(best, was_tuple)

    def _restarts(self, xs: tuple[Tensor, ...], masks: tuple[Tensor | None, ...], labels: Tensor, box: Any,
                  fns: tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]], *, radius: float, norm: str,
                  step_num: int, restarts: int, random: bool, targeted: bool,
                  generator: torch.Generator | None) -> list[Tensor]:
        """Early-stopping PGD: each restart reruns only the examples not fooled yet; the best result per example.

        ``fns`` are the loop's ``(grads, step, final)`` on rows of the whole batch; each restart sees them on
        its own rows."""
        n = xs[0].shape[0]
        best = [x.detach().clone() for x in xs]
        todo = torch.arange(n, device=labels.device)
        for _ in range(restarts):
            sub = tuple(x[todo] for x in xs)
            sub_masks = tuple(take_rows(k, todo, n) for k in masks)
            start = self._start(sub, sub, radius, norm, sub_masks, random, generator)
            g_sub, s_sub, f_sub = _on_rows(todo, *fns)
            sub_box = None if box is None else tuple((lo[todo], hi[todo]) for lo, hi in box)
            result, done = pgd_loop(g_sub, s_sub, sub, start, steps=step_num, radius=radius, norm=norm,
                                    bound=self.bound, labels=labels[todo], targeted=targeted, final=f_sub,
                                    box=sub_box)
            for b, r in zip(best, result):
                b[todo] = r
            todo = todo[~cast(Tensor, done)]
            if todo.numel() == 0:
                break
        return best

    def _box(self, xs: tuple[Tensor, ...], radius: float) -> tuple[tuple[Tensor, Tensor], ...] | None:
        """Per input, the L-inf ball around it intersected with the bounds: one clamp per step does both. Only
        with the default ``bound`` and inputs inside the bounds (elsewhere the two clamps in turn differ)."""
        if self.bound is not self._default_bound:
            return None
        lo, hi = self.lower_bound, self.upper_bound
        with torch.no_grad():
            if not all(bool(((x >= lo) & (x <= hi)).all()) for x in xs):
                return None
            return tuple(((x - radius).clamp_min(lo), (x + radius).clamp_max(hi)) for x in (t.detach() for t in xs))

    def _start(self, centers: tuple[Tensor, ...], xs: tuple[Tensor, ...], radius: float, norm: str,
               masks: tuple[Tensor | None, ...], random: bool, generator: torch.Generator | None) -> tuple[Tensor, ...]:
        if not random:
            return tuple(x.detach() for x in xs)
        return tuple(self.bound(random_start(x.detach(), radius, norm, m, generator)) for x, m in zip(xs, masks))


def _on_rows(rows_all: Tensor, grads: Callable[..., Any], step: Callable[..., Any],
             final: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """The loop's functions for a restart that runs on ``rows_all`` of the batch (their ``rows`` index those)."""

    def g_sub(cur: tuple[Tensor, ...], rows: Tensor | None) -> Any:
        return grads(cur, rows_all if rows is None else rows_all[rows])

    def s_sub(cur: tuple[Tensor, ...], g: tuple[Tensor, ...], rows: Tensor | None) -> tuple[Tensor, ...]:
        return step(cur, g, rows_all if rows is None else rows_all[rows])

    def f_sub(cur: tuple[Tensor, ...], rows: Tensor) -> Any:
        return final(cur, rows_all[rows])

    return g_sub, s_sub, f_sub
