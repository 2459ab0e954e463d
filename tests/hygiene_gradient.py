"""Hygiene cases for the gradient family."""

from __future__ import annotations

import torch

from _hygiene import Case, Exploding, cnn_case, mlp_case
from intellego.attr import GradientShap, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency


def _mlp_inputs():
    return mlp_case()


_cnn_inputs = cnn_case


def _explode(method):
    return lambda m, x: method(Exploding(m)).attribute(x, target=0)


CASES = {
    "Saliency": Case(_mlp_inputs, lambda m, x: Saliency(m).attribute(x, target=1),
                     lambda m, x: Saliency(m).attribute(x, target=7)),
    "InputXGradient": Case(_cnn_inputs, lambda m, x: InputXGradient(m).attribute(x, target=1),
                           lambda m, x: InputXGradient(m).attribute(x, target=[0])),
    "IntegratedGradients": Case(_mlp_inputs, lambda m, x: IntegratedGradients(m).attribute(
        x, target=1, n_steps=5, internal_batch_size=4, return_convergence_delta=True),
        _explode(lambda m: _IGOnce(m))),
    "GradientShap": Case(_cnn_inputs, lambda m, x: GradientShap(m).attribute(x, torch.zeros(3, 3, 8, 8), target=1),
                         lambda m, x: GradientShap(m).attribute(x, torch.zeros(3, 3, 4, 4), target=1)),
    "NoiseTunnel": Case(_mlp_inputs, lambda m, x: NoiseTunnel(IntegratedGradients(m)).attribute(
        x, nt_samples=3, nt_samples_batch_size=2, target=0, n_steps=4),
        lambda m, x: NoiseTunnel(Saliency(m)).attribute(x, nt_type="bogus", target=0)),
}


class _IGOnce(IntegratedGradients):
    def attribute(self, inputs, **kwargs):
        return super().attribute(inputs, n_steps=6, internal_batch_size=3, **kwargs)
