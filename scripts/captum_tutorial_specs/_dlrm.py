"""A stand-in for ``DLRM_Net`` of Facebook's DLRM repository (``dlrm_s_pytorch``), which DLRM_Tutorial imports
from a local clone: the same constructor arguments, the parts the notebook's cells use (``bot_l``, ``top_l``,
``emb_l``, ``v_W_l``, ``loss_threshold``, ``apply_mlp``, ``apply_emb``, ``interact_features``) and the model's
shape: a dense bottom MLP, one sum-pooled embedding bag per sparse feature, pairwise dot products of the 27 feature
vectors, a top MLP ending in a sigmoid. Our own code, written from the architecture as the notebook describes it.

Differences, for an offline check: the tables are capped at :data:`MAX_ROWS` rows (the notebook's reach 10 million;
the data's indices are mapped modulo the table sizes, ``table_rows``), only the ``"dot"`` interaction and plain
embedding bags exist (no quotient-remainder or mixed-dimension tables: the notebook turns them off), and the
weights are random (seeded, :meth:`DLRM_Net.reset_parameters`).

>>> import numpy as np
>>> net = DLRM_Net(2, np.array([5, 3000]), np.array([4, 8, 2]), np.array([5, 4, 1]), sigmoid_top=1)
>>> # the top MLP takes x and the 3 dot products of x and the two pooled vectors: 2 + 3 = 5
>>> net.table_rows.tolist()
[5, 1000]
>>> dense, offsets, indices = torch.ones(6, 4), torch.arange(6).repeat(2, 1), torch.zeros(2, 6, dtype=torch.long)
>>> net(dense, offsets, indices).shape
torch.Size([6, 1])
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import torch
from torch import nn

MAX_ROWS = 1000


def mlp(widths: Any, sigmoid_at: int) -> nn.Sequential:
    """Linear layers between consecutive ``widths``, each followed by a ReLU, or by a sigmoid at layer index
    ``sigmoid_at`` (DLRM's ``sigmoid_bot`` / ``sigmoid_top``; -1: none)."""
    widths = [int(w) for w in widths]
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [nn.Linear(n_in, n_out), nn.Sigmoid() if i == sigmoid_at else nn.ReLU()]
    return nn.Sequential(*layers)


class DLRM_Net(nn.Module):  # noqa: N801 - the name the notebook imports
    """DLRM with the ``dot`` interaction; ``ln_emb`` rows per table (capped at ``max_rows``), ``m_spa`` wide."""

    def __init__(self, m_spa: int, ln_emb: Any, ln_bot: Any, ln_top: Any, arch_interaction_op: str = "dot",
                 arch_interaction_itself: bool = False, sigmoid_bot: int = -1, sigmoid_top: int = -1,
                 sync_dense_params: bool = True, loss_threshold: float = 0.0, ndevices: int = -1,
                 qr_flag: bool = False, qr_operation: Any = None, qr_collisions: Any = None,
                 qr_threshold: Any = None, md_flag: bool = False, md_threshold: Any = None,
                 max_rows: int = MAX_ROWS, seed: int = 0) -> None:
        super().__init__()
        if arch_interaction_op != "dot" or qr_flag or md_flag:
            raise ValueError(f"the stand-in has the 'dot' interaction and plain tables only; got "
                             f"arch_interaction_op={arch_interaction_op!r}, qr_flag={qr_flag}, md_flag={md_flag}")
        self.arch_interaction_itself = arch_interaction_itself
        self.loss_threshold = loss_threshold
        self.table_rows = torch.as_tensor(np.minimum(np.asarray(ln_emb), max_rows), dtype=torch.long)
        self.emb_l = nn.ModuleList(nn.EmbeddingBag(int(n), int(m_spa), mode="sum") for n in self.table_rows)
        self.v_W_l: list[Any] = [None] * len(self.emb_l)  # no per-sample weights (DLRM's weighted pooling off)
        self.bot_l = mlp(ln_bot, sigmoid_bot)
        self.top_l = mlp(ln_top, sigmoid_top)
        self.reset_parameters(seed)

    def reset_parameters(self, seed: int = 0) -> None:
        """Random weights from ``seed``: linear weights normal with variance 2 / (fan in + fan out), biases with
        variance 1 / fan out; table entries normal with variance 1 / width, so that the dot products of the
        interaction are of order one."""
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in [*self.bot_l, *self.top_l]:
                if isinstance(layer, nn.Linear):
                    n_out, n_in = layer.weight.shape
                    layer.weight.copy_(torch.randn(n_out, n_in, generator=gen) * (2.0 / (n_in + n_out)) ** 0.5)
                    layer.bias.copy_(torch.randn(n_out, generator=gen) * (1.0 / n_out) ** 0.5)
            for table in self.emb_l:
                table.weight.copy_(torch.randn(table.weight.shape, generator=gen) / table.weight.shape[1] ** 0.5)

    def apply_mlp(self, x: torch.Tensor, layers: nn.Sequential) -> torch.Tensor:
        return layers(x)

    def apply_emb(self, lS_o: Any, lS_i: Any, emb_l: Any, v_W_l: Any) -> list[torch.Tensor]:  # noqa: N803
        """One pooled vector per sample and table: table ``k`` sums the rows ``lS_i[k]`` of each sample's bag
        (bags start at ``lS_o[k]``)."""
        return [table(lS_i[k], lS_o[k], per_sample_weights=None if v_W_l[k] is None else
                      v_W_l[k].gather(0, lS_i[k])) for k, table in enumerate(emb_l)]

    def interact_features(self, x: torch.Tensor, ly: list[torch.Tensor]) -> torch.Tensor:
        """``x`` followed by the dot products of each pair of the feature vectors ``[x, *ly]`` (the lower
        triangle of their Gram matrix, row by row; with the diagonal when ``arch_interaction_itself``)."""
        features = torch.stack([x, *ly], dim=1)
        gram = features @ features.transpose(1, 2)
        rows, cols = torch.tril_indices(gram.shape[1], gram.shape[1], 0 if self.arch_interaction_itself else -1)
        return torch.cat([x, gram[:, rows, cols]], dim=1)

    def forward(self, dense_x: torch.Tensor, lS_o: Any, lS_i: Any) -> torch.Tensor:  # noqa: N803
        x = self.apply_mlp(dense_x, self.bot_l)
        z = self.interact_features(x, self.apply_emb(lS_o, lS_i, self.emb_l, self.v_W_l))
        p = self.apply_mlp(z, self.top_l)
        if 0.0 < self.loss_threshold < 1.0:
            p = torch.clamp(p, min=self.loss_threshold, max=1.0 - self.loss_threshold)
        return p


def install() -> None:
    """This module as ``dlrm_s_pytorch`` in ``sys.modules`` (the notebook's ``from dlrm_s_pytorch import
    DLRM_Net``)."""
    module = types.ModuleType("dlrm_s_pytorch", __doc__)
    module.DLRM_Net = DLRM_Net  # type: ignore[attr-defined]
    sys.modules["dlrm_s_pytorch"] = module
