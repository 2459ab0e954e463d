"""LLM attribution results as token heat maps: one row per target token, the prompt's tokens coloured by their
attribution to it (green for, red against, shared scale per result), plus the whole-target row.

``llm_payload`` turns an :class:`~intellego.attr.LLMAttributionResult` into plain JSON-safe data and
``llm_entries`` names results and adds their word-level payloads: the one mechanism behind both views, the
explorer's (``Session.add_llm``: web app, notebook widget and static export, drawn by ``static/app.js``) and
the page of its own here: ``render_llm_html`` / ``export_llm_html`` write one self-contained offline page (no
script, a Content-Security-Policy that forbids every request) with one section per result, by tokens and,
where the result knows its words, by words.

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..attr.llm_result import LLMAttributionResult
from ..errors import describe, require

__all__ = ["llm_payload", "llm_entries", "render_llm_html", "export_llm_html"]

LLMResults = LLMAttributionResult | Sequence[LLMAttributionResult] | Mapping[str, LLMAttributionResult]

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


def _values(t: Any) -> list[float | None]:
    """The values as floats, ``None`` (JSON ``null``) where not finite."""
    return [v if math.isfinite(v) else None for v in (float(x) for x in t.detach().double().cpu().reshape(-1))]


def llm_payload(result: LLMAttributionResult) -> dict[str, Any]:
    """``{"inputs", "rows": [{"label", "values"}...], "scale"}``: the whole target first (label ``"(target)"``),
    then each target token when the result has per-token attributions. Values that are not finite are ``None``
    and left out of ``scale`` (the largest magnitude)."""
    require(isinstance(result, LLMAttributionResult), f"result must be an LLMAttributionResult, got "
            f"{describe(result)}")
    rows: list[dict[str, Any]] = [{"label": "(target)", "values": _values(result.seq_attr)}]
    if result.token_attr is not None:
        rows += [{"label": tok, "values": _values(row)} for tok, row in zip(result.output_tokens, result.token_attr)]
    finite = [abs(v) for r in rows for v in r["values"] if v is not None]
    return {"inputs": list(result.input_tokens), "rows": rows, "scale": max(finite, default=0.0) or 1.0}


def _has_words(result: LLMAttributionResult) -> bool:
    """Whether some input or output word spans several tokens (so that a word view differs)."""
    return any(groups is not None and len(set(groups)) < len(groups)
               for groups in (result.input_words, result.output_words))


def llm_entries(results: LLMResults, names: Sequence[str] | None = None, first: int = 1) -> list[dict[str, Any]]:
    """``[{"name", "target", "tokens", "words"}...]``: each result named (``names``, the keys of a mapping, or
    ``"result {first + i}"``), its :func:`llm_payload` by tokens and, when it knows words that span several
    tokens, by words (else ``None``).

    Example:
        >>> r = LLMAttributionResult(input_tokens=["un", "like", "ly"], output_tokens=["x"], seq_attr=[1.0, 2.0, 3.0],
        ...                          input_words=[0, 0, 0])
        >>> [(e["name"], e["words"]["inputs"]) for e in llm_entries(r)]
        [('result 1', ['unlikely'])]
    """
    if isinstance(results, Mapping):
        require(names is None, "names must be None when results is a mapping (its keys are the names)")
        where = [f"[{k!r}]" for k in results]
        names, results = [str(k) for k in results], list(results.values())
    elif isinstance(results, LLMAttributionResult):
        where, results = ["[0]"], [results]
    else:
        require(isinstance(results, Sequence) and not isinstance(results, str), "results must be an "
                f"LLMAttributionResult, a list of them or a mapping of names to them, got {describe(results)}")
        where = [f"[{i}]" for i in range(len(results))]
    results = list(results)
    require(len(results) > 0, "results must hold at least one LLMAttributionResult")
    for at, r in zip(where, results):
        require(isinstance(r, LLMAttributionResult), f"results{at} must be an LLMAttributionResult, got {describe(r)}")
    names = list(names) if names is not None else [f"result {first + i}" for i in range(len(results))]
    require(len(names) == len(results) and all(isinstance(n, str) for n in names),
            f"names must give one label per result ({len(results)} str), got {describe(names)}")
    return [{"name": name, "target": " ".join(r.output_tokens), "tokens": llm_payload(r),
             "words": llm_payload(r.aggregate_words()) if _has_words(r) else None}
            for r, name in zip(results, names)]


def _colour(value: float | None, scale: float) -> str:
    """Green for positive, red for negative, white at 0 (alpha by magnitude); grey when not finite."""
    if value is None:
        return "background:#ccc"
    a = min(abs(value) / scale, 1.0)
    rgb = "0,128,0" if value >= 0 else "220,20,60"
    return f"background:rgba({rgb},{a:.3f})"


def _table(payload: dict[str, Any]) -> str:
    lines = ["<table>"]
    for row in payload["rows"]:
        cells = "".join(
            f'<span class="tok" style="{_colour(v, payload["scale"])}" title="{"n/a" if v is None else f"{v:.4g}"}">'
            f'{html.escape(tok)}</span>'
            for tok, v in zip(payload["inputs"], row["values"]))
        lines.append(f'<tr><td class="lab">{html.escape(row["label"])}</td><td>{cells}</td></tr>')
    return "\n".join(lines + ["</table>"])


def _section(entry: dict[str, Any]) -> str:
    parts = [f"<section><h2>{html.escape(entry['name'])}</h2>",
             f'<p class="note">target: {html.escape(entry["target"])}</p>', _table(entry["tokens"])]
    if entry["words"] is not None:
        parts += ['<p class="note">by words (sub-word attributions summed)</p>', _table(entry["words"])]
    return "\n".join(parts + ["</section>"])


def render_llm_html(results: LLMResults, names: Sequence[str] | None = None, title: str = "LLM attribution") -> str:
    """One offline HTML page with a heat-map section per result (``names`` label them; see :func:`llm_entries`)."""
    sections = "\n".join(_section(e) for e in llm_entries(results, names))
    return _PAGE.format(title=html.escape(title), css=_CSS, sections=sections)


def export_llm_html(results: LLMResults, path: str | Path,
                    names: Sequence[str] | None = None, title: str = "LLM attribution") -> Path:
    """Write :func:`render_llm_html` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(render_llm_html(results, names, title), encoding="utf-8")
    return path
