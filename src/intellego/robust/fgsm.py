"""``FGSM``: one signed-gradient step of size epsilon (Goodfellow et al., 2015).

Example:
    >>> import torch
    >>> from intellego.robust import FGSM
    >>> model = torch.nn.Linear(3, 2)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]]))
    ...     _ = model.bias.zero_()
    >>> x = torch.zeros(1, 3)
    >>> (FGSM(model).perturb(x, epsilon=0.1, target=0) - x).tolist()  # pushes the class-0 logit down
    [[-0.10000000149011612, 0.10000000149011612, -0.10000000149011612]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from .._docs import fill_docs
from ..core.hooks import keep_buffers
from ..core.inputs import pack_args, unpack
from .engine import TargetLoss, check_number, input_gradients, linf_step, pack_masks
from .perturbation import GradientAttack

__all__ = ["FGSM"]


@fill_docs
class FGSM(GradientAttack):
    """Fast Gradient Sign Method: ``x' = x + epsilon * sign(grad L(x, target))`` (minus, when targeted).

    Args:
        {FORWARD_FUNC}
        {LOSS_FUNC}
        {LOWER_BOUND}
        {UPPER_BOUND}

    Attributes:
        bound: the clamp into the bounds (replaceable, as in Captum).
        zero_thresh: gradient elements at most this large in size do not move (Captum's ``1e-6``).

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(3, 2)
        >>> adv = FGSM(model, lower_bound=0.0, upper_bound=1.0).perturb(torch.rand(4, 3), 0.05, target=1)
        >>> bool(((adv >= 0) & (adv <= 1)).all())
        True
    """

    def __init__(self, forward_func: Callable[..., Any], loss_func: Callable[..., Tensor] | None = None,
                 lower_bound: float = float("-inf"), upper_bound: float = float("inf")) -> None:
        super().__init__(forward_func, loss_func, lower_bound, upper_bound)
        self.zero_thresh = 1e-6

    def perturb(self, inputs: Any, epsilon: float, target: Any, additional_forward_args: Any = None,
                targeted: bool = False, mask: Any = None) -> Any:
        """One signed-gradient step of size ``epsilon``, then a clamp into the bounds.

        Args:
            {ATTACK_INPUTS}
            epsilon: The step size: how far each element moves (L-inf radius).
            {ATTACK_TARGET}
            {ADDITIONAL_FORWARD_ARGS}
            {TARGETED}
            {ATTACK_MASK}

        Returns:
            The perturbed inputs, same structure as ``inputs`` (a tensor or a tuple of tensors), detached.

        Example:
            >>> import torch
            >>> model = torch.nn.Linear(3, 2)
            >>> x = torch.zeros(1, 3)
            >>> adv = FGSM(model).perturb(x, epsilon=0.1, target=0)
            >>> torch.allclose(adv.abs(), torch.full_like(x, 0.1))
            True
        """
        epsilon = check_number(epsilon, "epsilon")
        xs, was_tuple = self._inputs(inputs)
        masks = pack_masks(mask, xs)
        loss = TargetLoss(self.loss_func, target, xs[0].shape[0])
        with keep_buffers(self.forward_func):
            grads, _ = input_gradients(self.forward_func, xs, pack_args(additional_forward_args), loss)
        stepped = linf_step(xs, grads, -epsilon if targeted else epsilon, masks, self.zero_thresh)
        return unpack([self.bound(x).detach() for x in stepped], was_tuple)
