"""``python -m intellego.insights`` (and the ``intellego`` command): runs :func:`intellego.insights.cli.main`."""

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
