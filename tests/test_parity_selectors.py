"""Neuron selectors as ported programs write them: callables that return one value for the whole batch or
``(N, 1)``, and tuples with fewer indices than the layer has dimensions; checked against Captum 0.9 (float64)."""

from __future__ import annotations

import pytest
import torch

import intellego.attr as ia
from intellego.errors import IntellegoError

ca = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.filterwarnings("ignore")
D = torch.float64
METHODS = {"NeuronGradient": {}, "NeuronIntegratedGradients": {"n_steps": 4}, "NeuronGuidedBackprop": {},
           "NeuronDeconvolution": {}, "NeuronDeepLift": {},
           "NeuronFeatureAblation": {"feature_mask": (torch.arange(50).reshape(1, 2, 5, 5) % 4)}}


def _cnn(seed=0):
    torch.manual_seed(seed)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3, padding=1),
                         nn.Tanh(), nn.Flatten(), nn.Linear(4 * 25, 2)).to(D)


def _x(seed=1):
    return torch.randn(3, 2, 5, 5, generator=torch.Generator().manual_seed(seed), dtype=D)


def _close(a, b):
    torch.testing.assert_close(a, b.to(D), atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("name", list(METHODS))
def test_callable_selector_one_value_for_the_batch(name):
    """Gradient methods differentiate the batch's one value as it is; NeuronFeatureAblation gives one row."""
    m, x = _cnn(), _x()
    sel = lambda out: out[:, 0].sum()  # noqa: E731
    ours = getattr(ia, name)(m, m[3]).attribute(x, sel, **METHODS[name])
    theirs = getattr(ca, name)(m, m[3]).attribute(x, sel, **METHODS[name])
    assert ours.shape == theirs.shape == ((1, 2, 5, 5) if name == "NeuronFeatureAblation" else x.shape)
    _close(ours, theirs)


@pytest.mark.parametrize("name", list(METHODS))
def test_callable_selector_n_by_1(name):
    m, x = _cnn(1), _x(2)
    sel = lambda out: out[:, 1, 2:3, 3]  # noqa: E731  (N, 1)
    ours = getattr(ia, name)(m, m[3]).attribute(x, sel, **METHODS[name])
    _close(ours, getattr(ca, name)(m, m[3]).attribute(x, sel, **METHODS[name]))
    _close(ours, getattr(ia, name)(m, m[3]).attribute(x, (1, 2, 3), **METHODS[name]))


@pytest.mark.parametrize("name", ["NeuronGradient", "NeuronIntegratedGradients", "NeuronDeepLift",
                                  "NeuronFeatureAblation"])
@pytest.mark.parametrize("selector", [1, (2, 3)], ids=["int", "two indices"])
def test_tuple_with_fewer_indices_reads_the_trailing_dimensions_whole(name, selector):
    """``(c,)`` for a layer value of shape ``(C, H, W)`` is channel ``c`` whole, summed, which is what Captum
    computes for ``(c, slice(None), slice(None))``. Captum's own reading of ``(c,)`` fails in its gradient methods
    ("grad can be implicitly created only for scalar outputs") and gives NeuronFeatureAblation one map per
    neuron, flattened into the batch dimension (``(N * H * W, ...)``)."""
    m, x = _cnn(2), _x(3)
    full = (selector,) if isinstance(selector, int) else selector
    full = (*full, *[slice(None)] * (3 - len(full)))
    ours = getattr(ia, name)(m, m[3]).attribute(x, selector, **METHODS[name])
    _close(ours, getattr(ca, name)(m, m[3]).attribute(x, full, **METHODS[name]))
    if name == "NeuronFeatureAblation":
        theirs = ca.NeuronFeatureAblation(m, m[3]).attribute(x, selector, **METHODS[name])
        assert theirs.shape[0] == 3 * (25 if len(full) - sum(isinstance(s, int) for s in full) == 2 else 5)
    elif name == "NeuronGradient":
        with pytest.raises(RuntimeError, match="only for scalar outputs"):
            ca.NeuronGradient(m, m[3]).attribute(x, selector)


def test_fewer_indices_in_a_list_of_selectors_is_an_error():
    m, x = _cnn(), _x()
    with pytest.raises(IntellegoError, match=r"neuron_selector \(1,\) has 1 indices but each example's layer value "
                                             r"has shape \(4, 5, 5\) \(in a list, give every index or a slice\)"):
        ia.NeuronGradient(m, m[3]).attribute(x, [(1,), (0,)])
    with pytest.raises(IntellegoError, match=r"neuron_selector \(1, 2, 3, 4\) has 4 indices but each example's "
                                             r"layer value has shape \(4, 5, 5\)$"):
        ia.NeuronGradient(m, m[3]).attribute(x, (1, 2, 3, 4))


def test_callable_selector_of_a_wrong_shape_is_named():
    m, x = _cnn(), _x()
    with pytest.raises(IntellegoError, match=r"callable neuron_selector must return one score per example, a tensor "
                                             r"of shape \(3,\) or \(3, 1\), or one value for the whole batch \(a "
                                             r"scalar\), but it returned shape \(3, 5\)"):
        ia.NeuronGradient(m, m[3]).attribute(x, lambda out: out[:, 0, 0])
