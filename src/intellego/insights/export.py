"""The explorer as one self-contained HTML file that works offline.

The file holds the front end (``app.js`` and ``app.css`` inlined, unchanged), the results of a few
runs computed when it is written and the session's LLM results; readers can switch run, sample page, target
token, colour map, sign mode and opacity without a server or a network. A Content-Security-Policy in the
page forbids every network request.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from intellego.insights.session import Batch, Session
    >>> from intellego.insights.features import GeneralFeature
    >>> session = Session([torch.nn.Linear(2, 2)], ["a", "b"], [GeneralFeature("x", ["p", "q"])],
    ...                   [Batch(torch.randn(3, 2), torch.tensor([0, 1, 1]))])
    >>> path = export_html(session, Path(tempfile.mkdtemp()) / "insights.html", count=2)
    >>> "intellego-data" in path.read_text()
    True
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import require
from .assets import asset
from .session import Session

__all__ = ["export_html", "render_html"]

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<link rel="icon" href="data:,">
<style>
{css}
</style></head>
<body><div id="app"></div>
<script type="application/json" id="intellego-data">{data}</script>
<script type="module">
{js}
const data = JSON.parse(document.getElementById("intellego-data").textContent);
mount(document.getElementById("app"), staticTransport(data));
</script></body></html>
"""


def _label(result: dict[str, Any], request: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={v}" for k, v in result["arguments"].items())
    label = f"{result['method']}({args})"
    filters = [", ".join(request.get("classes", []))] + [request.get("prediction", "all")]
    filters = [f for f in filters if f and f != "all"]
    return label + (f" · {' · '.join(filters)}" if filters else "")


def render_html(session: Session, runs: Sequence[dict[str, Any]] | None = None, count: int = 8) -> str:
    """The export's HTML text. ``runs`` are session requests (without offset and count); by default one
    run for each of the first three available methods with their default arguments (none for a session of LLM
    results only). The session's LLM results (``Session.add_llm``) travel in the page's config."""
    require(isinstance(count, int) and 1 <= count <= session.max_count,
            f"count must be an integer between 1 and {session.max_count}, got {count!r}")
    if runs is None:
        runs = [{"method": m} for m in session.methods[:3]]
    require(len(runs) > 0 or len(session.llm) > 0, "runs must hold at least one request (or the session LLM "
            "results to show)")
    saved = []
    for request in runs:
        require(isinstance(request, dict) and not {"offset", "count"} & set(request),
                f"each run is a request without offset and count, got {request!r}")
        result = session.run({**request, "offset": 0, "count": count})
        saved.append({**result, "label": _label(result, request)})
    config = session.config()
    config.update(static=True, runs=[{"label": r["label"]} for r in saved],
                  limits={"max_count": count, "max_offset": count},
                  defaults={**config["defaults"], "count": min(4, count)})
    data = json.dumps({"config": config, "runs": saved}, allow_nan=False).replace("<", "\\u003c")
    js = asset("app.js")
    require("</script" not in js.lower(), "app.js must not contain a closing script tag to be inlined")
    return _TEMPLATE.format(title=html.escape(session.title), css=asset("app.css"), data=data, js=js)


def export_html(session: Session, path: str | Path, runs: Sequence[dict[str, Any]] | None = None,
                count: int = 8) -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(render_html(session, runs, count), encoding="utf-8")
    return path
