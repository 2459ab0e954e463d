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
from intellego.attr import Saliency
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


# --------------------------------------------------------------------------------------------------------------
# Bad inputs: one parametrized case per method and input class. Errors come before any model call.

ALL = sorted(METHODS)
TARGETED = sorted(n for n in ALL if "target" in METHODS[n].kwargs(images()) and n != "LayerEigenCam")
CROSS_BATCH = {"FeaturePermutation", "LayerFeaturePermutation"}  # shuffle features across examples


class _CountingModel(torch.nn.Module):
    """The table's CNN, counting its forward calls (to show errors come before any model call)."""

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.inner = cnn(dtype=dtype)
        self.calls = 0

    def __getitem__(self, i: int) -> torch.nn.Module:
        return self.inner[i]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def _raises(name: str, x: torch.Tensor, match: str, model: torch.nn.Module | None = None) -> None:
    model = _CountingModel() if model is None else model
    with pytest.raises(ValueError, match=match) as info:
        run(name, model, x)
    assert type(info.value).__name__ == "IntellegoError"
    if isinstance(model, _CountingModel):
        assert model.calls == 0, f"{name} ran the model {model.calls} time(s) before the error"


@pytest.mark.parametrize("name", ALL)
def test_empty_batch_is_a_named_error(name):
    _raises(name, images(0), r"inputs holds no examples: shape \(0, 3, 8, 8\); attribution needs at least one")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.complex64, torch.float64],
                         ids=str)
@pytest.mark.parametrize("name", ALL)
def test_input_dtype_other_than_the_models_is_a_named_error(name, dtype):
    _raises(name, images().to(dtype),
            rf"inputs has dtype {dtype} but the model's parameters are torch.float32; convert the inputs")


@pytest.mark.parametrize("name", ALL)
def test_integer_inputs_to_a_float_model_are_a_named_error(name):
    x = (images() * 3).long()
    with pytest.raises(ValueError, match=r"inputs(\[0\])? has dtype torch.int64") as info:
        run(name, cnn(), x)
    assert type(info.value).__name__ == "IntellegoError"


@pytest.mark.parametrize("name", ALL)
def test_meta_inputs_are_a_named_error(name):
    _raises(name, images().to("meta"), r"inputs is a meta tensor \(shape \(2, 3, 8, 8\), no data\)")


@pytest.mark.parametrize("name", ["Saliency", "LayerGradCam", "FeatureAblation"])
def test_a_model_with_meta_parameters_is_a_named_error(name):
    _raises(name, images(), "the model's parameters are meta tensors", model=cnn().to("meta"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
@pytest.mark.parametrize("name", ALL)
def test_inputs_on_another_device_than_the_model_are_a_named_error(name):
    model = _CountingModel().cuda()
    _raises(name, images(), r"inputs is on device cpu but the model's parameters are on cuda:0", model=model)


# float16 on one method per engine by default; every method in both half dtypes with ``-m slow``
HALF_DEFAULT = {"Saliency", "IntegratedGradients", "DeepLift", "LRP", "FeatureAblation", "LayerGradCam",
                "LayerEigenCam", "LayerIntegratedGradients", "NeuronGradient", "LayerDeepLift"}
HALF_CASES = [pytest.param(name, dtype, id=f"{name}-{dtype}",
                           marks=() if dtype == torch.float16 and name in HALF_DEFAULT else pytest.mark.slow)
              for name in ALL for dtype in (torch.float16, torch.bfloat16)]


@pytest.mark.parametrize("name, dtype", HALF_CASES)
def test_half_precision_model_and_inputs_keep_working(name, dtype):
    got = run(name, cnn(dtype=dtype), images(dtype=dtype))
    want = run(name, cnn(dtype=dtype).float(), images(dtype=dtype).float())  # the same rounded weights in float32
    assert got.dtype == dtype and got.shape == want.shape
    assert bool(torch.isfinite(got).all()), f"{name} gave non-finite values in {dtype}"
    tol = 0.1 if dtype == torch.bfloat16 else 0.03
    assert (got.float() - want).abs().max() <= tol * want.abs().max() + 1e-3


def _with_nan(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[0, 1, 2, 3] = float("nan")
    return x


@pytest.mark.parametrize("name", ALL)
def test_nan_inputs_warn_once_and_give_nan_where_the_output_is_nan(name):
    model, x = cnn(), images()
    clean = run(name, model, x)
    with pytest.warns(RuntimeWarning) as record:
        got = run(name, model, _with_nan(x))
    ours = [w for w in record if "NaN" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in record]
    assert "inputs holds 1 NaN and 0 infinite value(s) in 1 example(s)" in str(ours[0].message)
    assert ours[0].filename == __file__ or ours[0].filename.endswith("_reliability_cases.py")
    assert bool(torch.isnan(got[0]).all()), f"{name}: the example whose output is NaN is not NaN"
    if name not in CROSS_BATCH:
        assert torch.allclose(got[1], clean[1], atol=1e-6, rtol=1e-5), f"{name}: the finite example changed"


def test_infinite_inputs_are_named_in_the_warning():
    model, x = cnn(), images()
    x[1, 0, 0, 0] = float("inf")
    x[1, 0, 0, 1] = float("-inf")
    with pytest.warns(RuntimeWarning, match=r"inputs\[1\] holds 0 NaN and 2 infinite value\(s\) in 1 example"):
        Saliency(lambda a, b: model(a + b)).attribute((images(), x), target=1)


@pytest.mark.parametrize("name", TARGETED)
def test_target_errors_show_the_callers_batch(name):
    """Target 9 of 3 classes on 2 examples: the message shows the output shape (2, 3) the caller sees, not the
    internal batch of path points, samples or perturbed copies."""
    method = METHODS[name]
    x = images()
    with pytest.raises(ValueError, match=r"target 9 is out of range for model output of shape \(2, 3\)"):
        method.build(cnn()).attribute(x, **{**method.kwargs(x), "target": 9})


class _ClaimsCuda(torch.nn.Module):
    """A module whose parameters report ``cuda:0``: the device check without a GPU."""

    class _Param:
        device, dtype, is_meta = torch.device("cuda", 0), torch.float32, False

        def is_floating_point(self) -> bool:
            return True

    def __init__(self) -> None:
        super().__init__()
        self._parameters["weight"] = self._Param()  # type: ignore[assignment]  # bypasses register_parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the device check must come before the model call")


def test_inputs_on_another_device_name_both_devices():
    with pytest.raises(ValueError, match=r"inputs is on device cpu but the model's parameters are on cuda:0; "
                                         r"move the inputs \(inputs.to\('cuda:0'\)\) or the model"):
        Saliency(_ClaimsCuda()).attribute(images(), target=0)
