"""K-FAC / EK-FAC factors of the Gauss-Newton curvature for ``nn.Linear`` and ``nn.Conv2d`` layers.

A layer's per-example weight gradient for an output cotangent ``u`` (a pseudo-gradient ``L^T e_k`` pulled back
from the output, where ``L L^T`` is the loss's Hessian with respect to the model output) is
``G = sum_t s_t a_t^T`` over positions ``t`` (:mod:`.layers`: tokens, or a convolution's unfolded patches), and
the Gauss-Newton block is ``sum_{n,u} vec(G) vec(G)^T``. K-FAC (KFC for convolutions, Grosse & Martens 2016)
replaces it by ``A (x) S / rows`` with ``A = sum a_t a_t^T`` and ``S = sum s_t s_t^T`` over all rows; EK-FAC keeps
K-FAC's eigenbasis ``Q_A (x) Q_S`` and refits the eigenvalues to the exact diagonal of the curvature in that
basis: ``Lambda_ij = sum (Q_S^T G Q_A)_ij^2``. On one linear or convolutional layer with a squared-error loss
(output Hessian a multiple of the identity) this is the exact Gauss-Newton matrix.

The statistics are read with hooks (:func:`.layers.layer_rows`), one pass for ``A`` and ``S`` and one for the
eigen-correction, each batch cut into pieces that fit the memory budget.

Example:
    >>> import torch
    >>> from torch import nn
    >>> layer = nn.Linear(3, 2)
    >>> f = fit_ekfac(layer, [layer], [(torch.randn(8, 3), torch.zeros(8, 2))],
    ...               per_example_loss(nn.MSELoss(reduction="none"), "none"))
    >>> f[0].eigenvalues.shape  # (out, in + 1): the bias is the last input column
    torch.Size([2, 4])
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import describe, require
from .functional import per_example_loss
from .layers import check_layer, layer_rows, logits_of, rows_per_chunk, split_batch_rows

__all__ = ["LayerFactors", "fit_ekfac", "output_cotangents", "per_example_loss"]

MAX_EXACT_OUTPUTS = 64


@dataclass
class LayerFactors:
    """One layer's EK-FAC factors: eigenbases of ``A`` (inputs, bias column last) and ``S`` (outputs), the corrected
    eigenvalues ``(out, in [+ 1])`` and the K-FAC ones, all for the curvature summed over the dataset."""

    module: nn.Module
    q_in: Tensor
    q_out: Tensor
    eigenvalues: Tensor
    kfac_eigenvalues: Tensor
    has_bias: bool


def output_cotangents(out: Tensor, labels: Any, loss: Callable[[Any, Any], Tensor], fisher: str,
                      generator: torch.Generator | None) -> Tensor:
    """Cotangents ``(r, *out.shape)`` whose outer products sum to each example's output Hessian (``fisher="exact"``,
    from its eigendecomposition) or, for ``fisher="sampled"``, one loss gradient with labels drawn from the
    model's own softmax over the last dimension (an unbiased estimate of the same for a cross-entropy loss)."""
    out = out.detach()
    if fisher == "sampled":
        probs = torch.softmax(out.double(), -1).reshape(-1, out.shape[-1])
        drawn = torch.multinomial(probs, 1, generator=generator).reshape(out.shape[:-1])
        z = out.clone().requires_grad_(True)
        with torch.enable_grad():
            g, = torch.autograd.grad(loss(z, drawn).sum(), z)
        return g.unsqueeze(0)
    n = out.shape[0]
    c = out[0].numel()
    require(c <= MAX_EXACT_OUTPUTS, f"fisher='exact' needs at most {MAX_EXACT_OUTPUTS} outputs per example, the model "
                                    f"gives {c}; use fisher='sampled'")

    z = out.clone().requires_grad_(True)
    with torch.enable_grad():  # examples' losses are separate: one double-backward per output coordinate
        g, = torch.autograd.grad(loss(z, labels).sum(), z, create_graph=True)
        require(g.requires_grad, "the loss is linear in the model's outputs (without loss_fn the outputs are summed), "
                                 "so its Hessian is zero and influence functions are undefined; pass a loss_fn such "
                                 "as nn.CrossEntropyLoss(reduction='none') or nn.MSELoss(reduction='none')")
        g = g.reshape(n, c)
        rows = []
        for j in range(c):
            h, = torch.autograd.grad(g[:, j].sum(), z, retain_graph=j + 1 < c, allow_unused=True)
            rows.append(torch.zeros(n, c, dtype=z.dtype) if h is None else h.reshape(n, c))
    H = torch.stack(rows, 1).detach()
    evals, evecs = torch.linalg.eigh((H + H.transpose(1, 2)) / 2)
    roots = evecs * evals.clamp_min(0).sqrt().unsqueeze(1)  # (n, c, r): H = roots roots^T
    return roots.permute(2, 0, 1).reshape(c, *out.shape)


def _statistics(model: nn.Module, layers: Sequence[nn.Module], batch: Sequence[Any],
                loss: Callable[[Any, Any], Tensor], fisher: str, generator: torch.Generator | None,
                ) -> tuple[list[Tensor], list[list[Tensor]]]:
    """Layer input rows ``(n, T, in[+1])`` and, per layer and cotangent, output-gradient rows ``(n, T, out)``."""
    features, labels = batch[:-1], batch[-1]

    def cotangents(out: Any) -> tuple[Tensor, list[Tensor]]:
        logits = logits_of(out, "EK-FAC")
        return logits, list(output_cotangents(logits, labels, on_logits(loss, out), fisher, generator))

    _, ins, outs = layer_rows(model, layers, features, cotangents)
    return ins, outs


def on_logits(loss: Callable[[Any, Any], Tensor], out: Any) -> Callable[[Tensor, Any], Tensor]:
    """The loss as a function of the logits tensor, for a model returning an object with ``.logits``."""
    if isinstance(out, Tensor):
        return loss
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return lambda z, y: loss(dataclasses.replace(out, logits=z), y)
    return lambda z, y: loss(types.SimpleNamespace(logits=z), y)


def fit_ekfac(model: nn.Module, layers: Sequence[nn.Module], batches: Iterable[Sequence[Any]],
              loss: Callable[[Any, Any], Tensor], *, fisher: str = "exact", generator: torch.Generator | None = None,
              progress: Callable[[], None] | None = None, memory_budget: int | None = None) -> list[LayerFactors]:
    """Fit K-FAC factors (first pass) and EK-FAC's corrected eigenvalues (second pass) over ``batches``, each
    batch cut into pieces whose rows fit ``memory_budget``."""
    require(fisher in ("exact", "sampled"), f"fisher must be 'exact' or 'sampled', got {describe(fisher)}")
    for i, m in enumerate(layers):
        check_layer(str(i), m, "EK-FAC")
    batches = list(batches)
    pieces = _pieces(model, layers, batches, fisher, memory_budget)
    A: list[Tensor] = []
    S: list[Tensor] = []
    positions = 0
    for piece in pieces:
        if piece is None:
            if progress:
                progress()
            continue
        ins, outs = _statistics(model, layers, piece, loss, fisher, generator)
        positions += ins[0].shape[0] * ins[0].shape[1]
        for i, (a, ss) in enumerate(zip(ins, outs)):
            a2 = a.reshape(-1, a.shape[-1])
            s2 = torch.cat([s.reshape(-1, s.shape[-1]) for s in ss])
            if i == len(A):
                A.append(torch.zeros(a2.shape[1], a2.shape[1], dtype=a2.dtype))
                S.append(torch.zeros(s2.shape[1], s2.shape[1], dtype=s2.dtype))
            A[i] += a2.T @ a2
            S[i] += s2.T @ s2
    bases = []
    for a_mat, s_mat in zip(A, S):  # K-FAC (KFC for convolutions): A (x) S / number of rows
        la, qa = torch.linalg.eigh(a_mat)
        ls, qs = torch.linalg.eigh(s_mat)
        bases.append((qa, qs, torch.outer(ls.clamp_min(0), la.clamp_min(0)) / max(positions, 1)))
    corrected = [torch.zeros_like(b[2]) for b in bases]
    for piece in pieces:
        if piece is None:
            if progress:
                progress()
            continue
        ins, outs = _statistics(model, layers, piece, loss, fisher, generator)
        for i, (a, ss) in enumerate(zip(ins, outs)):
            qa, qs, _ = bases[i]
            ra = a @ qa
            for s in ss:
                G = torch.einsum("nto,nti->noi", s @ qs, ra)
                corrected[i] += (G * G).sum(0)
    return [LayerFactors(m, qa, qs, lam, kf, m.bias is not None)
            for m, (qa, qs, kf), lam in zip(layers, bases, corrected)]


def _pieces(model: nn.Module, layers: Sequence[nn.Module], batches: list[Sequence[Any]], fisher: str,
            memory_budget: int | None) -> list[Any]:
    """The batches cut to the memory budget, ``None`` after each batch's pieces (a progress tick)."""
    out: list[Any] = []
    rows: int | None = None
    for batch in batches:
        if rows is None:  # fisher="exact": one cotangent per output number
            rows = rows_per_chunk(model, layers, batch[:-1], 1 if fisher == "sampled" else None, memory_budget)
        out.extend(split_batch_rows(batch, rows))
        out.append(None)
    return out
