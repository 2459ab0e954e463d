"""``intellego.robust``: how easily does a prediction flip? Adversarial attacks and robustness metrics.

Captum's ``captum.robust`` API (``FGSM``, ``PGD``, ``Perturbation``, ``AttackComparator``,
``MinParamPerturbation``); a Captum program ports by changing its imports.

Example:
    >>> import torch
    >>> from intellego.robust import FGSM
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    >>> x = torch.rand(2, 4)
    >>> FGSM(model, lower_bound=0, upper_bound=1).perturb(x, 0.1, target=[0, 1]).shape
    torch.Size([2, 4])
"""

from .attack_comparator import AttackComparator
from .extra import APGD, CWL2, DeepFool
from .fgsm import FGSM
from .min_param_perturbation import MinParamPerturbation
from .perturbation import Perturbation
from .pgd import PGD

__all__ = ["FGSM", "PGD", "Perturbation", "MinParamPerturbation", "AttackComparator", "APGD", "CWL2", "DeepFool"]
