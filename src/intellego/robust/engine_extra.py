"""Loops of the attacks beyond Captum: APGD-CE (Croce and Hein, 2020), Carlini-Wagner L2 (2017) and DeepFool
(Moosavi-Dezfooli et al., 2016).

Each works on one ``(N, D)`` tensor of flattened examples (a tuple of inputs is concatenated per example, so norms
are taken over all of an example's tensors jointly) and a ``logits(v, rows)`` function that runs the model on
the examples ``rows``. Every example keeps its own step size, best point and stopping state; finished examples
leave the batch.

Example:
    >>> import torch
    >>> from intellego.robust.engine_extra import Flat
    >>> flat = Flat((torch.zeros(2, 3), torch.ones(2, 2, 2)))
    >>> v = flat.flat((torch.zeros(2, 3), torch.ones(2, 2, 2)))
    >>> v.shape, [t.shape for t in flat.split(v)]
    (torch.Size([2, 7]), [torch.Size([2, 3]), torch.Size([2, 2, 2])])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import IntellegoError, require

__all__ = ["Flat", "apgd", "cw_l2", "deepfool", "checkpoint_gaps"]

Logits = Callable[[Tensor, Tensor], Tensor]


class Flat:
    """Concatenate a tuple of ``(N, ...)`` tensors into ``(N, D)`` and split it back."""

    def __init__(self, xs: tuple[Tensor, ...]) -> None:
        dtypes = {x.dtype for x in xs}
        require(len(dtypes) == 1, f"inputs must share one dtype for this attack, got {sorted(map(str, dtypes))}")
        self.shapes = [tuple(x.shape[1:]) for x in xs]
        self.sizes = [math.prod(s) for s in self.shapes]

    def flat(self, xs: tuple[Tensor, ...]) -> Tensor:
        return torch.cat([x.reshape(x.shape[0], -1) for x in xs], dim=1)

    def split(self, v: Tensor) -> tuple[Tensor, ...]:
        return tuple(p.reshape(v.shape[0], *s) for p, s in zip(v.split(self.sizes, dim=1), self.shapes))


def _grad_ce(logits: Logits, v: Tensor, rows: Tensor, labels: Tensor, sign: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per-example cross-entropy (times ``sign``), its gradient and the logits, at ``v``."""
    with torch.enable_grad():
        leaf = v.detach().requires_grad_(True)
        out = logits(leaf, rows)
        loss = sign * F.cross_entropy(out, labels, reduction="none")
        (g,) = torch.autograd.grad(loss.sum(), leaf)
    return loss.detach(), g, out.detach()


def _project(center: Tensor, v: Tensor, eps: float, norm: str, lo: float, hi: float) -> Tensor:
    d = v - center
    if norm == "Linf":
        d = d.clamp(-eps, eps)
    else:
        d = d * (eps / d.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
    return (center + d).clamp(lo, hi)


def checkpoint_gaps(steps: int) -> tuple[int, int, int]:
    """APGD's checkpoint schedule: first gap, its decrease and its minimum (22%, 3% and 6% of the steps)."""
    return max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)


def apgd(logits: Logits, x: Tensor, labels: Tensor, mask: Tensor | None, *, eps: float, steps: int, norm: str,
         rho: float, lo: float, hi: float, targeted: bool, start: Tensor) -> tuple[Tensor, Tensor]:
    """One APGD-CE run from ``start`` (already in the ball). Returns each example's point (the first fooling one,
    else the highest-loss one) and whether it fooled the model."""
    n = x.shape[0]
    rows = torch.arange(n, device=x.device)
    sign = -1.0 if targeted else 1.0
    m = 1.0 if mask is None else mask

    def fooled(out: Tensor) -> Tensor:
        pred = out.argmax(1)
        return pred == labels if targeted else pred != labels

    def step_dir(g: Tensor) -> Tensor:
        g = g * m
        return g.sign() if norm == "Linf" else g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)

    cur = start
    loss, grad, out = _grad_ce(logits, cur, rows, labels, sign)
    done = fooled(out)
    adv = torch.where(done[:, None], cur, x)
    best, best_loss, best_grad = cur.clone(), loss.clone(), grad.clone()
    eta = torch.full((n, 1), 2.0 * eps, dtype=x.dtype, device=x.device)
    prev = cur.clone()
    gap, decr, gap_min = checkpoint_gaps(steps)
    since, increases = 0, torch.zeros(n, device=x.device)
    reduced_last = torch.ones(n, dtype=torch.bool, device=x.device)
    best_at_check = best_loss.clone()
    last_loss = loss
    for i in range(steps):
        a = 0.75 if i > 0 else 1.0
        momentum = cur - prev
        prev = cur
        z = _project(x, cur + eta * step_dir(grad), eps, norm, lo, hi)
        cur = _project(x, cur + a * (z - cur) + (1 - a) * momentum, eps, norm, lo, hi)
        loss, grad, out = _grad_ce(logits, cur, rows, labels, sign)
        hit = fooled(out) & ~done
        adv[hit] = cur[hit]
        done |= hit
        better = loss > best_loss
        best[better], best_grad[better], best_loss[better] = cur[better], grad[better], loss[better]
        increases += (loss > last_loss).to(increases.dtype)
        last_loss = loss
        since += 1
        if since == gap:
            oscillating = increases <= gap * rho
            stalled = ~reduced_last & (best_at_check >= best_loss)
            reduce = oscillating | stalled
            reduced_last, best_at_check = reduce, best_loss.clone()
            eta[reduce] /= 2.0
            cur = torch.where(reduce[:, None], best, cur)
            grad = torch.where(reduce[:, None], best_grad, grad)
            since, increases = 0, torch.zeros_like(increases)
            gap = max(gap - decr, gap_min)
    adv = torch.where(done[:, None], adv, best)
    return adv, done


def cw_l2(logits: Logits, x: Tensor, labels: Tensor, mask: Tensor | None, *, c: float, kappa: float, steps: int,
          lr: float, lo: float, hi: float, targeted: bool, abort_early: bool) -> tuple[Tensor, Tensor]:
    """Carlini-Wagner L2 with a fixed ``c``: Adam on ``w`` with ``x' = lo + (hi - lo) (tanh(w) + 1) / 2``, minimising
    ``||x' - x||^2 + c * max(margin, -kappa)``. Returns the smallest fooling point per example (the input itself
    where none fools) and whether one was found. With ``abort_early`` an example stops when its objective has not
    decreased over a tenth of the steps."""
    require(math.isfinite(lo) and math.isfinite(hi) and hi > lo,
            f"CW-L2 needs finite bounds with lower_bound < upper_bound, got [{lo}, {hi}]")
    n = x.shape[0]
    scale = (hi - lo) / 2
    unit = ((x - lo) / scale - 1).clamp(-1 + 1e-6, 1 - 1e-6)
    w = torch.atanh(unit).detach().requires_grad_(True)
    keep = None if mask is None else (mask == 0)
    # Adam (beta 0.9, 0.999, eps 1e-8) written out: torch.optim's first step imports torch._dynamo (seconds)
    m1, m2 = torch.zeros_like(w), torch.zeros_like(w)
    best = x.clone()
    best_l2 = torch.full((n,), math.inf, dtype=x.dtype, device=x.device)
    found = torch.zeros(n, dtype=torch.bool, device=x.device)
    active = torch.ones(n, dtype=torch.bool, device=x.device)
    rows = torch.arange(n, device=x.device)
    prev_cost = torch.full((n,), math.inf, dtype=x.dtype, device=x.device)
    every = max(steps // 10, 1)
    onehot: Tensor | None = None  # built on the first output
    for step in range(steps):
        with torch.enable_grad():
            adv = lo + scale * (torch.tanh(w) + 1)
            if keep is not None:
                adv = torch.where(keep, x, adv)
            out = logits(adv, rows)
            if onehot is None:
                onehot = F.one_hot(labels, num_classes=out.shape[1]).bool()
            real = out[onehot]
            other = out.masked_fill(onehot, -math.inf).amax(1)
            margin = (other - real) if targeted else (real - other)
            l2 = (adv - x).pow(2).sum(1)
            cost = l2 + c * margin.clamp(min=-kappa)
            # the gradient goes to w alone (backward() would also add into the model's parameter .grad)
            (g,) = torch.autograd.grad((cost * active).sum(), w)
        with torch.no_grad():
            pred = out.argmax(1)
            ok = (pred == labels) if targeted else (pred != labels)
            better = ok & (l2 < best_l2) & active
            best[better], best_l2[better] = adv[better].detach(), l2[better].detach()
            found |= better
        if not bool(active.any()):
            break
        with torch.no_grad():
            m1.mul_(0.9).add_(g, alpha=0.1)
            m2.mul_(0.999).addcmul_(g, g, value=0.001)
            t = step + 1
            update = (m1 / (1 - 0.9 ** t)) / ((m2 / (1 - 0.999 ** t)).sqrt() + 1e-8)
            w.sub_(lr * update * active[:, None])  # frozen examples stay where they stopped
        if abort_early and step % every == 0:
            c_now = cost.detach()
            active &= ~(c_now > prev_cost)
            prev_cost = torch.where(active, c_now, prev_cost)
    return best, found


def deepfool(logits: Logits, x: Tensor, labels: Tensor, mask: Tensor | None, *, steps: int, overshoot: float,
             lo: float, hi: float, num_classes: int | None) -> tuple[Tensor, Tensor]:
    """DeepFool (L2): linearise the model at the current point and step to the nearest linearised decision
    boundary, until the prediction leaves ``labels``. Only the ``num_classes`` highest-scoring classes of the input
    are candidates (all when None). Returns the points and whether each fooled the model."""
    n = x.shape[0]
    m = 1.0 if mask is None else mask
    total = torch.zeros_like(x)
    cur = x.clone()
    done = torch.zeros(n, dtype=torch.bool, device=x.device)
    active = torch.arange(n, device=x.device)
    with torch.no_grad():
        first = logits(x, active)
    require(first.dim() == 2, f"DeepFool needs (N, classes) model outputs, got shape {tuple(first.shape)}")
    classes = first.shape[1]
    k = classes if num_classes is None else min(num_classes, classes)
    order = first.argsort(dim=1, descending=True)
    others = order[order != labels[:, None]].reshape(n, classes - 1)[:, :k - 1]
    cand = torch.cat([labels[:, None], others], dim=1)
    for it in range(steps + 1):
        if active.numel() == 0:
            break
        with torch.enable_grad():
            leaf = cur[active].detach().requires_grad_(True)
            out = logits(leaf, active)
            picked = out.gather(1, cand[active])
            m_rows = m if mask is None else mask[active]
            grads = [torch.autograd.grad(picked[:, j].sum(), leaf, retain_graph=j < k - 1)[0] * m_rows
                     for j in range(k)]
        with torch.no_grad():
            hit = out.argmax(1) != labels[active]
            done[active[hit]] = True
            live = ~hit
            if not bool(live.any()) or it == steps:
                active = active[live]
                break
            w = torch.stack([g - grads[0] for g in grads[1:]], dim=1)[live]  # (a, k-1, D)
            f = (picked[:, 1:] - picked[:, :1])[live]  # (a, k-1)
            wn = w.norm(dim=2).clamp_min(1e-12)
            j = (f.abs() / wn).argmin(1)
            pick = torch.arange(w.shape[0], device=w.device)
            # the step onto the nearest linearised boundary: (|f_j| + 1e-4) / ||w_j||^2 * w_j (sign flips f_j < 0)
            r = ((f[pick, j].abs() + 1e-4) / wn[pick, j].pow(2))[:, None] * w[pick, j]
            ids = active[live]
            total[ids] += r
            cur[ids] = (x[ids] + (1 + overshoot) * total[ids]).clamp(lo, hi)
            active = ids
    if active.numel() > 0:
        with torch.no_grad():
            out = logits(cur[active], active)
        done[active[out.argmax(1) != labels[active]]] = True
    if not bool(torch.isfinite(cur).all()):
        raise IntellegoError("DeepFool produced non-finite inputs: the model's gradients are not finite")
    return cur, done
