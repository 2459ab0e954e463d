"""The shared argument descriptions: one text per argument that several classes or functions take.

Each value is ``"name: description"``, as it appears in an ``Args:`` section; :mod:`intellego._docs` puts them
into docstrings (a line holding only ``{KEY}``, or :func:`~intellego._docs.add_shared_args`). A table of data:
add a text here once instead of writing the same paragraph in several docstrings.

Example:
    >>> SHARED["SHOW_PROGRESS"]
    'show_progress: Show a progress bar over the model calls (tqdm when installed).'
"""

from __future__ import annotations

__all__ = ["SHARED"]

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
    "perturbed together; the same id in two tensors is one feature. Ids run 0 .. n - 1 without gaps (FeatureAblation "
    "takes any ids, as Captum does). None: "
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
    # Lime (intellego.attr.lime) and its interpretable linear models (intellego.attr.linear_models)
    "INTERPRETABLE_MODEL": "interpretable_model: The surrogate fitted to the samples: any object with ``fit`` "
    "(scikit-learn's ``fit(X, y, sample_weight)`` or Captum's ``fit(dataloader)``) and ``representation()`` (its "
    "coefficients), such as :class:`~intellego.attr.Lasso` or :class:`~intellego.attr.SkLearnLasso`.",
    "SIMILARITY_FUNC": "similarity_func: ``f(original_input, perturbed_input, interpretable_sample, **kwargs)`` "
    "-> the weight of a sample in the surrogate's fit (see "
    ":func:`~intellego.attr.get_exp_kernel_similarity_function`).",
    "PERTURB_FUNC": "perturb_func: ``f(original_input, **kwargs)`` -> one sample, or a generator function that "
    "yields samples; ``kwargs`` are those of ``attribute``.",
    "FIT_INTERCEPT": "fit_intercept: Fit an unpenalised intercept (False: the fit goes through the origin).",
    "SKLEARN_KWARGS": "**kwargs: scikit-learn's arguments of the model (``alpha``, ``fit_intercept``, "
    "``max_iter``, ``tol``, as the torch solver takes them); options that only steer scikit-learn's solver "
    "(``copy_X``, ``selection``, ...) are accepted and ignored, others (``positive``) raise.",
    # running statistics (intellego.attr.summarizer)
    "STAT_NAME": "name: The statistic's key in a summary (default: made from the class name and parameters).",
    "STAT_ORDER": "order: The divisor is ``n - order``: 0 for the population statistic, 1 for the sample "
    "(unbiased) one.",
    "STATS": "stats: The statistics to show in ``summary``, as :class:`~intellego.attr.Stat` objects (e.g. "
    "``CommonStats()``); the statistics they need are tracked too, once.",
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
    "INF_INPUTS": "inputs: The examples to score (the test examples; for self influence, the examples scored "
    "against themselves): a batch ``(*features, labels)`` like the training batches, or a ``DataLoader`` of them.",
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
