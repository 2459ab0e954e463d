"""Parameter descriptions written once and shared by the docstrings of every method."""

INPUTS = """inputs: a tensor, or a tuple of tensors, whose first dimension is the batch. The result has the
            same structure and shapes."""
BASELINES = """baselines: reference inputs. None (zeros), a number, a tensor of the input's shape or with a
            batch of one, or a tuple of those for tuple inputs."""
TARGET = """target: which output to explain. None when the model returns one value per example; an int or a
            tuple indexing each example's output; a list or tensor with one index per example; or a callable
            ``output -> (N,) scores``."""
ARGS = """additional_forward_args: extra arguments passed after the inputs. Tensors whose first dimension is
            the batch follow their examples through internal batches; anything else is passed as is."""
MEMORY = """memory_budget: keyword-only; bytes of autograd state one internal batch may use. By default the
            chunk size is measured and fitted to 64 MiB on CPU (half the free memory on a GPU). Results do not
            depend on it."""
GENERATOR = """generator: keyword-only ``torch.Generator`` for reproducible sampling (default: torch's global RNG)."""
FEATURE_MASK = """feature_mask: integer feature ids per input tensor (a tensor, or a tuple with one per input), of
            the input's shape or broadcastable to it (first dimension 1 or the batch). Elements with the same id
            are perturbed together; the same id in two tensors is one feature. Ids must be 0 .. n - 1 without
            gaps. None: every scalar is its own feature."""
PERTURBATIONS_PER_EVAL = """perturbations_per_eval: at most this many perturbed copies of the batch go through the model
            in one call (on CPU, fewer when a call's largest activation would outgrow the cache rule, which
            is faster). None (the default, unlike Captum's 1) sizes calls automatically under
            ``memory_budget``; results do not depend on it. Must be 1 (or None) when the model returns one
            value per batch."""
SHOW_PROGRESS = """show_progress: show a progress bar over model calls (tqdm when installed)."""


def fill_docs(*classes: type) -> None:
    """Fill the ``{NAME}`` fields of each class's ``attribute`` docstring with the descriptions above.

    Example:
        >>> class Demo:
        ...     def attribute(self):
        ...         '''Args: {SHOW_PROGRESS}'''
        >>> fill_docs(Demo)
        >>> Demo.attribute.__doc__.startswith("Args: show_progress")
        True
    """
    fields = {k: v for k, v in globals().items() if k.isupper()}
    for cls in classes:
        fn = cls.__dict__["attribute"]
        if fn.__doc__:
            fn.__doc__ = fn.__doc__.format(**fields)
