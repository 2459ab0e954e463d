"""Summarizer statistics reduced over shards: per-shard partial moments, merged in shard order.

Each shard stores, per attribution tensor and per class (and overall), the count, the float64 mean and sum of
squared deviations (M2), the sum, the min and the max of its rows. Merging folds the shards in shard order with
the pairwise (Chan et al.) update, so the result depends only on the shard layout: one process and N processes
give bit-identical summaries, and a resumed run reads the partials of shards finished before the crash.

Example:
    >>> import torch
    >>> from intellego.attr import CommonStats
    >>> x = torch.tensor([[1.0], [3.0], [5.0]])
    >>> parts = [partials((x[:2],), None), partials((x[2:],), None)]
    >>> summary = summarize(merge(parts), CommonStats())
    >>> summary["summary"]["mean"].tolist(), summary["summary"]["sample_variance"].tolist()
    ([3.0], [4.0])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..attr.summarizer import MSE, Count, Max, Mean, Min, Stat, StdDev, Sum, Var
from ..errors import IntellegoError, describe, require

__all__ = ["partials", "fold", "merge", "all_reduce", "summarize", "check_stats", "KEY", "Merged"]

KEY = "stat"
_FIELDS = ("count", "mean", "m2", "sum", "min", "max")


def check_stats(stats: list[Stat]) -> None:
    """Refuse statistics that cannot be merged across shards (custom accumulators)."""
    require(isinstance(stats, (list, tuple)) and len(stats) > 0,
            f"stats must be a non-empty list of Stat objects, got {describe(stats)}")
    for s in stats:
        ok = isinstance(s, (Count, Mean, MSE, Var, StdDev))
        ok = ok or (type(s) is Min and s.fn is torch.min) or (type(s) is Max and s.fn is torch.max)
        ok = ok or (type(s) is Sum and s.fn is torch.add)
        require(ok, f"stats: {describe(s)} ({getattr(s, 'name', '?')}) cannot be merged across shards; use Count, "
                    "Mean, MSE, Var, StdDev, Min, Max or Sum with their default functions")


def _moments(x: Tensor) -> dict[str, Tensor]:
    d = x.double()
    mean = d.mean(0)
    return {"count": torch.tensor(x.shape[0]), "mean": mean, "m2": ((d - mean) ** 2).sum(0), "sum": d.sum(0),
            "min": x.amin(0), "max": x.amax(0)}


def _label_keys(labels: Tensor) -> list[int]:
    require(not labels.is_floating_point() and not labels.is_complex(),
            f"class summaries need integer labels, got {describe(labels)}")
    return sorted(set(labels.reshape(-1).tolist()))


def partials(attrs: tuple[Tensor | list[Tensor], ...], labels: Tensor | None) -> dict[str, Tensor]:
    """The flat ``{name: tensor}`` partial statistics of one shard's rows (overall, and per class)."""
    require(all(isinstance(a, Tensor) for a in attrs),
            "stats need results of one shape for every example; this method's results vary in shape (ragged)")
    attrs_t = tuple(a for a in attrs if isinstance(a, Tensor))
    out: dict[str, Tensor] = {}
    groups: list[tuple[str, Tensor | None]] = [("all", None)]
    if labels is not None:
        labels = labels.reshape(-1)
        groups += [(f"c{key}", labels == key) for key in _label_keys(labels)]
    for name, rows in groups:
        for i, a in enumerate(attrs_t):
            for field, value in _moments(a if rows is None else a[rows]).items():
                out[f"{KEY}.{name}.{i}.{field}"] = value
    return out


def _unflatten(flat: dict[str, Tensor]) -> dict[str, dict[int, dict[str, Tensor]]]:
    tree: dict[str, dict[int, dict[str, Tensor]]] = {}
    for key, value in flat.items():
        _, name, i, field = key.split(".")
        tree.setdefault(name, {}).setdefault(int(i), {})[field] = value
    return tree


def _pair(a: dict[str, Tensor], b: dict[str, Tensor]) -> dict[str, Tensor]:
    na, nb = int(a["count"]), int(b["count"])
    n = na + nb
    delta = b["mean"] - a["mean"]
    return {"count": torch.tensor(n), "mean": a["mean"] + delta * (nb / n),
            "m2": a["m2"] + b["m2"] + delta * delta * (na * nb / n), "sum": a["sum"] + b["sum"],
            "min": torch.minimum(a["min"], b["min"]), "max": torch.maximum(a["max"], b["max"])}


Merged = dict[str, dict[int, dict[str, Tensor]]]


def fold(merged: Merged, flat: dict[str, Tensor]) -> Merged:
    """Fold one shard's partials into ``merged`` (in place) and return it."""
    for name, per_tensor in _unflatten(flat).items():
        slot = merged.setdefault(name, {})
        for i, m in per_tensor.items():
            slot[i] = m if i not in slot else _pair(slot[i], m)
    return merged


def merge(shard_partials: list[dict[str, Tensor]]) -> Merged:
    """Fold the shards' partials in the order given: ``{group: {tensor index: moments}}``."""
    merged: Merged = {}
    for flat in shard_partials:
        fold(merged, flat)
    return merged


def _empty(shape: tuple[int, ...], dtype: torch.dtype) -> dict[str, Tensor]:
    info = torch.finfo(dtype) if dtype.is_floating_point else torch.iinfo(dtype)
    zero = torch.zeros(shape, dtype=torch.float64)
    return {"count": torch.tensor(0), "mean": zero, "m2": zero, "sum": zero,
            "min": torch.full(shape, info.max, dtype=dtype), "max": torch.full(shape, info.min, dtype=dtype)}


def all_reduce(merged: Merged, g: Any) -> Merged:
    """Reduce every rank's ``merged`` moments with ``torch.distributed.all_reduce`` (collective on ``g``).

    Count and float64 sum are summed; the mean is sum / count; each rank's M2 is moved to that global mean
    (``m2 + n (mean_rank - mean)^2``, no cancellation) and summed; min and max reduce with MIN and MAX. The
    groups (overall, each class) are the union over ranks, so a rank without a class or without any shard
    takes part with empty moments.
    """
    shapes = {(name, i): (tuple(m["mean"].shape), str(m["min"].dtype).removeprefix("torch."))
              for name, per in merged.items() for i, m in per.items()}
    union: dict[tuple[str, int], tuple[tuple[int, ...], str]] = {}
    for part in g.gather(shapes):
        union.update(part)
    out: Merged = {}
    for name, i in sorted(union):
        shape, dtype = union[(name, i)]
        m = merged.get(name, {}).get(i) or _empty(shape, getattr(torch, dtype))
        n = g.all_reduce(m["count"].reshape(1).to(torch.int64), "sum")
        total = g.all_reduce(m["sum"].double(), "sum")
        mean = total / n.double() if int(n) > 0 else torch.zeros_like(total)
        m2 = g.all_reduce(m["m2"] + (m["mean"] - mean) ** 2 * int(m["count"]), "sum")
        out.setdefault(name, {})[i] = {"count": n.reshape(()), "mean": mean, "m2": m2, "sum": total,
                                       "min": g.all_reduce(m["min"], "min"), "max": g.all_reduce(m["max"], "max")}
    return out


def _stat_value(stat: Stat, m: dict[str, Tensor]) -> Any:
    n, dtype = int(m["count"]), m["min"].dtype
    if isinstance(stat, Count):
        return n
    if isinstance(stat, Mean):
        return m["mean"].to(dtype) if dtype.is_floating_point else m["mean"]
    if isinstance(stat, Sum):
        return m["sum"].to(dtype)
    if isinstance(stat, MSE):
        return m["m2"]
    if isinstance(stat, Min):
        return m["min"]
    if isinstance(stat, Max):
        return m["max"]
    if isinstance(stat, (Var, StdDev)):
        var = torch.zeros_like(m["m2"]) if n <= stat.order else m["m2"] / (n - stat.order)
        return var if isinstance(stat, Var) else var.sqrt()
    raise IntellegoError(f"stats: unsupported statistic {describe(stat)}")


def _one(per_tensor: dict[int, dict[str, Tensor]], stats: list[Stat], is_tuple: bool) -> Any:
    summaries = [{s.name: _stat_value(s, per_tensor[i]) for s in stats} for i in sorted(per_tensor)]
    return summaries if is_tuple else summaries[0]


def summarize(merged: Merged, stats: list[Stat],
              is_tuple: bool = False) -> dict[str, Any]:
    """``{"summary": ..., "class_summaries": {label: ...}}`` shaped like ``ClassSummarizer``'s properties."""
    check_stats(stats)
    summary = _one(merged["all"], stats, is_tuple) if "all" in merged else None
    classes = {int(name[1:]): _one(v, stats, is_tuple) for name, v in merged.items() if name != "all"}
    return {"summary": summary, "class_summaries": dict(sorted(classes.items()))}
