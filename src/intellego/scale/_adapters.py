"""What ``attribute_dataset`` runs on one batch: the adapter protocol and the adapters built on it.

An adapter turns the dataset items of one batch into per-example results, an :class:`Output`: tensors with the
batch first (or, for results whose shape varies between examples, one tensor per example), the labels for class
summaries, and one JSON-able dict per example (token lists). ``attribute_dataset`` knows nothing else about the
method. Two adapters cover every method through its public API:

- :class:`Batched` calls a function on the collated batch: ``Attribute`` (``method.attribute(inputs,
  target=...)``, the default for any attribution object), :func:`self_influence` and :func:`influence`
  (TracInCP, TracInCPFast, the influence functions), or any ``fn(batch)`` of your own;
- :class:`PerExample` calls a function on each item: :func:`llm_attribution` (``LLMAttribution`` /
  ``LLMGradientAttribution`` over ``(prompt, target)`` items, token lists kept) and :func:`tcav`
  (every example's directional derivative per concept, from which :func:`tcav_scores` rebuilds TCAV's scores).

Example:
    >>> import torch
    >>> from intellego.attr import Saliency
    >>> out = as_adapter(Saliency(torch.nn.Linear(3, 2)))([(torch.ones(3), 1), (torch.zeros(3), 0)], None)
    >>> out.values[0].shape, out.labels.tolist()
    (torch.Size([2, 3]), [1, 0])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.utils.data import default_collate

from ..errors import describe, require

__all__ = ["Output", "Adapter", "Batched", "PerExample", "Attribute", "as_adapter", "is_labelled", "self_influence",
           "influence"]

Value = Tensor | list[Tensor]


@dataclass
class Output:
    """Per-example results of one batch (see the module docstring).

    Attributes:
        values: One entry per output: a batch-first tensor, or a list with one tensor per example.
        is_tuple: Whether the method returned a tuple (results are read back as one).
        labels: ``(N,)`` integer class labels for the class summaries, or None.
        extras: One JSON-able dict per example (e.g. token lists), or None.

    Example:
        >>> import torch
        >>> o = Output((torch.zeros(2, 3),), labels=torch.tensor([1, 0]))
        >>> o.values[0].shape, o.is_tuple
        (torch.Size([2, 3]), False)
    """

    values: tuple[Value, ...]
    is_tuple: bool = False
    labels: Tensor | None = None
    extras: list[dict[str, Any]] | None = None


@runtime_checkable
class Adapter(Protocol):
    """``name`` (recorded in the manifest, with the optional JSON ``info`` attribute, e.g. column names) and
    ``adapter(items, collate) -> Output`` for one batch of items.

    Any object with those two members is an adapter (the protocol is checked at run time); it has no constructor
    arguments of its own.

    Example:
        >>> import torch
        >>> class Norms:
        ...     name = "norms"
        ...     def __call__(self, items, collate):
        ...         return Output((torch.stack([x.norm().reshape(1) for x in items]),))
        >>> isinstance(Norms(), Adapter), Norms()([torch.ones(4)], None).values[0].tolist()
        (True, [[2.0]])
    """

    name: str

    def __call__(self, items: list[Any], collate: Callable[[list[Any]], Any] | None) -> Output: ...


def _rows(result: Any, n: int, what: str) -> tuple[tuple[Tensor, ...], bool]:
    """A tensor, a tuple of tensors or a named tuple of tensors (KMostInfluentialResults), batch first."""
    is_tuple = isinstance(result, tuple)
    parts = tuple(result) if is_tuple else (result,)
    for t in parts:
        require(isinstance(t, Tensor) and t.dim() > 0 and t.shape[0] == n,
                f"{what} returned {describe(result)}; attribute_dataset needs a tensor or tuple of tensors with "
                f"the batch ({n}) as first dimension")
    return tuple(t.detach().cpu() for t in parts), is_tuple


def _labels(y: Any, n: int) -> Tensor | None:
    """``y`` as class labels when it is one integer per example, else None."""
    t = torch.as_tensor(y) if isinstance(y, (int, Tensor, list)) else None
    ok = t is not None and t.shape == (n,) and not t.is_floating_point() and not t.is_complex()
    return t.cpu() if ok and t is not None else None


def is_labelled(item: Any) -> bool:
    """An ``(inputs, label)`` pair: two entries, the second an int or a 0-d tensor."""
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        return False
    return isinstance(item[1], int) or (isinstance(item[1], Tensor) and item[1].dim() == 0)


class Batched:
    """``fn(batch)`` on the collated batch; ``labels`` picks the class labels out of the batch (or None).

    Args:
        fn: ``fn(batch)`` -> a tensor or a tuple of tensors with the batch first.
        name: The method's name, recorded in the manifest.
        labels: ``labels(batch, n) -> (n,) labels or None`` (default: no labels).

    Example:
        >>> import torch
        >>> sums = Batched(lambda batch: batch.sum(1), "sum")
        >>> sums([torch.ones(3), torch.zeros(3)], None).values[0].tolist()
        [3.0, 0.0]
    """

    def __init__(self, fn: Callable[[Any], Any], name: str,
                 labels: Callable[[Any, int], Tensor | None] | None = None) -> None:
        require(callable(fn), f"fn must be callable, got {describe(fn)}")
        self.fn, self.name, self.labels = fn, name, labels
        self.info: dict[str, Any] = {}

    def __call__(self, items: list[Any], collate: Callable[[list[Any]], Any] | None) -> Output:
        batch = (collate or default_collate)(items)
        values, is_tuple = _rows(self.fn(batch), len(items), self.name)
        return Output(values, is_tuple, None if self.labels is None else self.labels(batch, len(items)))


class Attribute(Batched):
    """``method.attribute(inputs, target=...)`` per batch: the default adapter of attribution objects.

    Items are ``(inputs, label)`` pairs (``target="label"`` then uses the labels) or the inputs alone (a tensor
    or a tuple of tensors; the target is None unless given). ``device`` moves each batch's inputs.

    Args:
        method: An attribution object.
        target: The target of every call; ``"label"`` uses the items' labels.
        device: Device the inputs are moved to, or None.
        **kwargs: Further keyword arguments of ``attribute``.

    Example:
        >>> import torch
        >>> from intellego.attr import Saliency
        >>> out = Attribute(Saliency(torch.nn.Linear(3, 2)))([(torch.ones(3), 1)], None)
        >>> out.values[0].shape, out.labels.tolist()
        (torch.Size([1, 3]), [1])
    """

    def __init__(self, method: Any, target: Any = "label", device: Any = None, **kwargs: Any) -> None:
        require(callable(getattr(method, "attribute", None)),
                f"method must have an attribute(inputs, ...) method, got {describe(method)}")
        require("target" not in kwargs, "attribute_kwargs must not hold 'target'; pass target= to attribute_dataset")
        self.method, self.target, self.device, self.kwargs = method, target, device, kwargs
        self._labelled = False
        super().__init__(self._attribute, f"{type(method).__name__}.attribute", self._batch_labels)

    def _attribute(self, batch: Any) -> Any:
        x, y = batch if self._labelled else (batch, None)
        x = _to(_inputs(x), self.device)
        t = self.target
        if t == "label":
            t = None if y is None else torch.as_tensor(y).to(self.device) if self.device is not None else y
        return self.method.attribute(x, target=t, **self.kwargs)

    def _batch_labels(self, batch: Any, n: int) -> Tensor | None:
        return _labels(batch[1], n) if self._labelled else None

    def __call__(self, items: list[Any], collate: Callable[[list[Any]], Any] | None) -> Output:
        self._labelled = is_labelled(items[0])
        if not self._labelled:
            _inputs(items[0])
        return super().__call__(items, collate)


def _inputs(x: Any) -> Tensor | tuple[Tensor, ...]:
    if isinstance(x, Tensor):
        return x
    require(isinstance(x, (tuple, list)) and all(isinstance(t, Tensor) for t in x),
            f"dataset inputs must be a tensor or a tuple of tensors, got {describe(x)}; for other items "
            "(prompts, concept sets) pass an adapter from intellego.scale")
    return tuple(x)


def _to(x: Tensor | tuple[Tensor, ...], device: Any) -> Tensor | tuple[Tensor, ...]:
    if device is None:
        return x
    return x.to(device) if isinstance(x, Tensor) else tuple(t.to(device) for t in x)


def as_adapter(method: Any, target: Any = "label", device: Any = None,
               kwargs: dict[str, Any] | None = None) -> Adapter:
    """``method`` itself when it is an adapter, else :class:`Attribute` over it with ``kwargs``."""
    kwargs = dict(kwargs or {})
    require("target" not in kwargs, "attribute_kwargs must not hold 'target'; pass target= to attribute_dataset")
    if isinstance(method, Adapter) and not callable(getattr(method, "attribute", None)):
        require(target == "label" and device is None and not kwargs,
                "target, device and attribute_kwargs configure the default Attribute adapter; give them to "
                f"the adapter {method.name!r} itself")
        return method
    return Attribute(method, target, device, **kwargs)


def _last_labels(batch: Any, n: int) -> Tensor | None:
    return _labels(batch[-1], n) if isinstance(batch, (tuple, list)) and batch else None


def _tuple(batch: Any) -> Any:
    """The collated batch as the tuple ``(*inputs, targets)`` the influence methods take (collate gives lists)."""
    return tuple(batch) if isinstance(batch, list) else batch


def self_influence(method: Any, **kwargs: Any) -> Batched:
    """``method.self_influence(batch, **kwargs)``: one score per training example (TracInCP, TracInCPFast, the
    influence functions). Items are what the method's batches hold, e.g. ``(x, y)``; an integer last entry
    gives the class labels of the summaries.

    Args:
        method: An object with ``self_influence(batch, **kwargs)``.
        **kwargs: Further keyword arguments of ``self_influence``.

    Returns:
        A :class:`Batched` adapter for :func:`attribute_dataset`.

    Example:
        >>> import torch
        >>> from intellego.influence import TracInCP
        >>> torch.manual_seed(0) and None
        >>> model = torch.nn.Linear(2, 2)
        >>> x, y = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
        >>> tracin = TracInCP(model, (x, y), [model.state_dict()], batch_size=2)
        >>> out = self_influence(tracin)(list(zip(x, y))[:3], None)
        >>> out.values[0].shape, bool((out.values[0] >= 0).all()), out.labels.tolist()
        (torch.Size([3]), True, [0, 1, 0])
    """
    require(callable(getattr(method, "self_influence", None)), f"method has no self_influence: {describe(method)}")
    return Batched(lambda batch: method.self_influence(_tuple(batch), **kwargs),
                   f"{type(method).__name__}.self_influence", _last_labels)


def influence(method: Any, **kwargs: Any) -> Batched:
    """``method.influence(batch, **kwargs)`` for test examples against the method's training set: a row of
    ``n_train`` scores per test example, or with ``k=`` the ``(indices, influence_scores)`` of the top k.

    Args:
        method: An object with ``influence(batch, **kwargs)``.
        **kwargs: Further keyword arguments of ``influence`` (e.g. ``k``).

    Returns:
        A :class:`Batched` adapter for :func:`attribute_dataset`.

    Example:
        >>> import torch
        >>> from intellego.influence import TracInCP
        >>> torch.manual_seed(0) and None
        >>> model = torch.nn.Linear(2, 2)
        >>> x, y = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
        >>> tracin = TracInCP(model, (x, y), [model.state_dict()], batch_size=2)
        >>> influence(tracin)(list(zip(x, y))[:3], None).values[0].shape
        torch.Size([3, 4])
    """
    require(callable(getattr(method, "influence", None)), f"method has no influence: {describe(method)}")
    return Batched(lambda batch: method.influence(_tuple(batch), **kwargs), f"{type(method).__name__}.influence",
                   _last_labels)


class PerExample:
    """``fn(item) -> (tensors, extras)`` on each item. With ``ragged`` every output is kept as one tensor per
    example (shapes may differ: token attributions of prompts of different lengths), else stacked; an output
    that is None for every example is dropped. ``is_tuple=False`` with one output stores a plain tensor.

    Args:
        fn: ``fn(item) -> (outputs, extras)``: a sequence of tensors (or None) and a JSON-able dict (or None).
        name: The method's name, recorded in the manifest.
        ragged: Keep one tensor per example instead of stacking them.
        is_tuple: Read the results back as a tuple.
        info: JSON-able facts recorded in the manifest (e.g. column names).

    Example:
        >>> import torch
        >>> sizes = PerExample(lambda s: ([torch.ones(len(s))], {"text": s}), "ones", ragged=True)
        >>> out = sizes(["ab", "abc"], None)
        >>> [t.shape[0] for t in out.values[0]], out.extras
        ([2, 3], [{'text': 'ab'}, {'text': 'abc'}])
    """

    def __init__(self, fn: Callable[[Any], tuple[Sequence[Tensor | None], dict[str, Any] | None]], name: str,
                 ragged: bool = False, is_tuple: bool = True, info: dict[str, Any] | None = None) -> None:
        require(callable(fn), f"fn must be callable, got {describe(fn)}")
        self.fn, self.name, self.ragged, self.is_tuple, self.info = fn, name, ragged, is_tuple, dict(info or {})

    def __call__(self, items: list[Any], collate: Callable[[list[Any]], Any] | None) -> Output:
        results = [self.fn(item) for item in items]
        values: list[Value] = []
        for i, column in enumerate(zip(*[r[0] for r in results], strict=True)):
            present = [t is not None for t in column]
            require(all(present) or not any(present), f"{self.name}: output {i} is None for some examples only")
            if any(present):
                ts = [t.detach().cpu() for t in column if t is not None]
                require(self.ragged or all(t.shape == ts[0].shape for t in ts),
                        f"{self.name}: output {i} has shapes {sorted({tuple(t.shape) for t in ts})} in one batch")
                values.append(ts if self.ragged else torch.stack(ts))
        extras = [r[1] or {} for r in results]
        return Output(tuple(values), self.is_tuple or len(values) != 1, None, extras if any(extras) else None)
