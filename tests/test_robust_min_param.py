"""MinParamPerturbation: Captum's batch answers, per-example answers equal to Captum's answers looped over the
examples (linear and binary, preprocessing before and after the attack, several attempts), and named errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from intellego.errors import IntellegoError
from intellego.robust import FGSM, MinParamPerturbation

pytestmark = pytest.mark.usefixtures("one_thread")


captum_robust = pytest.importorskip("captum.robust")


def softmax_mlp(d: int = 5, c: int = 3, seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 8), nn.Tanh(), nn.Linear(8, c), nn.Softmax(dim=1)).double()


@pytest.fixture(scope="module")
def problem():
    model = softmax_mlp()
    x = torch.rand(24, 5, dtype=torch.float64)
    labels = model(x).argmax(1)
    return model, x, labels


def captum_looped(model, attack, x, labels, mode, **kw):
    search = captum_robust.MinParamPerturbation(model, attack, "epsilon", 0.0, 1.5, 0.05, mode=mode, **kw)
    params, inputs = [], []
    for i in range(x.shape[0]):
        adv, p = search.evaluate(x[i:i + 1], target=labels[i:i + 1], attack_kwargs={"target": labels[i:i + 1]})
        params.append(math.nan if p is None else p)
        inputs.append(x[i:i + 1] if adv is None else adv)
    return torch.tensor(params, dtype=torch.float64), torch.cat(inputs)


@pytest.mark.parametrize("mode", ["linear", "binary"])
def test_per_example_answers_equal_captums_looped_answers(problem, mode):
    model, x, labels = problem
    want_p, want_x = captum_looped(model, captum_robust.FGSM(model), x, labels, mode)
    search = MinParamPerturbation(model, FGSM(model), "epsilon", 0.0, 1.5, 0.05, mode=mode)
    adv, params = search.evaluate(x, target=labels, attack_kwargs={"target": labels}, per_example=True)
    assert params.dtype == torch.float64 and params.shape == (24,)
    assert int(params.isnan().sum()) < 24 and len(set(params[~params.isnan()].tolist())) > 2
    torch.testing.assert_close(params, want_p, equal_nan=True, rtol=0, atol=0)
    torch.testing.assert_close(adv, want_x, rtol=0, atol=1e-12)
    fooled = ~params.isnan()
    assert bool((model(adv[fooled]).argmax(1) != labels[fooled]).all())


def test_per_example_with_preprocessing_matches_captum(problem):
    model, x, labels = problem
    scale = 2.0

    def preproc(t):
        return t / scale

    def net(t):
        return model(t * scale)

    for before in (False, True):
        search_c = captum_robust.MinParamPerturbation(net, captum_robust.FGSM(net if not before else model),
                                                      "epsilon", 0.0, 1.5, 0.05, preproc_fn=preproc,
                                                      apply_before_preproc=before)
        want = []
        for i in range(8):
            _, p = search_c.evaluate(x[i:i + 1], target=labels[i:i + 1], attack_kwargs={"target": labels[i:i + 1]})
            want.append(math.nan if p is None else p)
        ours = MinParamPerturbation(net, FGSM(net if not before else model), "epsilon", 0.0, 1.5, 0.05,
                                    preproc_fn=preproc, apply_before_preproc=before)
        _, params = ours.evaluate(x[:8], target=labels[:8], attack_kwargs={"target": labels[:8]}, per_example=True)
        torch.testing.assert_close(params, torch.tensor(want, dtype=torch.float64), equal_nan=True, rtol=0, atol=0)


def test_several_attempts_count_any_fooling_attempt():
    # a deterministic "random" attack: attempt k of each call moves by (k + 1) / 3 of the value
    model = nn.Linear(1, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        model.bias.zero_()
    calls = {"k": 0}

    def attack(t, amount):
        k = calls["k"] % 3
        calls["k"] += 1
        return t - amount * (k + 1) / 3

    x = torch.tensor([[0.25], [0.55], [5.0]], dtype=torch.float64)
    search = MinParamPerturbation(model, attack, "amount", 0.0, 1.0, 0.1, num_attempts=3)
    adv, params = search.evaluate(x, target=torch.zeros(3, dtype=torch.long), per_example=True)
    # fooled when x - amount < 0 for the largest move (k = 2): the first grid value above x
    torch.testing.assert_close(params, torch.tensor([0.3, 0.6, math.nan], dtype=torch.float64), equal_nan=True,
                               rtol=0, atol=1e-12)
    assert bool((adv[:2] < 0).all()) and adv[2].item() == 5.0


@pytest.mark.parametrize("mode", ["linear", "binary"])
@pytest.mark.parametrize("ppe", [1, 3])
def test_batch_answer_matches_captum(problem, mode, ppe):
    model, x, labels = problem
    kw = {"target": labels[:6], "attack_kwargs": {"target": labels[:6]}, "perturbations_per_eval": ppe}
    adv_c, p_c = captum_robust.MinParamPerturbation(model, captum_robust.FGSM(model), "epsilon", 0.0, 1.5, 0.05,
                                                    mode=mode, num_attempts=2).evaluate(x[:6], **kw)
    adv, p = MinParamPerturbation(model, FGSM(model), "epsilon", 0.0, 1.5, 0.05, mode=mode,
                                  num_attempts=2).evaluate(x[:6], **kw)
    assert p == p_c
    torch.testing.assert_close(adv, adv_c, rtol=0, atol=1e-12)


def test_batch_answer_is_none_when_nothing_fools(problem):
    model, x, labels = problem
    search = MinParamPerturbation(model, lambda t, s: t, "s", 0, 3, 1)
    assert search.evaluate(x[:2], target=labels[:2]) == (None, None)
    _, params = search.evaluate(x[:2], target=labels[:2], per_example=True)
    assert bool(params.isnan().all())


def test_custom_correct_fn_per_example_and_additional_args(problem):
    model, x, labels = problem

    def net(t, bias):
        return model(t + bias)

    bias = torch.zeros(24, 5, dtype=torch.float64)
    seen = []

    def correct(out, target, margin):
        seen.append(out.shape[0])
        return out.gather(1, target[:, None])[:, 0] > margin

    margin = float(model(x).detach().amax(1).median())  # half the examples start below it
    search = MinParamPerturbation(net, lambda t, s: t + s, "s", 0.0, 2.0, 0.1, correct_fn=correct)
    _, params = search.evaluate(x, additional_forward_args=bias, target=labels,
                                correct_fn_kwargs={"margin": margin}, per_example=True)
    # slow oracle: every example, every value
    for i in range(24):
        vals = [v / 10 for v in range(20)]
        first = next((v for v in vals if not model(x[i:i + 1] + v)[0, labels[i]] > margin), math.nan)
        got = params[i].item()
        assert (math.isnan(got) and math.isnan(first)) or abs(got - first) < 1e-9
    assert seen[0] == 24 and min(seen) < 24  # finished examples leave the batch


@pytest.mark.parametrize(("make", "message"), [
    (lambda m: MinParamPerturbation(m, lambda t, e: t, "e", 0, 1, 1), r"arg_max \(1\) must exceed arg_min \+ arg_step"),
    (lambda m: MinParamPerturbation(m, lambda t, e: t, "e", 0, 1, -0.1), "arg_step must be a finite positive"),
    (lambda m: MinParamPerturbation(m, lambda t, e: t, "e", 0, 1, 0.1, mode="ternary"), "mode must be 'linear'"),
    (lambda m: MinParamPerturbation(m, lambda t, e: t, "e", 0, 1, 0.1, num_attempts=0), "num_attempts must be"),
    (lambda m: MinParamPerturbation(m, "fgsm", "e", 0, 1, 0.1), "attack must be a Perturbation or a callable"),
    (lambda m: MinParamPerturbation(m, lambda t, e: t, "e", 0, float("inf"), 0.1), "arg_max must be a finite"),
])
def test_bad_constructor_arguments(problem, make, message):
    with pytest.raises(IntellegoError, match=message):
        make(problem[0])


def test_bad_evaluate_arguments(problem):
    model, x, labels = problem
    search = MinParamPerturbation(model, lambda t, e: t + e, "e", 0, 1, 0.1)
    with pytest.raises(IntellegoError, match="per_example=True needs inputs that are a tensor"):
        search.evaluate([[0.0] * 5], target=labels[:1], per_example=True)
    with pytest.raises(IntellegoError, match="perturbations_per_eval > 1 stacks attacked inputs"):
        MinParamPerturbation(model, lambda t, e: [t], "e", 0, 1, 0.1).evaluate(x, target=labels,
                                                                             perturbations_per_eval=2)
    with pytest.raises(IntellegoError, match="perturbations_per_eval must be a positive int"):
        search.evaluate(x, target=labels, perturbations_per_eval=0)
    with pytest.raises(IntellegoError, match="needs target="):
        search.evaluate(x, per_example=True)
    bad = MinParamPerturbation(model, lambda t, e: t + e, "e", 0, 1, 0.1, correct_fn=lambda out, target: True)
    with pytest.raises(IntellegoError, match=r"correct_fn must return one bool per example, a tensor of shape \(24,\)"):
        bad.evaluate(x, target=labels, per_example=True)
