"""intellego: model interpretability for PyTorch with Captum's API.

Example:
    >>> import torch, intellego
    >>> model = torch.nn.Linear(4, 3)
    >>> result = intellego.explain(model, torch.randn(2, 4), target=0)
    >>> result.attributions.shape
    torch.Size([2, 4])
"""

from .errors import IntellegoError
from .explain import METHODS, Explanation, explain

__version__ = "0.1.0"
__all__ = ["explain", "Explanation", "METHODS", "IntellegoError", "__version__"]
