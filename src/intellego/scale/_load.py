"""Reading an ``attribute_dataset`` output back: the manifest, the results in dataset order, the summaries.

A result stored dense is ``attr.i`` (batch first); one whose shape varies between examples is ``attr.i.flat``
(every example's values, flattened and concatenated) with ``attr.i.shape`` (one row of sizes per example), and
comes back as a list with one tensor per example.

Example:
    >>> import torch
    >>> unflatten_ragged(torch.arange(5.0), torch.tensor([[2], [3]]))[1].tolist()
    [2.0, 3.0, 4.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..attr.summarizer import Stat
from ..errors import IntellegoError, require
from . import _store
from ._reduce import KEY, check_stats, merge, summarize

__all__ = ["MANIFEST", "ScaleResults", "manifest", "load_results", "load_summary", "ragged_tensors",
           "unflatten_ragged"]

MANIFEST = "manifest.json"


@dataclass
class ScaleResults:
    """The stored results in dataset order: ``attributions`` (a tensor, or a tuple; a result whose shape varies
    is a list of per-example tensors), ``labels``, dataset ``index``, and the per-example ``extras`` (token
    lists of LLM attributions) or None.

    Attributes:
        attributions: The results, in dataset order.
        labels: The class labels, or None when the items had none.
        index: The dataset position of every row.
        extras: One dict per example, or None.

    Example:
        >>> import torch
        >>> r = ScaleResults(torch.zeros(2, 3), torch.tensor([0, 1]), torch.arange(2))
        >>> r.attributions.shape, r.extras
        (torch.Size([2, 3]), None)
    """

    attributions: Tensor | list[Tensor] | tuple[Tensor | list[Tensor], ...]
    labels: Tensor | None
    index: Tensor
    extras: list[dict[str, Any]] | None = None


def ragged_tensors(i: int, values: list[Tensor]) -> dict[str, Tensor]:
    """The shard entries of output ``i`` kept as one tensor per example."""
    flat = torch.cat([v.reshape(-1) for v in values]) if values else torch.zeros(0)
    shapes = torch.tensor([list(v.shape) for v in values], dtype=torch.int64)
    return {f"attr.{i}.flat": flat, f"attr.{i}.shape": shapes}


def unflatten_ragged(flat: Tensor, shapes: Tensor) -> list[Tensor]:
    """The per-example tensors of a ragged output (inverse of :func:`ragged_tensors`)."""
    sizes = [math.prod(s) for s in shapes.tolist()]
    return [part.reshape(s) for part, s in zip(flat.split(sizes), shapes.tolist(), strict=True)]


def manifest(out: str | Path) -> dict[str, Any]:
    """The job description of ``out``.

    Args:
        out: An ``attribute_dataset`` output directory.

    Returns:
        The manifest's dict: ``examples``, ``num_shards``, ``method``, ``format``, ``complete`` and the other
        settings of the job.

    Example:
        >>> import tempfile, torch
        >>> from intellego.attr import Saliency
        >>> from intellego.scale import attribute_dataset
        >>> out = tempfile.mkdtemp()
        >>> _ = attribute_dataset(Saliency(torch.nn.Linear(2, 2)), [(torch.ones(2), 0)] * 3, out=out, batch_size=2,
        ...                       progress=False)
        >>> m = manifest(out)
        >>> m["examples"], m["num_shards"], m["method"], m["complete"]
        (3, 1, 'Saliency.attribute', True)
    """
    path = Path(out) / MANIFEST
    require(path.exists(), f"out={str(out)!r} has no {MANIFEST}; it is not an attribute_dataset output")
    return _store.read_json(path)


def _all_shards(out: str | Path, job: dict[str, Any]) -> list[Path]:
    present = set(_store.completed(out, job["format"]))
    require(job["num_shards"] is not None, f"out={str(out)!r} holds an unfinished run over an iterable dataset "
                                           "(the stream's length is known once it completes); rerun it")
    missing = [k for k in range(job["num_shards"]) if k not in present]
    require(not missing, f"out={str(out)!r} misses {len(missing)} of {job['num_shards']} shards (first: "
                         f"{missing[:5]}); rerun attribute_dataset with the same out to finish them")
    return [_store.shard_path(out, k, job["format"]) for k in range(job["num_shards"])]


def _output(shards: list[dict[str, Tensor]], i: int) -> Tensor | list[Tensor]:
    if f"attr.{i}" in shards[0]:
        return torch.cat([s[f"attr.{i}"] for s in shards])
    return [t for s in shards for t in unflatten_ragged(s[f"attr.{i}.flat"], s[f"attr.{i}.shape"])]


def load_results(out: str | Path) -> ScaleResults:
    """Reassemble the stored results, labels, indices and extras of ``out`` in dataset order.

    Args:
        out: The folder :func:`~intellego.scale.attribute_dataset` wrote (with ``store=True``).

    Returns:
        A :class:`ScaleResults`.

    Example:
        >>> import tempfile, torch
        >>> from torch.utils.data import TensorDataset
        >>> from intellego.attr import CommonStats, Saliency
        >>> from intellego.scale import attribute_dataset
        >>> data = TensorDataset(torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 1, 0]))
        >>> with tempfile.TemporaryDirectory() as out:
        ...     _ = attribute_dataset(Saliency(torch.nn.Linear(3, 2)), data, out=out, batch_size=4,
        ...                           stats=CommonStats(), progress=False)
        ...     results, summary = load_results(out), load_summary(out, CommonStats())
        >>> tuple(results.attributions.shape), results.index.tolist(), sorted(summary)
        ((6, 3), [0, 1, 2, 3, 4, 5], ['class_summaries', 'summary'])
    """
    job = manifest(out)
    require(job["store"], f"out={str(out)!r} was written with store=False: it holds summaries only "
                          "(read them with load_summary)")
    paths = _all_shards(out, job)
    shards = [_store.read_shard(p, job["format"]) for p in paths]
    count = len({key.split(".")[1] for key in shards[0] if key.startswith("attr.")})
    attrs = tuple(_output(shards, i) for i in range(count))
    labels = torch.cat([s["label"] for s in shards]) if "label" in shards[0] else None
    per_shard = [_store.read_extras(p, job["format"]) for p in paths]
    joined = None
    if any(part is not None for part in per_shard):
        joined = [e for s, part in zip(shards, per_shard, strict=True) for e in (part or [{}] * len(s["index"]))]
    is_tuple = bool(shards[0]["meta.is_tuple"])
    result = attrs if is_tuple else attrs[0]
    return ScaleResults(result, labels, torch.cat([s["index"] for s in shards]), joined)


def load_summary(out: str | Path, stats: list[Stat]) -> dict[str, Any]:
    """The overall and per-class summaries of ``out`` (written with ``stats``), merged in shard order.

    Args:
        out: The folder :func:`~intellego.scale.attribute_dataset` wrote.
        stats: The statistics it was run with (e.g. ``CommonStats()``).

    Returns:
        ``{"summary": ..., "class_summaries": {label: ...}}``, each a dict of statistic name to value.

    Example:
        >>> import tempfile, torch
        >>> from torch.utils.data import TensorDataset
        >>> from intellego.attr import Mean, Saliency
        >>> from intellego.scale import attribute_dataset
        >>> data = TensorDataset(torch.ones(4, 2), torch.tensor([0, 0, 1, 1]))
        >>> with tempfile.TemporaryDirectory() as out:
        ...     _ = attribute_dataset(Saliency(torch.nn.Linear(2, 2)), data, out=out, batch_size=2, stats=[Mean()],
        ...                           progress=False)
        ...     summary = load_summary(out, [Mean()])
        >>> sorted(summary["class_summaries"])
        [0, 1]
    """
    job = manifest(out)
    require(job["stats"] is not None, f"out={str(out)!r} was written without stats; rerun with stats=...")
    check_stats(stats)
    parts = []
    is_tuple = False
    for p in _all_shards(out, job):
        shard = _store.read_shard(p, job["format"])
        is_tuple = bool(shard["meta.is_tuple"])
        parts.append({k: v for k, v in shard.items() if k.startswith(KEY + ".")})
    if not parts:
        raise IntellegoError(f"out={str(out)!r} holds no shards")
    return summarize(merge(parts), stats, is_tuple)
