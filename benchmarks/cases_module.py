"""Module family: stochastic gates (forward + backward to the gate parameters, training mode, fresh draws each
call) against captum.module, and ``select_features`` against the training loop a Captum user writes by hand.

Floors: for the gates, a plain elementwise multiply of the input by a fixed mask, forward and backward (to the
input); for ``select_features``, the same number of optimizer steps of the frozen model alone (forward, backward
to the input, no gates), so the floor prices the model and the loop, not the gates.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import captum.module as cmod
import torch
from torch import nn

import intellego.module as im

from .harness import Case

SEC_GATES = "module: stochastic gates, forward+backward"
SEC_SELECT = "module: select_features"


def _step(gates: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    params = list(gates.parameters())

    def run() -> Any:
        gated, reg = gates(x)
        return torch.autograd.grad(gated.sum() + reg.sum(), params)

    return run


def _floor(x: torch.Tensor) -> Callable[[], Any]:
    fixed = torch.rand(x.shape[1:])

    def run() -> Any:
        leaf = x.detach().requires_grad_(True)
        return torch.autograd.grad((leaf * fixed).sum(), leaf)

    return run


def _gate_cases(quick: bool) -> list[Case]:
    channel = torch.arange(3).reshape(1, 3, 1, 1)
    settings = [((32, 50), None, "tabular 32 x 50"), ((128, 784), None, "128 x 784"),
                ((16 if quick else 64, 3, 32, 32), None, "images 64 x 3x32x32, one gate per element"),
                ((16 if quick else 64, 3, 32, 32), channel, "images 64 x 3x32x32, one gate per channel (mask)")]
    out = []
    for kind, label in (("BinaryConcreteStochasticGates", "binary concrete"), ("GaussianStochasticGates", "gaussian")):
        for shape, mask, setting in settings:
            n = 3 if mask is not None else int(torch.tensor(shape[1:]).prod())
            x = torch.randn(*shape)
            ours = getattr(im, kind)(n, mask=mask)
            theirs = getattr(cmod, kind)(n, mask=mask)
            out.append(Case(SEC_GATES, label, setting, _step(ours, x), _step(theirs, x), _floor(x)))
    out[0].note = ("wall-clock times; under load they swing by several x between runs, so "
                   "`python -m benchmarks.cases_module` also measures CPU time (docs/module.md has its table)")
    return out


def _task() -> tuple[nn.Module, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    planted = torch.randperm(50, generator=g)[:5]
    model = nn.Sequential(nn.Linear(50, 16), nn.Tanh(), nn.Linear(16, 1))
    with torch.no_grad():
        model[0].weight.mul_(0.01)
        model[0].weight[:, planted] = torch.randn(16, 5, generator=g)
    return model.eval(), torch.randn(512, 50, generator=g)


def _select_cases(quick: bool) -> list[Case]:
    model, x = _task()
    epochs, batch = (3 if quick else 10), 256
    targets = model(x).detach()

    def ours() -> Any:
        return im.select_features(model, x, max_epochs=epochs, patience=epochs, lr=0.1, batch_size=batch,
                                  generator=torch.Generator().manual_seed(0))

    def hand_loop(gated_model: bool) -> Callable[[], Any]:
        def run() -> Any:  # what a Captum user writes: shuffle, gate, loss + L0, Adam on the gates
            gates = cmod.BinaryConcreteStochasticGates(50, reg_weight=0.02)
            opt = torch.optim.Adam(gates.parameters(), lr=0.1)
            for _ in range(epochs):
                order = torch.randperm(x.shape[0])
                for start in range(0, x.shape[0], batch):
                    rows = order[start:start + batch]
                    if gated_model:
                        gated, reg = gates(x[rows])
                        loss = nn.functional.mse_loss(model(gated), targets[rows]) + reg
                        opt.zero_grad()
                        loss.backward(inputs=list(gates.parameters()))
                        opt.step()
                    else:
                        leaf = x[rows].requires_grad_(True)
                        loss = nn.functional.mse_loss(model(leaf), targets[rows])
                        torch.autograd.grad(loss, leaf)
            return gates

        return run

    return [Case(SEC_SELECT, "select_features", f"50 features, 512 rows, {epochs} epochs of batch {batch}", ours,
                 hand_loop(True), hand_loop(False),
                 note="Captum column: the hand-written loop with Captum's gates (Captum ships no trainer); "
                      "select_features also computes the normalising losses and the model's own targets")]


def cases(quick: bool = False) -> list[Case]:
    return _gate_cases(quick) + _select_cases(quick)


def cpu_times(rounds: int = 15) -> None:
    """Median process CPU time per call of each variant, interleaved: steadier than wall-clock time when other
    processes compete for the cores (one torch thread, so CPU time is the work done)."""
    torch.set_num_threads(1)

    def timed(fn: Callable[[], Any], k: int) -> float:
        start = time.process_time()
        for _ in range(k):
            fn()
        return (time.process_time() - start) / k

    print("| section | method | setting | intellego | Captum | floor | ours / Captum |")
    print("|---|---|---|---|---|---|---|")
    for case in cases(False):
        variants = {"ours": case.ours, "captum": case.captum, "floor": case.floor}
        for fn in variants.values():
            fn()
        k = max(1, int(0.02 / max(timed(case.ours, 1), 1e-5)))
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, fn in variants.items():
                if fn is not None:
                    samples[name].append(timed(fn, k))
        med = {name: statistics.median(v) * 1e3 for name, v in samples.items()}
        print(f"| {case.section.split(': ', 1)[1]} | {case.name} | {case.setting} | {med['ours']:.3f} ms | "
              f"{med['captum']:.3f} ms | {med['floor']:.3f} ms | {med['ours'] / med['captum']:.2f} |", flush=True)


if __name__ == "__main__":
    cpu_times()
