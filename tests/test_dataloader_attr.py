"""DataLoaderAttribution: parity with Captum 0.9 (float64), one loader pass, batched copies, errors."""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import intellego.attr as ia
from intellego.errors import IntellegoError

D = torch.float64


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 3, generator=g, dtype=D)
    z = torch.randn(10, 2, 2, generator=g, dtype=D)
    y = torch.randn(10, generator=g, dtype=D)
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2).double()
    return x, z, y, lin


class TwoInput(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.a, self.b = torch.nn.Linear(3, 1).double(), torch.nn.Linear(4, 1).double()

    def forward(self, x, z):
        return torch.tanh(self.a(x) + self.b(z.flatten(1))).squeeze(1)


def _sq_err(acc, out, inputs):
    err = ((out - inputs[2]) ** 2).sum()
    return err if acc is None else acc + err


@pytest.mark.parametrize("kw", [{}, {"reduce": lambda a, o, i: o.sum(0) if a is None else a + o.sum(0)},
                                {"return_input_shape": False, "perturbations_per_pass": 2},
                                {"baselines": 0.5, "feature_mask": torch.tensor([[0, 1, 0]])}])
def test_parity_single_input(kw):
    x, _, _, lin = _data()
    loader = DataLoader(TensorDataset(x), batch_size=4)
    ours = ia.DataLoaderAttribution(ia.FeatureAblation(lin)).attribute(loader, **kw)
    theirs = ca.DataLoaderAttribution(ca.FeatureAblation(lin)).attribute(loader, **kw)
    ours, theirs = (ours, theirs) if isinstance(theirs, torch.Tensor) else (ours[0], theirs[0])
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_parity_roles_metric_and_pass_sizes():
    x, z, y, _ = _data()
    model = TwoInput()
    loader = DataLoader(TensorDataset(x, z, y), batch_size=3)
    kw = dict(input_roles=(0, 0, 2), reduce=_sq_err, to_metric=lambda a: a.sqrt(),
              feature_mask=(torch.tensor([[0, 1, 1]]), torch.tensor([[[2, 2], [3, 0]]])),
              baselines=(torch.zeros(1, 3, dtype=D), 0.25))
    theirs = ca.DataLoaderAttribution(ca.FeatureAblation(model)).attribute(loader, **kw)
    for extra in ({}, {"perturbations_per_pass": 1}, {"perturbations_per_pass": 3}, {"batch_perturbations": False}):
        ours = ia.DataLoaderAttribution(ia.FeatureAblation(model)).attribute(loader, **kw, **extra)
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_float_baseline_of_an_integer_input_matches_captum():
    """A float baseline (0.1) of an integer loader element is read as 0.1, as FeatureAblation reads it on each
    batch and Captum's DataLoaderAttribution does (it used to be truncated to 0)."""
    x, _, _, _ = _data()
    labels = torch.tensor([0, 1, 0, 0, 1, 1, 0, 1, 0, 0]).unsqueeze(1)
    loader = DataLoader(TensorDataset(x, labels), batch_size=4)

    def f(a, b):
        return a.sum(1) + b.sum(1)

    kw = dict(baselines=(0.5, 0.1))
    ours = ia.DataLoaderAttribution(ia.FeatureAblation(f)).attribute(loader, **kw)
    theirs = ca.DataLoaderAttribution(ca.FeatureAblation(f)).attribute(loader, **kw)
    torch.testing.assert_close(ours[1].double(), labels.double() - 0.1, rtol=0, atol=1e-7)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.double(), b.double(), rtol=0, atol=1e-7)


def test_one_pass_and_batched_copies():
    x, _, _, lin = _data()
    calls = []

    def f(inp):
        calls.append(inp.shape[0])
        return lin(inp)

    passes = []

    class Loader:
        def __iter__(self):
            passes.append(1)
            return iter([(x[:5],), (x[5:],)])

    ia.DataLoaderAttribution(ia.FeatureAblation(f)).attribute(Loader())
    assert len(passes) == 2  # one to read the first batch, one for all 4 perturbations
    assert calls == [20, 20]  # the 4 copies of each 5-row batch in one call


def test_scalar_output_model_falls_back_to_one_copy_per_call():
    x, _, _, lin = _data()
    loader = DataLoader(TensorDataset(x), batch_size=5)
    f = lambda inp: lin(inp).sum()  # noqa: E731
    red = lambda a, o, i: o if a is None else a + o  # noqa: E731
    ours = ia.DataLoaderAttribution(ia.FeatureAblation(f)).attribute(loader, reduce=red)
    theirs = ca.DataLoaderAttribution(ca.FeatureAblation(f)).attribute(loader, reduce=red)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-12, atol=1e-12)


def test_errors():
    x, _, _, lin = _data()
    loader = DataLoader(TensorDataset(x), batch_size=5)
    dla = ia.DataLoaderAttribution(ia.FeatureAblation(lin))
    cases = [
        (lambda: ia.DataLoaderAttribution(ia.Occlusion(lin)), "wraps a FeatureAblation"),
        (lambda: dla.attribute(loader, input_roles=(0, 1)), "one role per element"),
        (lambda: dla.attribute(loader, input_roles=(1,)), "at least one 0"),
        (lambda: dla.attribute(loader, baselines=torch.zeros(2, 3, dtype=D)), "first dimension 1"),
        (lambda: dla.attribute(loader, feature_mask=torch.zeros(1, 3)), "integer tensor"),
        (lambda: dla.attribute(loader, feature_mask=torch.zeros(1, 2, dtype=torch.long)), "does not broadcast"),
        (lambda: dla.attribute(loader, perturbations_per_pass=0), "perturbations_per_pass"),
        (lambda: dla.attribute(loader, reduce=lambda a, o, i: 1.0), "must be a tensor"),
    ]
    for fn, msg in cases:
        with pytest.raises(IntellegoError, match=msg):
            fn()
