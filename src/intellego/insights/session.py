"""The explorer's session core: models, data, filters, attribution jobs and a result cache. No web code.

Every host (local server, notebook widget, static export) talks to a :class:`Session` with plain dicts:
``config()`` describes the classes, features and methods; ``submit(request)`` validates a request at once
(raising :class:`~intellego.errors.IntellegoError` with a message) and runs it on one worker thread, with
progress, cancellation and a time limit; ``run(request)`` does the same synchronously.

Data come from an iterator of :class:`Batch` objects that may be endless: at most ``max_samples`` samples
are ever drawn from it, so a filter that matches nothing ends with a message instead of looping forever.

Example:
    >>> import torch
    >>> from intellego.insights.features import GeneralFeature
    >>> model = torch.nn.Linear(3, 2)
    >>> data = [Batch(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))]
    >>> session = Session([model], ["a", "b"], [GeneralFeature("x", ["u", "v", "w"])], data)
    >>> result = session.run({"method": "Saliency", "count": 2})
    >>> len(result["samples"]), result["samples"][0]["features"][0]["names"]
    (2, ['u', 'v', 'w'])
"""

from __future__ import annotations

import contextlib
import itertools
import math
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import IntellegoError, describe, require
from .feature_types import BaseFeature
from .jobs import Busy, Cancelled, Job, Watched
from .methods import METHOD_SPECS, Context, available_methods, call

__all__ = ["Batch", "Session", "Job", "Cancelled", "Busy"]

PREDICTIONS = ("all", "correct", "incorrect")
REQUEST_KEYS = frozenset({"model", "classes", "prediction", "method", "arguments", "offset", "count"})


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
class _Sample:
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
    samples: list[_Sample] = field(default_factory=list)


class Session:
    """Models, classes, features and a data iterator, explored through validated requests.

    Args:
        models: One or more models (callables, usually ``nn.Module``) mapping the features' transformed
            inputs (and the batch's ``additional_args``) to ``(N, n_classes)`` outputs.
        classes: Class names, indexed like the model outputs.
        features: One feature per input tensor.
        dataset: An iterable (or iterator, possibly endless) of :class:`Batch`.
        score_func: Maps model outputs to the scores shown (for example a softmax); identity if ``None``.
        use_label_for_attr: Attribute the predicted class (``True``) or the whole output (``False``).
        max_samples: Most samples ever drawn from ``dataset``.
        max_count: Most samples per request.
        cache_size: Most per-sample attribution results kept.
        job_limit_s: Time limit of one request.
        title: Shown in the page header.

    Example:
        >>> from intellego.insights import GeneralFeature
        >>> session = Session([torch.nn.Linear(3, 2)], ["no", "yes"], [GeneralFeature("x", ["a", "b", "c"])],
        ...                   [Batch(torch.rand(6, 3), torch.tensor([0, 1, 0, 1, 1, 0]))])
        >>> page = session.run({"method": "Saliency", "classes": ["yes"], "count": 2})
        >>> [s["label"] for s in page["samples"]]
        ['yes', 'yes']
        >>> session.close()
    """

    def __init__(self, models: Sequence[Callable[..., Any]] | Callable[..., Any], classes: Sequence[str],
                 features: Sequence[BaseFeature] | BaseFeature, dataset: Iterable[Batch],
                 score_func: Callable[[Tensor], Tensor] | None = None, use_label_for_attr: bool = True, *,
                 max_samples: int = 1000, max_count: int = 24, cache_size: int = 256, job_limit_s: float = 120.0,
                 title: str = "intellego insights") -> None:
        models = list(models) if isinstance(models, (list, tuple)) else [models]  # type: ignore[list-item]
        features = list(features) if isinstance(features, (list, tuple)) else [features]  # type: ignore[list-item]
        require(len(models) > 0 and all(callable(m) for m in models),
                f"models must be a non-empty list of callables, got {describe(models)}")
        require(len(features) > 0 and all(isinstance(f, BaseFeature) for f in features),
                f"features must be a non-empty list of ImageFeature/TextFeature/GeneralFeature/TabularFeature, "
                f"got {describe(features)}")
        require(len(classes) > 0 and all(isinstance(c, str) for c in classes),
                f"classes must be a non-empty list of str, got {describe(classes)}")
        require(score_func is None or callable(score_func), f"score_func must be callable, got {describe(score_func)}")
        for name, value in (("max_samples", max_samples), ("max_count", max_count), ("cache_size", cache_size)):
            require(isinstance(value, int) and value > 0, f"{name} must be a positive int, got {value!r}")
        try:
            self._iterator = iter(dataset)
        except TypeError:
            raise IntellegoError(f"dataset must be an iterable of Batch, got {describe(dataset)}") from None
        self.models, self.classes, self.features = models, list(classes), features
        self.score_func, self.use_label_for_attr = score_func, use_label_for_attr
        self.max_samples, self.max_count, self.job_limit_s, self.title = max_samples, max_count, job_limit_s, title
        self.methods = available_methods(features)
        self._samples: list[_Sample] = []
        self._exhausted = False
        self._cache: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.RLock()  # jobs, queue and worker
        self._run_lock = threading.RLock()  # data store, predictions and cache: one request at a time
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=8)
        self._ids = itertools.count(1)
        self._worker: threading.Thread | None = None

    # ----------------------------------------------------------------- description and validation
    def config(self) -> dict[str, Any]:
        """The JSON the front end starts from: classes, models, features, methods with arguments, limits."""
        return {
            "title": self.title, "classes": self.classes,
            "models": [f"{i}: {type(m).__name__}" for i, m in enumerate(self.models)],
            "features": [{"name": f.name, "kind": f.kind} for f in self.features],
            "methods": [METHOD_SPECS[m].to_json(self.features) for m in self.methods],
            "predictions": list(PREDICTIONS),
            "limits": {"max_count": self.max_count, "max_offset": self.max_samples},
            "defaults": {"method": self.methods[0] if self.methods else None, "count": min(4, self.max_count)},
        }

    def validate(self, request: Any) -> dict[str, Any]:
        """The request with defaults filled in; :class:`IntellegoError` naming the first bad key or value."""
        require(isinstance(request, dict), f"request must be a JSON object, got {describe(request)}")
        unknown = sorted(set(request) - REQUEST_KEYS)
        require(not unknown, f"unknown request key(s) {unknown}; known: {sorted(REQUEST_KEYS)}")
        model = _int(request.get("model", 0), "model", 0, len(self.models) - 1)
        classes = request.get("classes", [])
        require(isinstance(classes, list) and all(c in self.classes for c in classes),
                f"classes must be a list of names from {self.classes}, got {classes!r}")
        prediction = request.get("prediction", "all")
        require(prediction in PREDICTIONS, f"prediction must be one of {list(PREDICTIONS)}, got {prediction!r}")
        require(len(self.methods) > 0, "no attribution method is available for these features")
        method = request.get("method", self.methods[0])
        require(method in self.methods, f"method must be one of {self.methods}, got {method!r}")
        arguments = METHOD_SPECS[method].check(request.get("arguments", {}), self.features)
        return {"model": model, "classes": classes, "prediction": prediction, "method": method,
                "arguments": arguments, "offset": _int(request.get("offset", 0), "offset", 0, self.max_samples),
                "count": _int(request.get("count", min(4, self.max_count)), "count", 1, self.max_count)}

    # ----------------------------------------------------------------- jobs
    def submit(self, request: Any, on_update: Callable[[Job], None] | None = None) -> Job:
        """Validate ``request`` now and queue it on the worker thread; the returned job reports progress."""
        valid = self.validate(request)
        job = Job(f"j{next(self._ids)}", valid, self.job_limit_s, on_update)
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, args=(self._queue,), name="intellego-insights",
                                                daemon=True)
                self._worker.start()
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                raise Busy("too many requests are waiting; cancel one or try again") from None
            self._jobs[job.id] = job
            while len(self._jobs) > 32:
                self._jobs.popitem(last=False)
        return job

    def job(self, job_id: str) -> Job | None:
        """A recent job by id."""
        return self._jobs.get(job_id)

    def run(self, request: Any, job: Job | None = None) -> dict[str, Any]:
        """Validate and run ``request`` in the calling thread; the result dict."""
        valid = self.validate(request)
        with self._run_lock:
            return self._execute(valid, job)

    def cancel_all(self) -> None:
        """Cancel every queued or running job."""
        for job in list(self._jobs.values()):
            job.cancel()

    def close(self) -> None:
        """Cancel every job and stop the worker thread (a later :meth:`submit` starts a new one)."""
        self.cancel_all()
        with self._lock:
            if self._worker is not None:
                with contextlib.suppress(queue.Full):
                    self._queue.put_nowait(None)
            self._worker = None
            self._queue = queue.Queue(maxsize=8)

    def _work(self, jobs: queue.Queue[Job | None]) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            if job._cancel.is_set():
                job._finish("cancelled", error="cancelled")
                continue
            job._start()
            try:
                with self._run_lock:
                    result = self._execute(job.request, job)
                job._finish("done", result)
            except Cancelled as stop:
                job._finish("cancelled" if str(stop) == "cancelled" else "error", error=str(stop))
            except Exception as exc:  # the message goes to the page; the worker keeps running
                job._finish("error", error=_message(exc))

    # ----------------------------------------------------------------- data
    def _pull(self) -> bool:
        """Draw one batch from the iterator into the store; ``False`` once exhausted or full."""
        if self._exhausted or len(self._samples) >= self.max_samples:
            return False
        try:
            batch = next(self._iterator)
        except StopIteration:
            self._exhausted = True
            return False
        except RuntimeError as exc:  # a generator that let StopIteration escape (PEP 479)
            if isinstance(exc.__cause__, StopIteration):
                self._exhausted = True
                return False
            raise
        self._samples.extend(self._split(batch))
        del self._samples[self.max_samples:]
        return True

    def _split(self, batch: Any) -> list[_Sample]:
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
        out: list[_Sample] = []
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
            out.append(_Sample(len(self._samples) + i, raw, label, tuple(t.unsqueeze(0) for t in transformed),
                               per, baselines, chunk))
        if out:
            chunk.inputs = tuple(torch.cat(parts) for parts in zip(*(s.inputs for s in out)))
        chunk.samples = out
        return out

    def _scores(self, sample: _Sample, model: int) -> Tensor:
        if model not in sample.scores:
            chunk = sample.chunk
            with torch.no_grad():
                out = self.models[model](*chunk.inputs, *(chunk.additional or ()))
                scores = self.score_func(out) if self.score_func is not None else out
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

    def _matches(self, sample: _Sample, predicted: int, classes: set[int], prediction: str) -> bool:
        key = sample.label if sample.label is not None else predicted
        if classes and key not in classes:
            return False
        if prediction == "all":
            return True
        if sample.label is None:
            return False
        return (predicted == sample.label) == (prediction == "correct")

    def _select(self, req: dict[str, Any], job: Job | None) -> tuple[list[_Sample], bool]:
        """The ``count`` matching samples after ``offset`` matches, drawing from the data as needed."""
        classes = {self.classes.index(c) for c in req["classes"]}
        found: list[_Sample] = []
        seen, position = 0, 0
        while len(found) < req["count"]:
            if position >= len(self._samples) and not self._pull():
                return found, False
            sample = self._samples[position]
            position += 1
            if job is not None:
                job.check()
                job.progress(0, req["count"], f"scanning sample {position}")
            if self._matches(sample, int(self._scores(sample, req["model"]).argmax()), classes, req["prediction"]):
                if seen >= req["offset"]:
                    found.append(sample)
                seen += 1
        more = position < len(self._samples) or (not self._exhausted and len(self._samples) < self.max_samples)
        return found, more

    # ----------------------------------------------------------------- attribution
    def _execute(self, req: dict[str, Any], job: Job | None) -> dict[str, Any]:
        samples, more = self._select(req, job)
        out = []
        for k, sample in enumerate(samples):
            if job is not None:
                job.progress(k, len(samples), f"attributing sample {k + 1} of {len(samples)}")
            out.append(self._explain(sample, req, job))
        message = ""
        if not samples:
            scope = "the data set" if self._exhausted else f"the first {len(self._samples)} samples"
            message = f"no sample in {scope} matches this filter" + (" at this offset" if req["offset"] else "")
        if job is not None:
            job.progress(len(samples), len(samples), "done")
        return {"samples": out, "offset": req["offset"], "count": req["count"], "has_more": more,
                "scanned": len(self._samples), "exhausted": self._exhausted, "message": message,
                "method": req["method"], "arguments": req["arguments"]}

    def _explain(self, sample: _Sample, req: dict[str, Any], job: Job | None) -> dict[str, Any]:
        key = (req["model"], sample.index, req["method"], tuple(sorted(req["arguments"].items())))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        scores = self._scores(sample, req["model"])
        top = scores.topk(min(3, scores.shape[0]))
        predicted = int(top.indices[0])
        target = predicted if self.use_label_for_attr else None
        ctx = Context(self.features, sample.inputs, sample.baselines, seed=sample.index)
        kwargs = METHOD_SPECS[req["method"]].build(ctx, req["arguments"])
        forward = Watched(self.models[req["model"]], job)
        attrs = call(req["method"], forward, sample.inputs, target, sample.additional, kwargs)
        require(len(attrs) == len(self.features),
                f"{req['method']} returned {len(attrs)} attribution tensors for {len(self.features)} features")
        totals = [_finite(float(a.detach().double().sum())) for a in attrs]
        norm = sum(abs(t) for t in totals) or 1.0
        features = [{"name": f.name, "total": t, "contribution": t / norm, **f.view(raw, a[0])}
                    for f, raw, a, t in zip(self.features, sample.raw, attrs, totals)]
        entry = {
            "index": sample.index, "target": target,
            "label": None if sample.label is None else self.classes[sample.label],
            "correct": None if sample.label is None else predicted == sample.label,
            "predictions": [{"index": int(i), "label": self._name(int(i)), "score": _finite(float(s))}
                            for s, i in zip(top.values, top.indices)],
            "features": features,
        }
        self._cache[key] = entry
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry

    def _name(self, index: int) -> str:
        return self.classes[index] if index < len(self.classes) else str(index)


def _int(value: Any, name: str, low: int, high: int) -> int:
    require(isinstance(value, int) and not isinstance(value, bool) and low <= value <= high,
            f"{name} must be an integer between {low} and {high}, got {value!r}")
    return int(value)


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def _message(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, IntellegoError) else f"{type(exc).__name__}: {text}"
