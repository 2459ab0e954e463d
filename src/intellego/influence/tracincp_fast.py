"""TracIn on the final fully-connected layer, without forming gradients (``TracInCPFast``), and its random-
projection variant with a nearest-neighbour index (``TracInCPFastRandProj``).

The gradient of an example's loss with respect to the weight of the final linear layer is the outer product
``g a^T`` of the loss gradient with respect to the model's output ``g`` and the layer's input ``a``; so the
TracIn score of two examples is ``sum_c lr_c (g . g')(a . a')`` and needs only one forward pass and a small
vmapped gradient per example. (As in Captum, the layer's bias is left out, and the layer's output must be the
model's output.) ``TracInCPFastRandProj`` stores ``sqrt(lr_c) (P_g^T g) (P_a^T a)^T`` for every training
example and finds proponents with exact top-k in torch (:class:`ExactNearestNeighbors`, chunked); any object
with Captum's ``setup(data)`` / ``get_nearest_neighbors(query, k)`` interface can replace it.

Example:
    >>> import torch
    >>> from intellego.influence import TracInCPFast
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    >>> fast = TracInCPFast(model, "2", torch.utils.data.TensorDataset(x, y), [model.state_dict()],
    ...                     loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"))
    >>> fast.influence((x[:2], y[:2])).shape, fast.self_influence().shape
    (torch.Size([2, 8]), torch.Size([8]))
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from ..core.batching import DEFAULT_BUDGET, check_positive_int
from ..core.hooks import HookScope
from ..engines.per_sample import split_batch
from ..errors import describe, require
from ._common import KMostInfluentialResults
from .tracin_data import (
    CheckpointState,
    TopK,
    as_batches,
    check_k,
    check_loss_fn,
    load_flexible_state_dict,
)
from .tracincp import TracInCPBase

__all__ = ["TracInCPFast", "TracInCPFastRandProj", "NearestNeighbors", "ExactNearestNeighbors"]


class NearestNeighbors(ABC):
    """Captum's nearest-neighbour interface: ``setup(data (N, D))``, then ``get_nearest_neighbors(query (n, D), k)``
    returns ``(indices (n, k), scores (n, k))`` of the ``k`` rows with the largest dot product with each query."""

    @abstractmethod
    def get_nearest_neighbors(self, query: Tensor, k: int) -> tuple[Tensor, Tensor]: ...

    @abstractmethod
    def setup(self, data: Tensor) -> None: ...


class ExactNearestNeighbors(NearestNeighbors):
    """Exact maximum-inner-product search in torch: the data rows are scanned in chunks sized by the memory
    budget, keeping a running top-k.

    Example:
        >>> import torch
        >>> nn_index = ExactNearestNeighbors()
        >>> nn_index.setup(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]))
        >>> nn_index.get_nearest_neighbors(torch.tensor([[1.0, 0.1]]), k=2)[0].tolist()
        [[2, 0]]
    """

    def __init__(self, chunk_rows: int | None = None) -> None:
        check_positive_int(chunk_rows, "chunk_rows")
        self.chunk_rows = chunk_rows
        self.data: Tensor | None = None

    def setup(self, data: Tensor) -> None:
        require(isinstance(data, Tensor) and data.dim() >= 2, f"data must be a (N, D) tensor, got {describe(data)}")
        self.data = data.reshape(data.shape[0], -1)

    def get_nearest_neighbors(self, query: Tensor, k: int) -> tuple[Tensor, Tensor]:
        require(self.data is not None, "call setup(data) before get_nearest_neighbors")
        data = cast(Tensor, self.data)
        check_k(k)
        query = query.reshape(query.shape[0], -1)
        rows = self.chunk_rows or max(1, DEFAULT_BUDGET // max(4 * query.shape[0] * data.element_size(), 1))
        top = TopK(k, what="the indexed data")
        for start in range(0, data.shape[0], rows):
            top.add(query @ data[start:start + rows].T)
        return top.result()


class TracInCPFast(TracInCPBase):
    """TracIn restricted to the weight of ``final_fc_layer`` (a module of the model or its name), computed from
    the layer's inputs and the loss gradients with respect to the model's output. ``loss_fn`` must reduce a batch
    by "sum" or "mean" (each example's own loss is used either way). ``vectorize`` is accepted and unused.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> model = torch.nn.Linear(3, 2)
        >>> train = TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,)))
        >>> test = (torch.randn(2, 3), torch.tensor([0, 1]))
        >>> fast = TracInCPFast(model, model, train, [model.state_dict()],
        ...                     loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"), batch_size=4)
        >>> fast.influence(test).shape
        torch.Size([2, 8])
    """

    def __init__(
        self,
        model: nn.Module,
        final_fc_layer: nn.Module | str,
        train_dataset: Any,
        checkpoints: Any,
        checkpoints_load_func: Callable[[nn.Module, Any], Any] = load_flexible_state_dict,
        loss_fn: Callable[..., Tensor] | None = None,
        batch_size: int | None = None,
        test_loss_fn: Callable[..., Tensor] | None = None,
        vectorize: bool = False,
        *,
        memory_budget: int | None = None,
    ) -> None:
        require(isinstance(model, nn.Module), f"model must be an nn.Module, got {describe(model)}")
        self.final_fc_layer = _find_layer(model, final_fc_layer)
        self.reduction_type = check_loss_fn(loss_fn, "loss_fn", True, fast=True)
        self.test_reduction_type = (self.reduction_type if test_loss_fn is None
                                    else check_loss_fn(test_loss_fn, "test_loss_fn", True, fast=True))
        self.vectorize = vectorize
        super().__init__(model, train_dataset, checkpoints, checkpoints_load_func, loss_fn,
                         batch_size or 4096, test_loss_fn, memory_budget=memory_budget)
        self.batch_size = batch_size

    # -- the two factors ---------------------------------------------------------------------------------------

    def _factors(self, batch: Any, state: CheckpointState, test: bool) -> tuple[Tensor, Tensor]:
        """``(g (n, outputs), a (n, layer inputs))`` of a batch at a checkpoint."""
        inputs, target = split_batch(batch)
        loss_fn = self.test_loss_fn if test else self.loss_fn
        with HookScope() as scope, torch.no_grad():
            seen = scope.capture(self.final_fc_layer, inputs=True)
            out = functional_call(self.model, (state.params, state.buffers), inputs)
        a = seen.single("final_fc_layer")
        require(isinstance(a, Tensor), "final_fc_layer must run once per forward pass with one tensor input, got "
                                       f"{describe(a)}")
        require(isinstance(out, Tensor) and out.dim() == 2,
                f"the fast TracIn methods need a model output of shape (batch, outputs), got {describe(out)}")

        def one(o: Tensor, t: Tensor) -> Tensor:
            return cast(Callable[..., Tensor], loss_fn)(o.unsqueeze(0), t.unsqueeze(0)).sum()

        g = vmap(grad(one))(out, target)
        require(a.dim() == 2 and a.shape[0] == out.shape[0],
                f"the input of final_fc_layer must have shape (batch, features), got {describe(a)}")
        return g, a.detach()

    def _test_factors(self, inputs: Any) -> list[tuple[Tensor, Tensor]]:
        data = as_batches(inputs, what="inputs")
        out = []
        for state in self._states:
            pairs = [self._factors(batch, state, test=True) for batch in data]
            out.append((torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])))
        return out

    def _batch_scores(self, test: list[tuple[Tensor, Tensor]], batch: Any) -> Tensor:
        total: Tensor | None = None
        for state, (g_t, a_t) in zip(self._states, test):
            g, a = self._factors(batch, state, test=False)
            part = (g_t @ g.T) * (a_t @ a.T) * state.learning_rate
            total = part if total is None else total + part
        return cast(Tensor, total)

    # -- public ------------------------------------------------------------------------------------------------

    def influence(self, inputs: Any = None, k: int | None = None, proponents: bool = True,  # type: ignore[override]
                  show_progress: bool = False) -> Tensor | KMostInfluentialResults:
        """As :meth:`TracInCP.influence` (without ``aggregate``)."""
        return super().influence(inputs, k, proponents, show_progress=show_progress)

    def _influence(self, inputs: Any, show_progress: bool = False, aggregate: bool = False) -> Tensor:
        test = self._test_factors(inputs)
        passes = self._pass(self.train_dataloader, show_progress, "influence over training batches")
        return torch.cat([self._batch_scores(test, b) for b in passes], 1)

    def _get_k_most_influential(self, inputs: Any, k: int = 5, proponents: bool = True, show_progress: bool = False,
                                aggregate: bool = False) -> KMostInfluentialResults:
        check_k(k)
        test = self._test_factors(inputs)
        top = TopK(k, largest=proponents)
        for batch in self._pass(self.train_dataloader, show_progress, "proponents over training batches"):
            top.add(self._batch_scores(test, batch))
        return KMostInfluentialResults(*top.result())

    def self_influence(self, inputs: Any = None, show_progress: bool = False,
                       outer_loop_by_checkpoints: bool = False) -> Tensor:
        """``sum_c lr_c |g|^2 |a|^2`` for every example of ``inputs`` (the training set by default)."""
        data = self.train_dataloader if inputs is None else as_batches(inputs, what="inputs")
        parts = []
        for batch in self._pass(data, show_progress, "self influence over batches"):
            total: Tensor | None = None
            for state in self._states:
                g, a = self._factors(batch, state, test=False)
                part = (g * g).sum(1) * (a * a).sum(1) * state.learning_rate
                total = part if total is None else total + part
            parts.append(cast(Tensor, total))
        return torch.cat(parts)


class TracInCPFastRandProj(TracInCPFast):
    """:class:`TracInCPFast` with every training example's quantities computed once, at construction, optionally
    compressed by two Gaussian random projections to about ``projection_dim`` numbers per checkpoint (drawn from
    ``seed`` with a private generator; the global random state is not used). ``influence`` then costs one
    product per test batch; proponents come from ``nearest_neighbors`` (exact top-k by default).
    ``self_influence`` is the squared norm of the (projected) quantities.

    Args:
        nearest_neighbors: An object with ``setup(quantities)`` and ``get_nearest_neighbors(query, k)`` that finds
            the proponents (default: exact top-k search).
        projection_dim: About how many numbers per checkpoint the quantities are projected to; None keeps them
            exact.
        seed: Seed of the projections' private generator.
        show_progress: Keyword-only: show a progress bar over the training batches at construction.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> model = torch.nn.Linear(6, 4)
        >>> train = TensorDataset(torch.randn(10, 6), torch.randint(0, 4, (10,)))
        >>> loss = torch.nn.CrossEntropyLoss(reduction="sum")
        >>> exact = TracInCPFast(model, model, train, [model.state_dict()], loss_fn=loss)
        >>> stored = TracInCPFastRandProj(model, model, train, [model.state_dict()], loss_fn=loss)
        >>> test = (torch.randn(3, 6), torch.tensor([0, 1, 2]))
        >>> torch.allclose(stored.influence(test, k=None), exact.influence(test), atol=1e-5)  # no projection: exact
        True
        >>> projected = TracInCPFastRandProj(model, model, train, [model.state_dict()], loss_fn=loss,
        ...                                  projection_dim=4)
        >>> projected.influence(test, k=2).indices.shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        model: nn.Module,
        final_fc_layer: nn.Module | str,
        train_dataset: Any,
        checkpoints: Any,
        checkpoints_load_func: Callable[[nn.Module, Any], Any] = load_flexible_state_dict,
        loss_fn: Callable[..., Tensor] | None = None,
        batch_size: int | None = None,
        test_loss_fn: Callable[..., Tensor] | None = None,
        vectorize: bool = False,
        nearest_neighbors: NearestNeighbors | None = None,
        projection_dim: int | None = None,
        seed: int = 0,
        *,
        show_progress: bool = False,
        memory_budget: int | None = None,
    ) -> None:
        check_positive_int(projection_dim, "projection_dim")
        require(nearest_neighbors is None or (hasattr(nearest_neighbors, "setup")
                                              and hasattr(nearest_neighbors, "get_nearest_neighbors")),
                "nearest_neighbors must have setup(data) and get_nearest_neighbors(query, k) methods, got "
                f"{describe(nearest_neighbors)}")
        super().__init__(model, final_fc_layer, train_dataset, checkpoints, checkpoints_load_func, loss_fn,
                         batch_size, test_loss_fn, vectorize, memory_budget=memory_budget)
        self.nearest_neighbors = ExactNearestNeighbors() if nearest_neighbors is None else nearest_neighbors
        self.projection_dim = projection_dim
        self.seed = seed
        self.projection_quantities = self._projections()
        self.src_intermediate_quantities = self._quantities(self.train_dataloader, False, show_progress)
        self.nearest_neighbors.setup(self.src_intermediate_quantities)

    def _projections(self) -> tuple[Tensor, Tensor] | None:
        if self.projection_dim is None:
            return None
        g, a = self._factors(next(iter(self.train_dataloader)), self._states[0], test=False)
        out_dim, in_dim = g.shape[1], a.shape[1]
        if out_dim * in_dim <= self.projection_dim:
            return None
        side = int(math.sqrt(self.projection_dim))
        k_g, k_a = min(side, out_dim), min(side, in_dim)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        p_g = torch.randn(out_dim, k_g, generator=gen, dtype=torch.float64) / math.sqrt(k_g)
        p_a = torch.randn(in_dim, k_a, generator=gen, dtype=torch.float64) / math.sqrt(k_a)
        return p_g.to(device=g.device, dtype=g.dtype), p_a.to(device=a.device, dtype=a.dtype)

    def _quantities(self, inputs: Any, test: bool, show_progress: bool = False) -> Tensor:
        data = as_batches(inputs, what="inputs")
        rows = []
        for batch in self._pass(data, show_progress, "intermediate quantities over batches"):
            per_ckpt = []
            for state in self._states:
                g, a = self._factors(batch, state, test=test)
                if self.projection_quantities is not None:
                    g, a = g @ self.projection_quantities[0], a @ self.projection_quantities[1]
                per_ckpt.append((g.unsqueeze(2) * a.unsqueeze(1)).flatten(1) * math.sqrt(state.learning_rate))
            rows.append(torch.cat(per_ckpt, 1))
        return torch.cat(rows)

    def compute_intermediate_quantities(self, inputs: Any) -> Tensor:
        """The stored quantities of ``inputs``: ``influence`` scores are their dot products."""
        return self._quantities(inputs, False)

    def influence(self, inputs: Any = None, k: int | None = 5,  # type: ignore[override]
                  proponents: bool = True) -> Tensor | KMostInfluentialResults:
        """Scores ``(n_test, n_train)`` when ``k`` is None; otherwise the ``k`` proponents (or opponents) per test
        example from the nearest-neighbour index (default ``k=5``, as in Captum)."""
        require(inputs is not None, "`inputs` is required; for self influence call `self_influence`")
        if k is None:
            return self._influence(inputs)
        return self._get_k_most_influential(inputs, k, proponents)

    def _influence(self, inputs: Any, show_progress: bool = False, aggregate: bool = False) -> Tensor:
        return self._quantities(inputs, True) @ self.src_intermediate_quantities.T

    def _get_k_most_influential(self, inputs: Any, k: int = 5, proponents: bool = True, show_progress: bool = False,
                                aggregate: bool = False) -> KMostInfluentialResults:
        check_k(k)
        sign = 1.0 if proponents else -1.0
        indices, scores = self.nearest_neighbors.get_nearest_neighbors(self._quantities(inputs, True) * sign, k)
        return KMostInfluentialResults(indices, scores * sign)

    def self_influence(self, inputs: Any = None, show_progress: bool = False,
                       outer_loop_by_checkpoints: bool = False) -> Tensor:
        """Squared norms of the (projected) quantities: exact TracInCPFast self influence without a projection,
        its random-projection estimate with one. The training set's come from the stored quantities."""
        q = self.src_intermediate_quantities if inputs is None else self._quantities(inputs, False, show_progress)
        return (q * q).sum(1)


def _find_layer(model: nn.Module, layer: nn.Module | str) -> nn.Module:
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            known = ", ".join(n for n in modules if n)
            require(False, f"final_fc_layer {layer!r} is not a layer of the model; its layers are: {known}")
        return modules[layer]
    require(isinstance(layer, nn.Module) and any(m is layer for m in model.modules()),
            f"final_fc_layer must be a layer of the model or its name, got {describe(layer)}")
    return layer
