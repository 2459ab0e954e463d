"""AttackComparator: Captum's results and summaries (single, tuple and named-tuple metrics, attempts, preprocessing,
additional arguments), results independent of the chunking, few model calls, and named errors."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import pytest
import torch
from torch import nn

from intellego.errors import IntellegoError
from intellego.robust import FGSM, AttackComparator

pytestmark = pytest.mark.usefixtures("one_thread")


captum_robust = pytest.importorskip("captum.robust")


def model_and_data(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    x = torch.rand(12, 5, dtype=torch.float64)
    return model, x, model(x).argmax(1).detach()


class Stepper:
    """A deterministic stand-in for a random attack: attempt k of a series shifts by (k % 3 + 1) * size."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, t, size):
        k = self.calls % 3
        self.calls += 1
        return t + (k + 1) * size


class Scores(NamedTuple):
    accuracy: torch.Tensor
    confidence: torch.Tensor


def accuracy(out, target):
    return (out.argmax(1) == target).double()


def two_metrics(out, target):
    return (out.argmax(1) == target).double(), out.softmax(1).amax(1)


def named_metrics(out, target):
    return Scores((out.argmax(1) == target).double(), out.softmax(1).amax(1))


def fill(cmp, model, preproc: bool):
    cmp.add_attack(FGSM(model), "FGSM", attack_kwargs={"epsilon": 0.2}, additional_attack_arg_names=["target"],
                   apply_before_preproc=not preproc)
    cmp.add_attack(Stepper(), "steps", num_attempts=3, attack_kwargs={"size": 0.3})
    cmp.add_attack(lambda t: t.flip(0), "flip")


def assert_same(a, b):
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, tuple):
        assert type(a).__name__ == type(b).__name__ and len(a) == len(b)
        for u, v in zip(a, b):
            assert_same(u, v)
    else:
        torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64))


@pytest.mark.parametrize("metric", [accuracy, two_metrics, named_metrics])
@pytest.mark.parametrize("preproc", [False, True])
def test_results_and_summary_match_captum(metric, preproc):
    model, x, y = model_and_data()
    pre = (lambda t: t * 0.5) if preproc else None
    net = (lambda t: model(t * 2.0)) if preproc else model
    ours, theirs = AttackComparator(net, metric, pre), captum_robust.AttackComparator(net, metric, pre)
    fill(ours, model, preproc)
    fill(theirs, model, preproc)
    for batch in (slice(0, 5), slice(5, 12)):
        assert_same(ours.evaluate(x[batch], target=y[batch]), theirs.evaluate(x[batch], target=y[batch]))
    assert_same(ours.summary(), theirs.summary())
    ours.reset()
    theirs.reset()
    assert ours.summary() == theirs.summary() == {}


def test_additional_forward_args_follow_the_stacked_copies():
    model, x, y = model_and_data()

    def net(t, shift, scale):
        return model(t + shift) * scale

    shift = torch.rand(12, 5, dtype=torch.float64)
    ours, theirs = AttackComparator(net, accuracy), captum_robust.AttackComparator(net, accuracy)
    for c in (ours, theirs):
        c.add_attack(Stepper(), "steps", num_attempts=3, attack_kwargs={"size": 0.2})
    got = ours.evaluate(x, additional_forward_args=(shift, 2.0), target=y)
    want = theirs.evaluate(x, additional_forward_args=(shift, 2.0), perturbations_per_eval=4, target=y)
    assert_same(got, want)


def test_results_do_not_depend_on_the_chunking_and_use_one_call():
    model, x, y = model_and_data()
    calls = []

    def counting(t):
        calls.append(t.shape[0])
        return model(t)

    results = []
    for ppe in (1, 2, None):
        cmp = AttackComparator(counting, accuracy)
        cmp.add_attack(Stepper(), "steps", num_attempts=3, attack_kwargs={"size": 0.2})
        cmp.add_attack(lambda t: -t, "neg")
        calls.clear()
        results.append(cmp.evaluate(x, perturbations_per_eval=ppe, target=y))
        assert len(calls) == {1: 5, 2: 3, None: 1}[ppe]
    for r in results[1:]:
        assert_same(r, results[0])


def test_a_memory_budget_splits_large_jobs():
    from intellego.robust.batch_eval import outputs_for

    model, _, _ = model_and_data()
    x = torch.rand(300, 5, dtype=torch.float64)
    calls = []

    def counting(t):
        calls.append(t.shape[0])
        return model(t)

    cands = [x, x + 1, x - 1, x * 2]
    outs = outputs_for(counting, cands, (), None, memory_budget=40_000)
    assert len(calls) > 1 and max(calls) < 1200
    for c, o in zip(cands, outs):
        torch.testing.assert_close(o, model(c).detach())


def test_raw_inputs_with_a_preprocessing_function():
    model, x, y = model_and_data()
    raw = x.tolist()
    cmp = AttackComparator(model, accuracy, preproc_fn=lambda rows: torch.tensor(rows, dtype=torch.float64))
    cmp.add_attack(lambda rows: [[v + 0.1 for v in r] for r in rows], "shift")
    got = cmp.evaluate(raw, target=y)
    torch.testing.assert_close(got["Original"], accuracy(model(x), y))
    torch.testing.assert_close(got["shift"]["mean"], accuracy(model(x + 0.1), y))


def test_missing_attack_argument_warns():
    model, x, y = model_and_data()
    cmp = AttackComparator(model, lambda out: out.mean())
    cmp.add_attack(lambda t, target=None: t, "needs-target", additional_attack_arg_names=["target"])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cmp.evaluate(x)
    assert any("Additional sample arg target not provided for needs-target" in str(w.message) for w in seen)


def test_bad_arguments_are_named():
    model, x, y = model_and_data()
    cmp = AttackComparator(model, accuracy)
    cmp.add_attack(lambda t: t, "same")
    with pytest.raises(IntellegoError, match="an attack named 'same' was already added"):
        cmp.add_attack(lambda t: t, "same")
    with pytest.raises(RuntimeError):  # what Captum raises, for ported code that catches it
        cmp.add_attack(lambda t: t, "same")
    with pytest.raises(IntellegoError, match="attack must be a Perturbation or a callable"):
        cmp.add_attack("fgsm")
    with pytest.raises(IntellegoError, match="num_attempts must be a positive int"):
        cmp.add_attack(lambda t: t, "zero", num_attempts=0)
    with pytest.raises(IntellegoError, match="perturbations_per_eval must be a positive int"):
        cmp.evaluate(x, perturbations_per_eval=0, target=y)
    with pytest.raises(IntellegoError, match="metric must be callable"):
        AttackComparator(model, "accuracy")
