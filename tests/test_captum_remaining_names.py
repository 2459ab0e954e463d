"""Captum names user code imports from its submodules, beyond ``captum.attr``'s exports: ModelInputWrapper and
InputIdentity (Captum's multimodal tutorial), NoiseTunnelType, and the SGD-trained Lime surrogates of
``captum._utils.models.linear_model``. Checked against Captum 0.9 in float64 where Captum is exact; Captum's SGD
surrogates approach the minimiser that ours compute exactly, so they agree to SGD's tolerance."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import intellego.attr as ia
from intellego import IntellegoError
from intellego.attr.input_wrapper import InputIdentity, ModelInputWrapper
from intellego.attr.noise_tunnel import NoiseTunnelType
from intellego.attr.sgd_models import SGDLasso, SGDLinearModel, SGDLinearRegression, SGDRidge

ca = pytest.importorskip("captum.attr")
cw = pytest.importorskip("captum.attr._utils.input_layer_wrapper")
clm = pytest.importorskip("captum._utils.models.linear_model")


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 2), nn.Linear(4, 2)

    def forward(self, image: torch.Tensor, text: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        return torch.tanh(self.a(image)) * scale + self.b(text)


def test_model_input_wrapper_attributes_to_inputs_like_captum() -> None:
    torch.manual_seed(0)
    model = TwoInputs().double()
    x, t = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    ours, theirs = ModelInputWrapper(model), cw.ModelInputWrapper(model)
    assert list(ours.input_maps) == ["image", "text", "scale"] and list(theirs.input_maps) == ["image", "text"]
    assert torch.equal(ours(x, t), model(x, t)) and torch.equal(ours(x, text=t, scale=2.0), model(x, t, scale=2.0))
    assert isinstance(ours.input_maps["image"], InputIdentity) and ours.input_maps["text"].input_name == "text"
    got = ia.LayerIntegratedGradients(ours, [ours.input_maps["image"], ours.input_maps["text"]]).attribute(
        (x, t), target=1)
    want = ca.LayerIntegratedGradients(theirs, [theirs.input_maps["image"], theirs.input_maps["text"]]).attribute(
        (x, t), target=1)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    assert all(p.grad is None for p in model.parameters())


def test_model_input_wrapper_errors_and_pass_through() -> None:
    with pytest.raises(IntellegoError, match="module_to_wrap must be a torch.nn.Module, got an object of type"):
        ModelInputWrapper(lambda x: x)  # type: ignore[arg-type]

    class Varargs(nn.Module):
        def forward(self, x: torch.Tensor, *rest: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
            return x + sum(rest) + sum(extra.values())

    wrapped = ModelInputWrapper(Varargs())
    one = torch.ones(2)
    assert list(wrapped.input_maps) == ["x"] and torch.equal(wrapped(one, one, z=one), torch.full((2,), 3.0))


def test_noise_tunnel_type_is_captums_enum_and_accepted() -> None:
    from captum.attr._core.noise_tunnel import NoiseTunnelType as Theirs

    assert [(m.name, m.value) for m in NoiseTunnelType] == [(m.name, m.value) for m in Theirs]
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    nt = ia.NoiseTunnel(ia.Saliency(model))
    kw = {"nt_samples": 4, "stdevs": 0.1, "target": 0}
    by_member = nt.attribute(x, nt_type=NoiseTunnelType.vargrad, generator=torch.Generator().manual_seed(1), **kw)
    by_name = nt.attribute(x, nt_type="vargrad", generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(by_member, by_name)


def _data() -> tuple[DataLoader, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 5, generator=g)
    y = X @ torch.tensor([1.0, -2.0, 0.0, 0.5, 3.0]) + 0.3 + 0.1 * torch.randn(200, generator=g)
    w = torch.rand(200, generator=g)
    return DataLoader(TensorDataset(X, y, w), batch_size=200), X, y, w


@pytest.mark.parametrize("name,kw", [("SGDLinearRegression", {}), ("SGDLasso", {"alpha": 0.1}),
                                     ("SGDRidge", {"alpha": 0.5})])
def test_sgd_surrogates_reach_the_minimiser_captums_sgd_approaches(name: str, kw: dict[str, float]) -> None:
    data, *_ = _data()
    ours = {"SGDLinearRegression": SGDLinearRegression, "SGDLasso": SGDLasso, "SGDRidge": SGDRidge}[name]()
    record = ours.fit(data, max_epoch=3000, initial_lr=0.05, **kw)
    assert set(record) == {"train_time"}
    torch.manual_seed(0)
    theirs = getattr(clm, name)()
    theirs.fit(data, max_epoch=3000, initial_lr=0.05, **kw)
    torch.testing.assert_close(ours.representation().float(), theirs.representation(), atol=5e-3, rtol=0)
    torch.testing.assert_close(ours.bias().float(), theirs.bias(), atol=5e-3, rtol=0)


def test_sgd_ridge_is_optimal_for_captums_objective() -> None:
    """Stationarity of ``sum(v r**2) / 2 + alpha |coef|`` (v the normalised weights) at our solution."""
    data, X, y, w = _data()
    model = SGDRidge()
    model.fit(data, alpha=0.5)
    coef, b = model.representation().reshape(-1), model.bias()
    v = (w / w.sum()).double()
    r = y.double() - X.double() @ coef - b
    grad = -(v * r) @ X.double() + 0.5 * coef / coef.norm()
    assert grad.abs().max() < 1e-8 and abs(float((v * r).sum())) < 1e-8
    zero = SGDRidge()
    zero.fit(data, alpha=100.0)
    assert torch.equal(zero.representation(), torch.zeros(1, 5, dtype=torch.float64))


def test_sgd_lasso_is_our_lasso_and_works_in_lime() -> None:
    data, X, y, w = _data()
    sgd, exact = SGDLasso(), ia.Lasso(alpha=0.2)
    sgd.fit(data, alpha=0.2)
    exact.fit(X, y, w)
    torch.testing.assert_close(sgd.representation(), exact.representation())
    torch.manual_seed(0)
    model = nn.Linear(4, 2).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    kw = {"target": 0, "n_samples": 40}
    a = ia.Lime(model, interpretable_model=SGDLasso()).attribute(x, generator=torch.Generator().manual_seed(0), **kw)
    b = ia.Lime(model, interpretable_model=ia.Lasso(alpha=1.0)).attribute(
        x, generator=torch.Generator().manual_seed(0), **kw)
    torch.testing.assert_close(a, b)


def test_sgd_surrogate_errors() -> None:
    with pytest.raises(IntellegoError, match=r"SGDLasso: norm_type='batch_norm' is not supported"):
        SGDLasso(norm_type="batch_norm")
    with pytest.raises(IntellegoError, match=r"SGDRidge: unknown argument\(s\) \['lr'\]"):
        SGDRidge(lr=0.1)
    with pytest.raises(IntellegoError, match=r"SGDLinearModel.fit: option\(s\) \['loss_fn'\] are not supported"):
        SGDLinearModel().fit(_data()[0], loss_fn=None)
    with pytest.raises(IntellegoError, match="alpha must be a non-negative number, got -1"):
        SGDLasso().fit(_data()[0], alpha=-1)
    assert not SGDLinearRegression(bias=False).fit_intercept
