"""The explorer's data store: samples drawn on demand from an iterator of :class:`Batch`, their predictions
(one model call per batch) and the filter that picks a page of them. No jobs, no attribution, no web code.

At most ``max_samples`` samples are ever drawn, so a filter that matches nothing on an endless iterator ends.

Example:
    >>> import torch
    >>> from intellego.insights.features import GeneralFeature
    >>> store = SampleStore([Batch(torch.eye(3), torch.tensor([0, 1, 1]))], [GeneralFeature("x", ["a", "b", "c"])],
    ...                     ["no", "yes"], max_samples=10)
    >>> model = torch.nn.Linear(3, 2)
    >>> found, more = store.select([model], None, {"model": 0, "classes": ["yes"], "prediction": "all",
    ...                                            "offset": 0, "count": 5}, None)
    >>> [s.label for s in found], more, store.exhausted
    ([1, 1], False, True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import IntellegoError, describe, require
from .feature_types import BaseFeature
from .jobs import Job

__all__ = ["Batch", "Sample", "SampleStore"]


class Batch:
    """A batch from the data iterator, as in Captum Insights.

    Args:
        inputs: A tensor, or a tuple with one tensor per feature, each with the batch first.
        labels: The true class indices ``(N,)``, or ``None`` when unknown.
        additional_args: Extra positional arguments of the models (tensors with the batch first are split).

    Example:
        >>> batch = Batch(torch.rand(4, 3), torch.tensor([0, 1, 1, 0]))
        >>> batch.inputs.shape, batch.labels.tolist()
        (torch.Size([4, 3]), [0, 1, 1, 0])
    """

    def __init__(self, inputs: Tensor | Sequence[Tensor], labels: Tensor | Sequence[int] | None,
                 additional_args: Any = None) -> None:
        self.inputs = inputs
        self.labels = labels
        self.additional_args = additional_args


@dataclass
class Sample:
    """One drawn sample: its raw and transformed inputs, label, baselines and cached scores per model."""

    index: int
    raw: tuple[Tensor, ...]
    label: int | None
    inputs: tuple[Tensor, ...]
    additional: tuple[Any, ...] | None
    baselines: list[tuple[Tensor, ...]]
    chunk: _Chunk
    scores: dict[int, Tensor] = field(default_factory=dict)


@dataclass
class _Chunk:
    """One batch of the data, kept so that predictions run once per batch rather than per sample."""

    inputs: tuple[Tensor, ...]
    additional: tuple[Any, ...] | None
    samples: list[Sample] = field(default_factory=list)


class SampleStore:
    """Samples drawn from ``dataset`` as needed (at most ``max_samples``), with their predictions.

    Args:
        dataset: An iterable (or iterator, possibly endless) of :class:`Batch`.
        features: One feature per input tensor (transforms and baselines).
        classes: Class names, indexed like the model outputs.
        max_samples: Most samples ever drawn.
    """

    def __init__(self, dataset: Iterable[Batch], features: Sequence[BaseFeature], classes: Sequence[str],
                 max_samples: int) -> None:
        try:
            self._iterator = iter(dataset)
        except TypeError:
            raise IntellegoError(f"dataset must be an iterable of Batch, got {describe(dataset)}") from None
        self.features, self.classes, self.max_samples = list(features), list(classes), max_samples
        self.samples: list[Sample] = []
        self.exhausted = False

    def pull(self) -> bool:
        """Draw one batch from the iterator into the store; ``False`` once exhausted or full."""
        if self.exhausted or len(self.samples) >= self.max_samples:
            return False
        try:
            batch = next(self._iterator)
        except StopIteration:
            self.exhausted = True
            return False
        except RuntimeError as exc:  # a generator that let StopIteration escape (PEP 479)
            if isinstance(exc.__cause__, StopIteration):
                self.exhausted = True
                return False
            raise
        self.samples.extend(self._split(batch))
        del self.samples[self.max_samples:]
        return True

    def _split(self, batch: Any) -> list[Sample]:
        require(isinstance(batch, Batch), f"the dataset must yield Batch objects, got {describe(batch)}")
        inputs = batch.inputs if isinstance(batch.inputs, (tuple, list)) else (batch.inputs,)
        require(len(inputs) == len(self.features) and all(isinstance(x, Tensor) for x in inputs),
                f"Batch.inputs must hold one tensor per feature ({len(self.features)}), got {describe(inputs)}")
        n = inputs[0].shape[0] if inputs[0].dim() else 0
        require(all(x.dim() > 0 and x.shape[0] == n for x in inputs),
                f"every tensor in Batch.inputs needs the same batch size, got {describe(tuple(inputs))}")
        labels = None if batch.labels is None else torch.as_tensor(batch.labels).reshape(-1)
        require(labels is None or labels.shape[0] == n,
                f"Batch.labels must hold {n} class indices, got {describe(batch.labels)}")
        extra = batch.additional_args
        extra = None if extra is None else (extra if isinstance(extra, tuple) else (extra,))
        out: list[Sample] = []
        chunk = _Chunk((), extra)
        for i in range(n):
            raw = tuple(x[i] for x in inputs)
            transformed = [f.transform(x) for f, x in zip(self.features, raw)]
            groups = [f.baselines(t) for f, t in zip(self.features, transformed)]
            baselines = [tuple(g[k if k < len(g) else 0].unsqueeze(0) for g in groups)
                         for k in range(max(len(g) for g in groups))]
            per = None if extra is None else tuple(
                a[i:i + 1] if isinstance(a, Tensor) and a.dim() and a.shape[0] == n else a for a in extra)
            label = None if labels is None else int(labels[i])
            require(label is None or 0 <= label < len(self.classes),
                    f"label {label} is out of range for {len(self.classes)} classes")
            out.append(Sample(len(self.samples) + i, raw, label, tuple(t.unsqueeze(0) for t in transformed),
                              per, baselines, chunk))
        if out:
            chunk.inputs = tuple(torch.cat(parts) for parts in zip(*(s.inputs for s in out)))
        chunk.samples = out
        return out

    def scores(self, sample: Sample, models: Sequence[Callable[..., Any]], model: int,
               score_func: Callable[[Tensor], Tensor] | None) -> Tensor:
        """The (score_func'd) outputs of ``models[model]`` for ``sample``, computed once per batch."""
        if model not in sample.scores:
            chunk = sample.chunk
            with torch.no_grad():
                out = models[model](*chunk.inputs, *(chunk.additional or ()))
                scores = score_func(out) if score_func is not None else out
            n = len(chunk.samples)
            require(isinstance(scores, Tensor) and scores.dim() == 2 and scores.shape[0] == n,
                    f"model {model} (after score_func) must return (N, n_classes) scores for a batch of {n}, "
                    f"got {describe(scores)}")
            require(scores.shape[1] == len(self.classes),
                    f"classes has {len(self.classes)} names ({', '.join(self.classes[:4])}...) but model {model} "
                    f"returns {scores.shape[1]} scores per example (after score_func: shape {tuple(scores.shape)}); "
                    "pass one class name per model output, in the order of the outputs")
            for row, peer in zip(scores.detach().float().cpu(), chunk.samples):
                peer.scores[model] = row
        return sample.scores[model]

    @staticmethod
    def _matches(sample: Sample, predicted: int, classes: set[int], prediction: str) -> bool:
        key = sample.label if sample.label is not None else predicted
        if classes and key not in classes:
            return False
        if prediction == "all":
            return True
        if sample.label is None:
            return False
        return (predicted == sample.label) == (prediction == "correct")

    def select(self, models: Sequence[Callable[..., Any]], score_func: Callable[[Tensor], Tensor] | None,
               req: dict[str, Any], job: Job | None) -> tuple[list[Sample], bool]:
        """The ``count`` matching samples after ``offset`` matches, drawing from the data as needed, and
        whether more may follow."""
        classes = {self.classes.index(c) for c in req["classes"]}
        found: list[Sample] = []
        seen, position = 0, 0
        while len(found) < req["count"]:
            if position >= len(self.samples) and not self.pull():
                return found, False
            sample = self.samples[position]
            position += 1
            if job is not None:
                job.check()
                job.progress(0, req["count"], f"scanning sample {position}")
            predicted = int(self.scores(sample, models, req["model"], score_func).argmax())
            if self._matches(sample, predicted, classes, req["prediction"]):
                if seen >= req["offset"]:
                    found.append(sample)
                seen += 1
        more = position < len(self.samples) or (not self.exhausted and len(self.samples) < self.max_samples)
        return found, more
