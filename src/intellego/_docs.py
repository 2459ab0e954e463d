"""Shared argument descriptions, written once (the table :data:`SHARED`, in ``_doc_texts.py``), and
:func:`fill_docs`, which puts them into docstrings.

A docstring line that holds only ``{NAME}`` (a key of :data:`SHARED`) becomes that argument's description,
wrapped at the line's indentation, so every class documents ``inputs``, ``target``, ``baselines`` ... with the
same words. Every :class:`~intellego.attr.Attribution` subclass is filled when it is defined; other modules
call ``fill_docs(obj, ...)`` or use it as a decorator. Lines with other braces are left alone.

Example:
    >>> def f(inputs, target=None):
    ...     '''Demo.
    ...
    ...     Args:
    ...         {INPUTS}
    ...     '''
    >>> "inputs: The examples to explain" in fill_docs(f).__doc__
    True
"""

from __future__ import annotations

import inspect
import re
import textwrap
from typing import Any, TypeVar

from ._doc_texts import SHARED

__all__ = ["SHARED", "AUTO", "INFLUENCE", "INFLUENCE_RETURNS", "fill_docs", "expand", "add_shared_args"]

_T = TypeVar("_T")

# Parameters of the attribution classes that get their shared text when a docstring leaves them out
# (add_shared_args); other modules name their placeholders explicitly.
AUTO: dict[str, str] = {name: name.upper() for name in (
    "forward_func", "multiply_by_inputs", "layer", "device_ids", "inputs", "baselines", "target",
    "additional_forward_args", "n_steps", "method", "internal_batch_size", "return_convergence_delta",
    "perturbations_per_eval", "feature_mask", "show_progress", "n_samples", "stdevs", "neuron_selector",
    "attribute_to_layer_input", "layer_baselines", "targets", "generator", "memory_budget", "interpretable_model",
    "similarity_func", "perturb_func")}

_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)\{(?P<name>[A-Z_]+)\}[ \t]*$", re.MULTILINE)


def expand(doc: str, width: int = 116) -> str:
    """``doc`` with every line that is only ``{NAME}`` replaced by ``SHARED[NAME]``, wrapped at its indentation.

    Args:
        doc: A docstring.
        width: Line width of the wrapped descriptions.

    Returns:
        The docstring with the shared descriptions filled in.

    Raises:
        KeyError: A placeholder names no shared description.

    Example:
        >>> print(expand("Args:\\n    {SHOW_PROGRESS}"))
        Args:
            show_progress: Show a progress bar over the model calls (tqdm when installed).
    """

    def one(match: re.Match[str]) -> str:
        indent = match["indent"]
        text = SHARED[match["name"]]
        return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent + "    ",
                             break_long_words=False, break_on_hyphens=False)

    return _PLACEHOLDER.sub(one, doc)


_ARGS_HEADER = ("Args:", "Arguments:", "Parameters:")
_SECTION = re.compile(r"^(Returns|Yields|Raises|Example|Examples|Note|Notes|Attributes|Warning|Warnings):\s*$")
_ENTRY = re.compile(r"^    \**([\w*][\w*, ]*?)(?: \([^)]*\))?:(\s|$)")


def _entry(name: str, names: dict[str, str], width: int = 116) -> str:
    return textwrap.fill(SHARED[names[name]], width, initial_indent="    ", subsequent_indent="        ",
                         break_long_words=False, break_on_hyphens=False)


def _with_args(doc: str, names: list[str], keys: dict[str, str]) -> str:
    """``doc`` (cleaned) with an Args entry for each of ``names`` that it does not document yet."""
    lines = inspect.cleandoc(doc).splitlines()
    start = next((i for i, line in enumerate(lines) if line in _ARGS_HEADER), None)
    documented: set[str] = set()
    end = len(lines)
    if start is not None:
        end = start + 1
        while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
            end += 1
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        for line in lines[start + 1:end]:
            match = _ENTRY.match(line)
            if match:
                documented.update(n.strip().lstrip("*") for n in match[1].split(","))
    missing = [n for n in names if n not in documented]
    if not missing:
        return doc
    entries = [_entry(n, keys) for n in missing]
    if start is not None:
        lines[end:end] = entries
    else:
        at = next((i for i, line in enumerate(lines) if _SECTION.match(line)), None)
        if at is None:
            lines += ["", "Args:", *entries]
        else:
            lines[at:at] = ["Args:", *entries, ""]
    return "\n".join(lines) + "\n"


def _parameters(fn: Any, keys: dict[str, str]) -> list[str]:
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []
    return [n for n in names if n in keys]


def _set_doc(fn: Any, doc: str) -> None:
    while fn is not None:  # a wrapper and what it wraps
        fn.__doc__ = doc
        fn = getattr(fn, "__wrapped__", None)


# The influence classes' arguments (intellego/influence/__init__.py applies them to every class it exports).
INFLUENCE: dict[str, str] = {
    "model": "INF_MODEL", "train_dataset": "TRAIN_DATASET", "checkpoint": "CHECKPOINT", "checkpoints": "CHECKPOINTS",
    "checkpoints_load_func": "CHECKPOINTS_LOAD_FUNC", "layers": "INF_LAYERS", "loss_fn": "LOSS_FN",
    "batch_size": "INF_BATCH_SIZE", "hessian_dataset": "HESSIAN_DATASET", "test_loss_fn": "TEST_LOSS_FN",
    "sample_wise_grads_per_batch": "SAMPLE_WISE_GRADS_PER_BATCH", "memory_budget": "MEMORY_BUDGET",
    "show_progress": "SHOW_PROGRESS", "generator": "GENERATOR", "inputs": "INF_INPUTS", "k": "K",
    "proponents": "PROPONENTS", "inputs_dataset": "INPUTS_DATASET",
    "outer_loop_by_checkpoints": "OUTER_LOOP_BY_CHECKPOINTS", "final_fc_layer": "FINAL_FC_LAYER",
    "vectorize": "VECTORIZE", "aggregate": "AGGREGATE"}
INFLUENCE_RETURNS = {"influence": "INF_RETURNS", "self_influence": "SELF_RETURNS"}


def _with_returns(doc: str, key: str) -> str:
    if re.search(r"^\s*Returns:\s*$", doc, re.M):
        return doc
    lines = inspect.cleandoc(doc).splitlines()
    body = textwrap.fill(SHARED[key], 116, initial_indent="    ", subsequent_indent="    ").splitlines()
    at = next((i for i, line in enumerate(lines) if line in ("Example:", "Examples:")), len(lines))
    lines[at:at] = ([""] if at == len(lines) else []) + ["Returns:", *body] + ([""] if at < len(lines) else [])
    return "\n".join(lines) + "\n"


def add_shared_args(cls: type, names: dict[str, str] | None = None, returns: dict[str, str] | None = None) -> type:
    """Document the shared arguments that ``cls``'s docstrings leave out, with the texts of :data:`SHARED`.

    Constructor arguments go to the class docstring's Args section, ``attribute``'s to its own; entries
    already there are kept. Called for every :class:`~intellego.attr.Attribution` subclass when it is defined.

    Args:
        cls: The class; its constructor's arguments and those of its own methods named in ``returns`` (default:
            ``attribute``) are read.
        names: Argument name -> key of :data:`SHARED` (default: :data:`AUTO`, the attribution arguments).
        returns: Method name -> key of :data:`SHARED` of its Returns section, added where it has none
            (default: ``attribute`` only gets Args).

    Returns:
        ``cls``, with completed docstrings.

    Example:
        >>> class Demo:
        ...     "A method."
        ...     def __init__(self, forward_func): ...
        ...     def attribute(self, inputs, target=None):
        ...         "Attributions.\\n\\nReturns:\\n    A tensor.\\n"
        >>> print(add_shared_args(Demo).attribute.__doc__[:56])
        Attributions.
        <BLANKLINE>
        Args:
            inputs: The examples to explain
        >>> "forward_func: The model" in Demo.__doc__
        True
    """
    names = AUTO if names is None else names
    init = inspect.getattr_static(cls, "__init__")  # the constructor as defined, inherited or not
    if cls.__doc__ and init is not object.__init__:
        cls.__doc__ = _with_args(cls.__doc__, _parameters(init, names), names)
    for name in (returns or {"attribute": ""}):
        method = cls.__dict__.get(name)
        if callable(method) and method.__doc__:
            doc = _with_args(method.__doc__, _parameters(method, names), names)
            _set_doc(method, _with_returns(doc, returns[name]) if returns else doc)
    return cls


def _fill_function(fn: Any) -> None:
    while fn is not None:  # a wrapper and what it wraps (functools.wraps copied the unfilled text)
        if isinstance(getattr(fn, "__doc__", None), str):
            try:
                fn.__doc__ = expand(fn.__doc__)
            except AttributeError:  # builtins
                return
        fn = getattr(fn, "__wrapped__", None)


def fill_docs(*objects: _T) -> _T:
    """Fill the shared-argument placeholders of functions, and of classes with their own methods.

    Usable as a decorator (it returns its first argument) or called once at the end of a module.

    Args:
        *objects: Functions and classes; for a class, its docstring and the docstrings of the functions,
            static/class methods and properties defined in its body.

    Returns:
        The first object, unchanged apart from its docstrings.

    Example:
        >>> @fill_docs
        ... class Demo:
        ...     def attribute(self, target=None):
        ...         '''Args:
        ...             {TARGET}
        ...         '''
        >>> "target: Which output to explain" in Demo.attribute.__doc__
        True
    """
    for obj in objects:
        if isinstance(obj, type):
            if isinstance(obj.__doc__, str):
                obj.__doc__ = expand(obj.__doc__)
            for member in vars(obj).values():
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                elif isinstance(member, property):
                    member = member.fget
                if callable(member):
                    _fill_function(member)
        else:
            _fill_function(obj)
    return objects[0]
