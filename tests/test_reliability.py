"""Reliability: concurrent calls on one shared model, and bad inputs on every public method.

The method table is ``tests/_reliability_cases.py``: adding a method there covers it in every test here.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest
import torch

from _reliability_cases import METHODS, cnn, images, run
from intellego.core.hooks import HookScope

N_THREADS = 4
M_CALLS = 2
CONCURRENT = sorted(n for n, m in METHODS.items() if m.family in ("layer", "neuron", "rules")) + [
    "Saliency", "IntegratedGradients", "FeatureAblation"]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.allclose(a, b, atol=1e-6, rtol=1e-5)
    if isinstance(a, (tuple, list)):
        return isinstance(b, type(a)) and len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    return a == b


@pytest.fixture
def busy_switching():
    """Switch threads every 10 microseconds, so calls interleave inside every forward pass."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def test_threads_share_one_model_and_each_get_the_sequential_answer(busy_switching):
    """N threads x M rounds of every layer, neuron and backward-rule method (beside gradient and perturbation
    methods) on one shared model: each result equals the sequential one (before the fix, LayerGradCam returned a
    tuple with the other threads' activations and LayerIntegratedGradients raised "ran 2 times")."""
    model, x = cnn(), images()
    expected = {name: run(name, model, x) for name in CONCURRENT}
    wrong: list[str] = []
    start = threading.Barrier(N_THREADS)

    def worker(k: int) -> None:
        start.wait()
        for r in range(M_CALLS):
            order = CONCURRENT[k + r:] + CONCURRENT[:k + r]  # each thread in its own rotation
            for name in order:
                try:
                    got = run(name, model, x)
                except Exception as e:  # noqa: BLE001 - reported below with the method's name
                    wrong.append(f"{name}: {type(e).__name__}: {e}")
                    continue
                if not _same(expected[name], got):
                    wrong.append(f"{name}: differs from the sequential result")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    total = N_THREADS * M_CALLS * len(CONCURRENT)
    assert not wrong, f"{len(wrong)} of {total} concurrent calls went wrong: {wrong[:5]}"


def test_hooks_skip_forward_passes_of_other_threads():
    layer = torch.nn.Linear(3, 2)
    inside, outside = threading.Event(), threading.Event()
    with HookScope() as scope:
        seen = scope.capture(layer)

        def other() -> None:
            layer(torch.ones(5, 3))
            outside.set()

        t = threading.Thread(target=other)
        t.start()
        t.join(10)
        assert outside.is_set()
        layer(torch.ones(1, 3))
        inside.set()
    assert [o.shape[0] for o in seen.outputs] == [1]  # only this thread's pass


def test_hooks_registered_outside_an_entered_scope_are_an_error():
    with pytest.raises(ValueError, match="enter the scope"):
        HookScope().capture(torch.nn.Linear(2, 2))


def test_function_modes_are_per_thread():
    """The backward-rule engine's TorchFunctionMode is on torch's thread-local mode stack: another thread's
    operations do not see it."""
    from torch.overrides import TorchFunctionMode

    seen: list[int] = []

    class Count(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            if func is torch.relu:
                seen.append(1)
            return func(*args, **(kwargs or {}))

    def other() -> None:
        torch.relu(torch.ones(3))

    with Count():
        t = threading.Thread(target=other)
        t.start()
        t.join(10)
        assert not seen
        torch.relu(torch.ones(3))
    assert seen == [1]
