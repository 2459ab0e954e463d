"""The perturbation engine: feature plans and batched evaluation of many perturbed copies of a batch.

A :class:`FeaturePlan` says which input elements belong to which feature: integer group ids from a
``feature_mask`` (one mask per input tensor, broadcastable to it, the same id in two tensors meaning one
feature) or sliding windows (Occlusion). An evaluation row is a set of *removed* features; the plan turns a
whole chunk of rows into boolean masks at once (``(rows, 1 or batch, *input.shape[1:])``) and
:class:`Evaluator` (in :mod:`intellego.engines.perturb_eval`, re-exported here) fills the removed elements
with baselines by broadcasting, stacks the rows into one model call per chunk and reads one output per
example (or one per batch, Captum's aggregate mode).
Methods differ only in which rows they evaluate and how they reduce the outputs.

Example:
    >>> import torch
    >>> from intellego.engines.perturb import plan_features
    >>> x = torch.zeros(2, 4)
    >>> plan = plan_features((x,), feature_mask=torch.tensor([[0, 0, 1, 1]]))
    >>> plan.n_features, plan.single(torch.tensor([1]))[0].int().tolist()
    (2, [[[0, 0, 1, 1]]])
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..core.batching import chunks
from ..core.inputs import same_structure
from ..errors import IntellegoError, describe, require, require_shape
from .perturb_eval import CPU_CHUNK_BYTES, Evaluator, progress_bar

__all__ = ["ArgNames", "PRIMARY_NAMES", "FeaturePlan", "Windows", "plan_features", "Evaluator", "progress_bar",
           "CPU_CHUNK_BYTES"]


@dataclass(frozen=True)
class ArgNames:
    """What the caller calls the arguments the engine validates; every error message is built from these.

    Attributes:
        feature_mask: the name of the mask argument.
        baselines: the name of the baselines argument.
        inputs: the name of the perturbed tensors as a whole (a tensor or a tuple of tensors).
        tensor: one of those tensors in prose.

    Example:
        >>> ArgNames(feature_mask="layer_mask").baselines
        'baselines'
    """

    feature_mask: str = "feature_mask"
    baselines: str = "baselines"
    inputs: str = "inputs"
    tensor: str = "the input"


PRIMARY_NAMES = ArgNames()  # the names of the primary methods' arguments (feature_mask, baselines, inputs)

@dataclass(frozen=True)
class Windows:
    """Sliding windows over one input tensor; window ``k`` is feature ``offset + k``.

    The first dimension varies fastest; the last window of a dimension is clipped at the border.
    """

    shape: tuple[int, ...]
    strides: tuple[int, ...]
    counts: tuple[int, ...]
    offset: int

    @property
    def n(self) -> int:
        return math.prod(self.counts)

    def members(self, features: Tensor, sizes: tuple[int, ...]) -> Tensor:
        """Boolean ``(p, 1, *sizes)``: which elements windows ``features`` (global ids) cover."""
        local = features - self.offset
        inside = (local >= 0) & (local < self.n)
        local = local.clamp(0, self.n - 1)
        p, out = local.shape[0], None
        for d, (count, stride, width, size) in enumerate(zip(self.counts, self.strides, self.shape, sizes)):
            start = (local // math.prod(self.counts[:d])) % count * stride
            ar = torch.arange(size, device=local.device)
            hit = (ar >= start[:, None]) & (ar < start[:, None] + width)
            view = [p] + [1] * len(sizes)
            view[d + 1] = size
            hit = hit.reshape(view)
            out = hit if out is None else out & hit
        out = torch.ones(p, *[1] * len(sizes), dtype=torch.bool, device=local.device) if out is None else out
        return (out & inside.reshape(p, *[1] * len(sizes))).unsqueeze(1)


@dataclass(frozen=True)
class FeaturePlan:
    """Which elements of each input tensor form which of ``n_features`` features.

    Attributes:
        n_features: number of features (ids ``0 .. n_features - 1``).
        masks: per input, long ids of shape ``(1 or batch, *input.shape[1:])`` (None for window plans).
        windows: per input, its :class:`Windows` (None for mask plans).
        shapes: per input, the shape of one example.
        ordered: every element its own feature, numbered in element order across the inputs (the default
            plan): spreading values onto the inputs is then a slice, not a gather.
    """

    n_features: int
    masks: tuple[Tensor, ...] | None
    windows: tuple[Windows, ...] | None
    shapes: tuple[tuple[int, ...], ...]
    ordered: bool = False

    @property
    def per_example(self) -> bool:
        """Whether some mask differs between examples (first dimension equal to the batch)."""
        return self.masks is not None and any(m.shape[0] > 1 for m in self.masks)

    def single(self, features: Tensor) -> tuple[Tensor, ...]:
        """Boolean masks ``(p, 1 or batch, *shape)`` per input: the elements of feature ``features[j]``."""
        if self.windows is not None:
            return tuple(w.members(features, s) for w, s in zip(self.windows, self.shapes))
        return tuple(m.unsqueeze(0) == features.reshape(-1, *[1] * m.dim()) for m in self._masks)

    def one_removal(self, rows: slice, device: torch.device) -> tuple[Tensor, ...]:
        """:meth:`single` of feature ids ``rows.start - 1 .. rows.stop - 2``: row 0 removes nothing, row ``k + 1``
        feature ``k`` (the rows of an ablation pass). A small plan builds all rows once per device and keeps
        them (plans are cached per mask, window geometry and layout, so a repeated small call skips the mask
        construction); the kept masks are internal and read-only, never handed to the caller."""
        kept: dict[torch.device, tuple[Tensor, ...]] = self.__dict__.setdefault("_one_removal", {})
        whole = kept.get(device)
        if whole is None:
            per_row = sum(m.numel() for m in self.masks) if self.masks is not None else sum(
                math.prod(s) for s in self.shapes)
            if (self.n_features + 1) * per_row > _ONE_REMOVAL_ELEMENTS:
                return self.single(torch.arange(rows.start - 1, rows.stop - 1, device=device))
            whole = kept[device] = self.single(torch.arange(-1, self.n_features, device=device))
        return whole if rows.start == 0 and rows.stop == self.n_features + 1 else tuple(m[rows] for m in whole)

    @property
    def _masks(self) -> tuple[Tensor, ...]:
        return self.masks if self.masks is not None else ()

    def removed(self, rows: Tensor) -> tuple[Tensor, ...]:
        """Boolean masks ``(p, 1 or batch, *shape)`` per input for coalitions ``rows`` (bool, ``(p, F)``)."""
        require(self.windows is None, "coalitions of several features need a feature mask, not windows")
        return tuple(rows[:, m] for m in self._masks)

    def removed_kept(self, table: Tensor, rows: slice) -> tuple[Tensor, ...]:
        """:meth:`removed` of rows ``rows`` of ``table``, a coalition table kept by its method and never written
        (ShapleyValues' coalitions, KernelShap's exact ones): a small plan builds the masks of the whole table
        once per table and keeps them, as :meth:`one_removal` does (internal and read-only)."""
        kept: dict[int, tuple[Tensor, tuple[Tensor, ...]]] = self.__dict__.setdefault("_removed_kept", {})
        hit = kept.get(id(table))
        if hit is None or hit[0] is not table:
            if table.shape[0] * sum(m.numel() for m in self._masks) > _ONE_REMOVAL_ELEMENTS:
                return self.removed(table[rows])
            if len(kept) >= 8:  # tables rebuilt by their own caches: keep the latest few
                kept.clear()
            hit = kept[id(table)] = (table, self.removed(table))  # the table itself is kept: its id stays its own
        whole = hit[1]
        return whole if rows.start == 0 and rows.stop == table.shape[0] else tuple(m[rows] for m in whole)

    def combine(self, values: Tensor, per_example: bool) -> tuple[Tensor, ...]:
        """Spread per-feature values ``(F, *O)`` onto the inputs: per input ``(*O, *shape)``.

        Mask plans copy each feature's value to its elements; window plans average the values of the
        windows covering each element. With ``per_example``, ``O[0]`` is the batch and per-example masks
        pick each example's own ids.
        """
        out_shape = tuple(values.shape[1:])
        if self.ordered and len(self.shapes) == 1:  # the default plan of one tensor: a transpose (two operations)
            return (values.movedim(0, -1).reshape(*out_shape, *self.shapes[0]),)
        flat = values.reshape(values.shape[0], math.prod(out_shape))  # explicit sizes: no features is (0, *O)
        if self.windows is not None:
            return tuple(self._average_windows(flat, w, s, out_shape) for w, s in zip(self.windows, self.shapes))
        result = []
        offset = 0
        for m, s in zip(self._masks, self.shapes):
            size = math.prod(s)
            if self.ordered:
                result.append(flat[offset:offset + size].T.reshape(*out_shape, *s))
                offset += size
            elif per_example and m.shape[0] > 1:  # each example its own ids
                table = values.movedim(0, -1).reshape(out_shape[0], math.prod(out_shape[1:]), values.shape[0])
                idx = m.reshape(m.shape[0], 1, size).expand(out_shape[0], table.shape[1], size)
                result.append(torch.gather(table, 2, idx).reshape(*out_shape, *s))
            else:
                result.append(flat[self._flat_ids(m)].T.reshape(*out_shape, *s))
        return tuple(result)

    def _flat_ids(self, mask: Tensor) -> Tensor:
        """``mask[0].reshape(-1)`` of one of the plan's own masks, kept (a view of it; internal)."""
        kept: dict[int, Tensor] = self.__dict__.setdefault("_flat", {})
        ids = kept.get(id(mask))
        if ids is None:
            ids = kept[id(mask)] = mask[0].reshape(-1)
        return ids

    def _average_windows(self, flat: Tensor, w: Windows, shape: tuple[int, ...],
                         out_shape: tuple[int, ...]) -> Tensor:
        size = math.prod(shape)
        if not flat.is_floating_point():  # an integer model output: averages of windows are fractions
            flat = flat.to(torch.get_default_dtype())
        if w.n * size <= _WINDOW_TABLE_ELEMENTS:  # small: one product with the (cached) averaging table
            table = _window_average(w, shape, flat.device, flat.dtype)
            return (flat[w.offset:w.offset + w.n].T @ table).reshape(*out_shape, *shape)
        total = torch.zeros(flat.shape[1], size, dtype=flat.dtype, device=flat.device)
        cover = torch.zeros(size, dtype=flat.dtype, device=flat.device)
        ids = torch.arange(w.offset, w.offset + w.n, device=flat.device)
        for sl in chunks(w.n, max(1, (1 << 24) // max(size, 1))):
            member = w.members(ids[sl], shape).reshape(-1, size).to(flat.dtype)
            total += flat[ids[sl]].T @ member
            cover += member.sum(0)
        return (total / cover).reshape(*out_shape, *shape)


_WINDOW_TABLE_ELEMENTS = 1 << 20
_ONE_REMOVAL_ELEMENTS = 1 << 18  # mask elements of an ablation pass a plan keeps (256 KiB of booleans)


@functools.lru_cache(maxsize=16)
def _window_average(w: Windows, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> Tensor:
    """``(windows, elements)``: each window's membership divided by the number of windows covering the
    element, so one product averages the window values per element (geometry alone; internal)."""
    member = _window_table(w, shape, device).to(dtype)
    return member / member.sum(0)


@functools.lru_cache(maxsize=16)
def _window_table(w: Windows, shape: tuple[int, ...], device: torch.device) -> Tensor:
    """Boolean ``(windows, elements)``: which elements each window covers (a function of the geometry alone;
    internal, never handed out)."""
    ids = torch.arange(w.offset, w.offset + w.n, device=device)
    return w.members(ids, shape).reshape(w.n, math.prod(shape))


def plan_features(
    inputs: tuple[Tensor, ...],
    feature_mask: Any = None,
    sliding_window_shapes: Any = None,
    strides: Any = None,
    *,
    aggregate: bool = False,
    names: ArgNames = PRIMARY_NAMES,
    gaps: bool = False,
) -> FeaturePlan:
    """Validate a ``feature_mask`` or sliding windows against ``inputs`` and build the plan.

    With neither, every scalar of every input is its own feature (ids run on across the tensors). Mask ids run
    ``0 .. n - 1``, or any ids with ``gaps`` (renumbered in order). Errors name the arguments as ``names`` says.
    """
    require(feature_mask is None or sliding_window_shapes is None,
            f"give either {names.feature_mask} or sliding_window_shapes, not both")
    shapes = tuple(tuple(x.shape[1:]) for x in inputs)
    if sliding_window_shapes is not None:
        key = _frozen((sliding_window_shapes, strides, shapes))
        if key is _UNHASHABLE:
            return _window_plan(len(inputs), sliding_window_shapes, strides, shapes)
        return _cached_window_plan(len(inputs), key[0], key[1], shapes)
    require(strides is None, "strides only apply together with sliding_window_shapes")
    if feature_mask is None:
        return _default_plan(tuple((s, x.device) for s, x in zip(shapes, inputs)))
    given = feature_mask if isinstance(feature_mask, (tuple, list)) else (feature_mask,)
    require(len(given) == len(inputs), f"{names.feature_mask} has {len(given)} tensor(s) but {names.inputs} has "
            f"{len(inputs)}; give one mask per tensor of {names.inputs}")
    key = _mask_key(given, inputs, (aggregate, gaps))
    hit = _MASK_PLANS.get(key) if key is not None else None
    if hit is not None and all(torch.equal(a, b) for a, b in zip(hit[0], given)):
        return hit[1]
    if key is None:
        return _mask_plan(given, inputs, aggregate, names, shapes, gaps)
    saved = tuple(m.clone() for m in given)  # the plan keeps views of these, never of the caller's mask
    plan = _mask_plan(saved, inputs, aggregate, names, shapes, gaps)
    if len(_MASK_PLANS) >= _MASK_PLANS_MAX:
        _MASK_PLANS.pop(next(iter(_MASK_PLANS)))
    _MASK_PLANS[key] = (saved, plan)
    return plan


_MASK_PLANS: dict[tuple[Any, ...], tuple[tuple[Tensor, ...], FeaturePlan]] = {}
_MASK_PLANS_MAX, _MASK_PLAN_ELEMENTS = 16, 1 << 18


def _mask_key(given: Any, inputs: tuple[Tensor, ...], flags: tuple[bool, ...]) -> tuple[Any, ...] | None:
    """Cache key of a mask plan: all it depends on but the mask's values (compared in full on a hit, so a mask
    changed in place, even behind autograd's version counter, is never served stale); None: not cached."""
    if not all(isinstance(m, Tensor) and m.device.type != "meta" for m in given) or \
            sum(m.numel() for m in given) > _MASK_PLAN_ELEMENTS:
        return None
    return (flags, tuple((tuple(m.shape), m.dtype, m.device) for m in given),
            tuple((tuple(x.shape), x.device) for x in inputs))


def _mask_plan(given: Any, inputs: tuple[Tensor, ...], aggregate: bool, names: ArgNames,
               shapes: tuple[tuple[int, ...], ...], gaps: bool = False) -> FeaturePlan:
    """Check every mask (see :func:`plan_features`) and count the features."""
    masks = tuple(_check_mask(m, x, i, len(inputs), aggregate, names) for i, (m, x) in enumerate(zip(given, inputs)))
    ids = torch.unique(torch.cat([m.reshape(-1).cpu() for m in masks]))
    require(ids.numel() > 0, f"{names.feature_mask} holds no ids")
    n = int(ids.max()) + 1
    if ids.numel() != n and gaps:  # renumbered in order: each element keeps its own feature
        masks, n = tuple(torch.searchsorted(ids.to(m.device), m.contiguous()) for m in masks), ids.numel()
    if ids.numel() != n:
        missing = sorted(set(range(n)) - set(ids.tolist()))[:8]
        raise IntellegoError(f"{names.feature_mask} ids must be 0 .. num_features - 1 without gaps; ids {missing} "
                             f"are missing (max id {n - 1}, {ids.numel()} distinct ids); renumber them, e.g. with "
                             "torch.unique(mask, return_inverse=True)")
    return FeaturePlan(n, masks, None, shapes)


@functools.lru_cache(maxsize=32)
def _default_plan(layout: tuple[tuple[tuple[int, ...], torch.device], ...]) -> FeaturePlan:
    """Every scalar its own feature (ids run on across the tensors); a function of the per-example shapes and
    devices alone, so it is built once per layout (its masks are never handed to the caller)."""
    default: list[Tensor] = []
    offset = 0
    for shape, device in layout:
        n = math.prod(shape)
        default.append(torch.arange(offset, offset + n, device=device).reshape(1, *shape))
        offset += n
    return FeaturePlan(offset, tuple(default), None, tuple(shape for shape, _ in layout), ordered=True)


def _check_mask(mask: Any, x: Tensor, i: int, count: int, aggregate: bool, names: ArgNames) -> Tensor:
    name = names.feature_mask if count == 1 else f"{names.feature_mask}[{i}]"
    require(isinstance(mask, Tensor), f"{name} must be a tensor of integer ids, got {describe(mask)}")
    require(not (mask.is_complex() or mask.dtype == torch.bool),
            f"{name} must hold integer feature ids, got dtype {mask.dtype}")
    if mask.is_floating_point():  # torch.zeros_like(x) of a float input, say: whole numbers are ids, as in Captum
        require(bool((torch.isfinite(mask) & (mask == mask.trunc())).all()),
                f"{name} must hold integer feature ids, got dtype {mask.dtype} with fractional values")
    require_shape(mask.dim() <= x.dim(), f"{name} of shape {tuple(mask.shape)} has more dimensions than "
            f"{names.tensor} of shape {tuple(x.shape)}")
    m = mask.reshape(*[1] * (x.dim() - mask.dim()), *mask.shape).to(x.device, torch.long)
    ok = all(a in (1, b) for a, b in zip(m.shape, x.shape))
    require_shape(ok, f"{name} of shape {tuple(mask.shape)} cannot be broadcast to {names.tensor} of shape "
            f"{tuple(x.shape)}; use shape (1, {', '.join(map(str, x.shape[1:]))}) or {tuple(x.shape)}")
    require(not aggregate or m.shape[0] == 1,
            f"{name} has a first dimension of {m.shape[0]}, but the model returns one value for the whole "
            "batch: masks cannot differ between examples, use a first dimension of 1")
    if m.numel() and int(m.min()) < 0:
        raise IntellegoError(f"{name} holds negative ids (min {int(m.min())})")
    return m.expand(m.shape[0], *x.shape[1:])


_UNHASHABLE = object()


def _frozen(value: Any) -> Any:
    """``value`` with lists turned into tuples when it holds only None, ints and tuples/lists of them (hashable,
    the same meaning to :func:`_window_plan`); ``_UNHASHABLE`` otherwise (then nothing is cached)."""
    if isinstance(value, (tuple, list)):
        items = tuple(_frozen(v) for v in value)
        return _UNHASHABLE if any(i is _UNHASHABLE for i in items) else items
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return _UNHASHABLE


@functools.lru_cache(maxsize=32)
def _cached_window_plan(count: int, window_shapes: Any, strides: Any,
                        shapes: tuple[tuple[int, ...], ...]) -> FeaturePlan:
    """:func:`_window_plan` built once per geometry (a function of the arguments alone)."""
    return _window_plan(count, window_shapes, strides, shapes)


def _window_plan(count: int, window_shapes: Any, strides: Any,
                 shapes: tuple[tuple[int, ...], ...]) -> FeaturePlan:
    inputs = range(count)
    nested = len(inputs) > 1 or (isinstance(window_shapes, (tuple, list)) and window_shapes
                                 and isinstance(window_shapes[0], (tuple, list)))
    shapes_per = same_structure(window_shapes, len(inputs), "sliding_window_shapes") if nested else (window_shapes,)
    if strides is None:
        strides_per: tuple[Any, ...] = (1,) * len(inputs)
    elif len(inputs) > 1 or (isinstance(strides, (tuple, list)) and strides and isinstance(strides[0], (tuple, list))):
        strides_per = same_structure(strides, len(inputs), "strides")
    else:
        strides_per = (strides,)
    windows, offset = [], 0
    for i, (w, st, s) in enumerate(zip(shapes_per, strides_per, shapes)):
        label = "" if len(inputs) == 1 else f"[{i}]"
        w = tuple(w) if isinstance(w, (tuple, list)) else (w,)
        require_shape(len(w) == len(s) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in w),
                f"sliding_window_shapes{label} must be {len(s)} positive ints (one per non-batch dimension of "
                f"the input of per-example shape {s}), got {w!r}")
        require_shape(all(a <= b for a, b in zip(w, s)),
                      f"sliding_window_shapes{label} {w} is larger than the input's per-example shape {s}")
        st = (st,) * len(s) if isinstance(st, int) and not isinstance(st, bool) else tuple(st)
        require(len(st) == len(s) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in st),
                f"strides{label} must be a positive int or {len(s)} positive ints, got {st!r}")
        for d, (a, b, c) in enumerate(zip(w, st, s)):
            require(a == c or b <= a, f"strides{label} {st} skip elements: stride {b} in dimension {d + 1} is "
                    f"larger than the window {a}")
        counts = tuple(math.ceil((c - a) / b) + 1 for a, b, c in zip(w, st, s))
        windows.append(Windows(w, st, counts, offset))
        offset += math.prod(counts)
    return FeaturePlan(offset, None, tuple(windows), shapes)
