"""Running statistics over many attributions: Captum's ``Summarizer``, ``ClassSummarizer`` and their stats.

A :class:`Summarizer` takes one observation (a tensor, a number, or a tuple of them) per ``update`` and keeps
element-wise statistics of all observations seen; ``summary`` returns ``{stat name: value}`` (a list of such
dicts for tuple observations). :class:`ClassSummarizer` takes a *batch* with labels and keeps one summary per
class besides the overall one. Statistics that need others (variance needs the mean and the count) get them
added and shared automatically; ``summary`` shows only the ones asked for.

Example:
    >>> import torch
    >>> from intellego.attr import Summarizer, CommonStats
    >>> s = Summarizer(CommonStats())
    >>> for x in (torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0])):
    ...     s.update(x)
    >>> s.summary["mean"].tolist(), s.summary["sample_variance"].tolist()
    ([2.0, 4.0], [2.0, 8.0])
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Union

import torch
from torch import Tensor

from ..errors import IntellegoError, describe, require

__all__ = [
    "StatValue", "Stat", "Count", "Mean", "MSE", "Var", "StdDev", "GeneralAccumFn", "Min", "Max", "Sum",
    "CommonStats", "Summarizer", "SummarizerSingleTensor", "ClassSummarizer",
]

StatValue = Union[Tensor, int, float]  # noqa: UP007 (a runtime alias, valid on Python 3.10)


class Stat:
    """A statistic updated one observation at a time; equal when class and parameters are equal."""

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


class Count(Stat):
    """The number of observations."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.n = 0

    def update(self, x: Tensor) -> None:
        self.n += 1

    def get(self) -> int:
        return self.n


class Mean(Stat):
    """Element-wise running mean."""

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


class MSE(Stat):
    """Element-wise sum of squared deviations from the running mean (Welford's M2)."""

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


class Var(Stat):
    """Element-wise variance; ``order=1`` divides by ``n - 1`` (sample variance)."""

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


class StdDev(Stat):
    """Element-wise standard deviation; ``order=1`` for the sample standard deviation."""

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


class Min(GeneralAccumFn):
    def __init__(self, name: str | None = None, min_fn: Callable[[Tensor, Tensor], Tensor] = torch.min) -> None:
        super().__init__(min_fn, name)


class Max(GeneralAccumFn):
    def __init__(self, name: str | None = None, max_fn: Callable[[Tensor, Tensor], Tensor] = torch.max) -> None:
        super().__init__(max_fn, name)


class Sum(GeneralAccumFn):
    def __init__(self, name: str | None = None, add_fn: Callable[[Tensor, Tensor], Tensor] = torch.add) -> None:
        super().__init__(add_fn, name)


def CommonStats() -> list[Stat]:  # noqa: N802 (Captum's name)
    """Mean, sample variance, sample standard deviation, min and max."""
    return [Mean(), Var(order=1), StdDev(order=1), Min(), Max()]


def _with_dependencies(stats: list[Stat]) -> list[Stat]:
    """All statistics needed, dependencies first, each once."""
    ordered: list[Stat] = []

    def visit(stat: Stat) -> None:
        for dep in stat.requires():
            visit(dep)
        if stat not in ordered:
            ordered.append(stat)

    for stat in stats:
        require(isinstance(stat, Stat), f"stats must hold Stat objects, got {describe(stat)}")
        visit(stat)
    return ordered


class SummarizerSingleTensor:
    """The statistics of one stream of tensors; ``summary`` shows those at ``summary_stats_indices``."""

    def __init__(self, stats: list[Stat], summary_stats_indices: list[int]) -> None:
        self._stats = stats
        self._shown = [stats[i] for i in summary_stats_indices]
        lookup = {s: s for s in stats}
        for s in stats:
            s.bind(lookup)

    def update(self, x: Tensor) -> None:
        for stat in self._stats:
            stat.update(x)

    def get(self, stat: Stat) -> Stat | None:
        """The tracked statistic equal to ``stat`` (same class and parameters), if any."""
        return next((s for s in self._stats if s == stat), None)

    @property
    def summary(self) -> dict[str, StatValue | None]:
        return {s.name: s.get() for s in self._shown}


class Summarizer:
    """Element-wise statistics over observations given one per :meth:`update`."""

    def __init__(self, stats: list[Stat]) -> None:
        require(isinstance(stats, (list, tuple)), f"stats must be a list of Stat objects, got {describe(stats)}")
        self._stats = _with_dependencies(list(stats))
        self._shown = [self._stats.index(s) for s in stats]
        self._summarizers: list[SummarizerSingleTensor] = []
        self._is_inputs_tuple: bool | None = None

    def update(self, x: float | Tensor | tuple[float | Tensor, ...]) -> None:
        """Add one observation (a tuple adds one observation to each of its streams)."""
        is_tuple = isinstance(x, tuple)
        if self._is_inputs_tuple is None:
            self._is_inputs_tuple = is_tuple
        elif self._is_inputs_tuple != is_tuple:
            raise IntellegoError(f"update got {'a tuple' if is_tuple else 'a single value'} but earlier "
                                 f"updates got {'tuples' if self._is_inputs_tuple else 'single values'}")
        for i, value in enumerate(x if isinstance(x, tuple) else (x,)):
            if not isinstance(value, Tensor):
                require(isinstance(value, (int, float)), f"update values must be tensors or numbers, got "
                                                         f"{describe(value)}")
                value = torch.tensor(value, dtype=torch.float)
            if i >= len(self._summarizers):
                self._summarizers.append(SummarizerSingleTensor(copy.deepcopy(self._stats), self._shown))
            self._summarizers[i].update(value)

    @property
    def summary(self) -> dict[str, StatValue | None] | list[dict[str, StatValue | None]] | None:
        """``{stat name: value}`` (a list of them for tuple observations); None before any update."""
        if not self._summarizers:
            return None
        summaries = [s.summary for s in self._summarizers]
        return summaries if self._is_inputs_tuple else summaries[0]


class ClassSummarizer(Summarizer):
    """A :class:`Summarizer` over batches, with one extra summary per label.

    ``update(x, labels)`` takes a batch (first dimension) and one label per example, or one label for a single
    example. Tensor labels are keyed by their Python value, so ``class_summaries`` has one entry per class.
    """

    def __init__(self, stats: list[Stat]) -> None:
        super().__init__(stats)
        self._requested = list(stats)
        self.summaries: dict[Any, Summarizer] = {}

    def update(self, x: Any, labels: Any = None) -> None:  # type: ignore[override]
        if labels is None:
            super().update(x)
            return
        xs = x if isinstance(x, tuple) else (x,)
        if isinstance(labels, Tensor):
            labels = labels.reshape(-1).tolist()
        keys = labels if isinstance(labels, list) else [labels]
        if len(keys) > 1:
            for t in xs:
                require(t.shape[0] == len(keys), f"labels has {len(keys)} entries but the input of shape "
                                                 f"{tuple(t.shape)} has batch {t.shape[0]}")
        for i, key in enumerate(keys):
            rows = tuple(t[i] for t in xs)
            if key not in self.summaries:
                self.summaries[key] = Summarizer(self._requested)
            self.summaries[key].update(rows)
            super().update(tuple(r.clone() for r in rows))

    @property
    def class_summaries(self) -> dict[Any, Any]:
        """The summary of each label seen."""
        return {key: s.summary for key, s in self.summaries.items()}
