"""Shared hygiene checks: an attribution call must leave the model and the caller's tensors as it found them.

A family registers cases in a ``tests/hygiene_<family>.py`` module as ``CASES = {name: Case(...)}``;
``test_hygiene.py`` runs every case after a successful call and after a call that raises, and checks that
every public class of ``intellego.attr`` has a case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class Case:
    """``make()`` returns ``(model, inputs)``; ``call(model, inputs)`` runs the method; ``bad(model, inputs)``
    runs it so that it raises (bad argument or a model that fails mid-call)."""

    make: Callable[[], tuple[nn.Module, Any]]
    call: Callable[[nn.Module, Any], Any]
    bad: Callable[[nn.Module, Any], Any] | None = None
    covers: tuple[str, ...] = ()


def _hook_counts(model: nn.Module) -> list[int]:
    counts = []
    for m in model.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                     "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs"):
            counts.append(len(getattr(m, attr, {})))
    return counts


def snapshot(model: nn.Module, tensors: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    return {
        "params": [(n, p.detach().clone(), p.requires_grad, None if p.grad is None else p.grad.clone())
                   for n, p in model.named_parameters()],
        "buffers": [(n, b.clone()) for n, b in model.named_buffers()],
        "training": [m.training for m in model.modules()],
        "dicts": [sorted(vars(m).keys()) for m in model.modules()],
        "forward": [m.__dict__.get("forward") for m in model.modules()],
        "hooks": _hook_counts(model),
        "global_hooks": (len(nn.modules.module._global_forward_hooks),
                         len(nn.modules.module._global_backward_hooks),
                         len(nn.modules.module._global_forward_pre_hooks)),
        "tensors": [(t.clone(), t.requires_grad, None if t.grad is None else t.grad.clone()) for t in tensors],
        "grad_enabled": torch.is_grad_enabled(),
    }


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    for (n, p0, r0, g0), (_, p1, r1, g1) in zip(before["params"], after["params"]):
        assert torch.equal(p0, p1), f"parameter {n} changed"
        assert r0 == r1, f"requires_grad of {n} changed"
        assert (g0 is None) == (g1 is None) and (g0 is None or torch.equal(g0, g1)), f".grad of {n} changed"
    for (n, b0), (_, b1) in zip(before["buffers"], after["buffers"]):
        assert torch.equal(b0, b1), f"buffer {n} changed"
    for key in ("training", "dicts", "forward", "hooks", "global_hooks", "grad_enabled"):
        assert before[key] == after[key], f"{key} changed: {before[key]} -> {after[key]}"
    for i, ((t0, r0, g0), (t1, r1, g1)) in enumerate(zip(before["tensors"], after["tensors"])):
        assert torch.equal(t0, t1), f"input {i} was modified"
        assert r0 == r1, f"requires_grad of input {i} changed"
        assert (g0 is None) == (g1 is None) and (g0 is None or torch.equal(g0, g1)), f".grad of input {i} changed"


def as_tensors(inputs: Any) -> tuple[torch.Tensor, ...]:
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


def tiny_mlp(d_in: int = 4, d_out: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, 6), nn.ReLU(), nn.Linear(6, d_out))


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def mlp_case(model: nn.Module | None = None) -> tuple[nn.Module, torch.Tensor]:
    """A model in training mode and an input that requires grad and already has a ``.grad``: state a method
    must leave as it found it."""
    model = tiny_mlp() if model is None else model
    model.train()
    x = torch.randn(3, 4, requires_grad=True)
    x.grad = torch.ones_like(x)
    return model, x


def cnn_case() -> tuple[nn.Module, tuple[torch.Tensor]]:
    """A small CNN whose first parameter already has a ``.grad``, and a 1-tuple of images."""
    model = tiny_cnn()
    next(model.parameters()).grad = torch.zeros_like(next(model.parameters()))
    return model, (torch.randn(2, 3, 8, 8),)


class Exploding(nn.Module):
    """Wraps a model and raises on the n-th forward call: for hygiene after a failure mid-call."""

    def __init__(self, inner: nn.Module, fail_on: int = 2) -> None:
        super().__init__()
        self.inner = inner
        self.fail_on = fail_on
        self.calls = 0

    def forward(self, *args: Any) -> Any:
        self.calls += 1
        if self.calls >= self.fail_on:
            raise RuntimeError("boom")
        return self.inner(*args)
