"""The explorer as a Jupyter widget, built on ``anywidget`` (JupyterLab 4, Notebook 7, VS Code, Colab).

The widget ships the same ``app.js`` and ``app.css`` as the web app; its transport is anywidget's custom
messages. The front end sends ``{"type": "run", "id", "request"}`` and ``{"type": "cancel", "id"}``; the
widget answers ``progress``, then ``result``, ``cancelled`` (the user's Cancel) or ``error``, each with the
request's ``id``. The session's description travels in the synced ``config`` trait.

Example:
    >>> import torch
    >>> from intellego.insights.session import Batch, Session
    >>> from intellego.insights.features import GeneralFeature
    >>> session = Session([torch.nn.Linear(2, 2)], ["a", "b"], [GeneralFeature("x", ["p", "q"])],
    ...                   [Batch(torch.randn(3, 2), torch.tensor([0, 1, 1]))])
    >>> widget = InsightsWidget(session)
    >>> widget.config["classes"]
    ['a', 'b']
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets

from ..errors import IntellegoError, describe
from .assets import STATIC
from .session import Job, Session

__all__ = ["InsightsWidget"]

class InsightsWidget(anywidget.AnyWidget):
    """A notebook view of one :class:`~intellego.insights.session.Session`."""

    _esm = STATIC / "app.js"
    _css = STATIC / "app.css"
    config = traitlets.Dict().tag(sync=True)

    def __init__(self, session: Session, **kwargs: Any) -> None:
        super().__init__(config=session.config(), **kwargs)
        self._session = session
        self._jobs: dict[str, Job] = {}
        self.on_msg(self._on_message)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any = None) -> None:
        """Handle one message from the front end; every reply carries the request's ``id``."""
        if not isinstance(content, dict):
            return
        rid = content.get("id")
        if not isinstance(rid, str) or not 0 < len(rid) <= 64:
            self.send({"type": "error", "id": None, "message": f"message id must be a short str, got {describe(rid)}"})
            return
        kind = content.get("type")
        if kind == "run":
            try:
                job = self._session.submit(content.get("request"), on_update=lambda j: self._report(rid, j))
            except IntellegoError as exc:
                self.send({"type": "error", "id": rid, "message": str(exc)})
                return
            self._jobs[rid] = job
        elif kind == "cancel":
            waiting = self._jobs.get(rid)
            if waiting is not None:
                waiting.cancel()
        else:
            self.send({"type": "error", "id": rid, "message": f"unknown message type {kind!r}"})

    def _report(self, rid: str, job: Job) -> None:
        if job.state in ("queued", "running"):
            self.send({"type": "progress", "id": rid, "done": job.done, "total": job.total, "phase": job.phase})
            return
        self._jobs.pop(rid, None)
        if job.state == "done":
            self.send({"type": "result", "id": rid, "result": job.result})
        elif job.state == "cancelled":
            self.send({"type": "cancelled", "id": rid})
        else:
            self.send({"type": "error", "id": rid, "message": job.error or job.state})
