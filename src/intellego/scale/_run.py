"""``attribute_dataset``: one attribution method over a whole dataset, sharded over ranks, resumable.

Example:
    >>> import tempfile, torch
    >>> from intellego.attr import Saliency
    >>> model = torch.nn.Linear(3, 2)
    >>> data = [(torch.ones(3) * i, i % 2) for i in range(10)]
    >>> out = tempfile.mkdtemp()
    >>> report = attribute_dataset(Saliency(model), data, out=out, batch_size=4, progress=False)
    >>> report.examples, load_results(out).attributions.shape
    (10, torch.Size([10, 3]))
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from ..attr.summarizer import Stat
from ..errors import describe, require
from . import _store
from ._adapters import Adapter, Output, as_adapter
from ._data import Source
from ._dist import Group, group, rank_threads
from ._load import MANIFEST, ScaleResults, load_results, load_summary, ragged_tensors
from ._reduce import KEY, Merged, all_reduce, check_stats, fold, partials, summarize

__all__ = ["attribute_dataset", "load_results", "load_summary", "ScaleReport", "ScaleResults"]

_VERSION = 2
_JOB_KEYS = ("version", "examples", "shard_size", "batch_size", "num_shards", "format", "method", "store", "stats",
             "info")
REDUCE = ("shards", "all_reduce")


@dataclass
class ScaleReport:
    """What one rank did, the per-rank figures of every rank, and the reduced summaries when asked for.

    Attributes:
        out: The output directory.
        rank: This rank; world_size: the number of ranks; num_shards: the shards of the whole job.
        written: The shards this rank wrote in this run; skipped: the shards already there when it started.
        examples: Examples this rank computed; seconds: its time; threads: its torch threads.
        per_rank: ``{"rank", "examples", "seconds", "examples_per_s"}`` of every rank.
        summary: The overall summary (``stats`` given) or None.
        class_summaries: Label -> summary (``stats`` given and labelled items) or None.

    Example:
        >>> r = ScaleReport("out", 0, 1, 2, [0, 1], 0, 8, 2.0, 1, [{"rank": 0, "examples": 8, "seconds": 2.0,
        ...                 "examples_per_s": 4.0}])
        >>> r.examples_per_s
        4.0
    """

    out: str
    rank: int
    world_size: int
    num_shards: int
    written: list[int]
    skipped: int
    examples: int
    seconds: float
    threads: int
    per_rank: list[dict[str, Any]] = field(default_factory=list)
    summary: Any = None
    class_summaries: dict[int, Any] | None = None

    @property
    def examples_per_s(self) -> float:
        """All ranks' examples this run over the slowest rank's time."""
        total = sum(r["examples"] for r in self.per_rank)
        slowest = max((r["seconds"] for r in self.per_rank), default=0.0)
        return total / slowest if slowest > 0 else 0.0

    def __str__(self) -> str:
        ranks = ", ".join(f"rank {r['rank']}: {r['examples']} ex, {r['examples_per_s']:.1f} ex/s"
                          for r in self.per_rank)
        return (f"{self.num_shards} shards ({self.skipped} already done) in {self.out}; {ranks}; "
                f"total {self.examples_per_s:.1f} ex/s")


def _job(source: Source, shard_size: int, batch_size: int, fmt: str, adapter: Adapter, store: bool,
         stats: list[Stat] | None) -> dict[str, Any]:
    n = source.count
    return {"version": _VERSION, "examples": n, "shard_size": shard_size, "batch_size": batch_size,
            "num_shards": None if n is None else -(-n // shard_size), "format": fmt, "method": adapter.name,
            "info": getattr(adapter, "info", {}), "store": store,
            "stats": None if stats is None else [s.name for s in stats], "complete": False}


def _open_job(out: Path, job: dict[str, Any], g: Group) -> None:
    """Rank 0 creates ``out`` and the manifest (or keeps an existing one); every rank checks it matches.

    For a stream (``examples`` None until it has been read) the count is checked when the run ends."""
    if g.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _store.remove_temporaries(out)
        if not (out / MANIFEST).exists():
            _store.write_json(out / MANIFEST, job)
    g.barrier()
    found = _store.read_json(out / MANIFEST)
    diff = {k: (found.get(k), job[k]) for k in _JOB_KEYS if found.get(k) != job[k] and job[k] is not None}
    require(not diff, f"out={str(out)!r} holds another job; differing settings (stored, asked): {diff}. Use a new "
                      "directory, or the same settings to resume")


def _close_job(out: Path, job: dict[str, Any], count: int, g: Group) -> None:
    """Once every rank is done, rank 0 marks the manifest complete (with the stream's length when it was not
    known before)."""
    g.barrier()
    require(count > 0, "dataset is empty (the iterable dataset yielded nothing)")
    found = _store.read_json(out / MANIFEST)
    require(found["examples"] in (None, count), f"the dataset gave {count} examples but out={str(out)!r} was "
            f"started with {found['examples']}: an iterable dataset must give the same stream on every run")
    if g.rank == 0:
        _store.write_json(out / MANIFEST, {**job, "examples": count, "num_shards": -(-count // job["shard_size"]),
                                           "complete": True})
    g.barrier()


def _concat(parts: list[Output]) -> Output:
    values = tuple(torch.cat(list(c)) if isinstance(c[0], Tensor) else [t for p in c for t in p]
                   for c in zip(*[p.values for p in parts], strict=True))
    labels = [p.labels for p in parts if p.labels is not None]
    extras = None if all(p.extras is None for p in parts) else \
        [e for p in parts for e in (p.extras or [{}] * _rows(p))]
    return Output(values, parts[0].is_tuple, torch.cat(labels) if len(labels) == len(parts) else None, extras)


def _rows(o: Output) -> int:
    return len(o.values[0]) if o.values else 0


def _run_shard(adapter: Adapter, source: Source, items: list[Any], batch_size: int) -> Output:
    parts = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        parts.append(adapter(chunk, source.collate))
        require(_rows(parts[-1]) == len(chunk),
                f"{adapter.name} returned {_rows(parts[-1])} rows for a batch of {len(chunk)} examples")
    return _concat(parts)


def _shard_tensors(rows: range, o: Output, store: bool, stats: list[Stat] | None) -> dict[str, Tensor]:
    tensors = {"index": torch.arange(rows.start, rows.stop), "meta.is_tuple": torch.tensor(int(o.is_tuple))}
    if store:
        for i, v in enumerate(o.values):
            tensors.update({f"attr.{i}": v} if isinstance(v, Tensor) else ragged_tensors(i, v))
    if o.labels is not None:
        tensors["label"] = o.labels
    if stats is not None:
        tensors.update(partials(o.values, o.labels))
    return tensors


def _progress(enabled: bool | None, rank: int, total: int | None, done: int) -> Any:
    if rank != 0 or enabled is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=done, desc="attribute_dataset", unit="ex")


def _done_examples(out: Path, fmt: str, shard_size: int, count: int | None) -> int:
    done = _store.completed(out, fmt)
    if count is None:
        return len(done) * shard_size
    return sum(max(0, min(shard_size, count - k * shard_size)) for k in done)


def _check(batch_size: int | None, shard_size: int | None, store: bool, stats: list[Stat] | None,
           reduce: str) -> tuple[int, int]:
    require(isinstance(batch_size, int) and batch_size >= 1, f"batch_size must be a positive int, got {batch_size!r}")
    size = cast(int, batch_size)
    shard_size = 8 * size if shard_size is None else shard_size
    require(isinstance(shard_size, int) and shard_size >= 1, f"shard_size must be a positive int, got {shard_size!r}")
    require(store or stats is not None, "store=False without stats would compute nothing worth keeping")
    require(reduce in REDUCE, f"reduce must be one of {REDUCE}, got {reduce!r}")
    if stats is not None:
        check_stats(stats)
    return size, shard_size


def attribute_dataset(method: Any, dataset: Any, *, out: str | Path, batch_size: int | None = None,
                      shard_size: int | None = None, target: Any = "label",
                      attribute_kwargs: dict[str, Any] | None = None, device: Any = None, store: bool = True,
                      stats: list[Stat] | None = None, reduce: str = "shards", progress: bool | None = None,
                      num_threads: int | None = None, backend: str | None = None, fmt: str | None = None,
                      collate_fn: Any = None) -> ScaleReport:
    """Run ``method`` over every example of ``dataset`` and write the results as shards.

    ``method`` is an attribution object (``method.attribute(inputs, target=...)`` per batch; ``target``,
    ``device`` and ``attribute_kwargs`` configure that call) or an adapter from this package
    (``self_influence``, ``influence``, ``llm_attribution``, ``tcav``, or ``Batched``/``PerExample`` over your own
    function). ``dataset`` is map-style, iterable (sharded by position in the stream) or a DataLoader over one.
    Under ``torchrun`` shard ``k`` goes to rank ``k % world_size``; each shard (``shard_size`` examples,
    default ``8 * batch_size``) is one file written atomically, and a rerun with the same ``out`` skips the
    shards already there. ``stats`` (e.g. ``CommonStats()``) adds the overall and per-class summaries:
    ``reduce="shards"`` folds the shards' partials in shard order (bit-identical for any world size),
    ``reduce="all_reduce"`` reduces the ranks' in-memory partials with ``torch.distributed.all_reduce``.
    Returns a :class:`ScaleReport` on every rank; :func:`load_results` reads the results back in dataset order.

    Args:
        method: An attribution object (anything with ``attribute(inputs, target=...)``) or an adapter.
        dataset: A map-style or iterable dataset, or a ``DataLoader``; items are ``(inputs, label)`` pairs or
            the inputs alone (adapters define their own items).
        out: Directory of the manifest and the shards; the same directory resumes an interrupted run.
        batch_size: Examples per ``method`` call (default: the DataLoader's batch size).
        shard_size: Examples per shard file (default ``8 * batch_size``).
        target: The ``target`` of each ``attribute`` call; ``"label"`` uses the items' labels.
        attribute_kwargs: Further keyword arguments of every ``attribute`` call.
        device: Device the inputs of each batch are moved to (None: left where they are).
        store: Write the per-example results (False keeps only the ``stats`` partials).
        stats: Summary statistics (e.g. ``CommonStats()``) over all examples and per class, or None.
        reduce: ``"shards"`` or ``"all_reduce"``: how the ranks' summaries are combined.
        progress: Show a progress bar on rank 0 (None: when tqdm is installed).
        num_threads: Torch threads per rank, restored after (None: the current setting with one rank per host or
            ``OMP_NUM_THREADS`` set, else the cores shared out between the host's ranks).
        backend: ``torch.distributed`` backend under ``torchrun`` (None: nccl with CUDA, else gloo).
        fmt: Shard file format (None: safetensors when installed, else torch's).
        collate_fn: Turns a list of items into a batch (default: the DataLoader's, or ``default_collate``).

    Returns:
        A :class:`ScaleReport` of this rank, with ``summary`` and ``class_summaries`` filled when ``stats`` is
        given.

    Example:
        >>> import tempfile, torch
        >>> from intellego.attr import Saliency
        >>> data = [(torch.ones(2) * i, i % 2) for i in range(4)]
        >>> r = attribute_dataset(Saliency(torch.nn.Linear(2, 2)), data, out=tempfile.mkdtemp(), batch_size=2,
        ...                       progress=False)
        >>> r.num_shards, r.examples, load_results(r.out).labels.tolist()
        (1, 4, [0, 1, 0, 1])
    """
    source = Source.of(dataset, collate_fn)
    batch_size, shard_size = _check(batch_size if batch_size is not None else source.loader_batch_size,
                                    shard_size, store, stats, reduce)
    adapter = as_adapter(method, target, device, attribute_kwargs)
    fmt = fmt or _store.default_format()
    require(isinstance(out, (str, os.PathLike)), f"out must be a directory path (str or Path), got {describe(out)}")
    out = Path(out)
    job = _job(source, shard_size, batch_size, fmt, adapter, store, stats)
    with group(backend) as g, rank_threads(num_threads, g.local_world_size) as threads:
        _open_job(out, job, g)
        done = set(_store.completed(out, fmt))
        local: Merged | None = {} if stats is not None and reduce == "all_reduce" else None
        written, seconds, examples = _loop(adapter, source, out, fmt, batch_size, shard_size, store, stats, done,
                                           local, g, progress)
        _close_job(out, job, cast(int, source.count), g)
        per_rank = g.gather({"rank": g.rank, "examples": examples, "seconds": seconds,
                             "examples_per_s": examples / seconds if seconds > 0 else 0.0})
        report = ScaleReport(str(out), g.rank, g.world_size, -(-cast(int, source.count) // shard_size), written,
                             len(done), examples, seconds, threads, per_rank)
        if local is not None and stats is not None:
            for k in sorted(done):
                if k % g.world_size == g.rank:
                    fold(local, _stored_partials(out, k, fmt))
            reduced = summarize(all_reduce(local, g), stats, _is_tuple(out, fmt))
            report.summary, report.class_summaries = reduced["summary"], reduced["class_summaries"]
    if stats is not None and local is None:
        reduced = load_summary(out, stats)
        report.summary, report.class_summaries = reduced["summary"], reduced["class_summaries"]
    return report


def _stored_partials(out: Path, k: int, fmt: str) -> dict[str, Tensor]:
    shard = _store.read_shard(_store.shard_path(out, k, fmt), fmt)
    return {key: v for key, v in shard.items() if key.startswith(KEY + ".")}


def _is_tuple(out: Path, fmt: str) -> bool:
    first = _store.completed(out, fmt)[0]
    return bool(_store.read_shard(_store.shard_path(out, first, fmt), fmt, ["meta.is_tuple"])["meta.is_tuple"])


def _loop(adapter: Adapter, source: Source, out: Path, fmt: str, batch_size: int, shard_size: int, store: bool,
          stats: list[Stat] | None, done: set[int], local: Merged | None, g: Group,
          progress: bool | None) -> tuple[list[int], float, int]:
    """Compute and write this rank's missing shards; returns their ids, the seconds and the examples."""
    bar = _progress(progress, g.rank, source.count, _done_examples(out, fmt, shard_size, source.count))
    start, examples, written = time.perf_counter(), 0, []
    for k, rows, items in source.walk(shard_size, lambda k: k % g.world_size == g.rank and k not in done):
        result = _run_shard(adapter, source, items, batch_size)
        tensors = _shard_tensors(rows, result, store, stats)
        _store.write_shard(out, k, tensors, fmt, result.extras if store else None)
        if local is not None:
            fold(local, {key: v for key, v in tensors.items() if key.startswith(KEY + ".")})
        written.append(k)
        examples += len(rows)
        if bar is not None:
            bar.n = _done_examples(out, fmt, shard_size, source.count)
            bar.refresh()
    if bar is not None:
        bar.close()
    return written, time.perf_counter() - start, examples
