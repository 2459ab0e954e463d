"""L0-regularised stochastic gates (Captum's ``captum.module``) and :func:`select_features`, which trains them.

Example:
    >>> import torch
    >>> from intellego.module import BinaryConcreteStochasticGates
    >>> gates = BinaryConcreteStochasticGates(3, generator=torch.Generator().manual_seed(0))
    >>> gated, reg = gates(torch.ones(2, 3))
    >>> bool(reg > 0)
    True
"""

from .binary_concrete_stochastic_gates import BinaryConcreteStochasticGates
from .gaussian_stochastic_gates import GaussianStochasticGates
from .selection import FeatureSelection, select_features
from .stochastic_gates_base import StochasticGatesBase

__all__ = ["BinaryConcreteStochasticGates", "GaussianStochasticGates", "StochasticGatesBase", "select_features",
           "FeatureSelection"]
