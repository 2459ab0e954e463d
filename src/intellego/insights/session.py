"""The explorer's session core: models, data, filters, attribution jobs and a result cache. No web code.

Every host (local server, notebook widget, static export) talks to a :class:`Session` with plain dicts:
``config()`` describes the classes, features and methods; ``submit(request)`` validates a request at once
(raising :class:`~intellego.errors.IntellegoError` with a message) and runs it on one worker thread, with
progress, cancellation and a time limit; ``run(request)`` does the same synchronously.

Data come from an iterator of :class:`Batch` objects that may be endless; the
:class:`~intellego.insights.samples.SampleStore` draws at most ``max_samples`` samples from it, so a filter that
matches nothing ends with a message instead of looping forever.

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
from typing import Any

from torch import Tensor

from ..errors import IntellegoError, describe, require
from .feature_types import BaseFeature
from .jobs import Busy, Cancelled, Job, Watched
from .llm_view import LLMResults, llm_entries
from .methods import METHOD_SPECS, Context, available_methods, call
from .samples import Batch, Sample, SampleStore

__all__ = ["Batch", "Session", "Job", "Cancelled", "Busy"]

PREDICTIONS = ("all", "correct", "incorrect")
REQUEST_KEYS = frozenset({"model", "classes", "prediction", "method", "arguments", "offset", "count"})


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
        >>> import torch
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
        self._setup(models, classes, features, dataset, score_func, use_label_for_attr,
                    (max_samples, max_count, cache_size, job_limit_s), title)

    @classmethod
    def for_llm(cls, results: LLMResults, names: Sequence[str] | None = None, *,
                title: str = "LLM attribution") -> Session:
        """A session that only shows LLM results (no model, no data, no request to run); see :meth:`add_llm`.

        Example:
            >>> from intellego.attr import LLMAttributionResult
            >>> r = LLMAttributionResult(input_tokens=["ann", "likes"], output_tokens=["red"], seq_attr=[2.0, -1.0])
            >>> session = Session.for_llm({"ablation": r})
            >>> [e["name"] for e in session.config()["llm"]], session.config()["models"]
            (['ablation'], [])
        """
        session = cls.__new__(cls)
        session._setup([], [], [], (), None, True, (1, 24, 1, 120.0), title)
        return session.add_llm(results, names)

    def _setup(self, models: list[Any], classes: Sequence[str], features: list[BaseFeature], dataset: Iterable[Batch],
               score_func: Callable[[Tensor], Tensor] | None, use_label_for_attr: bool,
               limits: tuple[int, int, int, float], title: str) -> None:
        max_samples, max_count, cache_size, job_limit_s = limits
        self._store = SampleStore(dataset, features, classes, max_samples)
        self.models, self.classes, self.features = models, list(classes), features
        self.score_func, self.use_label_for_attr = score_func, use_label_for_attr
        self.max_samples, self.max_count, self.job_limit_s, self.title = max_samples, max_count, job_limit_s, title
        self.methods = available_methods(features) if models else []
        self.llm: list[dict[str, Any]] = []
        self._cache: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.RLock()  # jobs, queue and worker
        self._run_lock = threading.RLock()  # data store, predictions and cache: one request at a time
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=8)
        self._ids = itertools.count(1)
        self._worker: threading.Thread | None = None

    def add_llm(self, results: LLMResults, names: Sequence[str] | None = None) -> Session:
        """Show LLM attribution results too: each as a heat map over its prompt's tokens (and words, when the
        result knows words spanning several tokens), one row per target token, in every host. ``results`` is an
        :class:`~intellego.attr.LLMAttributionResult`, a list of them (labelled by ``names``, else "result N")
        or a mapping from name to result. A notebook widget made earlier keeps the results it was made with.
        Returns the session.
        """
        entries = llm_entries(results, names, first=len(self.llm) + 1)
        with self._lock:
            self.llm = self.llm + entries
        return self

    # ----------------------------------------------------------------- description and validation
    def config(self) -> dict[str, Any]:
        """The JSON the front end starts from: classes, models, features, methods with arguments, limits, and the
        LLM results (see :meth:`add_llm`)."""
        return {
            "title": self.title, "classes": self.classes,
            "models": [f"{i}: {type(m).__name__}" for i, m in enumerate(self.models)],
            "features": [{"name": f.name, "kind": f.kind} for f in self.features],
            "methods": [METHOD_SPECS[m].to_json(self.features) for m in self.methods],
            "predictions": list(PREDICTIONS),
            "limits": {"max_count": self.max_count, "max_offset": self.max_samples},
            "defaults": {"method": self.methods[0] if self.methods else None, "count": min(4, self.max_count)},
            "llm": self.llm,
        }

    def validate(self, request: Any) -> dict[str, Any]:
        """The request with defaults filled in; :class:`IntellegoError` naming the first bad key or value."""
        require(len(self.models) > 0, "this session shows LLM results only (Session.for_llm): it has no model to "
                "run requests on")
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

    # ----------------------------------------------------------------- attribution
    def _execute(self, req: dict[str, Any], job: Job | None) -> dict[str, Any]:
        samples, more = self._store.select(self.models, self.score_func, req, job)
        out = []
        for k, sample in enumerate(samples):
            if job is not None:
                job.progress(k, len(samples), f"attributing sample {k + 1} of {len(samples)}")
            out.append(self._explain(sample, req, job))
        message = ""
        if not samples:
            store = self._store
            scope = "the data set" if store.exhausted else f"the first {len(store.samples)} samples"
            message = f"no sample in {scope} matches this filter" + (" at this offset" if req["offset"] else "")
        if job is not None:
            job.progress(len(samples), len(samples), "done")
        return {"samples": out, "offset": req["offset"], "count": req["count"], "has_more": more,
                "scanned": len(self._store.samples), "exhausted": self._store.exhausted, "message": message,
                "method": req["method"], "arguments": req["arguments"]}

    def _explain(self, sample: Sample, req: dict[str, Any], job: Job | None) -> dict[str, Any]:
        key = (req["model"], sample.index, req["method"], tuple(sorted(req["arguments"].items())))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        scores = self._store.scores(sample, self.models, req["model"], self.score_func)
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
