"""TRAK (Park et al. 2023): random-projected per-example gradients, the after-kernel inverse, checkpoint ensembles.

For each checkpoint ``m``, ``Phi_m = G_m P_m`` projects the per-example gradients of the model output (by default
TRAK's margin ``log p_y / (1 - p_y)``) with a seeded random ``P_m``; the score of training example ``j`` on test
example ``i`` is ``mean_m phi_i^m (Phi_m^T Phi_m + damping I)^{-1} phi_j^m`` times ``mean_m (1 - p_j^m)``.
``projection_dim=None`` uses the gradients unprojected.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from intellego.influence.influence_function_trak import TRAKInfluence
    >>> model = nn.Linear(3, 2)
    >>> x, y = torch.randn(30, 3), torch.randint(0, 2, (30,))
    >>> trak = TRAKInfluence(model, torch.utils.data.TensorDataset(x, y), [model.state_dict()], batch_size=10,
    ...                      projection_dim=4)
    >>> trak.influence((x[:2], y[:2])).shape
    torch.Size([2, 30])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from ..engines.per_sample import example_loss, per_sample_grads, split_batch
from ..engines.perturb_eval import progress_bar
from ..errors import IntellegoError, describe, require
from .curvature.trak import kernel_inverse, margin_output
from .curvature.trak import projection as make_projection
from .influence_function_base import IFBase, as_batches, load_checkpoint_copy

__all__ = ["TRAKInfluence"]


class TRAKInfluence(IFBase):
    """TRAK scores with the influence-function interface (``influence``, ``self_influence``).

    Args:
        model, train_dataset, layers, loss_fn, batch_size: as for the other influence classes.
        checkpoints: state dicts or paths (loaded into a private copy with ``checkpoints_load_func`` or
            ``load_state_dict``); ``None``: the model as it is. Several checkpoints are ensembled.
        output: ``"margin"`` (classification logits and integer labels) or ``"loss"`` (gradients of ``loss_fn``,
            no ``1 - p`` weighting: language models and regression).
        projection_dim: projected dimension per checkpoint (at most the parameter count), or ``None``.
        damping: absolute damping of the kernel; default ``damping_ratio`` times its mean eigenvalue.
        projection: "gaussian" (default; fastest to draw) or "rademacher"; ``seed`` seeds checkpoint ``m``'s
            projection as ``seed + m``.
    """

    def __init__(self, model: nn.Module, train_dataset: Any, checkpoints: Sequence[Any] | None = None,
                 checkpoints_load_func: Callable[[nn.Module, Any], Any] | None = None,
                 layers: list[str] | None = None, loss_fn: Any = None, batch_size: int | None = 1, *,
                 output: str = "margin", projection_dim: int | None = 2048, damping: float | None = None,
                 damping_ratio: float = 1e-3, projection: str = "gaussian", seed: int = 0,
                 show_progress: bool = False, memory_budget: int | None = None) -> None:
        require(output in ("margin", "loss"), f"output must be 'margin' or 'loss', got {describe(output)}")
        super().__init__(model, train_dataset, None, None, layers, loss_fn if output == "loss" else None, batch_size)
        ckpts = [None] if checkpoints is None else list(checkpoints)
        require(len(ckpts) > 0, "checkpoints must hold at least one checkpoint (or be None)")
        if projection_dim is not None:
            require(isinstance(projection_dim, int) and not isinstance(projection_dim, bool) and projection_dim >= 1,
                    f"projection_dim must be a positive int or None, got {describe(projection_dim)}")
            require(projection_dim <= self.param_count,
                    f"projection_dim={projection_dim} exceeds the number of parameters ({self.param_count}) of the "
                    "chosen layers; use projection_dim=None for the unprojected gradients")
        self.output, self.projection_dim, self.kind, self.seed = output, projection_dim, projection, seed
        self.memory_budget = memory_budget
        self._example = example_loss(margin_output) if output == "margin" else self._loss(False)
        self.models: list[nn.Module] = []
        for m, ck in enumerate(ckpts):
            try:
                self.models.append(load_checkpoint_copy(model, ck, checkpoints_load_func))
            except (RuntimeError, KeyError) as err:
                raise IntellegoError(f"checkpoint {m} does not match the model: {str(err).splitlines()[0]}") from err
        batches = list(self.train_dataloader)
        bar = progress_bar(len(self.models) * len(batches), f"{self.get_name()}: train features", show_progress)
        self.projections: list[Tensor | None] = []
        self.train_features: list[Tensor] = []
        self.kernels: list[Tensor] = []
        q_sum: Tensor | None = None
        self.dampings: list[float] = []
        for m, work in enumerate(self.models):
            P = None if projection_dim is None else make_projection(self.param_count, projection_dim, seed=seed + m,
                                                               kind=projection, dtype=self.dtype)
            self.projections.append(P)
            feats, qs = [], []
            for batch in batches:
                phi, q = self._features(work, P, batch)
                feats.append(phi)
                qs.append(q)
                bar.update(1)
            Phi = torch.cat(feats)
            d = (float(damping) if damping is not None
                 else damping_ratio * float((Phi * Phi).sum()) / Phi.shape[1])
            self.dampings.append(d)
            self.kernels.append(kernel_inverse(Phi, d))
            self.train_features.append(Phi)
            q_all = torch.cat(qs)
            q_sum = q_all if q_sum is None else q_sum + q_all
        bar.close()
        self.q = cast(Tensor, q_sum) / len(self.models)

    def _features(self, work: nn.Module, P: Tensor | None, batch: Any) -> tuple[Tensor, Tensor]:
        inputs, target = split_batch(batch)
        with torch.enable_grad():
            G = per_sample_grads(work, inputs, target, loss=self._example, names=self.names,
                                 memory_budget=self.memory_budget).detach()
        phi = G if P is None else G @ P
        if self.output == "margin":
            with torch.no_grad():
                out = work(*inputs)
                logits = out.reshape(-1, out.shape[-1])
                p = torch.softmax(logits, -1).gather(1, target.reshape(-1, 1)).reshape(out.shape[0], -1)
            q = (1 - p).mean(1)
        else:
            q = torch.ones(G.shape[0], dtype=G.dtype)
        return phi, q

    def _test_features(self, inputs: Any) -> list[Tensor]:
        per_model = []
        for work, P in zip(self.models, self.projections):
            per_model.append(torch.cat([self._features(work, P, b)[0] for b in as_batches(inputs)]))
        return per_model

    def influence(self, inputs: Any, k: int | None = None, proponents: bool = True,  # type: ignore[override]
                  show_progress: bool = False) -> Any:
        """TRAK scores ``(n_test, n_train)``, or the ``k`` proponents / opponents of each test example."""
        from ._common import KMostInfluentialResults

        test = self._test_features(inputs)
        scores = cast(Tensor, sum(_solve(t, L) @ Phi.T for t, L, Phi in zip(test, self.kernels, self.train_features)))
        scores = scores / len(self.models) * self.q.unsqueeze(0)
        if k is None:
            return scores
        require(isinstance(k, int) and 1 <= k <= scores.shape[1],
                f"k must be an int between 1 and the number of training examples ({scores.shape[1]}), got {k!r}")
        values, idx = torch.topk(scores, k, dim=1, largest=proponents)
        return KMostInfluentialResults(idx, values)

    def self_influence(self, inputs_dataset: Any = None, show_progress: bool = False) -> Tensor:
        """Each example's TRAK score on itself (default: the training set)."""
        if inputs_dataset is None:
            feats, q = self.train_features, self.q
        else:
            per = [[self._features(w, P, b) for b in as_batches(inputs_dataset)]
                   for w, P in zip(self.models, self.projections)]
            feats = [torch.cat([f for f, _ in rows]) for rows in per]
            q = sum(torch.cat([qq for _, qq in rows]) for rows in per) / len(self.models)  # type: ignore[assignment]
        total = cast(Tensor, sum((_solve(f, L) * f).sum(1) for f, L in zip(feats, self.kernels)))
        return total / len(self.models) * q


def _solve(rows: Tensor, chol: Tensor) -> Tensor:
    """``rows @ K^{-1}`` for a kernel given by its Cholesky factor."""
    return torch.cholesky_solve(rows.T.to(chol.dtype), chol).T.to(rows.dtype)
