"""``attribute_future``: Captum's entry point for forward functions that return ``torch.futures.Future``.

Captum 0.9 supports it for FeatureAblation, FeaturePermutation, ShapleyValueSampling and ShapleyValues and
raises ``NotImplementedError`` for the other methods that define it. Values are checked against Captum in
float64; a forward function that returns a plain tensor is an error naming the method, as in Captum (ours is an
IntellegoError, which is an AssertionError like Captum's).
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from torch import nn

import intellego.attr as ia
from intellego import IntellegoError

ca = pytest.importorskip("captum.attr")

SUPPORTED = ["FeatureAblation", "FeaturePermutation", "ShapleyValueSampling", "ShapleyValues"]


def _model(linear: bool = False) -> nn.Module:
    torch.manual_seed(0)
    if linear:  # sampled Shapley values are exact for an additive model, whatever the permutations drawn
        return nn.Linear(4, 3).double()
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def _future(model: nn.Module) -> Any:
    def forward(*args: Any) -> torch.futures.Future[torch.Tensor]:
        fut: torch.futures.Future[torch.Tensor] = torch.futures.Future()
        fut.set_result(model(*args))
        return fut
    return forward


X = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
MASK = torch.tensor([[0, 0, 1, 2]])


@pytest.mark.parametrize("name", SUPPORTED)
def test_values_match_attribute_and_captum(name: str) -> None:
    model = _model(linear=name == "ShapleyValueSampling")
    kw: dict[str, Any] = {"target": 1, "feature_mask": MASK}
    fut = getattr(ia, name)(_future(model)).attribute_future(X, **kw)
    assert fut.done()
    # Batch of two: FeaturePermutation always swaps the two rows, so it is deterministic here (also in Captum).
    torch.manual_seed(1)
    theirs_future = getattr(ca, name)(_future(model)).attribute_future(X, **kw)
    assert type(fut) is type(theirs_future) is torch.Future  # not the torch.futures subclass
    theirs = theirs_future.wait()
    # Captum's Shapley values come back in float32 for a float64 model; ours keep the model's dtype.
    assert fut.wait().dtype == torch.float64
    assert theirs.dtype == (torch.float32 if name.startswith("Shapley") else torch.float64)
    torch.testing.assert_close(fut.wait(), theirs.double(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(fut.wait(), getattr(ia, name)(model).attribute(X, **kw))


def test_positional_arguments_bind_as_in_captum() -> None:
    model = _model()
    base = torch.zeros(1, 4, dtype=torch.float64)
    extra = torch.ones(2, dtype=torch.float64)

    def two_args(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return model(x) * scale[:, None]

    ours = ia.FeatureAblation(_future(two_args)).attribute_future(X, base, 2, extra, MASK, 1, False).wait()
    theirs = ca.FeatureAblation(_future(two_args)).attribute_future(X, base, 2, extra, MASK, 1, False).wait()
    torch.testing.assert_close(ours, theirs)
    # ShapleyValues takes Captum's ignored n_samples in position 5.
    exact = ia.ShapleyValues(_future(model)).attribute_future(X, base, 0, None, MASK, 7, 1).wait()
    torch.testing.assert_close(exact, ca.ShapleyValues(model).attribute(X, base, 0, None, MASK, 1).double(),
                               rtol=1e-6, atol=1e-7)
    xs = (X, X[:, :2])
    ours_t = ia.ShapleyValueSampling(_future(lambda a, b: model(a) + b.sum(1, keepdim=True))).attribute_future(
        xs, target=0, n_samples=3).wait()
    assert isinstance(ours_t, tuple) and [t.shape for t in ours_t] == [X.shape, (2, 2)]


def test_signatures_take_captums_arguments() -> None:
    """Ours forwards to ``attribute``, whose parameters start with Captum's attribute_future parameters."""
    for name in SUPPORTED:
        theirs = [p for p in inspect.signature(getattr(ca, name).attribute_future).parameters if p != "kwargs"]
        cls = getattr(ia, name)
        own = "attribute_future" in vars(cls)  # ShapleyValues: Captum's extra n_samples
        ours = list(inspect.signature(cls.attribute_future if own else cls.attribute).parameters)
        assert ours[:len(theirs)] == theirs, name


def test_forward_that_returns_a_tensor_is_an_error() -> None:
    model = _model()
    with pytest.raises(AssertionError, match="Future type"):
        ca.FeatureAblation(model).attribute_future(X, target=0)
    with pytest.raises(IntellegoError, match=r"FeatureAblation.attribute_future needs a forward_func that returns a "
                                             r"torch.futures.Future, but it returned tensor of shape"):
        ia.FeatureAblation(model).attribute_future(X, target=0)
    with pytest.raises(AssertionError):  # IntellegoError is an AssertionError, as Captum's is
        ia.ShapleyValues(model).attribute_future(X, target=0)


def _refusing() -> list[str]:
    names = []
    for n in ia.__all__:
        cls = getattr(ia, n)
        if inspect.isclass(cls) and issubclass(cls, ia.Attribution) and n not in SUPPORTED and hasattr(ca, n):
            names.append(n)
    return names


@pytest.mark.parametrize("name", _refusing())
def test_other_methods_refuse(name: str) -> None:
    """Where Captum raises NotImplementedError, so do we, naming the class; where Captum has no attribute_future
    (layer and neuron methods) ours raises the same NotImplementedError instead of an AttributeError.
    LayerFeaturePermutation is the one difference: Captum inherits FeaturePermutation's attribute_future, which
    permutes the model inputs and so returns input attributions from a layer method; ours refuses."""
    cls = getattr(ia, name)
    obj = cls.__new__(cls)
    with pytest.raises(NotImplementedError, match=f"attribute_future is not implemented for {name}$"):
        obj.attribute_future()
    captum_has = any("attribute_future" in vars(k) for k in getattr(ca, name).__mro__)
    if captum_has and name != "LayerFeaturePermutation":
        with pytest.raises(NotImplementedError):
            getattr(ca, name).attribute_future(getattr(ca, name).__new__(getattr(ca, name)))


def test_model_in_training_mode_keeps_its_buffers() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).double().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ia.FeatureAblation(_future(model)).attribute_future(X, target=0).wait()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and all(p.grad is None for p in model.parameters())


def test_progress_bar_through_attribute_future(capsys: pytest.CaptureFixture[str]) -> None:
    ia.FeatureAblation(_future(_model())).attribute_future(X, target=0, show_progress=True).wait()
    assert "Feature Ablation attribution: 100%" in capsys.readouterr().err
