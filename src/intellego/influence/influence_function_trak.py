"""TRAK (Park et al. 2023): random-projected per-example gradients, the after-kernel inverse, checkpoint ensembles.

For each checkpoint ``m``, ``Phi_m = G_m P_m`` projects the per-example gradients of the model output (by default
TRAK's margin ``log p_y / (1 - p_y)``) with a seeded random ``P_m``; the score of training example ``j`` on test
example ``i`` is ``mean_m phi_i^m (Phi_m^T Phi_m + damping I)^{-1} phi_j^m`` times ``mean_m (1 - p_j^m)``.
``projection_dim=None`` uses the gradients unprojected. For ``nn.Linear`` / ``nn.Conv2d`` layers the default
projection is Kronecker-factored per layer (:func:`~intellego.influence.curvature.trak.factored_features`): one
forward and one backward pass per batch, no per-example gradient is formed; other parameters get a dense
Gaussian projection of the per-example gradients from :mod:`intellego.engines.per_sample`.

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

import functools
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from .._docs import fill_docs
from ..engines.per_sample import example_loss, per_sample_grads, split_batch
from ..engines.perturb_eval import progress_bar
from ..errors import IntellegoError, describe, require
from .curvature.ekfac import on_logits
from .curvature.functional import per_example_loss
from .curvature.layers import SUPPORTED, layer_calls, layer_rows, logits_of, rows_per_chunk, split_batch_rows
from .curvature.trak import factored_features, factored_projections, kernel_inverse, margin_output, split_dims
from .curvature.trak import projection as make_projection
from .influence_function_base import IFBase, as_batches, load_checkpoint_copy

__all__ = ["TRAKInfluence"]


@fill_docs
class TRAKInfluence(IFBase):
    """TRAK scores with the influence-function interface (``influence``, ``self_influence``).

    Args:
        {INF_MODEL}
        {TRAIN_DATASET}
        {INF_LAYERS}
        {LOSS_FN}
        {INF_BATCH_SIZE}
        checkpoints: state dicts or paths (loaded into a private copy with ``checkpoints_load_func`` or
            ``load_state_dict``); ``None``: the model as it is. Several checkpoints are ensembled.
        output: ``"margin"`` (classification logits and integer labels) or ``"loss"`` (gradients of ``loss_fn``,
            no ``1 - p`` weighting: language models and regression).
        projection_dim: projected dimension per checkpoint (at most the parameter count), or ``None``; the
            Kronecker projection rounds it per layer (``feature_dim`` says what was used).
        damping: absolute damping of the kernel; default ``damping_ratio`` times its mean eigenvalue.
        projection: "auto" (default: "kronecker" when every chosen parameter belongs to an ``nn.Linear`` or
            ``nn.Conv2d`` used once per forward pass, else "gaussian"), "kronecker", "gaussian" or "rademacher"
            (dense); ``seed`` seeds checkpoint ``m``'s projection as ``seed + m``.
        memory_budget: bytes one chunk of rows or per-example gradients may take.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> model = torch.nn.Linear(3, 2)
        >>> train = TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,)))
        >>> test = (torch.randn(2, 3), torch.tensor([0, 1]))
        >>> trak = TRAKInfluence(model, train, loss_fn=torch.nn.CrossEntropyLoss(reduction="none"), batch_size=4,
        ...                      projection_dim=None)
        >>> trak.influence(test).shape
        torch.Size([2, 8])
    """

    def __init__(self, model: nn.Module, train_dataset: Any, checkpoints: Sequence[Any] | None = None,
                 checkpoints_load_func: Callable[[nn.Module, Any], Any] | None = None,
                 layers: list[str] | None = None, loss_fn: Any = None, batch_size: int | None = 1, *,
                 output: str = "margin", projection_dim: int | None = 2048, damping: float | None = None,
                 damping_ratio: float = 1e-3, projection: str = "auto", seed: int = 0,
                 show_progress: bool = False, memory_budget: int | None = None) -> None:
        require(output in ("margin", "loss"), f"output must be 'margin' or 'loss', got {describe(output)}")
        require(projection in ("auto", "kronecker", "gaussian", "rademacher"),
                f"projection must be 'auto', 'kronecker', 'gaussian' or 'rademacher', got {describe(projection)}")
        super().__init__(model, train_dataset, None, None, layers, loss_fn if output == "loss" else None, batch_size)
        ckpts = [None] if checkpoints is None else list(checkpoints)
        require(len(ckpts) > 0, "checkpoints must hold at least one checkpoint (or be None)")
        if projection_dim is not None:
            require(isinstance(projection_dim, int) and not isinstance(projection_dim, bool) and projection_dim >= 1,
                    f"projection_dim must be a positive int or None, got {describe(projection_dim)}")
            require(projection_dim <= self.param_count,
                    f"projection_dim={projection_dim} exceeds the number of parameters ({self.param_count}) of the "
                    "chosen layers; use projection_dim=None for the unprojected gradients")
        self.output, self.projection_dim, self.seed = output, projection_dim, seed
        self.memory_budget = memory_budget
        self._rows: int | None = None
        self.kind = self._choose_kind(projection)
        self._example = example_loss(margin_output) if output == "margin" else self._loss(False)
        self.models: list[nn.Module] = []
        for m, ck in enumerate(ckpts):
            try:
                self.models.append(load_checkpoint_copy(model, ck, checkpoints_load_func))
            except (RuntimeError, KeyError) as err:
                raise IntellegoError(f"checkpoint {m} does not match the model: {str(err).splitlines()[0]}") from err
        self.projections = [self._projection(seed + m) for m in range(len(self.models))]
        batches = list(self.train_dataloader)
        bar = progress_bar(len(self.models) * len(batches), f"{self.get_name()}: train features", show_progress)
        self.train_features: list[Tensor] = []
        self.kernels: list[Tensor] = []
        self.dampings: list[float] = []
        q_sum: Tensor | None = None
        for m in range(len(self.models)):
            rows = [self._features(m, batch, tick=lambda: bar.update(1)) for batch in batches]
            Phi = torch.cat([f for f, _ in rows])
            d = (float(damping) if damping is not None
                 else damping_ratio * float((Phi * Phi).sum()) / Phi.shape[1])
            self.dampings.append(d)
            self.kernels.append(kernel_inverse(Phi, d))
            self.train_features.append(Phi)
            q_all = torch.cat([q for _, q in rows])
            q_sum = q_all if q_sum is None else q_sum + q_all
        bar.close()
        self.feature_dim = int(self.train_features[0].shape[1])
        self.q = cast(Tensor, q_sum) / len(self.models)

    # --- projections -----------------------------------------------------------------------------------------
    def _choose_kind(self, projection: str) -> str:
        """The projection used: "kronecker" needs every chosen parameter owned by a Linear / Conv2d (not shared)."""
        owners: dict[int, list[tuple[str, nn.Module]]] = {}
        for name, mod in self.work.named_modules():
            for p in mod.parameters(recurse=False):
                owners.setdefault(id(p), []).append((name, mod))
        params = dict(self.work.named_parameters())
        found: dict[str, nn.Module] = {}
        ok = True
        for pname in self.names:
            own = owners.get(id(params[pname]), [])
            ok = ok and len(own) == 1 and isinstance(own[0][1], SUPPORTED) and getattr(own[0][1], "groups", 1) == 1
            if own:
                found.setdefault(own[0][0], own[0][1])
        ok = ok and all(pn in self.names for n, mod in found.items() for pn, _ in _named_own(n, mod))
        if projection == "kronecker":
            require(ok, "projection='kronecker' needs every chosen parameter to belong to an nn.Linear or an "
                        "nn.Conv2d (groups=1) whose parameters are all chosen and not shared; use "
                        "projection='gaussian'")
        if projection == "auto":
            ok = ok and self.projection_dim is not None and self._each_runs_once(list(found.values()))
            projection = "kronecker" if ok else "gaussian"
        self.layer_names = list(found) if projection == "kronecker" else []
        return projection

    def _each_runs_once(self, layers: list[nn.Module]) -> bool:
        """Whether every layer runs once in a forward pass of the first training example (a layer applied twice
        has no single row set per example: "auto" then projects densely)."""
        batch = next(iter(self.train_dataloader), None)
        if batch is None:
            return False
        inputs, _ = split_batch(batch)
        return all(calls == 1 for calls in layer_calls(self.work, layers, inputs))

    def _projection(self, seed: int) -> Any:
        if self.projection_dim is None:
            return None
        if self.kind != "kronecker":
            return make_projection(self.param_count, self.projection_dim, seed=seed, kind=self.kind, dtype=self.dtype)
        shapes = [(int(m.weight[0].numel()) + (m.bias is not None), int(m.weight.shape[0]))  # type: ignore[index]
                  for m in self._layers(self.work)]
        return factored_projections(shapes, split_dims(shapes, self.projection_dim), seed=seed, dtype=self.dtype)

    # --- features --------------------------------------------------------------------------------------------
    def _features(self, m: int, batch: Any, tick: Callable[[], Any] | None = None) -> tuple[Tensor, Tensor]:
        """Projected gradients ``(n, k)`` and weights ``1 - p`` of one batch under checkpoint ``m``."""
        work, P = self.models[m], self.projections[m]
        if self.kind == "kronecker" and P is not None:
            out = self._factored(work, P, batch)
        else:
            inputs, target = split_batch(batch)
            with torch.enable_grad():
                G = per_sample_grads(work, inputs, target, loss=self._example, names=self.names,
                                     memory_budget=self.memory_budget).detach()
            out = (G if P is None else G @ P, self._weights(work, inputs, target, G.shape[0]))
        if tick:
            tick()
        return out

    def _layers(self, work: nn.Module) -> list[nn.Module]:
        modules = dict(work.named_modules())
        return [modules[n] for n in self.layer_names]

    def _factored(self, work: nn.Module, projs: Any, batch: Any) -> tuple[Tensor, Tensor]:
        """Kronecker-projected gradients from each layer's rows, in pieces that fit the memory budget."""
        inputs, target = split_batch(batch)
        layers = self._layers(work)
        if self._rows is None:
            self._rows = rows_per_chunk(work, layers, inputs, 1, self.memory_budget)
        feats, qs = [], []
        for piece in split_batch_rows((*inputs, target), self._rows):
            x, y = piece[:-1], piece[-1]
            out, ins, outs = layer_rows(work, layers, x, functools.partial(self._cotangent, target=y))
            feats.append(factored_features(ins, [s[0] for s in outs], projs))
            qs.append(self._weights(work, x, y, feats[-1].shape[0], out))
        return torch.cat(feats), torch.cat(qs)

    def _cotangent(self, out: Any, target: Any) -> tuple[Tensor, list[Tensor]]:
        """The gradient of the summed per-example outputs (margins or losses) with respect to the logits."""
        logits = logits_of(out, "TRAK")
        z = logits.detach().requires_grad_(True)
        with torch.enable_grad():
            if self.output == "margin":
                f = margin_output(z, target)
            else:
                f = on_logits(per_example_loss(self.loss_fn, self.reduction_type), out)(z, target).sum()
            u, = torch.autograd.grad(f, z)
        return logits, [u]

    def _weights(self, work: nn.Module, inputs: Any, target: Any, n: int, out: Any = None) -> Tensor:
        """TRAK's ``1 - p_y`` per example (mean over positions); ones for ``output="loss"``."""
        if self.output != "margin":
            return torch.ones(n, dtype=self.dtype)
        with torch.no_grad():
            out = work(*inputs) if out is None else out
            logits = out.reshape(-1, out.shape[-1])
            p = torch.softmax(logits, -1).gather(1, target.reshape(-1, 1)).reshape(n, -1)
        return (1 - p).mean(1)

    def _test_features(self, inputs: Any) -> list[Tensor]:
        return [torch.cat([self._features(m, b)[0] for b in as_batches(inputs)]) for m in range(len(self.models))]

    # --- scores ----------------------------------------------------------------------------------------------
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
            per = [[self._features(m, b) for b in as_batches(inputs_dataset)] for m in range(len(self.models))]
            feats = [torch.cat([f for f, _ in rows]) for rows in per]
            q = sum(torch.cat([qq for _, qq in rows]) for rows in per) / len(self.models)  # type: ignore[assignment]
        total = cast(Tensor, sum((_solve(f, L) * f).sum(1) for f, L in zip(feats, self.kernels)))
        return total / len(self.models) * q


def _named_own(prefix: str, module: nn.Module) -> list[tuple[str, Tensor]]:
    """The module's own parameters with their full names."""
    return [(f"{prefix}.{n}" if prefix else n, p) for n, p in module.named_parameters(recurse=False)]


def _solve(rows: Tensor, chol: Tensor) -> Tensor:
    """``rows @ K^{-1}`` for a kernel given by its Cholesky factor."""
    return torch.cholesky_solve(rows.T.to(chol.dtype), chol).T.to(rows.dtype)
