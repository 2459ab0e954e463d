"""Attribution jobs of the explorer: state, progress, cancellation and time limit, and the model wrapper
that lets a cancel switch stop a job at its next model call.

Example:
    >>> job = Job("1", {}, limit_s=5.0)
    >>> job.snapshot()["state"]
    'queued'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import IntellegoError

__all__ = ["Job", "Busy", "Cancelled"]


class Busy(IntellegoError):
    """Raised by :meth:`Session.submit` when too many jobs are already waiting."""


class Cancelled(Exception):
    """Raised inside a job's model calls once the job is cancelled or over its time limit."""


class Job:
    """One request running on the worker: state, progress, result or error, and a cancel switch."""

    def __init__(self, job_id: str, request: dict[str, Any], limit_s: float,
                 on_update: Callable[[Job], None] | None = None) -> None:
        self.id, self.request, self.limit_s = job_id, request, limit_s
        self.state, self.done, self.total, self.phase = "queued", 0, 0, "waiting"
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self._on_update = on_update
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._deadline = float("inf")
        self._last_notice = 0.0

    def cancel(self) -> None:
        """Ask the job to stop at its next model call; a queued job never starts."""
        self._cancel.set()

    def check(self) -> None:
        """Raise :class:`Cancelled` when cancelled or past the time limit (called before every model call)."""
        if self._cancel.is_set():
            raise Cancelled("cancelled")
        if time.monotonic() > self._deadline:
            raise Cancelled(f"stopped after the time limit of {self.limit_s:g} s")

    def progress(self, done: int, total: int, phase: str) -> None:
        """Record progress; listeners hear of it at most every 0.1 s, and always of completion."""
        self.done, self.total, self.phase = done, total, phase
        now = time.monotonic()
        if done >= total or now - self._last_notice >= 0.1:
            self._last_notice = now
            self._notify()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends; ``False`` if ``timeout`` passed first."""
        return self._finished.wait(timeout)

    def snapshot(self) -> dict[str, Any]:
        """The job as JSON: ``state`` is queued, running, done, error or cancelled."""
        out: dict[str, Any] = {"id": self.id, "state": self.state, "done": self.done, "total": self.total,
                               "phase": self.phase}
        if self.state == "done":
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out

    def _start(self) -> None:
        self._deadline = time.monotonic() + self.limit_s
        self.state = "running"
        self._notify()

    def _finish(self, state: str, result: dict[str, Any] | None = None, error: str | None = None) -> None:
        self.state, self.result, self.error = state, result, error
        self._finished.set()
        self._notify()

    def _notify(self) -> None:
        if self._on_update is not None:
            self._on_update(self)


class Watched(nn.Module):
    """The user's model behind a check of the job's cancel switch; the model itself is not changed."""

    def __init__(self, model: Callable[..., Any], job: Job | None) -> None:
        super().__init__()
        self.inner = model
        self.job = job
        self.training = bool(getattr(model, "training", False))  # attribute only: no recursion into the model

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.job is not None:
            self.job.check()
        return self.inner(*args, **kwargs)
