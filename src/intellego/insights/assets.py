"""The front end's static files (``app.js``, ``app.css``), shared by the web app, the notebook widget and the
static export, so that none of them depends on another.

Example:
    >>> "export function mount" in asset("app.js")
    True
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["asset", "STATIC"]

STATIC = Path(__file__).parent / "static"


def asset(name: str) -> str:
    """The text of one of the package's static files (``app.js`` or ``app.css``)."""
    return resources.files("intellego.insights").joinpath("static").joinpath(name).read_text(encoding="utf-8")
