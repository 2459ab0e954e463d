"""The statistics a :class:`~intellego.attr.Summarizer` keeps: Captum's ``Stat`` classes and ``CommonStats``.

``StatValue`` (Captum's name) is the type of a statistic's value: a tensor or a number.

Example:
    >>> import torch
    >>> from intellego.attr import Summarizer
    >>> s = Summarizer([Mean(), Max()])
    >>> s.update(torch.tensor([1.0, 4.0]))
    >>> s.update(torch.tensor([3.0, 2.0]))
    >>> s.summary
    {'mean': tensor([2., 3.]), 'max': tensor([3., 4.])}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

import torch
from torch import Tensor

from .._docs import fill_docs

__all__ = ["StatValue", "Stat", "Count", "Mean", "MSE", "Var", "StdDev", "GeneralAccumFn", "Min", "Max", "Sum",
           "CommonStats"]

StatValue = Union[Tensor, int, float]  # noqa: UP007 (a runtime alias, valid on Python 3.10)


@fill_docs
class Stat:
    """A statistic updated one observation at a time; equal when class and parameters are equal.

    A subclass defines ``update(x)`` and ``get()``, and ``requires()`` when it reads other statistics (through
    ``self.dep(stat)``); a :class:`Summarizer` tracks each needed statistic once and updates them in order.

    Args:
        {STAT_NAME}
        **params: The statistic's parameters (part of its identity and of its default name).

    Example:
        >>> class Range(Stat):
        ...     "Largest minus smallest value, element-wise."
        ...     def requires(self):
        ...         return [Min(), Max()]
        ...     def update(self, x):
        ...         pass
        ...     def get(self):
        ...         return self.dep(Max()) - self.dep(Min())
        >>> from intellego.attr import Summarizer
        >>> s = Summarizer([Range()])
        >>> for x in (torch.tensor([1.0, 5.0]), torch.tensor([4.0, 2.0])):
        ...     s.update(x)
        >>> s.summary
        {'range': tensor([3., 3.])}
    """

    def __init__(self, name: str | None = None, **params: Any) -> None:
        self._name = name
        self.params = params
        self._deps: dict[Stat, Stat] = {}

    def requires(self) -> list[Stat]:
        """Statistics this one reads (they are tracked once and shared)."""
        return []

    def bind(self, deps: dict[Stat, Stat]) -> None:
        self._deps = deps

    def dep(self, stat: Stat) -> Any:
        return self._deps[stat].get()

    def update(self, x: Tensor) -> None:
        raise NotImplementedError

    def get(self) -> StatValue | None:
        raise NotImplementedError

    @property
    def name(self) -> str:
        """The key of this statistic in a summary."""
        if self._name is not None:
            return self._name
        base = type(self).__name__.lower()
        return f"{base}({self.params})" if self.params else base

    def __hash__(self) -> int:
        return hash((type(self), frozenset(self.params.items())))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.params == getattr(other, "params", None)


@fill_docs
class Count(Stat):
    """The number of observations.

    Args:
        {STAT_NAME}

    Example:
        >>> from intellego.attr import Summarizer
        >>> s = Summarizer([Count()])
        >>> for x in (1.0, 2.0, 3.0):
        ...     s.update(torch.tensor(x))
        >>> s.summary
        {'count': 3}
    """

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.n = 0

    def update(self, x: Tensor) -> None:
        self.n += 1

    def get(self) -> int:
        return self.n


@fill_docs
class Mean(Stat):
    """Element-wise running mean.

    Args:
        {STAT_NAME}

    Example:
        >>> from intellego.attr import Summarizer
        >>> s = Summarizer([Mean()])
        >>> for x in ([1.0, 0.0], [3.0, 1.0]):
        ...     s.update(torch.tensor(x))
        >>> s.summary
        {'mean': tensor([2.0000, 0.5000])}
    """

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.value: Tensor | None = None

    def requires(self) -> list[Stat]:
        return [Count()]

    def update(self, x: Tensor) -> None:
        if self.value is None:
            self.value = x.clone() if x.is_floating_point() else x.double()
        else:
            self.value = self.value + (x - self.value) / self.dep(Count())

    def get(self) -> Tensor | None:
        return self.value


@fill_docs
class MSE(Stat):
    """Element-wise sum of squared deviations from the running mean (Welford's M2).

    Args:
        {STAT_NAME}

    Example:
        >>> from intellego.attr import Summarizer
        >>> s = Summarizer([MSE()])
        >>> for x in (1.0, 2.0, 3.0):
        ...     s.update(torch.tensor(x))
        >>> s.summary
        {'mse': tensor(2.)}
    """

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.value: Tensor | None = None
        self.prev_mean: Tensor | None = None

    def requires(self) -> list[Stat]:
        return [Mean()]

    def update(self, x: Tensor) -> None:
        mean = self.dep(Mean())
        if self.prev_mean is not None:
            step = (x - self.prev_mean) * (x - mean)
            self.value = step if self.value is None else self.value + step
        self.prev_mean = mean.clone()

    def get(self) -> Tensor | None:
        if self.value is None:
            return None if self.prev_mean is None else torch.zeros_like(self.prev_mean)
        return self.value


@fill_docs
class Var(Stat):
    """Element-wise variance.

    Args:
        {STAT_NAME}
        {STAT_ORDER}

    Example:
        >>> from intellego.attr import Summarizer
        >>> s = Summarizer([Var(), Var(order=1)])
        >>> for x in (1.0, 2.0, 3.0):
        ...     s.update(torch.tensor(x))
        >>> {k: round(float(v), 4) for k, v in s.summary.items()}
        {'variance': 0.6667, 'sample_variance': 1.0}
    """

    def __init__(self, name: str | None = None, order: int = 0) -> None:
        if name is None:
            name = {0: "variance", 1: "sample_variance"}.get(order, f"variance({order})")
        super().__init__(name, order=order)
        self.order = order

    def requires(self) -> list[Stat]:
        return [Count(), MSE()]

    def update(self, x: Tensor) -> None:
        pass

    def get(self) -> Tensor | None:
        mse, n = self.dep(MSE()), self.dep(Count())
        if mse is None:
            return None
        if n <= self.order:
            return torch.zeros_like(mse, dtype=torch.float64)
        return mse.to(torch.float64) / (n - self.order)


@fill_docs
class StdDev(Stat):
    """Element-wise standard deviation.

    Args:
        {STAT_NAME}
        {STAT_ORDER}

    Example:
        >>> from intellego.attr import Summarizer
        >>> s = Summarizer([StdDev(order=1)])
        >>> for x in (1.0, 3.0):
        ...     s.update(torch.tensor(x))
        >>> s.summary
        {'sample_std_dev': tensor(1.4142, dtype=torch.float64)}
    """

    def __init__(self, name: str | None = None, order: int = 0) -> None:
        if name is None:
            name = {0: "std_dev", 1: "sample_std_dev"}.get(order, f"std_dev({order})")
        super().__init__(name, order=order)
        self.order = order

    def requires(self) -> list[Stat]:
        return [Var(order=self.order)]

    def update(self, x: Tensor) -> None:
        pass

    def get(self) -> Tensor | None:
        var = self.dep(Var(order=self.order))
        return None if var is None else var.sqrt()


class GeneralAccumFn(Stat):
    """Folds observations with ``fn(accumulated, x)`` (element-wise min, max, sum, ...)."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor], name: str | None = None) -> None:
        super().__init__(name)
        self.fn = fn
        self.value: Tensor | None = None

    def update(self, x: Tensor) -> None:
        self.value = x.clone() if self.value is None else self.fn(self.value, x)

    def get(self) -> Tensor | None:
        return self.value


@fill_docs
class Min(GeneralAccumFn):
    """Element-wise minimum.

    Args:
        {STAT_NAME}
        min_fn: The element-wise minimum of the value so far and a new observation.

    Example:
        >>> from intellego.attr import Summarizer
        >>> s = Summarizer([Min()])
        >>> for x in ([1.0, 5.0], [4.0, 2.0]):
        ...     s.update(torch.tensor(x))
        >>> s.summary
        {'min': tensor([1., 2.])}
    """

    def __init__(self, name: str | None = None, min_fn: Callable[[Tensor, Tensor], Tensor] = torch.min) -> None:
        super().__init__(min_fn, name)


@fill_docs
class Max(GeneralAccumFn):
    """Element-wise maximum.

    Args:
        {STAT_NAME}
        max_fn: The element-wise maximum of the value so far and a new observation.

    Example:
        >>> from intellego.attr import Summarizer
        >>> s = Summarizer([Max()])
        >>> for x in ([1.0, 5.0], [4.0, 2.0]):
        ...     s.update(torch.tensor(x))
        >>> s.summary
        {'max': tensor([4., 5.])}
    """

    def __init__(self, name: str | None = None, max_fn: Callable[[Tensor, Tensor], Tensor] = torch.max) -> None:
        super().__init__(max_fn, name)


@fill_docs
class Sum(GeneralAccumFn):
    """Element-wise sum.

    Args:
        {STAT_NAME}
        add_fn: The sum of the value so far and a new observation.

    Example:
        >>> from intellego.attr import Summarizer
        >>> s = Summarizer([Sum()])
        >>> for x in ([1.0, 5.0], [4.0, 2.0]):
        ...     s.update(torch.tensor(x))
        >>> s.summary
        {'sum': tensor([5., 7.])}
    """

    def __init__(self, name: str | None = None, add_fn: Callable[[Tensor, Tensor], Tensor] = torch.add) -> None:
        super().__init__(add_fn, name)


def CommonStats() -> list[Stat]:  # noqa: N802 (Captum's name)
    """Mean, sample variance, sample standard deviation, min and max.

    Returns:
        A new list of the five :class:`Stat` objects, for :class:`Summarizer`.

    Example:
        >>> [stat.name for stat in CommonStats()]
        ['mean', 'sample_variance', 'sample_std_dev', 'min', 'max']
    """
    return [Mean(), Var(order=1), StdDev(order=1), Min(), Max()]
