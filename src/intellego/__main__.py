"""``python -m intellego``: the ``intellego`` command (the explorer, and ``intellego attribute`` for data sets)."""

from .insights.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
