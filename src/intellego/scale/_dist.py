"""The process group of a scale-out run and the per-rank thread count.

:func:`group` joins the process group that ``torchrun`` describes in the environment (NCCL when CUDA is
available, Gloo otherwise), or uses one the caller already started, or runs alone. A group it starts stays up
for later calls in the same process (re-joining the rendezvous per call races) and is destroyed at exit.
:func:`rank_threads` caps torch's intra-op threads when several ranks share a host, so that ranks do not
oversubscribe the cores (and forked workers never start with a full OpenMP pool).

Example:
    >>> with group() as g:
    ...     (g.rank, g.world_size)
    (0, 1)
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ..errors import require

__all__ = ["Group", "group", "rank_threads"]


@dataclass
class Group:
    """Rank, world size and ranks on this host; ``active`` when collectives run through torch.distributed."""

    rank: int
    world_size: int
    local_world_size: int
    active: bool

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def all_reduce(self, t: Tensor, op: str) -> Tensor:
        """``torch.distributed.all_reduce`` of a copy of ``t`` (``op``: sum, min or max), returned on the CPU."""
        if not self.active:
            return t.clone()
        ops = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}
        on_gpu = dist.get_backend() == "nccl"
        x = t.detach().clone().contiguous().to("cuda" if on_gpu else "cpu")
        dist.all_reduce(x, op=ops[op])
        return x.cpu()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


@contextlib.contextmanager
def group(backend: str | None = None) -> Iterator[Group]:
    """The process group of this run (see the module docstring)."""
    if not dist.is_available() or (not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) <= 1):
        yield Group(0, 1, 1, False)
        return
    if not dist.is_initialized():
        require("MASTER_ADDR" in os.environ, "WORLD_SIZE is set but MASTER_ADDR is not: start the job with "
                                             "torchrun (or set the env:// rendezvous variables)")
        chosen = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if chosen == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(chosen)
        atexit.register(_destroy)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", str(dist.get_world_size())))
    yield Group(dist.get_rank(), dist.get_world_size(), local, True)


def _destroy() -> None:
    """Tear the group down at exit once every rank has reached exit: a rank that closes its connections while
    another is still finishing its last collective can abort the other's exit (Gloo, loaded hosts)."""
    if not dist.is_initialized():
        return
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
        else:
            dist.barrier()
    except Exception:  # noqa: BLE001 - a rank that failed must not keep the others from exiting
        pass
    dist.destroy_process_group()


@contextlib.contextmanager
def rank_threads(num_threads: int | None, local_world_size: int) -> Iterator[int]:
    """Set torch's intra-op threads for the run and restore them after; yields the count used.

    ``num_threads=None`` keeps the current setting when ``OMP_NUM_THREADS`` is set (torchrun sets it to 1 for
    several ranks per host unless the user did) or one rank runs on the host, else uses
    ``cores // ranks on this host`` (at least 1).
    """
    require(num_threads is None or (isinstance(num_threads, int) and num_threads >= 1),
            f"num_threads must be a positive int or None, got {num_threads!r}")
    before = torch.get_num_threads()
    if num_threads is None:
        explicit = "OMP_NUM_THREADS" in os.environ
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        num_threads = before if explicit or local_world_size <= 1 else max(1, cores // local_world_size)
    torch.set_num_threads(num_threads)
    try:
        yield num_threads
    finally:
        torch.set_num_threads(before)
