"""``SimilarityInfluence``: the training examples whose layer activations are most similar to a test example's.

Activations of the source dataset are computed once per object (one batched pass with forward hooks) and kept
in memory; with ``activation_dir`` they are also saved there and, with ``load_src_from_disk``, read back. The
top-k search is exact, over chunks of the source activations.

Example:
    >>> import torch
    >>> from intellego.influence import SimilarityInfluence
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> src = torch.utils.data.TensorDataset(torch.randn(10, 3), torch.zeros(10))
    >>> sim = SimilarityInfluence(model, "0", src)
    >>> idx, scores = sim.influence(src.tensors[0][:2], top_k=3)["0"]
    >>> idx[:, 0].tolist()  # each example is most similar to itself
    [0, 1]
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..core.batching import check_positive_int
from ..core.hooks import HookScope
from ..engines.perturb_eval import progress_bar
from ..errors import describe, require
from ._common import DataInfluence
from .tracin_data import TopK, check_k

__all__ = ["SimilarityInfluence", "cosine_similarity", "euclidean_distance"]


def euclidean_distance(test: Tensor, train: Tensor) -> Tensor:
    """Pairwise Euclidean distances of flattened rows: ``(n_test, n_train)``.

    Example:
        >>> euclidean_distance(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [0.0, 1.0]])).tolist()
        [[5.0, 1.0]]
    """
    return torch.cdist(test.reshape(test.shape[0], -1), train.reshape(train.shape[0], -1))


def cosine_similarity(test: Tensor, train: Tensor, replace_nan: float = 0.0) -> Tensor:
    """Pairwise cosine similarity of flattened rows; a pair with a zero vector gets ``replace_nan`` exactly.

    Example:
        >>> cosine_similarity(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[2.0, 0.0]]), -2).tolist()
        [[1.0], [-2.0]]
    """
    test, train = test.reshape(test.shape[0], -1), train.reshape(train.shape[0], -1)
    tn, rn = test.norm(dim=1, keepdim=True), train.norm(dim=1, keepdim=True)
    sim = (test / tn.clamp_min(torch.finfo(test.dtype).tiny)) @ (train / rn.clamp_min(torch.finfo(train.dtype).tiny)).T
    zero = (tn == 0) | (rn == 0).T
    return torch.where(zero, torch.full_like(sim, replace_nan), sim)


class SimilarityInfluence(DataInfluence):
    """Most similar (``similarity_direction="max"``) or least similar (``"min"``, e.g. for a distance) source
    examples by the activations of ``layers``.

    With the default cosine similarity, zero activation vectors are reported under ``"zero_acts-<layer>"`` as
    ``[input index, source index]`` pairs (global source indices).

    Args:
        module: The model (never changed).
        layers: The name of a module in ``module.named_modules()``, or a list of names; each layer's outputs,
            flattened per example, are compared.
        influence_src_dataset: The source (training) examples: a ``Dataset`` or a ``DataLoader`` of input
            batches.
        activation_dir: Accepted for Captum compatibility; None (allowed here, unlike Captum) keeps the source
            activations in memory.
        model_id: Accepted for Captum compatibility (the name of the model's activation folder).
        similarity_metric: ``f(test, source) -> (n_test, n_source)`` similarities of flattened activation rows
            (default: cosine similarity; :func:`euclidean_distance` with ``similarity_direction="min"``).
        similarity_direction: ``"max"`` ranks the largest values first (a similarity), ``"min"`` the smallest
            (a distance).
        batch_size: Source examples per forward pass (default 256; Captum's is 1). Results do not depend on it.
        **kwargs: ``replace_nan``: the cosine similarity given to a pair with a zero vector (default -2 with
            ``"max"``, 2 with ``"min"``: ranked last).

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> model = torch.nn.Sequential(torch.nn.Identity())
        >>> source = TensorDataset(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        >>> sim = SimilarityInfluence(model, "0", source)
        >>> indices, scores = sim.influence(torch.tensor([[0.0, 2.0]]), top_k=2)["0"]
        >>> indices.tolist()  # the source rows closest in direction: (0, 1), then (1, 1)
        [[1, 2]]
    """

    def __init__(
        self,
        module: nn.Module,
        layers: str | list[str],
        influence_src_dataset: Any,
        activation_dir: str | None = None,
        model_id: str = "",
        similarity_metric: Callable[[Tensor, Tensor], Tensor] = cosine_similarity,
        similarity_direction: str = "max",
        batch_size: int = 256,
        **kwargs: Any,
    ) -> None:
        require(isinstance(module, nn.Module), f"module must be an nn.Module, got {describe(module)}")
        require(similarity_direction in ("max", "min"),
                f"similarity_direction must be 'max' or 'min', got {describe(similarity_direction)}")
        check_positive_int(batch_size, "batch_size", allow_none=False)
        self.layers = [layers] if isinstance(layers, str) else list(layers)
        require(len(self.layers) > 0 and all(isinstance(n, str) for n in self.layers),
                f"layers must be a layer name or a non-empty list of names, got {describe(layers)}")
        modules = dict(module.named_modules())
        for name in self.layers:
            require(name in modules, f"layer {name!r} in `layers` is not in the model; its layers are: "
                                     f"{', '.join(n for n in modules if n)}")
        require(isinstance(influence_src_dataset, (Dataset, DataLoader)),
                f"influence_src_dataset must be a Dataset, got {describe(influence_src_dataset)}")
        super().__init__(module, influence_src_dataset)
        self.module = module
        self.influence_src_dataset = influence_src_dataset
        self.activation_dir = activation_dir
        self.model_id = model_id
        self.batch_size = batch_size
        self.similarity_direction = similarity_direction
        if similarity_metric is cosine_similarity:
            self.replace_nan = kwargs.get("replace_nan", -2 if similarity_direction == "max" else 2)
            similarity_metric = partial(cosine_similarity, replace_nan=self.replace_nan)
        self.similarity_metric = similarity_metric
        self._modules = [modules[n] for n in self.layers]
        self._src: list[Tensor] | None = None

    # -- activations -------------------------------------------------------------------------------------------

    def _activations(self, inputs: tuple[Any, ...], extra: Any) -> list[Tensor]:
        with HookScope() as scope, torch.no_grad():
            seen = [scope.capture(m) for m in self._modules]
            self.module(*inputs, *extra)
        acts = []
        for name, capture in zip(self.layers, seen):
            act = capture.single(f"layer {name!r}")
            require(isinstance(act, Tensor), f"layer {name!r} must output one tensor (it ran once), got "
                                             f"{describe(act)}")
            acts.append(act.reshape(act.shape[0], -1))
        return acts

    def _path(self, layer: str) -> str:
        return os.path.join(str(self.activation_dir), self.model_id or "model", "src", f"{layer}.pt")

    def _source_activations(self, load_from_disk: bool, show_progress: bool) -> list[Tensor]:
        if self.activation_dir is not None and load_from_disk and all(os.path.isfile(self._path(n))
                                                                      for n in self.layers):
            return [torch.load(self._path(n), map_location="cpu") for n in self.layers]
        if self._src is not None and (self.activation_dir is None or load_from_disk):
            return self._src
        data = self.influence_src_dataset
        if isinstance(data, TensorDataset):
            x = data.tensors[0]
            batches: Any = [(x[s:s + self.batch_size],) for s in range(0, len(x), self.batch_size)]
            total = len(batches)
        else:
            loader = data if isinstance(data, DataLoader) else DataLoader(data, self.batch_size, shuffle=False)
            batches = ((b[0] if isinstance(b, (tuple, list)) else b,) for b in loader)
            total = len(loader)
        parts: list[list[Tensor]] = [[] for _ in self.layers]
        bar = progress_bar(total, f"{type(self).__name__}: source activations", show_progress)
        for batch in batches:
            for i, act in enumerate(self._activations(batch, ())):
                parts[i].append(act)
            bar.update(1)
        bar.close()
        self._src = [torch.cat(p) for p in parts]
        if self.activation_dir is not None:
            for name, act in zip(self.layers, self._src):
                os.makedirs(os.path.dirname(self._path(name)), exist_ok=True)
                torch.save(act, self._path(name))
        return self._src

    # -- public ------------------------------------------------------------------------------------------------

    def influence(self, inputs: Tensor | tuple[Tensor, ...] | None = None, top_k: int = 1,  # type: ignore[override]
                  additional_forward_args: Any = None, load_src_from_disk: bool = True,
                  show_progress: bool = False, **kwargs: Any) -> dict[str, Tensor | tuple[Tensor, Tensor]]:
        """The ``top_k`` most (or least) similar source examples of each input, at every layer.

        Args:
            inputs: The test examples: a tensor or a tuple of tensors (the model's arguments), batch first.
            top_k: How many source examples per input.
            additional_forward_args: Further arguments of the model, after the inputs.
            load_src_from_disk: Accepted for Captum compatibility: the source activations are computed once and
                kept in memory.
            show_progress: Show a progress bar over the source batches.
            **kwargs: Accepted for Captum compatibility and unused.

        Returns:
            ``{layer: (indices, scores)}``, each ``(n_inputs, top_k)``, best first; with the default cosine
            similarity also ``{"zero_acts-<layer>": (n, 2) [input index, source index] pairs}`` for the pairs
            with a zero activation vector.

        Example:
            >>> import torch
            >>> from torch.utils.data import TensorDataset
            >>> far = SimilarityInfluence(torch.nn.Sequential(torch.nn.Identity()), "0",
            ...                           TensorDataset(torch.arange(5.0).unsqueeze(1)),
            ...                           similarity_metric=euclidean_distance, similarity_direction="min")
            >>> far.influence(torch.tensor([[3.2]]), top_k=2)["0"][0].tolist()
            [[3, 4]]
        """
        require(isinstance(inputs, Tensor) or (isinstance(inputs, tuple) and len(inputs) > 0),
                f"inputs must be a tensor or a tuple of tensors, got {describe(inputs)}")
        packed = inputs if isinstance(inputs, tuple) else (inputs,)
        extra = () if additional_forward_args is None else (
            additional_forward_args if isinstance(additional_forward_args, tuple) else (additional_forward_args,))
        check_k(top_k)
        src = self._source_activations(load_src_from_disk, show_progress)
        tests = self._activations(packed, extra)
        largest = self.similarity_direction == "max"
        out: dict[str, Tensor | tuple[Tensor, Tensor]] = {}
        for name, test, source in zip(self.layers, tests, src):
            top, zero = TopK(top_k, largest=largest, what="the source dataset"), []
            for start in range(0, source.shape[0], max(self.batch_size, 1024)):
                block = source[start:start + max(self.batch_size, 1024)]
                sim = self.similarity_metric(test, block)
                require(isinstance(sim, Tensor) and sim.shape == (test.shape[0], block.shape[0]),
                        f"similarity_metric must return shape (inputs, source batch) = "
                        f"{(test.shape[0], block.shape[0])}, got {describe(sim)}")
                if hasattr(self, "replace_nan"):
                    hit = (sim == self.replace_nan).nonzero()
                    hit[:, 1] += start
                    zero.append(hit)
                top.add(sim)
            idx, val = top.result()
            out[name] = (idx, val)
            zeros = torch.cat(zero) if zero else torch.zeros(0, 2, dtype=torch.long)
            if zeros.numel():
                warnings.warn(f"layer {name} has zero activation vectors for some inputs or source examples; their "
                              f"cosine similarity is undefined and set to {self.replace_nan}; the [input, source] "
                              f"pairs are under 'zero_acts-{name}'", RuntimeWarning, stacklevel=2)
                out[f"zero_acts-{name}"] = zeros
        return out
