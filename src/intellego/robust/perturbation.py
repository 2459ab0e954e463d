"""``Perturbation``: the base of every attack, and the shared set-up of the gradient attacks.

An attack is called like a function (``attack(inputs, ...)`` is ``attack.perturb(inputs, ...)``), so attacks and
plain callables (a noise function, a transform) mix freely in :class:`~intellego.robust.AttackComparator` and
:class:`~intellego.robust.MinParamPerturbation`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..core.inputs import pack, require_float
from ..errors import IntellegoError, describe
from .engine import check_bounds

__all__ = ["Perturbation", "GradientAttack"]


def _identity(x: Tensor) -> Tensor:
    return x


class Perturbation:
    """Base class of all attacks: subclasses implement ``perturb(inputs, ...)`` and return perturbed inputs of the
    same structure (a tensor for a tensor, a tuple for a tuple). Calling the attack calls ``perturb``.

    Example:
        >>> import torch
        >>> class Shift(Perturbation):
        ...     def perturb(self, inputs, amount):
        ...         return inputs + amount
        >>> Shift()(torch.zeros(2), amount=1.0).tolist()
        [1.0, 1.0]
    """

    def perturb(self, *args: Any, **kwargs: Any) -> Any:
        """Return the perturbed inputs; the base class only raises.

        Args:
            *args: The inputs first, then what the attack needs (its strength, the target, ...); each subclass
                names and documents its own.
            **kwargs: The same, by keyword.

        Returns:
            The perturbed inputs, with the structure of the inputs.

        Raises:
            NotImplementedError: Always; subclasses override this method.

        Example:
            >>> Perturbation().perturb(0)
            Traceback (most recent call last):
            ...
            NotImplementedError: Perturbation must implement perturb()
        """
        raise NotImplementedError(f"{type(self).__name__} must implement perturb()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.perturb(*args, **kwargs)


class GradientAttack(Perturbation):
    """Shared state of the gradient attacks: the model, the loss, the input bounds.

    ``bound`` clamps a tensor into ``[lower_bound, upper_bound]``; like Captum, it is a plain attribute that may be
    replaced for custom constraints.
    """

    def __init__(self, forward_func: Callable[..., Any], loss_func: Callable[..., Tensor] | None = None,
                 lower_bound: float = float("-inf"), upper_bound: float = float("inf")) -> None:
        if not callable(forward_func):
            raise IntellegoError(f"forward_func must be callable, got {describe(forward_func)}")
        if loss_func is not None and not callable(loss_func):
            raise IntellegoError(f"loss_func must be callable or None, got {describe(loss_func)}")
        self.forward_func = forward_func
        self.loss_func = loss_func
        self.lower_bound, self.upper_bound = check_bounds(lower_bound, upper_bound)
        lo, hi = self.lower_bound, self.upper_bound
        self.bound: Callable[[Tensor], Tensor] = (
            _identity if (lo, hi) == (float("-inf"), float("inf")) else lambda x: torch.clamp(x, min=lo, max=hi))
        self._default_bound = self.bound  # replaced by the user when ``self.bound`` is not this object

    @staticmethod
    def _inputs(inputs: Any) -> tuple[tuple[Tensor, ...], bool]:
        xs, was_tuple = pack(inputs)
        require_float(xs)
        return xs, was_tuple
