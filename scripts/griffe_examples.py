"""Griffe extension for `make docs`: read a Google-style ``Example:`` section as ``Examples:``.

Both spellings are Google style (and doctest runs either), but griffe parses only the plural as code examples
and renders the singular as an admonition of plain Markdown, where ``>>>`` lines lose their code formatting.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section headers to ``Examples:`` in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
