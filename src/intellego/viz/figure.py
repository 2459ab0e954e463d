"""Figure plumbing shared by the plotting modules: lazy matplotlib import, new figures, colour bars, saving.

matplotlib is imported only inside these functions, so ``import intellego`` never needs it. Figures made
with ``use_pyplot=False`` are plain :class:`matplotlib.figure.Figure` objects, unknown to pyplot: they
work with any backend (Agg included) and are never shown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import IntellegoError, require

__all__ = ["matplotlib", "new_figure", "finish", "save_figure", "bare_axis", "add_colorbar", "get_cmap"]


def matplotlib() -> Any:
    """Import and return matplotlib, with an install hint when it is missing."""
    try:
        import matplotlib as mpl
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("intellego's plots need matplotlib: pip install 'intellego[viz]'") from err
    return mpl


def new_figure(plt_fig_axis: Any, use_pyplot: bool, fig_size: Any, **subplots: Any) -> tuple[Any, Any]:
    """``plt_fig_axis`` if given, else a new figure (through pyplot only when ``use_pyplot``) and its axes."""
    if plt_fig_axis is not None:
        require(isinstance(plt_fig_axis, (tuple, list)) and len(plt_fig_axis) == 2,
                f"plt_fig_axis must be a (figure, axis) pair, got {type(plt_fig_axis).__name__}")
        return plt_fig_axis[0], plt_fig_axis[1]
    matplotlib()
    if use_pyplot:
        import matplotlib.pyplot as plt

        return plt.subplots(figsize=fig_size, **subplots)
    from matplotlib.figure import Figure

    fig = Figure(figsize=fig_size)
    return fig, fig.subplots(**subplots)


def finish(fig: Any, use_pyplot: bool, path: str | os.PathLike | None = None) -> None:
    """Save ``fig`` when a path is given; show it through pyplot only in pyplot mode on an interactive backend."""
    if path is not None:
        save_figure(fig, path)
    if not use_pyplot:
        return
    if matplotlib().get_backend().lower() not in _non_interactive_backends():
        import matplotlib.pyplot as plt

        plt.show()


def _non_interactive_backends() -> set[str]:
    try:  # matplotlib >= 3.9
        from matplotlib.backends import BackendFilter, backend_registry

        names = backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE)
    except ImportError:  # pragma: no cover - older matplotlib
        from matplotlib import rcsetup

        names = getattr(rcsetup, "non_interactive_bk", ())
    return {name.lower() for name in names}


def save_figure(fig: Any, path: str | os.PathLike, dpi: float | None = None) -> Path:
    """Write ``fig`` to ``path``; the format comes from the suffix (``.png``, ``.svg``, ``.pdf``, ...).

    Missing parent folders are created. Returns the path written.
    """
    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    supported = sorted(fig.canvas.get_supported_filetypes())
    if fmt not in supported:
        raise IntellegoError(f"path must end in one of {['.' + s for s in supported]}, got {str(path)!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, format=fmt, dpi=dpi, bbox_inches="tight")
    return target


def bare_axis(ax: Any) -> None:
    """Hide ticks, tick labels and grid, as for an image."""
    ax.xaxis.set_ticks_position("none")
    ax.yaxis.set_ticks_position("none")
    ax.set_xticklabels([])
    ax.set_yticklabels([])
    ax.grid(visible=False)


def get_cmap(cmap: Any) -> Any:
    """A colormap object from a name or a colormap."""
    mpl = matplotlib()
    if isinstance(cmap, str):
        if cmap not in mpl.colormaps:
            raise IntellegoError(f"cmap {cmap!r} is not a matplotlib colormap name")
        return mpl.colormaps[cmap]
    require(callable(cmap), f"cmap must be a colormap or its name, got {type(cmap).__name__}")
    return cmap


def add_colorbar(fig: Any, ax: Any, cmap: Any, vmin: float, vmax: float, alpha: float | None = None,
                 pad: float = 0.1) -> Any:
    """A horizontal colour bar under ``ax`` (an empty, hidden slot when ``cmap`` is None, to keep grids aligned)."""
    from matplotlib import cm, colors
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    cax = make_axes_locatable(ax).append_axes("bottom", size="5%", pad=pad)
    if cmap is None:
        cax.axis("off")
        return cax
    mappable = cm.ScalarMappable(colors.Normalize(vmin, vmax), get_cmap(cmap))
    fig.colorbar(mappable, cax=cax, orientation="horizontal", alpha=alpha)
    return cax
