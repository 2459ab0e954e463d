"""Captum's ``grad_kwargs``: keyword arguments for ``torch.autograd.grad`` on the layer and neuron methods.

Checked against Captum 0.9 in float64: ``materialize_grads=True`` gives zeros for a layer that does not reach the
output, ``create_graph=True`` returns attributions that can be differentiated again; keys the method sets
itself are refused with a clear error. The options hold for one call only.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import intellego.attr as ia
from intellego import IntellegoError

ca = pytest.importorskip("captum.attr")

METHODS = ["LayerGradientXActivation", "LayerConductance", "InternalInfluence", "LayerIntegratedGradients",
           "LayerGradCam", "LayerDeepLift"]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.act, self.side, self.out = nn.Linear(3, 4), nn.ReLU(), nn.Linear(3, 2), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.side(x)  # runs, but does not reach the output
        return self.out(self.act(self.a(x)))


@pytest.fixture
def net() -> Net:
    torch.manual_seed(0)
    return Net().double()


X = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def _call(lib: Any, name: str, model: Net, layer: nn.Module, **kw: Any) -> Any:
    return getattr(lib, name)(model, layer).attribute(X, target=1, **kw)


@pytest.mark.parametrize("name", METHODS)
def test_signature_has_grad_kwargs_where_captum_has(name: str) -> None:
    import inspect

    ours = list(inspect.signature(getattr(ia, name).attribute).parameters)
    theirs = list(inspect.signature(getattr(ca, name).attribute).parameters)
    assert ours.index("grad_kwargs") == theirs.index("grad_kwargs")


@pytest.mark.parametrize("name", METHODS)
def test_materialize_grads_on_layer_off_the_output_path(name: str, net: Net) -> None:
    ours = _call(ia, name, net, net.side, grad_kwargs={"materialize_grads": True})
    assert torch.equal(ours, torch.zeros_like(ours)) and ours.shape == (4, 1 if name == "LayerGradCam" else 2)
    if name == "LayerConductance":
        # Captum's LayerConductance drops grad_kwargs on its gradient pass: it still raises. Ours gives the zeros.
        with pytest.raises(RuntimeError, match="not have been used in the graph"):
            _call(ca, name, net, net.side, grad_kwargs={"materialize_grads": True})
    else:
        assert torch.equal(ours, _call(ca, name, net, net.side, grad_kwargs={"materialize_grads": True}))


@pytest.mark.parametrize("name", METHODS)
def test_grad_kwargs_leave_values_as_captum(name: str, net: Net) -> None:
    kw = {"grad_kwargs": {"retain_graph": True, "materialize_grads": True}}
    ours, theirs = _call(ia, name, net, net.a, **kw), _call(ca, name, net, net.a, **kw)
    torch.testing.assert_close(ours, theirs.detach())
    torch.testing.assert_close(ours, _call(ia, name, net, net.a))


@pytest.mark.parametrize("name", METHODS)
def test_create_graph_gives_differentiable_attributions_for_that_call_only(name: str, net: Net) -> None:
    with_graph = _call(ia, name, net, net.a, grad_kwargs={"create_graph": True})
    assert with_graph.requires_grad
    (g,) = torch.autograd.grad(with_graph.sum(), net.out.weight, allow_unused=True, materialize_grads=True)
    assert g.shape == net.out.weight.shape
    assert net.out.weight.grad is None
    assert not _call(ia, name, net, net.a).requires_grad  # nothing carried over to the next call


def test_neuron_conductance_grad_kwargs(net: Net) -> None:
    def nc(lib: Any, layer: nn.Module, **kw: Any) -> Any:
        return lib.NeuronConductance(net, layer).attribute(X, neuron_selector=0, target=1, n_steps=8,
                                                           method="riemann_left", **kw)

    kw = {"grad_kwargs": {"materialize_grads": True}}
    torch.testing.assert_close(nc(ia, net.a, **kw), nc(ca, net.a, **kw).detach())
    torch.testing.assert_close(nc(ia, net.side, **kw), nc(ca, net.side, **kw).detach())
    assert nc(ia, net.a, grad_kwargs={"create_graph": True}).requires_grad


@pytest.mark.parametrize("bad,message", [
    ({"inputs": X}, r"LayerGradCam: grad_kwargs \['inputs'\] cannot be passed to torch.autograd.grad here"),
    ({"grad_outputs": 1, "is_grads_batched": True}, r"\['grad_outputs', 'is_grads_batched'\].*supported keys: "
                                                    r"retain_graph, create_graph, allow_unused, materialize_grads"),
    ([("create_graph", True)], r"grad_kwargs must be a dict of torch.autograd.grad keyword arguments, got list"),
])
def test_grad_kwargs_errors(bad: Any, message: str, net: Net) -> None:
    with pytest.raises(IntellegoError, match=message):
        ia.LayerGradCam(net, net.a).attribute(X, target=1, grad_kwargs=bad)
