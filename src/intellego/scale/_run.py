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

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from ..attr.summarizer import Stat
from ..errors import IntellegoError, describe, require
from . import _store
from ._data import Source, shard_ranges, to_device
from ._dist import Group, group, rank_threads
from ._reduce import KEY, check_stats, merge, partials, summarize

__all__ = ["attribute_dataset", "load_results", "load_summary", "ScaleReport", "ScaleResults"]

MANIFEST = "manifest.json"
_VERSION = 1
_JOB_KEYS = ("version", "examples", "shard_size", "batch_size", "num_shards", "format", "method", "store", "stats")


@dataclass
class ScaleReport:
    """What one rank did, the per-rank figures of every rank, and the reduced summaries when asked for."""

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


@dataclass
class ScaleResults:
    """The stored results in dataset order: attributions (a tensor or tuple), labels and dataset indices."""

    attributions: Tensor | tuple[Tensor, ...]
    labels: Tensor | None
    index: Tensor


def _job(n: int, shard_size: int, batch_size: int, fmt: str, method: Any, store: bool,
         stats: list[Stat] | None) -> dict[str, Any]:
    return {"version": _VERSION, "examples": n, "shard_size": shard_size, "batch_size": batch_size,
            "num_shards": len(shard_ranges(n, shard_size)), "format": fmt, "method": type(method).__name__,
            "store": store, "stats": None if stats is None else [s.name for s in stats], "complete": False}


def _open_job(out: Path, job: dict[str, Any], g: Group) -> None:
    """Rank 0 creates ``out`` and the manifest (or keeps an existing one); every rank checks it matches."""
    if g.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _store.remove_temporaries(out)
        if not (out / MANIFEST).exists():
            _store.write_json(out / MANIFEST, job)
    g.barrier()
    found = _store.read_json(out / MANIFEST)
    diff = {k: (found.get(k), job[k]) for k in _JOB_KEYS if found.get(k) != job[k]}
    require(not diff, f"out={str(out)!r} holds another job; differing settings (stored, asked): {diff}. Use a new "
                      "directory, or the same settings to resume")


def _as_tuple(result: Any, batch: int) -> tuple[tuple[Tensor, ...], bool]:
    is_tuple = isinstance(result, tuple)
    parts = result if is_tuple else (result,)
    for t in parts:
        require(isinstance(t, Tensor) and t.dim() > 0 and t.shape[0] == batch,
                f"attribute returned {describe(result)}; attribute_dataset needs a tensor or tuple of tensors "
                f"with the batch ({batch}) as first dimension")
    return tuple(t.detach().cpu() for t in parts), is_tuple


def _run_shard(method: Any, source: Source, rows: range, batch_size: int, target: Any, kwargs: dict[str, Any],
               device: Any) -> tuple[tuple[Tensor, ...], Tensor | None, bool]:
    chunks: list[tuple[Tensor, ...]] = []
    labels: list[Tensor] = []
    is_tuple = False
    for start in range(rows.start, rows.stop, batch_size):
        x, y = source.batch(range(start, min(start + batch_size, rows.stop)))
        x = to_device(x, device)
        t = (None if y is None else y.to(device) if device is not None else y) if target == "label" else target
        n = (x if isinstance(x, Tensor) else x[0]).shape[0]
        parts, is_tuple = _as_tuple(method.attribute(x, target=t, **kwargs), n)
        chunks.append(parts)
        if y is not None:
            labels.append(y.cpu())
    attrs = tuple(torch.cat(c) for c in zip(*chunks, strict=True))
    return attrs, (torch.cat(labels) if labels else None), is_tuple


def _shard_tensors(rows: range, attrs: tuple[Tensor, ...], labels: Tensor | None, is_tuple: bool, store: bool,
                   stats: list[Stat] | None) -> dict[str, Tensor]:
    tensors = {"index": torch.arange(rows.start, rows.stop), "meta.is_tuple": torch.tensor(int(is_tuple))}
    if store:
        tensors.update({f"attr.{i}": a for i, a in enumerate(attrs)})
    if labels is not None:
        tensors["label"] = labels
    if stats is not None:
        tensors.update(partials(attrs, labels))
    return tensors


def _progress(enabled: bool | None, rank: int, total: int, done: int) -> Any:
    if rank != 0 or enabled is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=done, desc="attribute_dataset", unit="ex")


def _done_examples(out: Path, fmt: str, ranges: list[range]) -> int:
    return sum(len(ranges[k]) for k in _store.completed(out, fmt) if k < len(ranges))


def attribute_dataset(method: Any, dataset: Any, *, out: str | Path, batch_size: int | None = None,
                      shard_size: int | None = None, target: Any = "label",
                      attribute_kwargs: dict[str, Any] | None = None, device: Any = None, store: bool = True,
                      stats: list[Stat] | None = None, progress: bool | None = None,
                      num_threads: int | None = None, backend: str | None = None, fmt: str | None = None,
                      collate_fn: Any = None) -> ScaleReport:
    """Attribute every example of ``dataset`` with ``method.attribute`` and write the results as shards.

    Under ``torchrun`` (or in an initialised process group) shard ``k`` goes to rank ``k % world_size``; each
    shard (``shard_size`` examples, default ``8 * batch_size``) is one file written atomically, and a rerun
    with the same ``out`` skips the shards already there. ``target="label"`` uses the dataset's labels (None
    when it has none); ``stats`` (e.g. ``CommonStats()``) adds the overall and per-class summaries, reduced
    over all shards in shard order (``store=False`` keeps only those, not the maps). Returns a
    :class:`ScaleReport` on every rank; :func:`load_results` reads the maps back in dataset order.
    """
    source = Source.of(dataset, collate_fn)
    size = batch_size if batch_size is not None else source.loader_batch_size
    require(isinstance(size, int) and size >= 1, f"batch_size must be a positive int, got {size!r}")
    batch_size = cast(int, size)
    shard_size = 8 * batch_size if shard_size is None else shard_size
    require(isinstance(shard_size, int) and shard_size >= 1, f"shard_size must be a positive int, got {shard_size!r}")
    require(callable(getattr(method, "attribute", None)),
            f"method must have an attribute(inputs, ...) method, got {describe(method)}")
    require(store or stats is not None, "store=False without stats would compute nothing worth keeping")
    if stats is not None:
        check_stats(stats)
    kwargs = dict(attribute_kwargs or {})
    require("target" not in kwargs, "attribute_kwargs must not hold 'target'; pass target= to attribute_dataset")
    fmt = fmt or _store.default_format()
    out = Path(out)
    ranges = shard_ranges(len(source.dataset), shard_size)
    job = _job(len(source.dataset), shard_size, batch_size, fmt, method, store, stats)
    with group(backend) as g, rank_threads(num_threads, g.local_world_size) as threads:
        _open_job(out, job, g)
        done = set(_store.completed(out, fmt))
        mine = [k for k in range(len(ranges)) if k % g.world_size == g.rank and k not in done]
        bar = _progress(progress, g.rank, len(source.dataset), _done_examples(out, fmt, ranges))
        start, examples = time.perf_counter(), 0
        for k in mine:
            attrs, labels, is_tuple = _run_shard(method, source, ranges[k], batch_size, target, kwargs, device)
            _store.write_shard(out, k, _shard_tensors(ranges[k], attrs, labels, is_tuple, store, stats), fmt)
            examples += len(ranges[k])
            if bar is not None:
                bar.n = _done_examples(out, fmt, ranges)
                bar.refresh()
        seconds = time.perf_counter() - start
        mine_stats = {"rank": g.rank, "examples": examples, "seconds": seconds,
                      "examples_per_s": examples / seconds if seconds > 0 else 0.0}
        per_rank = g.gather(mine_stats)
        if bar is not None:
            bar.n = _done_examples(out, fmt, ranges)
            bar.close()
        if g.rank == 0:
            _store.write_json(out / MANIFEST, {**job, "complete": True})
        g.barrier()
        report = ScaleReport(str(out), g.rank, g.world_size, len(ranges), mine, len(done), examples, seconds,
                             threads, per_rank)
    if stats is not None:
        reduced = load_summary(out, stats)
        report.summary, report.class_summaries = reduced["summary"], reduced["class_summaries"]
    return report


def _manifest(out: str | Path) -> dict[str, Any]:
    path = Path(out) / MANIFEST
    require(path.exists(), f"out={str(out)!r} has no {MANIFEST}; it is not an attribute_dataset output")
    return _store.read_json(path)


def _all_shards(out: str | Path, job: dict[str, Any]) -> list[Path]:
    present = set(_store.completed(out, job["format"]))
    missing = [k for k in range(job["num_shards"]) if k not in present]
    require(not missing, f"out={str(out)!r} misses {len(missing)} of {job['num_shards']} shards (first: "
                         f"{missing[:5]}); rerun attribute_dataset with the same out to finish them")
    return [_store.shard_path(out, k, job["format"]) for k in range(job["num_shards"])]


def load_results(out: str | Path) -> ScaleResults:
    """Reassemble the stored attributions, labels and indices of ``out`` in dataset order."""
    job = _manifest(out)
    require(job["store"], f"out={str(out)!r} was written with store=False: it holds summaries only "
                          "(read them with load_summary)")
    shards = [_store.read_shard(p, job["format"]) for p in _all_shards(out, job)]
    count = sum(1 for key in shards[0] if key.startswith("attr."))
    attrs = tuple(torch.cat([s[f"attr.{i}"] for s in shards]) for i in range(count))
    labels = torch.cat([s["label"] for s in shards]) if "label" in shards[0] else None
    is_tuple = bool(shards[0]["meta.is_tuple"])
    return ScaleResults(attrs if is_tuple else attrs[0], labels, torch.cat([s["index"] for s in shards]))


def load_summary(out: str | Path, stats: list[Stat]) -> dict[str, Any]:
    """The overall and per-class summaries of ``out`` (written with ``stats``), merged in shard order."""
    job = _manifest(out)
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
