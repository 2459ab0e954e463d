"""EK-FAC influence: the Gauss-Newton inverse approximated per layer in K-FAC's eigenbasis, eigenvalues refitted.

Layers: ``nn.Linear`` and ``nn.Conv2d`` (patch rows, as KFC); other parameters are not covered (name the layers).

Factors are fitted once on ``hessian_dataset`` (default: the training set) and reused for every query; a score is
``sum_layers sum_ij (Q_S^T G_test Q_A)_ij (Q_S^T G_train Q_A)_ij / (Lambda_ij + damping)``, where ``G`` are the
per-example gradients of the layer's weight (and bias) from the per-sample-gradient engine.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from intellego.influence import EKFACInfluence
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    >>> x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    >>> ek = EKFACInfluence(model, torch.utils.data.TensorDataset(x, y),
    ...                     loss_fn=nn.CrossEntropyLoss(reduction="none"), batch_size=8)
    >>> ek.influence((x[:2], y[:2])).shape, ek.self_influence().shape
    (torch.Size([2, 16]), torch.Size([16]))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn

from .._docs import fill_docs
from ..engines.perturb_eval import progress_bar
from ..errors import describe, require
from .curvature.ekfac import LayerFactors, fit_ekfac
from .curvature.functional import per_example_loss
from .curvature.layers import SUPPORTED, check_layer
from .influence_function_base import IFBase

__all__ = ["EKFACInfluence"]


@fill_docs
class EKFACInfluence(IFBase):
    """Influence functions with EK-FAC curvature (George et al. 2018; Grosse et al. 2023) for ``nn.Linear`` and
    ``nn.Conv2d`` layers.

    Args:
        {INF_MODEL}
        {TRAIN_DATASET}
        {CHECKPOINT}
        {CHECKPOINTS_LOAD_FUNC}
        {LOSS_FN}
        {INF_BATCH_SIZE}
        {HESSIAN_DATASET}
        {TEST_LOSS_FN}
        {SAMPLE_WISE_GRADS_PER_BATCH}
        layers: names of ``nn.Linear`` / ``nn.Conv2d`` layers (default: every one of the model).
        damping: absolute damping added to every eigenvalue; default ``damping_ratio`` times each layer's mean
            eigenvalue.
        fisher: ``"exact"`` (output Hessian factored per example; outputs of at most 64 numbers) or ``"sampled"``
            (labels drawn from the model's softmax, one per position: cross-entropy losses, language models).
        kfac: use the plain K-FAC eigenvalues (no eigen-correction).
        generator: random source of ``fisher="sampled"``.
        memory_budget: bytes the factor passes may hold at once (batches are cut into pieces to fit).

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> model = torch.nn.Linear(3, 2)
        >>> train = TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,)))
        >>> test = (torch.randn(2, 3), torch.tensor([0, 1]))
        >>> ekfac = EKFACInfluence(model, train, loss_fn=torch.nn.CrossEntropyLoss(reduction="none"), batch_size=4)
        >>> ekfac.influence(test).shape
        torch.Size([2, 8])
    """

    def __init__(self, model: nn.Module, train_dataset: Any, checkpoint: Any = None,
                 checkpoints_load_func: Callable[[nn.Module, Any], Any] | None = None,
                 layers: list[str] | None = None, loss_fn: Any = None, batch_size: int | None = 1,
                 hessian_dataset: Any = None, test_loss_fn: Any = None, sample_wise_grads_per_batch: bool = False,
                 *, damping: float | None = None, damping_ratio: float = 0.1, fisher: str = "exact",
                 kfac: bool = False, generator: torch.Generator | None = None, show_progress: bool = False,
                 memory_budget: int | None = None) -> None:
        work_layers = layers
        if layers is None:
            probe = [n for n, m in model.named_modules() if isinstance(m, SUPPORTED)]
            require(len(probe) > 0, "EK-FAC found no nn.Linear or nn.Conv2d layer in the model; name the layers in "
                                    "`layers`")
            work_layers = probe
        super().__init__(model, train_dataset, checkpoint, checkpoints_load_func, work_layers, loss_fn, batch_size,
                         hessian_dataset, test_loss_fn, sample_wise_grads_per_batch)
        require(damping is None or (isinstance(damping, (int, float)) and damping >= 0),
                f"damping must be a non-negative number or None, got {describe(damping)}")
        require(isinstance(damping_ratio, (int, float)) and damping_ratio > 0,
                f"damping_ratio must be a positive number, got {describe(damping_ratio)}")
        self.memory_budget = memory_budget
        modules = dict(self.work.named_modules())
        work_layers = cast(list[str], work_layers)  # set above when None
        for name in work_layers:
            check_layer(name, modules[name], "EK-FAC")
        self.modules = [modules[n] for n in work_layers]
        self.names = []
        for n in work_layers:
            prefix = f"{n}." if n else ""
            self.names.append(f"{prefix}weight")
            if modules[n].bias is not None:
                self.names.append(f"{prefix}bias")
        loss = per_example_loss(self.loss_fn, self.reduction_type)
        batches = list(self.hessian_dataloader)
        bar = progress_bar(2 * len(batches), f"{self.get_name()}: factors", show_progress)
        self.factors: list[LayerFactors] = fit_ekfac(self.work, self.modules, batches, loss, fisher=fisher,
                                                     generator=generator, progress=lambda: bar.update(1),
                                                     memory_budget=memory_budget)
        bar.close()
        self.dampings = []
        self.scales = []
        for f in self.factors:
            lam = f.kfac_eigenvalues if kfac else f.eigenvalues
            d = float(damping) if damping is not None else damping_ratio * float(lam.mean())
            self.dampings.append(d)
            self.scales.append((lam + d).rsqrt())

    def _quantities(self, grads: Tensor, test: bool) -> Tensor:
        out, col = [], 0
        for f, scale in zip(self.factors, self.scales):
            weight = cast(Tensor, f.module.weight)
            o, i = int(weight.shape[0]), int(weight[0].numel())
            W = grads[:, col:col + o * i].reshape(-1, o, i)
            col += o * i
            if f.has_bias:
                W = torch.cat([W, grads[:, col:col + o].unsqueeze(2)], 2)
                col += o
            rot = f.q_out.T.to(W.dtype) @ W @ f.q_in.to(W.dtype)
            out.append((rot * scale.to(W.dtype)).reshape(W.shape[0], -1))
        return torch.cat(out, 1)
