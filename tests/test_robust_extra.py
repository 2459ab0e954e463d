"""APGD-CE, CW-L2 and DeepFool: closed forms on linear models, torchattacks' robust accuracy on the shipped demo
model (within 1 percentage point), and named errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from intellego.data import make_shapes, make_tabular
from intellego.errors import IntellegoError
from intellego.models import load_shapes_cnn, load_tabular_mlp
from intellego.robust import APGD, CWL2, DeepFool

pytestmark = pytest.mark.usefixtures("one_thread")


def linear(d: int = 6, c: int = 2, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, c).double()


# ---------------------------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_apgd_finds_the_worst_case_of_a_two_class_linear_model(norm):
    # the cross-entropy of class t only grows with -(w_t - w_o).x: the worst case in the ball is its corner
    # (Linf) or the point along -(w_t - w_o) (L2); with a small radius nothing is fooled, so APGD returns it
    model = linear()
    w = (model.weight[0] - model.weight[1]).detach()
    x = torch.randn(8, 6, dtype=torch.float64)
    margin = (model(x)[:, 0] - model(x)[:, 1]).detach()
    x = x + ((3.0 - margin) / w.dot(w))[:, None] * w  # every example: class 0 with margin 3
    eps = 0.1
    adv = APGD(model).perturb(x, eps, 20, 0, norm=norm, generator=torch.Generator().manual_seed(0))
    best = x - eps * (w.sign() if norm == "Linf" else w / w.norm())
    torch.testing.assert_close(adv, best, rtol=0, atol=1e-3 if norm == "L2" else 1e-9)
    assert bool((model(adv).argmax(1) == 0).all())


def test_deepfool_takes_the_minimal_l2_step_on_a_linear_model():
    model = linear(5, 4, seed=2)
    x = torch.randn(16, 5, dtype=torch.float64)
    out = model(x).detach()
    label = out.argmax(1)
    w = model.weight.detach()
    # distance to each other class's boundary: (f_t - f_k) / ||w_t - w_k||; the minimum is the answer
    diff = w[label][:, None, :] - w[None, :, :]
    dist = (out.gather(1, label[:, None]) - out) / diff.norm(dim=2).clamp_min(1e-12)
    dist[torch.arange(16), label] = float("inf")
    adv = DeepFool(model).perturb(x, label, overshoot=0.0)
    moved = (adv - x).norm(dim=1)
    torch.testing.assert_close(moved, dist.amin(1), rtol=1e-3, atol=1e-3)
    assert bool((model(adv).argmax(1) != label).all())


def test_cw_distances_are_above_the_exact_minimum_and_close_to_it():
    model = linear(4, 2, seed=3)
    with torch.no_grad():
        model.weight.mul_(10.0)
        model.bias.copy_(-0.5 * model.weight.sum(1))  # the boundary passes through the box's centre
    w = (model.weight[0] - model.weight[1]).detach()
    x = torch.rand(32, 4, dtype=torch.float64) * 0.2 + 0.4
    margin = (model(x)[:, 0] - model(x)[:, 1]).detach()
    want = torch.linspace(-2.0, 2.0, 32, dtype=torch.float64)  # margins on both sides of the boundary
    x = x + ((want - margin) / w.dot(w))[:, None] * w
    assert bool(((x > 0.05) & (x < 0.95)).all())
    out = model(x).detach()
    label = out.argmax(1)
    minimal = (out[:, 0] - out[:, 1]).abs() / w.norm()  # the exact minimal L2 distance (bounds permitting)
    adv = CWL2(model, 0.0, 1.0).perturb(x, label, c=20.0, step_num=300, lr=0.01)
    fooled = model(adv).argmax(1) != label
    assert float(fooled.double().mean()) > 0.9
    moved = (adv - x).norm(dim=1)[fooled]
    assert bool((moved >= minimal[fooled] - 1e-9).all())
    assert float((moved / minimal[fooled]).median()) < 1.2


def test_masks_and_tuple_inputs():
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 3).double(), nn.Linear(2, 3).double()

        def forward(self, u, v):
            return self.a(u) + self.b(v)

    torch.manual_seed(0)
    model = Two()
    with torch.no_grad():
        model.a.weight.mul_(10.0)
    u, v = torch.rand(6, 3, dtype=torch.float64), torch.rand(6, 2, dtype=torch.float64)
    label = model(u, v).argmax(1)
    mask = (torch.ones(1, 3, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64))
    for attack in (lambda: APGD(model, 0.0, 1.0).perturb((u, v), 0.3, 5, label, mask=mask),
                   lambda: CWL2(model, 0.0, 1.0).perturb((u, v), label, mask=mask, step_num=50, c=5.0, lr=0.05),
                   lambda: DeepFool(model, 0.0, 1.0).perturb((u, v), label, mask=mask)):
        au, av = attack()
        assert torch.equal(av, v) and au.shape == u.shape and not torch.equal(au, u)


# ----------------------------------------------------------------------------------- torchattacks parity


class UnitTabular(nn.Module):
    """The shipped tabular MLP on features mapped into [0, 1] and shaped like images (torchattacks expects both)."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = load_tabular_mlp()
        self.calls = 0

    def forward(self, u):
        self.calls += 1
        return self.mlp((u.flatten(1) - 0.5) * 8)


@pytest.fixture(scope="module")
def tabular():
    data = make_tabular(512, seed=3)
    return UnitTabular().eval(), (data.features / 8 + 0.5).clamp(0, 1).reshape(512, 1, 1, 10), data.labels


@pytest.fixture(scope="module")
def shapes():
    data = make_shapes(256, seed=7)
    return load_shapes_cnn(), data.images, data.labels


def robust_accuracy(model, adv, labels) -> float:
    with torch.no_grad():
        return float((model(adv).argmax(1) == labels).double().mean())


def apgd_pair(model, x, y, eps, norm):
    ta = pytest.importorskip("torchattacks")
    theirs = robust_accuracy(model, ta.APGD(model, norm=norm, eps=eps, steps=10, n_restarts=1, seed=0)(x, y), y)
    adv = APGD(model, 0.0, 1.0).perturb(x, eps, 10, y, norm=norm, generator=torch.Generator().manual_seed(0))
    return robust_accuracy(model, adv, y), theirs


@pytest.mark.parametrize(("norm", "eps"), [("Linf", 0.02), ("L2", 0.06)])
def test_apgd_matches_torchattacks_on_the_tabular_demo_model(tabular, norm, eps):
    ours, theirs = apgd_pair(*tabular, eps, norm)
    assert 0.1 < ours < 0.9  # a setting that tells attacks apart
    assert abs(ours - theirs) <= 0.01


@pytest.mark.slow
@pytest.mark.parametrize("eps", [2 / 255, 4 / 255])
def test_apgd_matches_torchattacks_on_the_shapes_cnn(shapes, eps):
    ours, theirs = apgd_pair(*shapes, eps, "Linf")
    assert 0.1 < ours < 0.9 and abs(ours - theirs) <= 0.01


def fixed_cw(ta):
    class FixedMargin(ta.CW):
        """torchattacks' CW with its margin corrected: it takes max((1 - onehot) * logits), which is 0 for the
        true class whenever every other logit is negative, instead of the largest other logit."""

        def f(self, outputs, labels):
            onehot = torch.nn.functional.one_hot(labels, outputs.shape[1]).bool()
            other = outputs.masked_fill(onehot, -float("inf")).amax(1)
            return torch.clamp(outputs[onehot] - other, min=-self.kappa)

    return FixedMargin


def steps_taken(model, attack, x, y) -> int:
    """Optimisation steps a torchattacks CW ran: it stops the whole batch once the summed objective rises."""
    model.calls = 0
    attack.steps, steps = 1, attack.steps
    attack(x, y)
    overhead = model.calls - 1
    attack.steps = steps
    model.calls = 0
    attack(x, y)
    return model.calls - overhead


@pytest.mark.parametrize("c", [0.0005, 0.001])
def test_cw_matches_torchattacks_on_the_tabular_demo_model(tabular, c):
    ta = pytest.importorskip("torchattacks")
    model, x, y = tabular
    attack = fixed_cw(ta)(model, c=c, steps=30, lr=0.01)
    steps = steps_taken(model, attack, x, y)
    theirs = robust_accuracy(model, attack(x, y), y)
    ours = robust_accuracy(model, CWL2(model, 0.0, 1.0).perturb(x, y, c=c, step_num=steps, lr=0.01), y)
    assert 0.1 < ours < 0.9 and abs(ours - theirs) <= 0.01
    # all 30 steps (ours does not stop the batch) only fool more
    full = robust_accuracy(model, CWL2(model, 0.0, 1.0).perturb(x, y, c=c, step_num=30, lr=0.01), y)
    assert full <= ours


@pytest.mark.slow
def test_cw_matches_torchattacks_on_the_shapes_cnn(shapes):
    ta = pytest.importorskip("torchattacks")
    model, x, y = shapes
    ours = robust_accuracy(model, CWL2(model, 0.0, 1.0).perturb(x, y, c=0.03, step_num=50, lr=0.01), y)
    fixed = robust_accuracy(model, fixed_cw(ta)(model, c=0.03, steps=50, lr=0.01)(x, y), y)
    assert 0.1 < ours < 0.9 and abs(ours - fixed) <= 0.01
    # torchattacks as shipped is weaker: its margin bug leaves examples it could fool
    shipped = robust_accuracy(model, ta.CW(model, c=0.03, steps=50, lr=0.01)(x, y), y)
    assert shipped > ours + 0.01


# ------------------------------------------------------------------------------------------------- errors


class Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner, self.calls = linear(4, 3), 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


@pytest.mark.parametrize(("call", "message"), [
    (lambda m, x: APGD(m).perturb(x, -0.1, 5, 0), "radius must be a finite non-negative number"),
    (lambda m, x: APGD(m).perturb(x, 0.1, 0, 0), "step_num must be an int >= 1"),
    (lambda m, x: APGD(m).perturb(x, 0.1, 5, 0, norm="L0"), "norm must be 'Linf' or 'L2', got 'L0'"),
    (lambda m, x: APGD(m).perturb(x, 0.1, 5, 0, rho=2.0), r"rho must be in \[0, 1\]"),
    (lambda m, x: APGD(m).perturb(x, 0.1, 5, 0, mask=torch.ones(2, 2)), "mask of shape"),
    (lambda m, x: APGD(m).perturb(x, 0.1, 5, [0.5] * 4), "target must be class indices"),
    (lambda m, x: APGD(m, 1.0, 0.0), "lower_bound"),
    (lambda m, x: CWL2(m).perturb(x, 0), "CW-L2 needs finite bounds"),
    (lambda m, x: CWL2(m, 0.0, 1.0).perturb(x, 0, lr=0.0), "lr must be a finite positive number"),
    (lambda m, x: CWL2(m, 0.0, 1.0).perturb(x, 0, c=float("nan")), "c must be a finite non-negative number"),
    (lambda m, x: DeepFool(m).perturb(x, 0, num_classes=1), "num_classes must be an int >= 2"),
    (lambda m, x: DeepFool(m).perturb(x, 0, overshoot=-1.0), "overshoot must be a finite non-negative"),
])
def test_bad_arguments_raise_before_any_model_call(call, message):
    model = Counting()
    x = torch.rand(4, 4, dtype=torch.float64)
    with pytest.raises(IntellegoError, match=message):
        call(model, x)
    assert model.calls == 0
