"""TCAV: Testing with Concept Activation Vectors (Kim et al., 2018), with Captum's API.

For each experimental set (a list of concepts) and layer, a classifier separates the concepts' layer activations;
its weight rows are the CAVs. The TCAV score of a concept is computed from the directional derivatives of the
model's target output along the concept's CAV, one per input example: ``sign_count`` is the share of positive
ones, ``magnitude`` the share of their absolute mass that is positive. :meth:`TCAV.significance` tests a concept
against random concepts with a t-test, as in the paper.

Differences from Captum (see ``docs/concept.md``): the default classifier is a torch logistic regression solved
exactly (seeded split, bit-identical reruns, no scikit-learn); CAVs and activations are cached in memory and
written to disk only when ``save_path`` is given; ``magnitude`` follows Captum's documented formula
(``magnitude="mean"`` gives Captum 0.9's numbers); all layers share one forward/backward pass over the inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .._docs import fill_docs
from ..attr import LayerGradientXActivation
from ..core.grad import ForwardSpec
from ..core.hooks import keep_buffers
from ..engines.layers import layer_eval, restructure, sites_of
from ..engines.perturb_eval import progress_bar
from ..errors import IntellegoError, describe, require
from ._checks import SetupChecks
from ._inputs import as_call
from ._scores import MAGNITUDES, POOLS, flat_rows, tcav_scores
from .cav import CAV
from .classifier import DefaultClassifier, FastCAVClassifier
from .concept import Concept, ConceptInterpreter, concepts_to_str
from .significance import ConceptSignificance, random_concept_test, significance_table

__all__ = ["TCAV", "ConceptSignificance", "significance_table"]

Scores = dict[str, dict[str, dict[str, Tensor]]]


@fill_docs
class TCAV(ConceptInterpreter, SetupChecks):
    """TCAV scores of concepts for a model's predictions, at one or more layers (Captum's ``TCAV``).

    Args:
        model: the model; ``layers`` name its submodules (``dict(model.named_modules())`` keys) or are modules.
        layers: a layer name or a list of them.
        {CONCEPT_MODEL_ID}
        classifier: ``None`` or ``"default"`` (:class:`DefaultClassifier`), ``"fastcav"``
            (:class:`FastCAVClassifier`), or any object with Captum's ``Classifier`` methods.
        layer_attr_method: the layer attribution giving the sensitivities (default: layer gradients,
            ``LayerGradientXActivation(model, layers, multiply_by_inputs=False)``); it is copied and pointed at
            each layer in turn, the instance passed in is never changed.
        attribute_to_layer_input: use the layers' inputs instead of their outputs.
        {CAV_SAVE_PATH}
        pool: ``None`` flattens a layer's activations (Captum); ``"mean"`` averages them over every dimension but
            the batch and ``feature_dim``, so concepts whose activations differ in length (token sequences,
            image sizes) share one CAV space. The sensitivities are then summed over the same dimensions: the
            score is the derivative of the output when every position moves along the CAV.
        feature_dim: the dimension kept by ``pool="mean"`` (``-1``: features last, as in token models;
            ``1`` for channels-first conv layers).
        generator: seeds the default classifier's train/test split (a fixed seed when ``None``).
        **classifier_kwargs: passed to ``classifier.train_and_eval`` (e.g. ``test_split_ratio``).

    Example:
        >>> import torch
        >>> from intellego.concept import Concept
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> up = Concept(0, "up", [torch.randn(16, 4) + 2])
        >>> rand = Concept(1, "random", [torch.randn(16, 4)])
        >>> tcav = TCAV(model, ["0"])
        >>> scores = tcav.interpret(torch.randn(8, 4), [[up, rand]], target=1)
        >>> sorted(scores["0-1"]["0"])
        ['magnitude', 'sign_count']
        >>> float(scores["0-1"]["0"]["sign_count"].sum())
        1.0
    """

    def __init__(self, model: nn.Module, layers: str | nn.Module | Sequence[str | nn.Module],
                 model_id: str = "default_model_id", classifier: Any = None, layer_attr_method: Any = None,
                 attribute_to_layer_input: bool = False, save_path: str | None = None, *,
                 pool: str | None = None, feature_dim: int = -1, generator: torch.Generator | None = None,
                 **classifier_kwargs: Any) -> None:
        require(isinstance(model, nn.Module), f"model must be a torch.nn.Module, got {describe(model)}")
        super().__init__(model)
        self.layers, self._modules = self._resolve_layers(layers)
        require(isinstance(model_id, str) and bool(model_id) and "/" not in model_id and "\\" not in model_id,
                f"model_id must be a non-empty name without path separators, got {model_id!r}")
        require(pool in POOLS, f"pool must be one of {POOLS}, got {pool!r}")
        require(isinstance(feature_dim, int), f"feature_dim must be an int, got {describe(feature_dim)}")
        require(save_path is None or isinstance(save_path, (str, bytes)) or hasattr(save_path, "__fspath__"),
                f"save_path must be a path or None, got {describe(save_path)}")
        self.model_id = model_id
        self.classifier = self._resolve_classifier(classifier, generator)
        self.classifier_kwargs = classifier_kwargs
        require(layer_attr_method is None or callable(getattr(layer_attr_method, "attribute", None)),
                f"layer_attr_method must be a layer attribution instance, got {describe(layer_attr_method)}")
        self._default_attr = layer_attr_method is None
        self.layer_attr_method = (LayerGradientXActivation(model, list(self._modules), multiply_by_inputs=False)
                                  if layer_attr_method is None else layer_attr_method)
        self.attribute_to_layer_input = bool(attribute_to_layer_input)
        self.save_path = None if save_path is None else str(save_path)
        self.pool, self.feature_dim, self.generator = pool, feature_dim, generator
        self.concepts: set[Concept] = set()
        self.cavs: dict[str, dict[str, CAV]] = {}
        self._activations: dict[int, dict[str, Tensor]] = {}

    # ----------------------------------------------------------------------------------------- activations

    def generate_activation(self, layers: str | list[str], concept: Concept) -> None:
        """Compute and cache ``concept``'s activations at ``layers`` (one forward pass per batch for all layers)."""
        layers = [layers] if isinstance(layers, str) else list(layers)
        names, modules = self._resolve_layers(layers)
        if concept.data_iter is None:
            raise IntellegoError(f"concept {concept!r} has no data_iter to compute activations from")
        rows: list[list[Tensor]] = [[] for _ in names]
        sites = sites_of(modules, self.attribute_to_layer_input)
        for b, batch in enumerate(concept.data_iter):
            forward, xs = as_call(self.model, batch, f"batch {b} of concept {concept!r}")
            if xs[0].shape[0] == 0:
                continue
            # LayerActivation's machinery without its per-call input checks. The whole forward runs: stopping
            # after the layers' known number of calls would silently drop calls when a module runs a
            # data-dependent number of times (a cell looped over tokens)
            with keep_buffers(self.model):
                acts, layout = layer_eval(ForwardSpec.build(forward, None, None, xs[0].shape[0]), sites, xs)
            for i, value in enumerate(restructure(layout, acts, True)):
                rows[i].append(flat_rows(value, self.pool, self.feature_dim).detach())
        require(bool(rows[0]), f"concept {concept!r} is empty: its data_iter yielded no examples")
        store = self._activations.setdefault(concept.id, {})
        for name, parts in zip(names, rows):
            widths = sorted({p.shape[1] for p in parts})
            require(len(widths) == 1, f"concept {concept!r}: activations at layer {name!r} have different sizes "
                    f"across batches ({widths} features after flattening); pass pool='mean' to TCAV to average "
                    "over positions (tokens)")
            store[name] = parts[0] if len(parts) == 1 else torch.cat(parts)

    def generate_activations(self, concept_layers: Mapping[Concept, list[str]]) -> None:
        """Compute and cache the activations of each concept at its listed layers."""
        for concept, layers in concept_layers.items():
            if layers:
                self.generate_activation(layers, concept)

    def generate_all_activations(self) -> None:
        """Compute and cache the activations of every registered concept at every layer."""
        for concept in sorted(self.concepts, key=lambda c: c.id):
            self.generate_activation(self.layers, concept)

    # ----------------------------------------------------------------------------------------- CAVs

    def load_cavs(self, concepts: list[Concept]) -> tuple[list[str], dict[Concept, list[str]]]:
        """Fill the cache from memory or ``save_path`` for one set; return the layers still to train and, per
        concept, the layers whose activations are missing."""
        key = concepts_to_str(concepts)
        todo: list[str] = []
        missing: dict[Concept, list[str]] = {}
        for layer in self.layers:
            if layer not in self.cavs.get(key, {}) and self.save_path is not None:
                cav = CAV.load(self.save_path, self.model_id, concepts, layer)
                if cav is not None:
                    self.cavs.setdefault(key, {})[layer] = cav
            if layer in self.cavs.get(key, {}):
                continue
            todo.append(layer)
            for c in concepts:
                if layer not in self._activations.get(c.id, {}):
                    missing.setdefault(c, []).append(layer)
        return todo, missing

    def _train(self, concepts: list[Concept], layer: str) -> CAV:
        acts = [self._activations[c.id][layer] for c in concepts]
        batches = [(a, torch.full((a.shape[0],), c.id, dtype=torch.long, device=a.device))
                   for a, c in zip(acts, concepts)]
        widths = {x.shape[1] for x, _ in batches}
        require(len(widths) == 1, f"concepts {concepts} have activations of different sizes at layer {layer!r} "
                f"({sorted(widths)} features); pass pool='mean' to TCAV to average over positions (tokens)")
        builtin = isinstance(self.classifier, (DefaultClassifier, FastCAVClassifier))
        loader: Iterable[Any] = batches if builtin else DataLoader(batches, batch_size=None)  # type: ignore[arg-type]
        stats = self.classifier.train_and_eval(loader, **self.classifier_kwargs) or {}
        weights = torch.as_tensor(self.classifier.weights())
        classes = self.classifier.classes()
        classes = [int(c) for c in (classes.tolist() if hasattr(classes, "tolist") else classes)]
        require(weights.dim() == 2 and weights.shape[0] == len(classes) and len(classes) > 0,
                f"the classifier returned weights of shape {tuple(weights.shape)} for classes {classes}; expected "
                "one row per class")
        cav = CAV(concepts, layer, {**stats, "weights": weights.detach(), "classes": classes},
                  self.save_path, self.model_id)
        if self.save_path is not None:
            cav.save()
        return cav

    def compute_cavs(self, experimental_sets: list[list[Concept]], force_train: bool = False,
                     processes: int | None = None, *, show_progress: bool = False) -> dict[str, dict[str, CAV]]:
        """Train (or fetch from the cache / ``save_path``) the CAVs of every set at every layer.

        Args:
            {EXPERIMENTAL_SETS}
            force_train: Retrain (and recompute the concepts' activations) even when CAVs are cached or saved.
            processes: Accepted for Captum compatibility and ignored: training runs in this process.
            show_progress: Keyword-only: show a bar over the experimental sets (tqdm when installed).

        Returns:
            Every CAV computed so far: experimental-set key (e.g. ``"0-1"``) -> layer name -> :class:`CAV`.

        Example:
            >>> import torch
            >>> from intellego.concept import Concept
            >>> model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU())
            >>> sets = [[Concept(0, "a", [torch.rand(6, 3)]), Concept(1, "b", [torch.rand(6, 3)])]]
            >>> cavs = TCAV(model, ["0", "1"]).compute_cavs(sets)
            >>> sorted(cavs["0-1"]), cavs["0-1"]["0"].stats["weights"].shape
            (['0', '1'], torch.Size([2, 3]))
        """
        sets = self._check_sets(experimental_sets)
        self._check_data(sets, force_train)
        if force_train:
            for c in {c for s in sets for c in s}:
                self._activations.pop(c.id, None)
        bar = progress_bar(len(sets), "CAVs", show_progress)
        try:
            for concepts in sets:
                self._compute_set(concepts, force_train)
                bar.update()
        finally:
            bar.close()
        return self.cavs

    def _compute_set(self, concepts: list[Concept], force_train: bool) -> None:
        """Activations (where missing) and CAVs of one experimental set at every layer."""
        key = concepts_to_str(concepts)
        if force_train:
            todo, missing = list(self.layers), {c: [x for x in self.layers if x not in
                                                    self._activations.get(c.id, {})] for c in concepts}
        else:
            todo, missing = self.load_cavs(concepts)
        self.generate_activations(missing)
        for layer in todo:
            self.cavs.setdefault(key, {})[layer] = self._train(concepts, layer)

    # ----------------------------------------------------------------------------------------- scores

    def _sensitivities(self, inputs: Any, target: Any, additional_forward_args: Any,
                       kwargs: dict[str, Any]) -> dict[str, Tensor]:
        """Per layer, one row per input example of layer sensitivities (pooled like the activations)."""
        forward, xs = as_call(self.model, inputs, "inputs")
        require(not isinstance(inputs, Mapping) or additional_forward_args is None,
                "additional_forward_args cannot be combined with dict inputs; put every argument in the dict")
        x_arg = xs if len(xs) > 1 else xs[0]
        args = dict(target=target, additional_forward_args=additional_forward_args,
                    attribute_to_layer_input=self.attribute_to_layer_input, **kwargs)
        if self._default_attr:
            method = LayerGradientXActivation(forward, list(self._modules), multiply_by_inputs=False)
            values = method.attribute(x_arg, **args)
        else:
            values = []
            for module in self._modules:
                method = copy.copy(self.layer_attr_method)
                method.layer = module
                if forward is not self.model:
                    method.forward_func = forward
                values.append(method.attribute(x_arg, **args))
        return {name: flat_rows(v, self.pool, self.feature_dim, reduce="sum").detach()
                for name, v in zip(self.layers, values)}

    def interpret(self, inputs: Any, experimental_sets: list[list[Concept]], target: Any = None,
                  additional_forward_args: Any = None, processes: int | None = None, *, magnitude: str = "ratio",
                  show_progress: bool = False, **kwargs: Any) -> Scores:
        """TCAV scores of every concept of every experimental set at every layer, for the predictions on ``inputs``.

        The inputs' layer sensitivities are computed first, so a bad ``target`` fails before any concept work;
        CAVs not yet cached are trained as by :meth:`compute_cavs`.

        Args:
            inputs: The examples whose predictions are explained: a tensor, a tuple of tensors or a dict of
                tensors (the model is then called as ``model(**inputs)``).
            {EXPERIMENTAL_SETS}
            {TARGET}
            {ADDITIONAL_FORWARD_ARGS}
            processes: Accepted for Captum compatibility and ignored.
            {TCAV_MAGNITUDE}
            show_progress: Keyword-only: show a bar over the CAV trainings.
            **kwargs: Passed to the layer attribution method's ``attribute``.

        Returns:
            ``{set key: {layer: {"sign_count": tensor, "magnitude": tensor}}}``, each tensor with one score per
            concept of the set, in the set's order.

        Example:
            >>> import torch
            >>> from intellego.concept import Concept
            >>> model = torch.nn.Linear(2, 2)
            >>> with torch.no_grad():
            ...     _ = model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
            >>> right = Concept(0, "right", [torch.tensor([[1.0, 0.0], [2.0, 0.1], [3.0, -0.1]])])
            >>> up = Concept(1, "up", [torch.tensor([[0.0, 1.0], [0.1, 2.0], [-0.1, 3.0]])])
            >>> tcav = TCAV(torch.nn.Sequential(model), ["0"], attribute_to_layer_input=True,
            ...             classifier="fastcav", test_split_ratio=0.0)
            >>> scores = tcav.interpret(torch.rand(4, 2), [[right, up]], target=0)
            >>> scores["0-1"]["0"]["sign_count"].tolist()  # output 0 grows along "right", not along "up"
            [1.0, 0.0]
        """
        require("attribute_to_layer_input" not in kwargs, "set attribute_to_layer_input in the TCAV constructor, "
                "so that activations and attributions use the same side of the layer")
        require(magnitude in MAGNITUDES, f"magnitude must be one of {MAGNITUDES}, got {magnitude!r}")
        sets = self._check_sets(experimental_sets)
        self._check_data(sets)
        sens = self._sensitivities(inputs, target, additional_forward_args, kwargs)
        self.compute_cavs(sets, processes=processes, show_progress=show_progress)
        scores: Scores = {}
        for layer, grads in sens.items():
            rows, spans = [], []
            for concepts in sets:
                cav = self.cavs[concepts_to_str(concepts)][layer]
                stats = cav.stats or {}
                weights, classes = torch.as_tensor(stats["weights"]), [int(c) for c in stats["classes"]]
                require(weights.shape[-1] == grads.shape[1],
                        f"layer {layer!r}: the CAVs of set {concepts_to_str(concepts)} have {weights.shape[-1]} "
                        f"features but the inputs' layer values have {grads.shape[1]}; activations of different "
                        "sizes need pool='mean'")
                where = {c: i for i, c in enumerate(classes)}
                missing = [c.id for c in concepts if c.id not in where]
                require(not missing, f"the CAV of set {concepts_to_str(concepts)} at {layer!r} has no row for "
                        f"concept ids {missing} (classes {classes})")
                rows.append(weights[[where[c.id] for c in concepts]].to(grads.device))
                spans.append(len(concepts))
            out = tcav_scores(grads, torch.cat(rows), magnitude)
            start = 0
            for concepts, n in zip(sets, spans):
                part = {k: v[start:start + n] for k, v in out.items()}
                scores.setdefault(concepts_to_str(concepts), {})[layer] = part
                start += n
        return scores

    def significance(self, inputs: Any, concepts: Concept | Sequence[Concept], random_concepts: Sequence[Concept],
                     target: Any = None, additional_forward_args: Any = None, *, score: str = "sign_count",
                     correction: str | None = "bonferroni", alpha: float = 0.05, magnitude: str = "ratio",
                     show_progress: bool = False, **kwargs: Any) -> dict[str, dict[str, ConceptSignificance]]:
        """Is each concept's TCAV score different from chance? The random-concept t-test of the TCAV paper.

        Each concept ``C`` is scored against every random concept ``R_i`` (experimental sets ``[C, R_i]``); the
        null scores come from random-vs-random sets ``[R_i, R_(i+1 mod k)]``. A two-sided Student t-test compares
        the two groups of scores per concept and layer; p-values are corrected over all concept-layer tests
        (``"bonferroni"`` as in the paper, ``"holm"``, or ``None``). Needs at least 3 random concepts (the paper
        uses tens).

        Args:
            inputs: The examples, as for :meth:`interpret`.
            concepts: The concept (or concepts) tested.
            random_concepts: At least 3 random concepts (their ids differ from the tested ones).
            {TARGET}
            {ADDITIONAL_FORWARD_ARGS}
            score: Keyword-only: the TCAV score tested, ``"sign_count"`` or ``"magnitude"``.
            correction: Keyword-only: ``"bonferroni"``, ``"holm"`` or None.
            alpha: Keyword-only: the significance level of the corrected p-values.
            {TCAV_MAGNITUDE}
            show_progress: Keyword-only: show a bar over the CAV trainings.
            **kwargs: Passed to the layer attribution method's ``attribute``.

        Returns:
            ``{str(concept.id): {layer: ConceptSignificance}}``.
        """
        return random_concept_test(self, inputs, concepts, random_concepts, target, additional_forward_args,
                                   score=score, correction=correction, alpha=alpha, magnitude=magnitude,
                                   show_progress=show_progress, **kwargs)
