"""TracIn with checkpoints (``TracInCP``): the influence of training example ``z`` on test example ``z'`` is
``sum_c lr_c * grad L(z'; w_c) . grad L(z; w_c)`` over saved checkpoints ``w_c``.

Captum's names and arguments; the work is one pass over the training data that computes every example's
gradient at every checkpoint with the per-sample-gradient engine (``vmap(grad)``), many examples per call.
Checkpoints are loaded once, at construction, and evaluated without being loaded into the model again.

Example:
    >>> import torch
    >>> from intellego.influence import TracInCP
    >>> model = torch.nn.Linear(3, 2)
    >>> x, y = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 0, 1])
    >>> train = torch.utils.data.TensorDataset(x, y)
    >>> tracin = TracInCP(model, train, [model.state_dict()], loss_fn=torch.nn.CrossEntropyLoss(reduction="none"))
    >>> tracin.influence((x[:2], y[:2])).shape
    torch.Size([2, 6])
    >>> tracin.influence((x[:2], y[:2]), k=3).indices.shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn

from ..core.batching import check_positive_int
from ..engines.per_sample import example_loss, per_sample_grads, select_parameters, split_batch
from ..engines.perturb_eval import progress_bar
from ..errors import describe, require
from ._common import DataInfluence, KMostInfluentialResults
from .tracin_data import (
    Batches,
    CheckpointState,
    TopK,
    as_batches,
    check_k,
    check_loss_fn,
    check_per_example_loss,
    default_rows,
    load_checkpoint_states,
    load_flexible_state_dict,
    resolve_checkpoints,
)

__all__ = ["TracInCPBase", "TracInCP"]


class TracInCPBase(DataInfluence):
    """Shared set-up of the TracIn methods: the model, training data, checkpoints (loaded once) and losses.

    ``batch_size`` only sets how many training examples are fetched at a time (results do not depend on it);
    ``None`` (the default) picks a size from the memory budget. ``checkpoints`` may be a directory, a list of
    paths, state dicts or modules; ``checkpoints_load_func(model, checkpoint)`` loads one and returns its
    learning rate (the default reads a ``"learning_rate"`` entry, 1.0 without one).

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> from intellego.influence import TracInCP
        >>> model = torch.nn.Linear(2, 2)
        >>> train = TensorDataset(torch.eye(2), torch.tensor([0, 1]))
        >>> tracin = TracInCP(model, train, [model.state_dict()], loss_fn=torch.nn.CrossEntropyLoss(reduction="none"))
        >>> isinstance(tracin, TracInCPBase), tracin.influence((torch.eye(2), torch.tensor([0, 1]))).shape
        (True, torch.Size([2, 2]))
    """

    def __init__(
        self,
        model: nn.Module,
        train_dataset: Any,
        checkpoints: Any,
        checkpoints_load_func: Callable[[nn.Module, Any], Any] = load_flexible_state_dict,
        loss_fn: Callable[..., Tensor] | None = None,
        batch_size: int | None = None,
        test_loss_fn: Callable[..., Tensor] | None = None,
        *,
        memory_budget: int | None = None,
    ) -> None:
        require(isinstance(model, nn.Module), f"model must be an nn.Module, got {describe(model)}")
        check_positive_int(batch_size, "batch_size")
        check_positive_int(memory_budget, "memory_budget")
        require(callable(checkpoints_load_func),
                f"checkpoints_load_func must be callable, got {describe(checkpoints_load_func)}")
        super().__init__(model, train_dataset)
        self.loss_fn = loss_fn
        self.test_loss_fn = loss_fn if test_loss_fn is None else test_loss_fn
        self.batch_size = batch_size
        self.memory_budget = memory_budget
        self.checkpoints_load_func = checkpoints_load_func
        self.train_dataloader = as_batches(train_dataset, batch_size, what="train_dataset")
        self.train_dataloader_len = len(self.train_dataloader)
        self._checkpoints: list[Any] = []
        self._states: list[CheckpointState] = []
        self.checkpoints = checkpoints

    @property
    def checkpoints(self) -> list[Any]:
        """The checkpoints, in order; assigning new ones loads them (and checks they fit the model)."""
        return self._checkpoints

    @checkpoints.setter
    def checkpoints(self, checkpoints: Any) -> None:
        resolved = resolve_checkpoints(checkpoints)
        self._states = load_checkpoint_states(self.model, resolved, self.checkpoints_load_func)
        self._checkpoints = resolved

    def influence(self, inputs: Any = None, k: int | None = None, proponents: bool = True,  # type: ignore[override]
                  show_progress: bool = False, aggregate: bool = False) -> Tensor | KMostInfluentialResults:
        """Influence scores ``(n_test, n_train)`` of every training example on each example of ``inputs`` (a
        tuple ``(*inputs, targets)`` or a DataLoader of them); with ``k``, the ``k`` proponents (highest scores)
        or opponents (lowest) per test example as ``(indices, influence_scores)``.
        """
        require(inputs is not None, "`inputs` is required; for the influence of training examples on themselves "
                                    "call `self_influence`")
        if k is None:
            return self._influence(inputs, show_progress=show_progress, aggregate=aggregate)
        return self._get_k_most_influential(inputs, k, proponents, show_progress=show_progress, aggregate=aggregate)

    def _influence(self, inputs: Any, show_progress: bool = False, aggregate: bool = False) -> Tensor:
        raise NotImplementedError

    def _get_k_most_influential(self, inputs: Any, k: int = 5, proponents: bool = True, show_progress: bool = False,
                                aggregate: bool = False) -> KMostInfluentialResults:
        raise NotImplementedError

    def self_influence(self, inputs: Any = None, show_progress: bool = False,
                       outer_loop_by_checkpoints: bool = False) -> Tensor:
        """The influence of each example on itself; each TracIn method defines it (the base class raises).

        ``inputs=None`` (the default) scores the training set.

        Example:
            >>> import torch
            >>> from torch.utils.data import TensorDataset
            >>> from intellego.influence import TracInCP
            >>> model = torch.nn.Linear(2, 2, bias=False)
            >>> with torch.no_grad():
            ...     _ = model.weight.zero_()
            >>> tracin = TracInCP(model, TensorDataset(torch.eye(2), torch.tensor([0, 1])), [model.state_dict()],
            ...                   loss_fn=torch.nn.CrossEntropyLoss(reduction="none"))
            >>> tracin.self_influence().tolist()  # |grad|^2: softmax (0.5, 0.5), gradient +-0.5 at one input
            [0.5, 0.5]
        """
        raise NotImplementedError

    def _pass(self, data: Batches, show_progress: bool, desc: str) -> Any:
        bar = progress_bar(len(data), f"{self.get_name()}: {desc}", show_progress)
        try:
            for batch in data:
                yield batch
                bar.update(1)
        finally:
            bar.close()


class TracInCP(TracInCPBase):
    """TracIn over checkpoints with exact per-example gradients of the chosen ``layers`` (all parameters that
    require grad by default).

    ``loss_fn`` follows Captum's contract: with ``sample_wise_grads_per_batch=False`` (default) it keeps one loss
    per example (``reduction="none"``); with ``True`` it reduces the batch by "sum" or "mean". Either way each
    example's gradient is that of its own loss (a "mean" loss is not divided by the batch size). Without a loss,
    the example's summed outputs are differentiated.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> model = torch.nn.Linear(3, 2)
        >>> train = TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,)))
        >>> test = (torch.randn(2, 3), torch.tensor([0, 1]))
        >>> tracin = TracInCP(model, train, [model.state_dict()], loss_fn=torch.nn.CrossEntropyLoss(reduction="none"),
        ...                   batch_size=4)
        >>> tracin.influence(test).shape, tracin.influence(test, k=3).indices.shape, tracin.self_influence().shape
        (torch.Size([2, 8]), torch.Size([2, 3]), torch.Size([8]))
    """

    def __init__(
        self,
        model: nn.Module,
        train_dataset: Any,
        checkpoints: Any,
        checkpoints_load_func: Callable[[nn.Module, Any], Any] = load_flexible_state_dict,
        layers: list[str] | None = None,
        loss_fn: Callable[..., Tensor] | None = None,
        batch_size: int | None = None,
        test_loss_fn: Callable[..., Tensor] | None = None,
        sample_wise_grads_per_batch: bool = False,
        *,
        memory_budget: int | None = None,
    ) -> None:
        require(isinstance(model, nn.Module), f"model must be an nn.Module, got {describe(model)}")
        self._names = tuple(select_parameters(model, layers))
        self.reduction_type = check_loss_fn(loss_fn, "loss_fn", sample_wise_grads_per_batch)
        self.test_reduction_type = (self.reduction_type if test_loss_fn is None
                                    else check_loss_fn(test_loss_fn, "test_loss_fn", sample_wise_grads_per_batch))
        self.sample_wise_grads_per_batch = sample_wise_grads_per_batch
        self.layers = layers
        super().__init__(model, train_dataset, checkpoints, checkpoints_load_func, loss_fn, batch_size, test_loss_fn,
                         memory_budget=memory_budget)
        self._loss = example_loss(loss_fn)
        self._test_loss = example_loss(self.test_loss_fn)
        p = sum(int(dict(model.named_parameters())[n].numel()) for n in self._names)
        itemsize = next(model.parameters()).element_size()
        if batch_size is None:
            rows = default_rows(p, itemsize, self.train_dataloader.rows())
            self.train_dataloader = as_batches(train_dataset, rows, what="train_dataset")
            self.train_dataloader_len = len(self.train_dataloader)

    # -- gradients ---------------------------------------------------------------------------------------------

    def _grads(self, batch: Any, state: CheckpointState, test: bool, flat: bool = True) -> Any:
        """Per-example gradients of a batch at a checkpoint: ``(n, P)``, or ``{name: (n, *shape)}``."""
        inputs, target = split_batch(batch)
        return per_sample_grads(self.model, inputs, target, loss=self._test_loss if test else self._loss,
                                names=self._names, state=(state.params, state.buffers),
                                memory_budget=self.memory_budget, flat=flat)

    def _blocks(self, batch: Any, state: CheckpointState) -> list[Tensor]:
        """A training batch's gradients as one ``(n, P_k)`` view per parameter: no flattened copy is made."""
        g = self._grads(batch, state, test=False, flat=False)
        return [g[k].reshape(g[k].shape[0], -1) for k in self._names]

    def _check_losses(self, batch: Any) -> None:
        """Before a pass: per-example losses must return one value per example (checked on two test rows)."""
        if self.sample_wise_grads_per_batch:
            return
        inputs, target = split_batch(batch)
        if not isinstance(inputs[0], Tensor) or inputs[0].dim() == 0 or inputs[0].shape[0] < 2:
            return
        state = self._states[0]
        with torch.no_grad():
            out = torch.func.functional_call(self.model, (state.params, state.buffers),
                                             tuple(x[:2] if isinstance(x, Tensor) and x.dim() else x for x in inputs))
        two = target[:2] if isinstance(target, Tensor) else target
        check_per_example_loss(self.loss_fn, "loss_fn", out, two)
        if self.test_loss_fn is not self.loss_fn:
            check_per_example_loss(self.test_loss_fn, "test_loss_fn", out, two)

    def _test_grads(self, inputs: Any, aggregate: bool) -> list[list[Tensor]]:
        """Per checkpoint, the test gradients scaled by its rate, one ``(n_test, P_k)`` block per parameter (one
        row, summed over the examples, when aggregating)."""
        data = as_batches(inputs, what="inputs")
        out = []
        first = True
        sizes = [int(self._states[0].params[k].numel()) for k in self._names]
        for state in self._states:
            parts = []
            for batch in data:
                if first:
                    self._check_losses(batch)
                    first = False
                g = self._grads(batch, state, test=True)
                parts.append(g.sum(0, keepdim=True) if aggregate else g)
            g = torch.cat(parts) if len(parts) > 1 else parts[0]
            g = (g.sum(0, keepdim=True) if aggregate else g) * state.learning_rate
            out.append([b.contiguous() for b in g.split(sizes, dim=1)])
        return out

    def _batch_scores(self, test_grads: list[list[Tensor]], batch: Any) -> Tensor:
        scores: Tensor | None = None
        for state, test in zip(self._states, test_grads):
            for t, g in zip(test, self._blocks(batch, state)):
                scores = t @ g.T if scores is None else scores.addmm_(t, g.T)
        return cast(Tensor, scores)  # at least one checkpoint, checked at construction

    # -- public ------------------------------------------------------------------------------------------------

    def _influence(self, inputs: Any, show_progress: bool = False, aggregate: bool = False) -> Tensor:
        test_grads = self._test_grads(inputs, aggregate)
        rows = [self._batch_scores(test_grads, batch)
                for batch in self._pass(self.train_dataloader, show_progress, "influence over training batches")]
        return rows[0] if len(rows) == 1 else torch.cat(rows, 1)

    def _get_k_most_influential(self, inputs: Any, k: int = 5, proponents: bool = True, show_progress: bool = False,
                                aggregate: bool = False) -> KMostInfluentialResults:
        check_k(k)
        test_grads = self._test_grads(inputs, aggregate)
        top = TopK(k, largest=proponents)
        desc = f"{'proponents' if proponents else 'opponents'} over training batches"
        for batch in self._pass(self.train_dataloader, show_progress, desc):
            top.add(self._batch_scores(test_grads, batch))
        return KMostInfluentialResults(*top.result())

    def self_influence(self, inputs: Any = None, show_progress: bool = False,
                       outer_loop_by_checkpoints: bool = False) -> Tensor:
        """``sum_c lr_c * |grad L(z; w_c)|^2`` for every example of ``inputs`` (the training set by default).
        ``outer_loop_by_checkpoints`` is accepted for Captum compatibility; the result is the same."""
        data = self.train_dataloader if inputs is None else as_batches(inputs, what="inputs")
        parts = []
        for batch in self._pass(data, show_progress, "self influence over batches"):
            total: Tensor | None = None
            for state in self._states:
                part = torch.stack([(g * g).sum(1) for g in self._blocks(batch, state)]).sum(0) * state.learning_rate
                total = part if total is None else total + part
            parts.append(cast(Tensor, total))
        return torch.cat(parts)

    def compute_intermediate_quantities(self, inputs: Any, aggregate: bool = False) -> Tensor:
        """Each example's gradients at every checkpoint, scaled by the learning rate and concatenated:
        ``(n, checkpoints * P)`` (one row summed over the examples with ``aggregate``)."""
        data = as_batches(inputs, what="inputs")
        parts = []
        for batch in data:
            row = torch.cat([self._grads(batch, s, test=False) * s.learning_rate for s in self._states], 1)
            parts.append(row.sum(0, keepdim=True) if aggregate else row)
        out = torch.cat(parts)
        return out.sum(0, keepdim=True) if aggregate else out
