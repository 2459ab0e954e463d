"""A synthetic tabular binary classification task with known feature importances.

All ten features are independent standard normals. The label depends only on
the first five, through a sparse linear term and one pairwise interaction::

    label = 1  if  2.0*x0 - 1.5*x1 + 1.0*x2 + 2.0*x3*x4 > 0  else 0

Features ``x5`` to ``x9`` are pure noise, with a true importance of zero.

Example:
    >>> from intellego.data.tabular import make_tabular
    >>> data = make_tabular(100, seed=0)
    >>> tuple(data.features.shape), data.feature_names[:3]
    ((100, 10), ('x0', 'x1', 'x2'))
    >>> [round(v, 3) for v in data.importances.tolist()[5:]]
    [0.0, 0.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "TABULAR_FEATURE_NAMES",
    "TabularData",
    "make_tabular",
    "tabular_logit",
    "true_importances",
]

TABULAR_FEATURE_NAMES: tuple[str, ...] = tuple(f"x{i}" for i in range(10))
_LINEAR = {0: 2.0, 1: -1.5, 2: 1.0}
_INTERACTION = (3, 4, 2.0)  # feature i, feature j, weight


@dataclass
class TabularData:
    """Features, labels and the ground-truth importance of every feature.

    Attributes:
        features: Float32 tensor of shape ``(N, D)``.
        labels: Int64 tensor of shape ``(N,)`` with values 0 or 1.
        feature_names: The ``D`` column names.
        importances: Float32 tensor of shape ``(D,)``, summing to one; see
            ``true_importances``.

    Example:
        >>> data = make_tabular(4, seed=1)
        >>> features, label = data[0]
        >>> tuple(features.shape), int(label) in (0, 1)
        ((10,), True)
    """

    features: Tensor
    labels: Tensor
    feature_names: tuple[str, ...]
    importances: Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.features[index], self.labels[index]


def tabular_logit(features: Tensor) -> Tensor:
    """The noise-free decision function; the label is ``logit > 0``.

    Args:
        features: Tensor of shape ``(N, D)``.

    Returns:
        Tensor of shape ``(N,)``.

    Example:
        >>> tabular_logit(torch.eye(10)[:3]).tolist()
        [2.0, -1.5, 1.0]
    """
    logit = torch.zeros(features.shape[0], dtype=features.dtype)
    for index, weight in _LINEAR.items():
        logit = logit + weight * features[:, index]
    i, j, weight = _INTERACTION
    return logit + weight * features[:, i] * features[:, j]


def true_importances() -> Tensor:
    """The true global importance of each feature, normalized to sum to one.

    A feature's importance is the expected absolute size of its contribution
    to ``tabular_logit`` under the data distribution; the interaction term's
    contribution is split evenly between its two features. For a standard
    normal ``x``, ``E|w x| = |w| sqrt(2/pi)`` and ``E|w x y| = |w| 2/pi``.

    Returns:
        Float32 tensor of shape ``(D,)``; zero for the noise features.

    Example:
        >>> imp = true_importances()
        >>> int(imp.argmax()), float(imp[5:].sum())
        (0, 0.0)
    """
    importances = torch.zeros(len(TABULAR_FEATURE_NAMES))
    for index, weight in _LINEAR.items():
        importances[index] = abs(weight) * math.sqrt(2 / math.pi)
    i, j, weight = _INTERACTION
    importances[i] = importances[j] = abs(weight) * (2 / math.pi) / 2
    return importances / importances.sum()


def make_tabular(n: int, *, seed: int = 0) -> TabularData:
    """Generate ``n`` rows of the tabular task, deterministically from ``seed``.

    Args:
        n: Number of rows.
        seed: Seed of the private ``torch.Generator``; the global RNG is untouched.

    Returns:
        The features, labels, names and true importances.

    Example:
        >>> a, b = make_tabular(50, seed=2), make_tabular(50, seed=2)
        >>> bool((a.features == b.features).all())
        True
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn((n, len(TABULAR_FEATURE_NAMES)), generator=gen)
    labels = (tabular_logit(features) > 0).long()
    return TabularData(
        features=features,
        labels=labels,
        feature_names=TABULAR_FEATURE_NAMES,
        importances=true_importances(),
    )
