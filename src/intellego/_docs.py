"""Shared argument descriptions, written once, and :func:`fill_docs`, which puts them into docstrings.

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

__all__ = ["SHARED", "AUTO", "INFLUENCE", "INFLUENCE_RETURNS", "fill_docs", "expand", "add_shared_args"]

_T = TypeVar("_T")

SHARED: dict[str, str] = {
    # what every method is given
    "FORWARD_FUNC": "forward_func: The model (an ``nn.Module``) or any callable from the inputs (and the "
    "additional arguments) to an output tensor of shape ``(N, ...)``, one row per example; it may also return "
    "one value for the whole batch.",
    "MULTIPLY_BY_INPUTS": "multiply_by_inputs: Multiply the averaged gradients by ``inputs - baselines`` "
    "(global attribution, the default) or return them as they are (local attribution).",
    "INPUTS": "inputs: The examples to explain: a tensor whose first dimension is the batch ``N``, or a tuple of "
    "such tensors for a model with several inputs (all with the same ``N``). Attributions come back with the "
    "same structure and shapes.",
    "BASELINES": "baselines: The reference that ``inputs`` are compared with (what \"absent\" means): None for "
    "zeros; a number; a tensor shaped like the input, or with a batch of one (shared by every example); or, for "
    "tuple inputs, a tuple with one of those per input tensor.",
    "TARGET": "target: Which output to explain, for models that return several values per example: an int "
    "(the same column for every example), a tuple indexing each example's output, a list or ``(N,)`` tensor "
    "with one index per example, or a callable ``output -> (N,) scores``. None when the model returns one value "
    "per example.",
    "ADDITIONAL_FORWARD_ARGS": "additional_forward_args: Further arguments of the model, passed after the inputs "
    "in every call (``forward_func(*inputs, *additional_forward_args)``) and not attributed: an object or a "
    "tuple. Tensors whose first dimension is ``N`` follow their examples when batches are split or expanded; "
    "anything else is passed unchanged.",
    "N_STEPS": "n_steps: Number of points on the path from the baselines to the inputs at which gradients are "
    "taken (more steps: a smaller convergence delta, more model calls).",
    "METHOD": "method: The integration rule along the path: ``gausslegendre`` (the default, exact for "
    "polynomials of degree below twice n_steps), ``riemann_trapezoid``, ``riemann_left``, ``riemann_right`` or "
    "``riemann_middle``.",
    "INTERNAL_BATCH_SIZE": "internal_batch_size: At most this many rows (examples x steps) per model call; None "
    "sizes the calls from ``memory_budget``. Results do not depend on it.",
    "RETURN_CONVERGENCE_DELTA": "return_convergence_delta: Also return, per example, ``sum(attributions) - "
    "(f(inputs) - f(baselines))``: how far the attributions are from adding up to the output difference.",
    "PERTURBATIONS_PER_EVAL": "perturbations_per_eval: At most this many perturbed copies of the batch go "
    "through the model in one call (on CPU, fewer when a call's largest activation would outgrow the cache rule, "
    "which is faster). None (the default, unlike Captum's 1) sizes calls under ``memory_budget``; results do "
    "not depend on it. Must be 1 (or None) when the model returns one value per batch.",
    "FEATURE_MASK": "feature_mask: Integer feature ids per input tensor (a tensor, or a tuple with one per input) "
    "of the input's shape or broadcastable to it (first dimension 1 or ``N``). Elements with the same id are "
    "perturbed together; the same id in two tensors is one feature. Ids run 0 .. n - 1 without gaps. None: "
    "every scalar is its own feature.",
    "SHOW_PROGRESS": "show_progress: Show a progress bar over the model calls (tqdm when installed).",
    "MEMORY_BUDGET": "memory_budget: Keyword-only: bytes that one internal batch may use. By default the chunk "
    "size is measured and fitted to 64 MiB on CPU (half the free memory on a GPU). Results do not depend on it.",
    "GENERATOR": "generator: Keyword-only ``torch.Generator`` for reproducible random draws (default: torch's "
    "global random number generator).",
    "TARGETS": "targets: Keyword-only, beyond Captum: a list of targets attributed in one batched call; every "
    "tensor of the result gets a leading dimension of size ``len(targets)``.",
    "N_SAMPLES": "n_samples: Number of random samples drawn per example.",
    "STDEVS": "stdevs: Standard deviation of the Gaussian noise added to each sample (a float, or one per input "
    "tensor).",
    # layer and neuron methods
    "LAYER": "layer: The module whose input or output is attributed (a submodule of the model); its forward "
    "must run in every model call.",
    "DEVICE_IDS": "device_ids: Only for models wrapped in ``nn.DataParallel``, as in Captum; ignored otherwise.",
    "ATTRIBUTE_TO_LAYER_INPUT": "attribute_to_layer_input: Attribute to the layer's input instead of its output.",
    "NEURON_SELECTOR": "neuron_selector: Which neuron of the layer to explain: an int or a tuple of ints (and "
    "slices, summed) indexing the layer's output without the batch dimension, a callable "
    "``layer_output -> (N,) values``, or a list of those (one result per selector, in one batched call).",
    "LAYER_BASELINES": "layer_baselines: Reference values of the layer's input or output, shaped like it "
    "(without or with a batch of one), or None for zeros.",
    # images (intellego.viz)
    "VIZ_METHOD": "method: How to draw: ``heat_map``, ``blended_heat_map`` (over a grey copy of the image), "
    "``original_image``, ``masked_image`` (the image times the normalised map) or ``alpha_scaling`` (the map as "
    "the image's opacity).",
    "VIZ_ATTR": "attr: Attributions of one image: ``(H, W)`` or with a channel axis (summed); NumPy arrays are "
    "read channel-last, tensors in either layout.",
    "ORIGINAL_IMAGE": "original_image: The image, same height and width, values in ``[0, 1]`` or ``[0, 255]``; "
    "needed by every method but ``heat_map``.",
    "CHANNELS_LAST": "channels_last: Keyword-only: where the channel axis of a 3-d array is; None infers it "
    "(see :func:`~intellego.viz.as_image_array`).",
    "SIGN": "sign: Which part of the map to show: ``all`` (red negative, green positive), ``positive``, "
    "``negative`` or ``absolute_value``.",
    "OUTLIER_PERC": "outlier_perc: Percent of the total magnitude, held by the largest values, that is clipped "
    "before normalising, so that a few extreme values do not wash out the rest.",
    "CMAP": "cmap: Matplotlib colour map (or its name) for the heat maps; None picks one for ``sign``.",
    "ALPHA_OVERLAY": "alpha_overlay: Opacity of the heat map over the image in ``blended_heat_map``.",
    "SHOW_COLORBAR": "show_colorbar: Add a colour bar.",
    "TITLE": "title: Title of the figure or axis.",
    "FIG_SIZE": "fig_size: Size of a new figure in inches, ``(width, height)``.",
    "USE_PYPLOT": "use_pyplot: Create the figure through pyplot (and show it on interactive backends); False "
    "returns a bare ``matplotlib.figure.Figure`` that is never shown.",
    "PLT_FIG_AXIS": "plt_fig_axis: A ``(figure, axis)`` pair to draw on instead of a new figure.",
    "PATH": "path: Also save the figure there; the suffix picks the format (``.png``, ``.svg``, ``.pdf``, ...).",
    # explorer features (intellego.insights)
    "FEATURE_NAME": "name: Label shown in the explorer.",
    "BASELINE_TRANSFORMS": "baseline_transforms: Callables mapping a transformed sample to a baseline of the same "
    "shape; each makes one baseline (methods that take a baseline distribution use them all, the others the "
    "first). Without any, the baseline is zero.",
    "INPUT_TRANSFORMS": "input_transforms: Callables applied in order to each raw sample to make the model's input.",
    "VISUALIZATION_TRANSFORM": "visualization_transform: Callable mapping a raw sample to what is displayed.",
    # stochastic gates (intellego.module)
    "N_GATES": "n_gates: Number of gates.",
    "GATE_MASK": "mask: Optional integer tensor broadcastable to the input, holding gate ids ``0 .. n_gates - 1``: "
    "elements with the same id share a gate. Every id must be used. Without a mask each element of an example "
    "(all dimensions after the batch dimension) has its own gate.",
    "REG_WEIGHT": "reg_weight: Factor on the L0 penalty.",
    "REG_REDUCTION": "reg_reduction: ``\"sum\"``, ``\"mean\"`` or ``\"none\"`` over the gates' active "
    "probabilities.",
    "GATE_GENERATOR": "generator: Keyword-only ``torch.Generator`` for the initial parameters and every draw; "
    "None uses torch's global generator, exactly as Captum does.",
    # training-data attribution (intellego.influence)
    "INF_MODEL": "model: The trained model (never changed: checkpoints are loaded into a private copy).",
    "TRAIN_DATASET": "train_dataset: The training examples to rank: a map-style ``Dataset`` or a ``DataLoader`` "
    "yielding ``(inputs..., labels)`` batches.",
    "CHECKPOINT": "checkpoint: A state dict or a path to one, loaded into a private copy of the model; None uses "
    "the model as it is.",
    "CHECKPOINTS_LOAD_FUNC": "checkpoints_load_func: ``f(model, checkpoint)`` that loads a checkpoint into a "
    "model (default: ``load_state_dict`` of the checkpoint or of the file it names).",
    "INF_LAYERS": "layers: Names of the modules whose parameters are used (default: every trainable parameter).",
    "LOSS_FN": "loss_fn: ``loss(outputs, labels)`` per example (``reduction=\"none\"``) or summed (then "
    "``sample_wise_grads_per_batch`` says how to split it); default cross-entropy.",
    "INF_BATCH_SIZE": "batch_size: Training examples per batch when ``train_dataset`` is not already a "
    "``DataLoader``.",
    "HESSIAN_DATASET": "hessian_dataset: The examples the curvature is estimated on (default: ``train_dataset``).",
    "TEST_LOSS_FN": "test_loss_fn: The loss of the test examples whose influence is asked for (default: "
    "``loss_fn``).",
    "SAMPLE_WISE_GRADS_PER_BATCH": "sample_wise_grads_per_batch: Captum's flag for a loss summed over the "
    "batch; per-example gradients are computed either way.",
    # faithfulness curves (intellego.metrics)
    "METRIC_INPUTS": "inputs: The examples the attributions explain: a tensor or a tuple of tensors, batch first.",
    "METRIC_ATTRIBUTIONS": "attributions: Attributions shaped like ``inputs``; a feature's relevance is the sum "
    "over its values.",
    "CURVE_BASELINES": "baselines: The values removed features take (None: zeros; a number, a tensor or a tuple).",
    "CURVE_N_STEPS": "n_steps: Number of steps from no feature to all features (``n_steps + 1`` points).",
    "CURVE_FEATURE_MASK": "feature_mask: Group ids broadcastable to each input (e.g. ``(1, 1, H, W)`` ids to move "
    "whole pixels).",
    # localization scores (intellego.metrics)
    "LOC_ATTRIBUTIONS": "attributions: ``(N, ...)`` attributions of one input tensor (or a tuple holding one).",
    "LOC_MASKS": "masks: Ground-truth object masks, boolean or 0/1: shaped like the attributions, or with size-1 "
    "dimensions where the attributions are summed (``(N, 1, H, W)`` or ``(N, H, W)`` for ``(N, C, H, W)`` "
    "images); every example needs at least one true value.",
    "LOC_ABSOLUTE": "absolute: Score the absolute attributions instead of the signed ones.",
    "CHECKPOINTS": "checkpoints: The checkpoints to sum over: a folder of saved state dicts, a list of paths or "
    "of state dicts.",
    "INF_INPUTS": "inputs: The test examples: a batch ``(*features, labels)`` like the training batches, or a "
    "``DataLoader`` of them.",
    "K": "k: With an int, return only the ``k`` most influential training examples per test example.",
    "PROPONENTS": "proponents: With ``k``: the highest scores (proponents) or the lowest (opponents).",
    "INPUTS_DATASET": "inputs_dataset: The examples whose self influence is asked for: a batch or a "
    "``DataLoader`` (default: the training set).",
    "OUTER_LOOP_BY_CHECKPOINTS": "outer_loop_by_checkpoints: Accepted for Captum compatibility; the result is the "
    "same either way.",
    "FINAL_FC_LAYER": "final_fc_layer: The model's last linear layer (the module or its name in "
    "``model.named_modules()``), whose weight alone is used.",
    "VECTORIZE": "vectorize: Accepted for Captum compatibility and unused (per-example gradients are computed in "
    "closed form).",
    "AGGREGATE": "aggregate: Sum over the test examples: one row of scores for the whole set of inputs.",
    "INF_RETURNS": "A tensor ``(n_test, n_train)`` of influence scores when ``k`` is None, else a "
    "``KMostInfluentialResults(indices, influence_scores)``, each ``(n_test, k)``.",
    "SELF_RETURNS": "A tensor with the self influence of every example, in order.",
    # concepts (intellego.concept)
    "CONCEPT_MODEL_ID": "model_id: Name of the model's folder under ``save_path``; CAVs of different models "
    "kept in one folder need different ids.",
    "CAV_SAVE_PATH": "save_path: A folder where CAVs are saved and looked up; None (the default, unlike Captum's "
    "``\"./cav/\"``) keeps them in memory only and never writes to disk.",
    "EXPERIMENTAL_SETS": "experimental_sets: A list of experimental sets, each a list of at least two "
    ":class:`~intellego.concept.Concept` objects whose activations one classifier tells apart (typically a "
    "concept and a random concept). A set's key in the results is its ids joined by ``-``.",
    "TCAV_MAGNITUDE": "magnitude: Keyword-only: ``\"ratio\"`` (the default: Captum's documented formula "
    "``sum(|s| * (s > 0)) / sum(|s|)`` over the directional derivatives ``s``) or ``\"mean\"`` (their plain "
    "mean, Captum 0.9's numbers).",
    "CAV_GENERATOR": "generator: ``torch.Generator`` for the random train/test split of each concept's "
    "examples; None uses a fixed seed (never torch's global generator), so reruns give the same CAVs.",
    # attacks (intellego.robust)
    "LOSS_FUNC": "loss_func: ``loss_func(outputs, target) -> loss`` (per example or summed) that the attack "
    "increases (decreases when targeted). Default: the negative log-likelihood of the target, read as "
    "probabilities when all outputs are in ``[0, 1]`` (Captum's ``-log(outputs[target])``) and as logits "
    "otherwise (``-log_softmax(outputs, 1)[target]``; Captum takes the log of the raw logits there, which is "
    "undefined for negative ones).",
    "ATTACK_INPUTS": "inputs: The examples to perturb: a tensor whose first dimension is the batch, or a tuple of "
    "such tensors; the perturbed inputs come back with the same structure.",
    "ATTACK_TARGET": "target: The true labels (untargeted) or the labels to reach (``targeted=True``), in any "
    "form the loss accepts (for the default loss: an int, a tuple, a list or a tensor of indices).",
    "TARGETED": "targeted: Move towards ``target`` (decrease the loss) instead of away from it.",
    "ATTACK_MASK": "mask: Zeros and ones (or weights) broadcastable to each input, or a tuple with one per input; "
    "only elements where it is non-zero move. None: every element.",
    "LOWER_BOUND": "lower_bound: Smallest value an input may take (a number or a tensor); the perturbed inputs "
    "are clamped to it.",
    "UPPER_BOUND": "upper_bound: Largest value an input may take (a number or a tensor).",
    "PREPROC_FN": "preproc_fn: Optional callable mapping the (raw) inputs to what the model is given, e.g. a "
    "normalisation; None gives the model the inputs themselves.",
    "APPLY_BEFORE_PREPROC": "apply_before_preproc: Attack the raw inputs and preprocess the result (True), or "
    "attack the preprocessed inputs (False).",
    "NUM_ATTEMPTS": "num_attempts: How many times a random attack is repeated on each input; more than 1 only "
    "makes sense for attacks that draw random numbers.",
}

# Parameters of the attribution classes that get their shared text when a docstring leaves them out
# (add_shared_args); other modules name their placeholders explicitly.
AUTO: dict[str, str] = {name: name.upper() for name in (
    "forward_func", "multiply_by_inputs", "layer", "device_ids", "inputs", "baselines", "target",
    "additional_forward_args", "n_steps", "method", "internal_batch_size", "return_convergence_delta",
    "perturbations_per_eval", "feature_mask", "show_progress", "n_samples", "stdevs", "neuron_selector",
    "attribute_to_layer_input", "layer_baselines", "targets", "generator", "memory_budget")}

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
