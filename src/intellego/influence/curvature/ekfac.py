"""K-FAC / EK-FAC factors of the Gauss-Newton curvature for ``nn.Linear`` layers.

For a linear layer ``y = W a (+ b)`` the Gauss-Newton block is ``sum_n (a_n a_n^T) (x) (s_n s_n^T)`` summed over
the output cotangents ``s`` of each example (pseudo-gradients ``L^T e_k`` back-propagated from the output, where
``L L^T`` is the loss's Hessian with respect to the model output). K-FAC replaces it by ``A (x) S`` with
``A = sum a a^T`` and ``S = sum s s^T``; EK-FAC keeps K-FAC's eigenbasis ``Q_A (x) Q_S`` and refits the
eigenvalues to the exact diagonal of the curvature in that basis: ``Lambda_ij = sum_n (Q_S^T G_n Q_A)_ij^2``.
On one linear layer with a squared-error loss this is the exact Gauss-Newton matrix.

The statistics are read with hooks (:class:`~intellego.core.hooks.HookScope`), one pass for ``A`` and ``S`` and one
for the eigen-correction; rows over positions (sequences) are summed per example.

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

from ...core.hooks import HookScope
from ...errors import describe, require
from .functional import per_example_loss

__all__ = ["LayerFactors", "fit_ekfac", "output_cotangents", "per_example_loss"]

MAX_EXACT_OUTPUTS = 64


@dataclass
class LayerFactors:
    """One layer's EK-FAC factors: eigenbases of ``A`` (inputs, bias column last) and ``S`` (outputs), the corrected
    eigenvalues ``(out, in [+ 1])`` and the K-FAC ones, all for the curvature summed over the dataset."""

    module: nn.Linear
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
        g = g.reshape(n, c)
        rows = []
        for j in range(c):
            h, = torch.autograd.grad(g[:, j].sum(), z, retain_graph=j + 1 < c, allow_unused=True)
            rows.append(torch.zeros(n, c, dtype=z.dtype) if h is None else h.reshape(n, c))
    H = torch.stack(rows, 1).detach()
    evals, evecs = torch.linalg.eigh((H + H.transpose(1, 2)) / 2)
    roots = evecs * evals.clamp_min(0).sqrt().unsqueeze(1)  # (n, c, r): H = roots roots^T
    return roots.permute(2, 0, 1).reshape(c, *out.shape)


def _statistics(model: nn.Module, layers: Sequence[nn.Linear], batch: Sequence[Any],
                loss: Callable[[Any, Any], Tensor], fisher: str, generator: torch.Generator | None,
                ) -> tuple[list[Tensor], list[list[Tensor]]]:
    """Layer inputs ``(n, T, in[+1])`` and, per cotangent, layer output gradients ``(n, T, out)``."""
    features, labels = batch[:-1], batch[-1]
    with HookScope() as scope, torch.enable_grad():
        in_caps = [scope.capture(m, inputs=True) for m in layers]
        caps = [scope.capture(m) for m in layers]
        out = model(*features)
        found = out if isinstance(out, Tensor) else getattr(out, "logits", None)
        require(isinstance(found, Tensor), f"EK-FAC needs a tensor output (or .logits), got {describe(out)}")
        logits: Tensor = found  # type: ignore[assignment]
        U = output_cotangents(logits, labels, _on_logits(loss, out), fisher, generator)
        for m, c, ci in zip(layers, caps, in_caps):
            require(len(c.outputs) == 1 and isinstance(ci.outputs[0], Tensor),
                    f"EK-FAC needs each chosen layer to run once per forward pass with one input; "
                    f"a {type(m).__name__} ran {len(c.outputs)} times")
        acts = [c.outputs[0] for c in caps]
        ins = []
        for m, cap in zip(layers, in_caps):
            a = cap.outputs[0].detach()
            a = a.reshape(a.shape[0], -1, a.shape[-1])
            if m.bias is not None:
                a = torch.cat([a, torch.ones(*a.shape[:-1], 1, dtype=a.dtype, device=a.device)], -1)
            ins.append(a)
        grads_per_u = []
        for k in range(U.shape[0]):
            gs = torch.autograd.grad(logits, acts, grad_outputs=U[k], retain_graph=k + 1 < U.shape[0],
                                     allow_unused=True)
            grads_per_u.append([torch.zeros_like(t) if g is None else g.detach().reshape(t.shape[0], -1, t.shape[-1])
                                for g, t in zip(gs, acts)])
    return ins, [list(col) for col in zip(*grads_per_u)]


def _on_logits(loss: Callable[[Any, Any], Tensor], out: Any) -> Callable[[Tensor, Any], Tensor]:
    """The loss as a function of the logits tensor, for a model returning an object with ``.logits``."""
    if isinstance(out, Tensor):
        return loss
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return lambda z, y: loss(dataclasses.replace(out, logits=z), y)
    return lambda z, y: loss(types.SimpleNamespace(logits=z), y)


def fit_ekfac(model: nn.Module, layers: Sequence[nn.Linear], batches: Iterable[Sequence[Any]],
              loss: Callable[[Any, Any], Tensor], *, fisher: str = "exact", generator: torch.Generator | None = None,
              progress: Callable[[], None] | None = None) -> list[LayerFactors]:
    """Fit K-FAC factors (first pass) and EK-FAC's corrected eigenvalues (second pass) over ``batches``."""
    require(fisher in ("exact", "sampled"), f"fisher must be 'exact' or 'sampled', got {describe(fisher)}")
    for m in layers:
        require(isinstance(m, nn.Linear), f"EK-FAC supports nn.Linear layers, got {type(m).__name__}")
    batches = list(batches)
    A: list[Tensor] = []
    S: list[Tensor] = []
    count = 0
    for batch in batches:
        ins, outs = _statistics(model, layers, batch, loss, fisher, generator)
        count += ins[0].shape[0]
        for i, (a, ss) in enumerate(zip(ins, outs)):
            a2 = a.reshape(-1, a.shape[-1])
            s2 = torch.cat([s.reshape(-1, s.shape[-1]) for s in ss])
            if i == len(A):
                A.append(torch.zeros(a2.shape[1], a2.shape[1], dtype=a2.dtype))
                S.append(torch.zeros(s2.shape[1], s2.shape[1], dtype=s2.dtype))
            A[i] += a2.T @ a2
            S[i] += s2.T @ s2
        if progress:
            progress()
    bases = []
    for a_mat, s_mat in zip(A, S):
        la, qa = torch.linalg.eigh(a_mat)
        ls, qs = torch.linalg.eigh(s_mat)
        bases.append((qa, qs, torch.outer(ls.clamp_min(0), la.clamp_min(0)) / max(count, 1)))
    corrected = [torch.zeros_like(b[2]) for b in bases]
    for batch in batches:
        ins, outs = _statistics(model, layers, batch, loss, fisher, generator)
        for i, (a, ss) in enumerate(zip(ins, outs)):
            qa, qs, _ = bases[i]
            ra = a @ qa
            for s in ss:
                rs = s @ qs
                G = torch.einsum("nto,nti->noi", rs, ra)
                corrected[i] += (G * G).sum(0)
        if progress:
            progress()
    return [LayerFactors(m, qa, qs, lam, kf, m.bias is not None)
            for m, (qa, qs, kf), lam in zip(layers, bases, corrected)]
