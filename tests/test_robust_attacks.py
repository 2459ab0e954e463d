"""FGSM and PGD: closed forms on linear models, projections, targeted/untargeted, masks, random starts, early
stopping and restarts, parity with Captum 0.9, and a named error for every bad argument."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from intellego.errors import IntellegoError
from intellego.robust import FGSM, PGD

pytestmark = pytest.mark.usefixtures("one_thread")


def linear(d: int = 6, c: int = 3, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, c).double()


def neg_score(out: torch.Tensor, target: int) -> torch.Tensor:
    """A loss whose gradient is minus the target row of the weights: the attack lowers the target's score."""
    return -out[:, target]


def softmax_mlp(d: int = 5, c: int = 3, seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 8), nn.Tanh(), nn.Linear(8, c), nn.Softmax(dim=1)).double()


# --------------------------------------------------------------------------------------------- closed forms


def test_fgsm_on_a_linear_score_is_the_signed_weight_step():
    model = linear()
    x = torch.randn(4, 6, dtype=torch.float64)
    w = model.weight[1].detach()
    adv = FGSM(model, neg_score).perturb(x, 0.3, 1)
    torch.testing.assert_close(adv, x - 0.3 * w.sign())
    adv_t = FGSM(model, neg_score).perturb(x, 0.3, 1, targeted=True)
    torch.testing.assert_close(adv_t, x + 0.3 * w.sign())


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_pgd_reaches_the_worst_case_of_a_linear_score(norm):
    # the worst case of w.x in a ball of radius r lowers it by r * ||w||_1 (Linf) or r * ||w||_2 (L2)
    model, r = linear(), 0.5
    x = torch.randn(3, 6, dtype=torch.float64)
    w = model.weight[2].detach()
    adv = PGD(model, neg_score).perturb(x, r, 0.1, 20, 2, norm=norm)
    drop = (model(x)[:, 2] - model(adv)[:, 2]).detach()
    best = r * (w.abs().sum() if norm == "Linf" else w.norm())
    torch.testing.assert_close(drop, best.expand(3), rtol=1e-6, atol=1e-9)
    expected = x - r * (w.sign() if norm == "Linf" else w / w.norm())
    torch.testing.assert_close(adv, expected.expand(3, 6), rtol=1e-6, atol=1e-9)


def test_captums_sign_steps_fall_short_of_the_l2_worst_case():
    # sign steps projected to the L2 ball end on the ball's diagonal: the drop is r * ||w||_1 / sqrt(d) < r ||w||_2
    captum_robust = pytest.importorskip("captum.robust")
    model, r = linear(), 0.5
    x = torch.randn(3, 6, dtype=torch.float64)
    w = model.weight[0].detach()
    ours_sign = PGD(model, neg_score).perturb(x, r, 0.1, 30, 0, norm="L2", l2_step="sign")
    theirs = captum_robust.PGD(model, neg_score).perturb(x, r, 0.1, 30, 0, norm="L2")
    torch.testing.assert_close(ours_sign, theirs)
    drop_captum = (model(x)[:, 0] - model(theirs)[:, 0]).detach()
    torch.testing.assert_close(drop_captum, (r * w.abs().sum() / math.sqrt(6)).expand(3), rtol=1e-5, atol=1e-9)
    ours = PGD(model, neg_score).perturb(x, r, 0.1, 30, 0, norm="L2")
    drop = (model(x)[:, 0] - model(ours)[:, 0]).detach()
    assert bool((drop > drop_captum * 1.05).all())


# ------------------------------------------------------------------------------------- projection, bounds


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_pgd_stays_inside_the_ball_and_the_bounds(norm):
    model = softmax_mlp()
    x = torch.rand(16, 5, dtype=torch.float64)
    r = 0.2
    g = torch.Generator().manual_seed(0)
    adv = PGD(model, lower_bound=0.0, upper_bound=1.0).perturb(x, r, 0.15, 8, 0, norm=norm, random_start=True,
                                                               generator=g)
    d = (adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "Linf" else d.norm(dim=1)
    assert bool((size <= r * (1 + 1e-9)).all())
    assert bool(((adv >= 0) & (adv <= 1)).all())
    assert bool((size > 0.5 * r).any())  # it did move


def test_random_starts_follow_the_generator_and_keep_dtype():
    model = softmax_mlp()
    x = torch.rand(4, 5, dtype=torch.float64)
    pgd = PGD(model)
    a = pgd.perturb(x, 0.1, 0.01, 0, 0, random_start=True, norm="L2", generator=torch.Generator().manual_seed(3))
    b = pgd.perturb(x, 0.1, 0.01, 0, 0, random_start=True, norm="L2", generator=torch.Generator().manual_seed(3))
    c = pgd.perturb(x, 0.1, 0.01, 0, 0, random_start=True, norm="L2", generator=torch.Generator().manual_seed(4))
    assert a.dtype == torch.float64 and torch.equal(a, b) and not torch.equal(a, c)
    assert bool(((a - x).norm(dim=1) <= 0.1 + 1e-12).all())


def test_l2_random_start_is_uniform_in_the_ball():
    # the radius of a uniform draw from a d-ball has P(|delta| <= t r) = t^d: its mean is r d / (d + 1)
    x = torch.zeros(4000, 3, dtype=torch.float64)
    pgd = PGD(lambda t: t.sum(1))
    start = pgd.perturb(x, 2.0, 0.0, 0, None, random_start=True, norm="L2", generator=torch.Generator().manual_seed(0))
    radii = start.norm(dim=1)
    assert abs(float(radii.mean()) - 2.0 * 3 / 4) < 0.03
    assert float(radii.max()) <= 2.0


# ------------------------------------------------------------------------------------------ targets, masks


def test_targeted_pgd_reaches_the_target_class_and_untargeted_leaves_the_label():
    model = softmax_mlp()
    x = torch.rand(32, 5, dtype=torch.float64)
    labels = model(x).argmax(1)
    pgd = PGD(model)
    adv = pgd.perturb(x, 3.0, 0.3, 40, labels, norm="L2")
    assert float((model(adv).argmax(1) != labels).double().mean()) > 0.9
    goal = (labels + 1) % 3
    adv_t = pgd.perturb(x, 3.0, 0.3, 40, goal, targeted=True, norm="L2")
    assert float((model(adv_t).argmax(1) == goal).double().mean()) > 0.9


def test_mask_freezes_elements_and_broadcasts():
    model = linear()
    x = torch.randn(3, 6, dtype=torch.float64)
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    for attack in (lambda m: FGSM(model, neg_score).perturb(x, 0.2, 0, mask=m),
                   lambda m: PGD(model, neg_score).perturb(x, 0.5, 0.1, 10, 0, norm="L2", mask=m),
                   lambda m: PGD(model, neg_score).perturb(x, 0.5, 0.1, 10, 0, mask=m, random_start=True)):
        adv = attack(mask)
        assert torch.equal(adv[:, 1::2], x[:, 1::2])
        assert bool((adv[:, ::2] != x[:, ::2]).all())


def test_l2_step_length_inside_a_mask_is_the_step_size():
    model = linear()
    x = torch.randn(2, 6, dtype=torch.float64)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    adv = PGD(model, neg_score).perturb(x, 10.0, 0.25, 1, 0, norm="L2", mask=mask)
    torch.testing.assert_close((adv - x).norm(dim=1), torch.full((2,), 0.25, dtype=torch.float64))


def test_tuple_inputs_return_a_tuple():
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 2).double(), nn.Linear(4, 2).double()

        def forward(self, x, y, scale):
            return torch.softmax(scale * (self.a(x) + self.b(y)), dim=1)

    torch.manual_seed(0)
    model = Two()
    x, y = torch.rand(5, 3, dtype=torch.float64), torch.rand(5, 4, dtype=torch.float64)
    out = PGD(model).perturb((x, y), 0.1, 0.05, 3, 1, additional_forward_args=2.0, mask=(None, torch.zeros(1, 4)))
    assert isinstance(out, tuple) and len(out) == 2
    assert out[0].shape == x.shape and torch.equal(out[1], y)
    assert isinstance(FGSM(model).perturb((x, y), 0.1, 1, 2.0), tuple)


# --------------------------------------------------------------------------------------- Captum parity


@pytest.fixture(scope="module")
def captum_robust():
    return pytest.importorskip("captum.robust")


def test_fgsm_matches_captum(captum_robust):
    model = softmax_mlp()
    x = torch.rand(6, 5, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 0, 1, 2])
    mask = (torch.rand(6, 5) > 0.3).double()
    for kwargs in ({}, {"targeted": True}, {"mask": mask}):
        ours = FGSM(model, lower_bound=0.1, upper_bound=0.9).perturb(x, 0.07, t, **kwargs)
        theirs = captum_robust.FGSM(model, lower_bound=0.1, upper_bound=0.9).perturb(x, 0.07, t, **kwargs)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_pgd_matches_captum(captum_robust, norm):
    model = softmax_mlp()
    x = torch.rand(8, 5, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    ce = nn.CrossEntropyLoss(reduction="none")
    for loss, targeted, inputs in ((None, False, x), (None, True, x), (ce, False, x), (ce, True, x),
                                   (ce, False, x * 3 - 1)):  # the last: inputs outside the bounds
        kw = {"norm": norm, "targeted": targeted}
        ours = PGD(model, loss, 0.0, 1.0).perturb(inputs, 0.3, 0.04, 12, t, l2_step="sign", **kw)
        theirs = captum_robust.PGD(model, loss, 0.0, 1.0).perturb(inputs, 0.3, 0.04, 12, t, **kw)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)


def test_default_loss_on_logits_is_cross_entropy_where_captum_takes_the_log_of_logits(captum_robust):
    model = linear(5, 3, seed=4)
    x = torch.randn(8, 5, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    ours = FGSM(model).perturb(x, 0.1, t)
    ce = FGSM(model, nn.CrossEntropyLoss(reduction="none")).perturb(x, 0.1, t)
    torch.testing.assert_close(ours, ce)
    assert bool((ours != x).all())
    # Captum's -log(logit) is NaN for a negative target logit, and its gradient -1/logit points the wrong way
    # there: its "attack" raises the target logit of those examples, ours lowers it
    theirs = captum_robust.FGSM(model).perturb(x, 0.1, t)
    before = model(x).gather(1, t[:, None])[:, 0]
    negative = before < 0
    assert bool(negative.any())
    after_theirs = model(theirs).gather(1, t[:, None])[:, 0]
    after_ours = model(ours).gather(1, t[:, None])[:, 0]
    assert bool((after_theirs[negative] > before[negative]).all())
    assert bool((after_ours < before).all())


# ------------------------------------------------------------------------------- early stop and restarts


def test_early_stop_returns_the_first_fooling_iterate():
    model = softmax_mlp(seed=3)
    x = torch.rand(24, 5, dtype=torch.float64)
    labels = model(x).argmax(1)
    pgd = PGD(model)
    args = (0.6, 0.05, 15, labels)
    stopped = pgd.perturb(x, *args, norm="L2", early_stop=True)
    # slow oracle: run k steps for every k and take each example's first fooled iterate
    expected = pgd.perturb(x, 0.6, 0.05, 15, labels, norm="L2")
    found = torch.zeros(24, dtype=torch.bool)
    for k in range(16):
        xk = pgd.perturb(x, 0.6, 0.05, k, labels, norm="L2")
        hit = (model(xk).argmax(1) != labels) & ~found
        expected[hit] = xk[hit]
        found |= hit
    assert 0 < int(found.sum()) < 24
    torch.testing.assert_close(stopped, expected, rtol=0, atol=1e-12)


def test_early_stop_runs_fewer_rows():
    model = softmax_mlp(seed=3)
    rows = []

    def counting(x):
        rows.append(x.shape[0])
        return model(x)

    x = torch.rand(24, 5, dtype=torch.float64)
    labels = model(x).argmax(1)
    PGD(counting).perturb(x, 0.6, 0.05, 15, labels, norm="L2", early_stop=True)
    assert rows[0] == 24 and min(rows) < 24 and sum(rows) < 24 * 16


def test_restarts_only_help_and_are_reproducible():
    model = softmax_mlp(seed=5)
    x = torch.rand(64, 5, dtype=torch.float64)
    labels = model(x).argmax(1)
    pgd = PGD(model)

    def acc(n):
        adv = pgd.perturb(x, 0.25, 0.05, 5, labels, random_start=True, restarts=n,
                          generator=torch.Generator().manual_seed(0))
        return float((model(adv).argmax(1) == labels).double().mean()), adv

    one, _ = acc(1)
    five, adv5 = acc(5)
    _, again = acc(5)
    assert five <= one and torch.equal(adv5, again)
    assert bool(((adv5 - x).abs().amax(1) <= 0.25 + 1e-12).all())


# -------------------------------------------------------------------------------------------------- errors


class Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner, self.calls = softmax_mlp(), 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


@pytest.mark.parametrize(("call", "message"), [
    (lambda m, x: FGSM(m).perturb(x, -0.1, 0), "epsilon must be a finite non-negative number"),
    (lambda m, x: FGSM(m).perturb(x, float("nan"), 0), "epsilon must be a finite non-negative number"),
    (lambda m, x: PGD(m).perturb(x, float("inf"), 0.1, 3, 0), "radius must be a finite non-negative number"),
    (lambda m, x: PGD(m).perturb(x, 0.1, -1.0, 3, 0), "step_size must be a finite non-negative number"),
    (lambda m, x: PGD(m).perturb(x, 0.1, 0.1, -3, 0), "step_num must be an int >= 0"),
    (lambda m, x: PGD(m).perturb(x, 0.1, 0.1, 3, 0, norm="L1"), "norm must be 'Linf' or 'L2', got 'L1'"),
    (lambda m, x: PGD(m).perturb(x, 0.1, 0.1, 3, 0, l2_step="x"), "l2_step must be 'normalized' or 'sign'"),
    (lambda m, x: PGD(m).perturb(x, 0.1, 0.1, 3, 0, restarts=2), "restarts=2 needs random_start=True"),
    (lambda m, x: PGD(m).perturb(x, 0.1, 0.1, 3, 0, mask=torch.ones(3, 4)),
     r"mask of shape \(3, 4\) does not broadcast to the input of shape \(4, 5\)"),
    (lambda m, x: FGSM(m).perturb(x, 0.1, 0, mask=(torch.ones(5), torch.ones(5))), "mask has 2 tensors"),
    (lambda m, x: FGSM(m, lower_bound=1.0, upper_bound=0.0), r"lower_bound \(1.0\) must not exceed upper_bound"),
    (lambda m, x: PGD(m, upper_bound=float("nan")), "upper_bound must be a real number"),
    (lambda m, x: FGSM(m).perturb(x.long(), 0.1, 0), "has dtype torch.int64"),
    (lambda m, x: PGD(m, lambda o, t: -o[:, 0]).perturb(x, 0.1, 0.1, 3, 0.5, early_stop=True),
     "target must be class indices"),
    (lambda m, x: FGSM(m).perturb(x, 0.1, 0.5), "target must be None, an int"),
])
def test_bad_arguments_raise_before_any_model_call(call, message):
    model = Counting()
    x = torch.rand(4, 5, dtype=torch.float64)
    with pytest.raises(IntellegoError, match=message):
        call(model, x)
    assert model.calls == 0


def test_a_loss_that_ignores_the_inputs_is_named():
    model = softmax_mlp()
    with pytest.raises(IntellegoError, match="does not depend on the inputs"):
        FGSM(model, lambda out, t: torch.ones(out.shape[0])).perturb(torch.rand(2, 5, dtype=torch.float64), 0.1, 0)


def test_a_replaced_bound_is_honoured():
    model = softmax_mlp()
    x = torch.rand(8, 5, dtype=torch.float64) * 0.4 + 0.3
    for norm in ("Linf", "L2"):
        pgd = PGD(model, lower_bound=0.0, upper_bound=1.0)
        pgd.bound = lambda t: t.clamp(0.3, 0.7)  # Captum documents bound as replaceable
        adv = pgd.perturb(x, 0.5, 0.1, 5, 0, norm=norm)
        assert bool(((adv >= 0.3) & (adv <= 0.7)).all()) and not torch.equal(adv, x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_random_starts_and_attacks_on_the_inputs_device():
    model = softmax_mlp().cuda()
    x = torch.rand(16, 5, dtype=torch.float64, device="cuda")
    labels = model(x).argmax(1)
    for norm in ("Linf", "L2"):
        adv = PGD(model).perturb(x, 0.2, 0.05, 3, labels, random_start=True, norm=norm, restarts=2,
                                 generator=torch.Generator(device="cuda").manual_seed(0))
        assert adv.device == x.device and adv.dtype == torch.float64
        cpu_gen = PGD(model).perturb(x, 0.2, 0.05, 3, labels, random_start=True, norm=norm,
                                     generator=torch.Generator().manual_seed(0))
        assert cpu_gen.device == x.device
