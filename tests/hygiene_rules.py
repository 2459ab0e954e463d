"""Hygiene cases for the backward-rule family: DeepLift, DeepLiftShap, GuidedBackprop, Deconvolution, LRP."""

from __future__ import annotations

import torch
from torch import nn

from _hygiene import Case, Exploding, cnn_case, mlp_case, tiny_mlp
from _rule_models import Reused
from intellego.attr import LRP, Deconvolution, DeepLift, DeepLiftShap, GuidedBackprop
from intellego.attr.lrp import GammaRule


class _Inplace(nn.Module):
    """A reused in-place ReLU and a functional sigmoid: the cases that leave state behind in Captum."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.c = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.c(torch.sigmoid(self.relu(self.b(self.relu(self.a(x))))))


def _mlp_inputs():
    return mlp_case(_Inplace())


_cnn_inputs = cnn_case


def _reused():
    torch.manual_seed(0)
    return Reused(inplace=True), torch.randn(3, 5)


def _plain_mlp():
    return tiny_mlp(), torch.randn(3, 4)


def _explode(method):
    return lambda m, x: method(Exploding(m, fail_on=2)).attribute(x, target=0)


CASES = {
    "DeepLift": Case(_mlp_inputs, lambda m, x: DeepLift(m).attribute(x, target=1, return_convergence_delta=True),
                     _explode(DeepLift)),
    "DeepLiftShap": Case(_cnn_inputs, lambda m, x: DeepLiftShap(m).attribute(x, torch.zeros(3, 3, 8, 8), target=1),
                         lambda m, x: DeepLiftShap(m).attribute(x, torch.zeros(1, 3, 8, 8), target=1)),
    "GuidedBackprop": Case(_mlp_inputs, lambda m, x: GuidedBackprop(m).attribute(x, target=1),
                           lambda m, x: GuidedBackprop(m).attribute(x, target=9)),
    "Deconvolution": Case(_cnn_inputs, lambda m, x: Deconvolution(m).attribute(x, target=1),
                          lambda m, x: Deconvolution(nn.Sequential(m, nn.Unflatten(1, (7, 7)))).attribute(x)),
    "LRP": Case(_cnn_inputs, lambda m, x: LRP(m, rules={"0": GammaRule()}).attribute(x, target=1,
                                                                               return_convergence_delta=True),
                lambda m, x: LRP(nn.Sequential(m, nn.Softplus())).attribute(x, target=1)),
    "LRP(reused in-place ReLU)": Case(_reused, lambda m, x: LRP(m).attribute(x, target=1),
                                      lambda m, x: LRP(m).attribute(x, target=9)),
    "DeepLift(baseline shape)": Case(_plain_mlp, lambda m, x: DeepLift(m).attribute(x, torch.zeros(1, 4), target=0),
                                     lambda m, x: DeepLift(m).attribute(x, torch.zeros(2, 5), target=0)),
}
