"""Running statistics over many attributions: Captum's ``Summarizer``, ``ClassSummarizer`` and their stats.

A :class:`Summarizer` takes one observation (a tensor, a number, or a tuple of them) per ``update`` and keeps
element-wise statistics of all observations seen; ``summary`` returns ``{stat name: value}`` (a list of such
dicts for tuple observations). :class:`ClassSummarizer` takes a *batch* with labels and keeps one summary per
class besides the overall one. Statistics that need others (variance needs the mean and the count) get them
added and shared automatically; ``summary`` shows only the ones asked for. The statistics are in
:mod:`intellego.attr.stats`.

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
from typing import Any

import torch
from torch import Tensor

from .._docs import fill_docs
from ..errors import IntellegoError, describe, require
from .stats import MSE, CommonStats, Count, GeneralAccumFn, Max, Mean, Min, Stat, StatValue, StdDev, Sum, Var

__all__ = [
    "StatValue", "Stat", "Count", "Mean", "MSE", "Var", "StdDev", "GeneralAccumFn", "Min", "Max", "Sum",
    "CommonStats", "Summarizer", "SummarizerSingleTensor", "ClassSummarizer",
]

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
    """The statistics of one stream of tensors; ``summary`` shows those at ``summary_stats_indices``.

    :class:`Summarizer` keeps one per stream (one per element of tuple observations).

    Args:
        stats: Every statistic tracked, each after the statistics it reads (as :class:`Summarizer` orders
            them); they are bound to each other and updated in place.
        summary_stats_indices: Positions in ``stats`` of the statistics shown in ``summary``.

    Example:
        >>> single = SummarizerSingleTensor([Count(), Mean()], [1])
        >>> single.update(torch.tensor(2.0))
        >>> single.update(torch.tensor(4.0))
        >>> single.summary, single.get(Count()).get()
        ({'mean': tensor(3.)}, 2)
    """

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


@fill_docs
class Summarizer:
    """Element-wise statistics over observations given one per :meth:`update`.

    Args:
        {STATS}

    Example:
        >>> s = Summarizer([Mean(), Max()])
        >>> s.update((torch.tensor([1.0, 2.0]), 3.0))  # a tuple: one summary per element
        >>> s.update((torch.tensor([3.0, 0.0]), 5.0))
        >>> s.summary
        [{'mean': tensor([2., 1.]), 'max': tensor([3., 2.])}, {'mean': tensor(4.), 'max': tensor(5.)}]
    """

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


@fill_docs
class ClassSummarizer(Summarizer):
    """A :class:`Summarizer` over batches, with one extra summary per label.

    ``update(x, labels)`` takes a batch (first dimension) and one label per example, or one label for a single
    example. Tensor labels are keyed by their Python value, so ``class_summaries`` has one entry per class.

    Args:
        {STATS}

    Example:
        >>> s = ClassSummarizer([Mean()])
        >>> s.update(torch.tensor([[1.0], [3.0], [10.0]]), labels=torch.tensor([0, 0, 1]))
        >>> s.class_summaries, s.summary
        ({0: [{'mean': tensor([2.])}], 1: [{'mean': tensor([10.])}]}, [{'mean': tensor([4.6667])}])
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
