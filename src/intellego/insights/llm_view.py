"""LLM attribution results as token heat maps: one row per target token, the prompt's tokens coloured by their
attribution to it (green for, red against, shared scale per result), plus the whole-target row.

``llm_payload`` turns an :class:`~intellego.attr.LLMAttributionResult` into plain JSON-safe data;
``render_llm_html`` / ``export_llm_html`` write one self-contained offline page (no script, a
Content-Security-Policy that forbids every request) with one section per result, by tokens and, where the
result knows its words, by words.

Example:
    >>> from intellego.attr import LLMAttributionResult
    >>> r = LLMAttributionResult(input_tokens=["ann", "likes"], output_tokens=["red"], seq_attr=[2.0, -1.0],
    ...                          token_attr=[[2.0, -1.0]])
    >>> [row["label"] for row in llm_payload(r)["rows"]], "ann" in render_llm_html([r])
    (['(target)', 'red'], True)
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..attr.llm_result import LLMAttributionResult
from ..errors import describe, require

__all__ = ["llm_payload", "render_llm_html", "export_llm_html"]

_CSS = """body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
section{margin-bottom:2em}h2{font-size:1.1em;margin:.2em 0}
table{border-collapse:collapse}td{padding:2px 4px;vertical-align:middle}
td.lab{font-weight:600;text-align:right;padding-right:.8em;white-space:pre}
span.tok{display:inline-block;padding:1px 3px;margin:1px;border-radius:3px;white-space:pre}
.note{color:#666;font-size:.9em}"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>{css}</style></head>
<body><h1>{title}</h1>
{sections}
</body></html>
"""


def _values(t: Any) -> list[float]:
    return [float(v) for v in t.detach().double().cpu().reshape(-1).tolist()]


def llm_payload(result: LLMAttributionResult) -> dict[str, Any]:
    """``{"inputs", "rows": [{"label", "values"}...], "scale"}``: the whole target first (label ``"(target)"``),
    then each target token when the result has per-token attributions."""
    require(isinstance(result, LLMAttributionResult), f"result must be an LLMAttributionResult, got "
            f"{describe(result)}")
    rows: list[dict[str, Any]] = [{"label": "(target)", "values": _values(result.seq_attr)}]
    if result.token_attr is not None:
        rows += [{"label": tok, "values": _values(row)} for tok, row in zip(result.output_tokens, result.token_attr)]
    finite = [abs(v) for r in rows for v in r["values"] if math.isfinite(v)]
    return {"inputs": list(result.input_tokens), "rows": rows, "scale": max(finite, default=0.0) or 1.0}


def _colour(value: float, scale: float) -> str:
    """Green for positive, red for negative, white at 0 (alpha by magnitude)."""
    if not math.isfinite(value):
        return "background:#ccc"
    a = min(abs(value) / scale, 1.0)
    rgb = "0,128,0" if value >= 0 else "220,20,60"
    return f"background:rgba({rgb},{a:.3f})"


def _table(payload: dict[str, Any]) -> str:
    lines = ["<table>"]
    for row in payload["rows"]:
        cells = "".join(
            f'<span class="tok" style="{_colour(v, payload["scale"])}" title="{v:.4g}">{html.escape(tok)}</span>'
            for tok, v in zip(payload["inputs"], row["values"]))
        lines.append(f'<tr><td class="lab">{html.escape(row["label"])}</td><td>{cells}</td></tr>')
    return "\n".join(lines + ["</table>"])


def _section(i: int, result: LLMAttributionResult, name: str) -> str:
    parts = [f"<section><h2>{html.escape(name)}</h2>",
             f'<p class="note">target: {html.escape(" ".join(result.output_tokens))}</p>',
             _table(llm_payload(result))]
    if result.input_words is not None and len(set(result.input_words)) < len(result.input_tokens):
        parts += ['<p class="note">by words (sub-word attributions summed)</p>',
                  _table(llm_payload(result.aggregate_words()))]
    return "\n".join(parts + ["</section>"])


def render_llm_html(results: Sequence[LLMAttributionResult], names: Sequence[str] | None = None,
                    title: str = "LLM attribution") -> str:
    """One offline HTML page with a heat-map section per result (``names`` label them)."""
    require(len(results) > 0, "results must hold at least one LLMAttributionResult")
    names = list(names) if names is not None else [f"result {i + 1}" for i in range(len(results))]
    require(len(names) == len(results), f"names must give one label per result ({len(results)}), got {len(names)}")
    sections = "\n".join(_section(i, r, n) for i, (r, n) in enumerate(zip(results, names)))
    return _PAGE.format(title=html.escape(title), css=_CSS, sections=sections)


def export_llm_html(results: Sequence[LLMAttributionResult], path: str | Path,
                    names: Sequence[str] | None = None, title: str = "LLM attribution") -> Path:
    """Write :func:`render_llm_html` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(render_llm_html(results, names, title), encoding="utf-8")
    return path
