"""Insights: an interactive attribution explorer, as a local web app, a notebook widget and a static export.

The Python API is Captum Insights', so a Captum program runs with only its import lines changed::

    from intellego.insights import AttributionVisualizer, Batch
    from intellego.insights.features import ImageFeature

    visualizer = AttributionVisualizer(
        models=[net], score_func=lambda o: torch.nn.functional.softmax(o, 1), classes=classes,
        features=[ImageFeature("Photo", baseline_transforms=[baseline_func], input_transforms=[transform])],
        dataset=formatted_data_iter())
    visualizer.render()          # in a notebook (anywidget)
    visualizer.serve()           # or in the browser: prints the URL, returns the port
    visualizer.export("x.html")  # or one offline HTML file

``python -m intellego.insights`` (or the ``intellego`` command) starts it on the shipped demo model.

LLM attribution results (:class:`~intellego.attr.LLMAttributionResult`) are shown as heat maps over the prompt,
one row per target token, in the same three hosts: ``visualizer.add_llm(results)``, or on their own with
``explore_llm(results)`` (then ``.render()``, ``.serve()`` or ``.export(path)``).

Example:
    >>> import torch
    >>> from intellego.insights.features import TabularFeature
    >>> vis = AttributionVisualizer([torch.nn.Linear(2, 2)], ["no", "yes"], [TabularFeature("row", ["a", "b"])],
    ...                             [Batch(torch.randn(4, 2), torch.tensor([0, 1, 1, 0]))])
    >>> len(vis.session.run({"method": "Saliency", "count": 3})["samples"])
    3
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from ..errors import IntellegoError
from .feature_types import BaseFeature, GeneralFeature, ImageFeature, TabularFeature, TextFeature
from .llm_view import LLMResults
from .session import Batch, Session

__all__ = [
    "AttributionVisualizer",
    "explore_llm",
    "Batch",
    "Session",
    "BaseFeature",
    "ImageFeature",
    "TextFeature",
    "GeneralFeature",
    "TabularFeature",
]


class AttributionVisualizer:
    """Explore attributions of ``models`` over ``dataset`` in a notebook, a browser or a static file.

    Args:
        models: A model or list of models; each maps the features' transformed inputs to class scores.
        classes: Class names, indexed like the model outputs.
        features: One feature per input tensor (:class:`ImageFeature`, :class:`TextFeature`,
            :class:`GeneralFeature`, :class:`TabularFeature`).
        dataset: An iterable of :class:`Batch`; it may be endless (at most ``max_samples`` are drawn).
        score_func: Maps model outputs to the displayed scores, for example a softmax.
        use_label_for_attr: Attribute the predicted class (``True``, for one output per class) or the
            whole output (``False``, for a scalar output).
        **options: Keyword-only limits of the :class:`~intellego.insights.session.Session`
            (``max_samples``, ``max_count``, ``cache_size``, ``job_limit_s``, ``title``).

    Example:
        >>> import tempfile, pathlib, torch
        >>> vis = AttributionVisualizer([torch.nn.Linear(2, 2)], ["no", "yes"], [TabularFeature("row", ["a", "b"])],
        ...                             [Batch(torch.randn(4, 2), torch.tensor([0, 1, 1, 0]))])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     page = vis.export(pathlib.Path(d) / "x.html", count=2).read_text()
        >>> "Content-Security-Policy" in page
        True
    """

    def __init__(self, models: Sequence[Callable[..., Any]] | Callable[..., Any], classes: Sequence[str],
                 features: Sequence[BaseFeature] | BaseFeature, dataset: Iterable[Batch],
                 score_func: Callable[[Tensor], Tensor] | None = None, use_label_for_attr: bool = True,
                 **options: Any) -> None:
        self.session = Session(models, classes, features, dataset, score_func, use_label_for_attr, **options)
        self._server: Any = None

    def add_llm(self, results: LLMResults, names: Sequence[str] | None = None) -> AttributionVisualizer:
        """Show LLM attribution results beside the samples; see :meth:`Session.add_llm`. Returns ``self``."""
        self.session.add_llm(results, names)
        return self

    def widget(self) -> Any:
        """A new notebook widget on this session (needs the ``insights`` extra: anywidget)."""
        try:
            from .widget import InsightsWidget
        except ImportError as exc:
            raise IntellegoError(f"the notebook widget needs anywidget: pip install 'intellego[insights]' ({exc})"
                                 ) from exc
        return InsightsWidget(self.session)

    def render(self, debug: bool = False) -> None:
        """Show the explorer in the running notebook (JupyterLab, Notebook 7, VS Code, Colab).

        Outside a notebook (a script, a terminal, IPython without a kernel) there is nothing to show it in: this
        raises an :class:`~intellego.errors.IntellegoError` that points to :meth:`serve` and :meth:`export`.
        ``debug`` is accepted for Captum compatibility and changes nothing.
        """
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError as exc:
            raise IntellegoError("render() shows the explorer in a Jupyter notebook and needs IPython and anywidget: "
                                 "pip install 'intellego[insights]'; without a notebook, use serve() (a local web "
                                 "app) or export('insights.html') (one offline file)") from exc
        if getattr(get_ipython(), "kernel", None) is None:
            raise IntellegoError("render() shows the explorer in a Jupyter notebook, but this is not one (no "
                                 "IPython kernel); here use visualizer.serve() (prints a URL to open in a browser) "
                                 "or visualizer.export('insights.html') (one offline HTML file)")
        display(self.widget())

    def serve(self, blocking: bool = False, debug: bool = False, port: int | None = None, bind_all: bool = False,
              *, host: str | None = None) -> int:
        """Serve the explorer over HTTP, print its URL (with the session token) and return the port.

        Args:
            blocking: Serve on this thread until interrupted (Ctrl-C) instead of a background thread.
            debug: Log requests to stderr. There is no debugger.
            port: TCP port; a free one when ``None``.
            bind_all: Listen on every interface (``0.0.0.0``) instead of ``127.0.0.1``.
            host: Listen on this address instead (keyword-only); overrides ``bind_all``.
        """
        from .server import LOOPBACK, InsightsServer

        self.stop()
        address = host if host is not None else ("0.0.0.0" if bind_all else "127.0.0.1")
        server = InsightsServer(self.session, address, 0 if port is None else port, debug=debug)
        self._server = server
        if address not in LOOPBACK:
            print(f"warning: listening on {address}: anyone who can reach it and has the token can run the models")
        print(f"intellego insights: open {server.url}", flush=True)
        if not blocking:
            server.start()
            return server.port
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")
        finally:
            self.session.close()
            self._server = None
        return server.port

    def stop(self) -> None:
        """Stop a background server started by :meth:`serve`."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def export(self, path: str | Path, runs: Sequence[dict[str, Any]] | None = None, count: int = 8) -> Path:
        """Write a self-contained offline HTML file; see :func:`intellego.insights.export.export_html`."""
        from .export import export_html

        return export_html(self.session, path, runs, count)


def explore_llm(results: LLMResults, names: Sequence[str] | None = None, *,
                title: str = "LLM attribution") -> AttributionVisualizer:
    """An explorer of LLM attribution results only: per result, its prompt's tokens (or words) coloured by their
    attribution to the target token you pick, and the heat map of every target token. Show it with
    ``.render()`` (notebook), ``.serve()`` (browser) or ``.export(path)`` (one offline file).

    Args:
        results: An :class:`~intellego.attr.LLMAttributionResult`, a list of them, or a mapping name -> result.
        names: Labels of a list's results ("result N" when ``None``).
        title: Shown in the page header.

    Returns:
        An :class:`AttributionVisualizer` whose session holds the results and no model (nothing to fetch).

    Example:
        >>> import tempfile, pathlib
        >>> from intellego.attr import LLMAttributionResult
        >>> r = LLMAttributionResult(input_tokens=["ann", "likes"], output_tokens=["red", "apples"],
        ...                          seq_attr=[2.0, -1.0], token_attr=[[1.5, -0.5], [0.5, -0.5]])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     page = explore_llm({"FeatureAblation": r}).export(pathlib.Path(d) / "llm.html").read_text()
        >>> "FeatureAblation" in page and "apples" in page
        True
    """
    visualizer = AttributionVisualizer.__new__(AttributionVisualizer)
    visualizer.session = Session.for_llm(results, names, title=title)
    visualizer._server = None
    return visualizer
