"""Metrics family: infidelity and sensitivity_max against captum.metrics on the same settings.

Floors: infidelity is one batched forward over the same perturbed samples (plus the clean inputs);
sensitivity_max is dominated by the explanation calls, so its floor is the explanation method's own time on the
same perturbed samples (plus the clean inputs). Both libraries get the same explanation function and the same
kind of perturbation, so the rows compare the metric machinery.
"""

from __future__ import annotations

import captum.metrics as cm
import torch

import intellego.attr as ia
import intellego.metrics as im

from .harness import Case, floor_forward, quiet
from .models import mlp, resnet


def _noise(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    noise = torch.randn_like(inputs) * 0.05
    return noise, inputs - noise




def _infidelity_cases(sec: str, model: torch.nn.Module, x: torch.Tensor, target: int, n: int) -> list[Case]:
    attr = ia.Saliency(model).attribute(x, target=target, abs=False)
    rows = torch.cat([x, x.repeat_interleave(n, dim=0)])
    out = []
    for limit in (None, x.shape[0] * max(n // 5, 1)):
        kw = dict(target=target, n_perturb_samples=n, max_examples_per_batch=limit)
        out.append(Case(sec, "infidelity", f"n_perturb_samples={n}, max_examples_per_batch={limit}",
                        lambda kw=kw: im.infidelity(model, _noise, x, attr, **kw),
                        quiet(lambda kw=kw: cm.infidelity(model, _noise, x, attr, **kw)),
                        floor_forward(model, rows)))
    return out


def _sensitivity_case(sec: str, model: torch.nn.Module, x: torch.Tensor, target: int, n: int) -> Case:
    explain = ia.Saliency(model).attribute
    rows = torch.cat([x, x.repeat_interleave(n, dim=0)])
    kw = dict(n_perturb_samples=n, target=target)
    return Case(sec, "sensitivity_max", f"Saliency, n_perturb_samples={n}",
                lambda: im.sensitivity_max(explain, x, **kw),
                quiet(lambda: cm.sensitivity_max(explain, x, **kw)),
                lambda: explain(rows, target=target),
                note="floor: the explanation on the same samples")


def cases(quick: bool = False) -> list[Case]:
    torch.manual_seed(0)
    out: list[Case] = []
    r = resnet()
    x = torch.randn(4, 3, 32, 32)
    n = 10 if quick else 50
    sec = "Metrics: small ResNet, 3x32x32, batch 4"
    out += _infidelity_cases(sec, r, x, 0, n)
    out.append(_sensitivity_case(sec, r, x, 0, n))
    m = mlp()
    batch = 128 if quick else 1024
    t = torch.randn(batch, 32)
    sec = f"Metrics: tabular MLP, 32 features, batch {batch}"
    out += _infidelity_cases(sec, m, t, 1, n)
    out.append(_sensitivity_case(sec, m, t, 1, n))
    return out
