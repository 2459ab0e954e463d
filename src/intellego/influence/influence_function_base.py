"""What the influence-function family shares: datasets, loss conventions, per-example gradients, scoring.

Every method of the family (:class:`~intellego.influence.NaiveInfluenceFunction`,
:class:`~intellego.influence.ArnoldiInfluenceFunction`, :class:`~intellego.influence.EKFACInfluence`,
:class:`~intellego.influence.TRAKInfluence`) maps a per-example gradient ``g`` to an *intermediate quantity*
``q`` such that ``influence(test, train) = q_test . q_train``; a method only says how (``_quantities``). The
per-example gradients come from the one engine, :mod:`intellego.engines.per_sample`.

The user's model is never changed: a checkpoint is loaded into a private copy.

Example:
    >>> import torch
    >>> from intellego.influence.influence_function_base import check_loss
    >>> check_loss(torch.nn.MSELoss(reduction="none"), "loss_fn", False)
    'none'
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..core.batching import known_length
from ..engines.per_sample import example_loss, per_sample_grads, select_parameters, split_batch
from ..engines.perturb_eval import progress_bar
from ..errors import IntellegoError, describe, require
from ._common import DataInfluence, KMostInfluentialResults
from .tracin_data import TopK, check_k

__all__ = ["IFBase", "check_loss", "as_loader", "load_checkpoint_copy"]


def check_loss(loss_fn: Any, name: str, sample_wise_grads_per_batch: bool) -> str:
    """The reduction of ``loss_fn`` under Captum's rules ("none" per-example; "sum"/"mean" with the batch trick)."""
    if loss_fn is None:
        return "sum"
    require(callable(loss_fn), f"{name} must be a callable or nn.Module, got {describe(loss_fn)}")
    reduction = getattr(loss_fn, "reduction", None)
    if reduction is None:
        return "sum" if sample_wise_grads_per_batch else "none"
    if sample_wise_grads_per_batch:
        require(reduction in ("sum", "mean"),
                f"{name}.reduction must be 'sum' or 'mean' when sample_wise_grads_per_batch=True, got {reduction!r}")
    else:
        require(reduction == "none",
                f"{name}.reduction must be 'none' when sample_wise_grads_per_batch=False, got {reduction!r}")
    return str(reduction)


def as_loader(data: Any, batch_size: Any, name: str) -> Iterable[Any]:
    """A DataLoader (or any iterable of batches) as is; a Dataset wrapped in a DataLoader of ``batch_size``."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Dataset):
        require(isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1,
                f"since `{name}` is a Dataset, batch_size must be a positive int, got {describe(batch_size)}")
        return DataLoader(data, batch_size=batch_size, shuffle=False)
    require(isinstance(data, (list, tuple)) and len(data) > 0 and all(isinstance(b, (list, tuple)) for b in data),
            f"`{name}` must be a Dataset, a DataLoader or a list of (*inputs, labels) batches, got {describe(data)}")
    return data


def as_batches(inputs: Any, name: str = "inputs") -> Iterable[Any]:
    """A single batch ``(*features, labels)`` as a one-batch list; a DataLoader as is."""
    if isinstance(inputs, DataLoader):
        return inputs
    require(isinstance(inputs, (tuple, list)) and len(inputs) >= 1,
            f"`{name}` must be a batch (*features, labels) or a DataLoader, got {describe(inputs)}")
    if len(inputs) == 1:  # features only: the model's output is the loss
        return [(inputs[0], None)]
    return [tuple(inputs)]


def load_checkpoint_copy(model: nn.Module, checkpoint: Any, load: Callable[[nn.Module, Any], Any] | None
                         ) -> nn.Module:
    """A private copy of ``model`` with ``checkpoint`` loaded (the user's model is left as it is)."""
    if checkpoint is None:
        return model
    work = copy.deepcopy(model)
    if load is None:
        state = checkpoint if isinstance(checkpoint, dict) else torch.load(checkpoint, map_location="cpu")
        state = {k.removeprefix("module."): v for k, v in state.items() if k != "learning_rate"}
        work.load_state_dict(state)
    else:
        load(work, checkpoint)
    return work


class IFBase(DataInfluence):
    """Common constructor and scoring of the influence-function family (see the module docstring)."""

    def __init__(self, model: nn.Module, train_dataset: Any, checkpoint: Any = None,
                 checkpoints_load_func: Callable[[nn.Module, Any], Any] | None = None,
                 layers: list[str] | None = None, loss_fn: Any = None, batch_size: int | None = 1,
                 hessian_dataset: Any = None, test_loss_fn: Any = None,
                 sample_wise_grads_per_batch: bool = False) -> None:
        require(isinstance(model, nn.Module), f"model must be an nn.Module, got {describe(model)}")
        super().__init__(model, train_dataset)
        self.checkpoint = checkpoint
        try:
            self.work = load_checkpoint_copy(model, checkpoint, checkpoints_load_func)
        except (RuntimeError, KeyError) as err:
            raise IntellegoError(f"checkpoint does not match the model: {str(err).splitlines()[0]}") from err
        self.train_dataloader = as_loader(train_dataset, batch_size, "train_dataset")
        self.hessian_dataloader = (self.train_dataloader if hessian_dataset is None
                                   else as_loader(hessian_dataset, batch_size, "hessian_dataset"))
        self.loss_fn, self.batch_size = loss_fn, batch_size
        self.test_loss_fn = loss_fn if test_loss_fn is None else test_loss_fn
        self.sample_wise_grads_per_batch = sample_wise_grads_per_batch
        self.reduction_type = check_loss(loss_fn, "loss_fn", sample_wise_grads_per_batch)
        self.test_reduction_type = (self.reduction_type if test_loss_fn is None
                                    else check_loss(test_loss_fn, "test_loss_fn", sample_wise_grads_per_batch))
        self.layers = layers
        self.names = list(select_parameters(self.work, layers))
        params = dict(self.work.named_parameters())
        self.param_count = sum(params[n].numel() for n in self.names)
        self.dtype = params[self.names[0]].dtype
        self.memory_budget: int | None = None

    # --- gradients -----------------------------------------------------------------------------------------
    def _loss(self, test: bool) -> Callable[[Tensor, Any], Tensor]:
        fn, red = (self.test_loss_fn, self.test_reduction_type) if test else (self.loss_fn, self.reduction_type)
        return example_loss(fn, red)

    def _grads(self, batch: Any, test: bool = False) -> Tensor:
        inputs, target = split_batch(batch)
        with torch.enable_grad():
            return per_sample_grads(self.work, inputs, target, loss=self._loss(test), names=self.names,
                                    memory_budget=self.memory_budget).detach()

    def _iter_grads(self, batches: Iterable[Any], test: bool, show_progress: bool, desc: str) -> Iterator[Tensor]:
        total = known_length(batches) or 0
        bar = progress_bar(total, f"{self.get_name()}: {desc}", show_progress)
        try:
            for batch in batches:
                yield self._grads(batch, test)
                bar.update(1)
        finally:
            bar.close()

    # --- what a method defines -----------------------------------------------------------------------------
    def _quantities(self, grads: Tensor, test: bool) -> Tensor:
        """Map per-example gradients ``(n, P)`` to intermediate quantities ``(n, d)``."""
        raise NotImplementedError

    def _shared_quantities(self, grads: Tensor, test: bool) -> Tensor:
        """What :meth:`compute_intermediate_quantities` returns: quantities whose dot products between any two
        examples are their influence scores, where the method has such a factor (by default ``_quantities``)."""
        return self._quantities(grads, test)

    def _gather(self, inputs_dataset: Any, test: bool, show_progress: bool,
                quantities: Callable[[Tensor, bool], Tensor]) -> Tensor:
        batches = as_batches(inputs_dataset, "inputs_dataset")
        return torch.cat([quantities(g, test) for g in
                          self._iter_grads(batches, test, show_progress, "intermediate quantities")], 0)

    # --- Captum's public interface ---------------------------------------------------------------------------
    def compute_intermediate_quantities(self, inputs_dataset: Any, aggregate: bool = False,
                                        show_progress: bool = False, return_on_cpu: bool = True,
                                        test: bool = False) -> Tensor:
        """Per-example vectors whose dot products are the influence scores: ``Q(test) @ Q(train).T`` equals
        ``influence(test)`` (``test=True`` applies the test loss; the conjugate-gradient and LiSSA solvers have no
        such factor, so there the test side, ``test=True``, is ``(C + damping I)^-1 g`` and the training side ``g``)."""
        out = self._gather(inputs_dataset, test, show_progress, self._shared_quantities)
        if aggregate:
            out = out.sum(0, keepdim=True)
        return out.cpu() if return_on_cpu else out

    def influence(self, inputs: Any, k: int | None = None, proponents: bool = True,  # type: ignore[override]
                  show_progress: bool = False) -> Tensor | KMostInfluentialResults:
        """Scores ``(n_test, n_train)`` (``k=None``) or the ``k`` proponents / opponents of each test example."""
        if k is not None:
            check_k(k)
        q_test = self._gather(inputs, True, show_progress, self._quantities)
        scores = torch.cat([self._quantities(g, False) @ q_test.T for g in
                            self._iter_grads(self.train_dataloader, False, show_progress, "train_dataset")], 0).T
        if k is None:
            return scores
        top = TopK(k, largest=proponents)
        top.add(scores)
        return KMostInfluentialResults(*top.result())

    def self_influence(self, inputs_dataset: Any = None, show_progress: bool = False) -> Tensor:
        """``q . q`` for every example of ``inputs_dataset`` (default: the training set)."""
        batches = self.train_dataloader if inputs_dataset is None else as_batches(inputs_dataset, "inputs_dataset")
        return torch.cat([self._self_scores(g) for g in
                          self._iter_grads(batches, False, show_progress, "self influence")], 0)

    def _self_scores(self, grads: Tensor) -> Tensor:
        q = self._quantities(grads, False)
        return (q * q).sum(1)
