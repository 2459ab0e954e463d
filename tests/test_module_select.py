"""select_features: recovers planted features, leaves the model untouched, reproducible, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _hygiene import Exploding, assert_same, snapshot
from intellego.errors import IntellegoError
from intellego.module import BinaryConcreteStochasticGates, GaussianStochasticGates, select_features

pytestmark = pytest.mark.usefixtures("one_thread")


def planted_task(seed: int, n: int = 50, k: int = 5, rows: int = 512):
    """A frozen MLP that reads ``k`` planted features strongly and the other ``n - k`` barely (weights 1e-2)."""
    g = torch.Generator().manual_seed(seed)
    planted = torch.randperm(n, generator=g)[:k]
    x = torch.randn(rows, n, generator=g)
    first = nn.Linear(n, 16)
    with torch.no_grad():
        first.weight.copy_(torch.randn(16, n, generator=g) * 1e-2)
        first.weight[:, planted] = torch.randn(16, k, generator=g)
        first.bias.copy_(torch.randn(16, generator=g) * 0.1)
    last = nn.Linear(16, 1)
    with torch.no_grad():
        last.weight.copy_(torch.randn(1, 16, generator=g))
    return nn.Sequential(first, nn.Tanh(), last), x, planted


@pytest.mark.parametrize(("kind", "seeds"), [
    ("binary_concrete", range(5)), ("gaussian", range(5)),
    pytest.param("binary_concrete", range(5, 25), marks=pytest.mark.slow),
    pytest.param("gaussian", range(5, 25), marks=pytest.mark.slow),
])
def test_recovers_planted_features_over_seeds(kind, seeds):
    """5 planted features out of 50, default settings: at least 95% of them ranked in the top 5 over seeds."""
    found = total = 0
    for seed in seeds:
        model, x, planted = planted_task(seed)
        result = select_features(model, x, gates=kind, generator=torch.Generator().manual_seed(seed))
        found += len(set(result.top(5).tolist()) & set(planted.tolist()))
        total += 5
    assert found >= 0.95 * total, f"{kind}: {found}/{total} planted features ranked in the top 5"


def test_top_ranked_are_the_selected_ones_and_probabilities_are_sorted():
    model, x, planted = planted_task(0)
    result = select_features(model, x, generator=torch.Generator().manual_seed(0))
    assert set(result.selected().tolist()) == set(planted.tolist())
    assert torch.all(result.probs[:-1] >= result.probs[1:])
    assert torch.equal(result.probs, result.gates.get_gate_active_probs()[result.ranking])
    assert sorted(result.ranking.tolist()) == list(range(50))
    assert not result.gates.training


def test_classifier_from_a_data_loader_with_labels():
    """Labels (integer targets, cross-entropy) from a DataLoader; class depends on features 3 and 7 only."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 12, generator=g)
    labels = (x[:, 3] + x[:, 7] > 0).long()
    model = nn.Linear(12, 2)
    with torch.no_grad():
        model.weight.copy_(torch.zeros(2, 12))
        model.weight[1, [3, 7]] = 4.0
        model.bias.zero_()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, labels), batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    result = select_features(model, loader, generator=torch.Generator().manual_seed(0))
    assert sorted(result.selected().tolist()) == [3, 7]


def test_groups_through_a_mask():
    """Four channels of a 4x3x3 input, one gate per channel: only channel 2 matters."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 4, 3, 3, generator=g)

    def model(t):
        return t[:, 2].sum((1, 2)).unsqueeze(1) + 0.01 * t.sum((1, 2, 3)).unsqueeze(1)

    mask = torch.arange(4).reshape(1, 4, 1, 1)
    result = select_features(model, x, mask=mask, generator=torch.Generator().manual_seed(1))
    assert result.gates.n_gates == 4 and result.selected().tolist() == [2]


def test_baselines_set_what_a_closed_feature_becomes():
    """A model that reads feature 0 through its distance from 5: with baseline 5 that feature can close at no
    cost, while the default baseline 0 makes it look important."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(256, 4, generator=g)
    x[:, 0] = 5.0
    model = nn.Linear(4, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0, 0.0, 0.0]]))
    at_zero = select_features(model, x, generator=torch.Generator().manual_seed(0))
    at_five = select_features(model, x, baselines=torch.tensor([5.0, 0.0, 0.0, 0.0]),
                              generator=torch.Generator().manual_seed(0))
    assert sorted(at_zero.selected().tolist()) == [0, 1] and at_five.selected().tolist() == [1]


def test_reproducible_with_a_generator_and_global_rng_untouched():
    model, x, _ = planted_task(3, n=10, k=2, rows=128)
    state = torch.get_rng_state()
    a = select_features(model, x, generator=torch.Generator().manual_seed(5), max_epochs=15)
    assert torch.equal(state, torch.get_rng_state())
    b = select_features(model, x, generator=torch.Generator().manual_seed(5), max_epochs=15)
    assert torch.equal(a.ranking, b.ranking) and torch.equal(a.probs, b.probs) and a.history == b.history


def test_early_stopping_and_the_epoch_limit():
    model, x, _ = planted_task(4, n=10, k=2, rows=128)
    gen = torch.Generator().manual_seed(0)
    stopped = select_features(model, x, generator=gen, max_epochs=300, patience=3, tol=1e-2)
    assert stopped.stopped_early and stopped.epochs < 300 and len(stopped.history) == stopped.epochs
    best = min(stopped.history)
    assert all(h >= best - 1e-2 for h in stopped.history[-3:])  # no improvement of tol in the last patience epochs
    capped = select_features(model, x, generator=gen, max_epochs=4, patience=100)
    assert not capped.stopped_early and capped.epochs == 4


def test_progress_bar(capsys):
    model, x, _ = planted_task(5, n=6, k=2, rows=64)
    select_features(model, x, max_epochs=3, patience=10, show_progress=True, generator=torch.Generator())
    assert "select_features" in capsys.readouterr().err


def test_prebuilt_gates_are_trained_in_place():
    model, x, planted = planted_task(6, n=10, k=2, rows=256)
    gates = GaussianStochasticGates(10, reg_weight=0.02, generator=torch.Generator().manual_seed(0))
    result = select_features(model, x, gates=gates)
    assert result.gates is gates and set(result.selected().tolist()) == set(planted.tolist())


def _dirty_model():
    """Training mode, dropout and batch norm, a parameter with .grad and one with requires_grad=False."""
    model = nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 1))
    model.train()
    model[0].weight.grad = torch.ones_like(model[0].weight)
    model[4].bias.requires_grad_(False)
    return model


def test_model_and_inputs_untouched():
    model = _dirty_model()
    x = torch.randn(64, 8, requires_grad=True)
    x.grad = torch.ones_like(x)
    before = snapshot(model, (x,))
    select_features(model, x, max_epochs=3, generator=torch.Generator().manual_seed(0))
    assert_same(before, snapshot(model, (x,)))


def test_model_untouched_when_the_call_fails_midway():
    model = Exploding(_dirty_model(), fail_on=5)
    x = torch.randn(64, 8)
    before = snapshot(model, (x,))
    with pytest.raises(RuntimeError, match="boom"):
        select_features(model, x, max_epochs=3, batch_size=16, generator=torch.Generator().manual_seed(0))
    model.calls = 0
    assert_same(before, snapshot(model, (x,)))


def test_works_under_no_grad():
    model, x, planted = planted_task(7, n=8, k=2, rows=128)
    with torch.no_grad():
        result = select_features(model, x, generator=torch.Generator().manual_seed(0))
        assert not torch.is_grad_enabled()
    assert set(result.selected().tolist()) == set(planted.tolist())


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(batch_size=0), "batch_size must be a positive int"),
    (dict(max_epochs=1.5), "max_epochs must be a positive int"),
    (dict(lr=0.0), "lr must be > 0"),
    (dict(reg_weight=-0.1), "reg_weight must be a finite number >= 0"),
    (dict(gates="bernoulli"), "gates must be one of binary_concrete, gaussian"),
    (dict(targets=torch.zeros(3)), r"targets must be a tensor with one row per input row \(16\)"),
    (dict(mask=torch.zeros(16, 4, dtype=torch.long)), "select_features learns one set of gates for all"),
    (dict(mask=torch.tensor([0, 1, 1, 3])), "mask ids have gaps"),
    (dict(baselines=torch.zeros(5)), r"baselines of shape \(5,\) must broadcast to one example of shape \(4,\)"),
    (dict(baselines="mean"), "baselines must be a number or a tensor"),
    (dict(gates=BinaryConcreteStochasticGates(3)), "has 4 elements per example but there are 3 gates"),
    (dict(generator=1), "generator must be a torch.Generator"),
])
def test_bad_arguments_are_named_before_any_model_call(kwargs, message):
    model = Exploding(nn.Linear(4, 1), fail_on=1)  # any model call would raise RuntimeError instead
    with pytest.raises(IntellegoError, match=message):
        select_features(model, torch.randn(16, 4), **kwargs)


def test_bad_data_sources_are_named():
    model = nn.Linear(4, 1)
    with pytest.raises(IntellegoError, match="re-iterable data source"):
        select_features(model, (torch.randn(8, 4) for _ in range(2)))
    with pytest.raises(IntellegoError, match="a batch must be a tensor, \\(inputs,\\) or \\(inputs, targets\\)"):
        select_features(model, [{"x": torch.randn(8, 4)}])
    with pytest.raises(IntellegoError, match="inputs must be floating point"):
        select_features(model, torch.ones(8, 4, dtype=torch.long))
    with pytest.raises(IntellegoError, match="targets go with tensor inputs"):
        select_features(model, [torch.randn(8, 4)], torch.zeros(8))


def test_a_model_that_ignores_its_inputs_is_named():
    with pytest.raises(IntellegoError, match="closing every gate does not raise the loss"):
        select_features(lambda t: torch.ones(t.shape[0], 1), torch.randn(16, 4))


def test_targets_that_do_not_fit_the_outputs_are_named():
    with pytest.raises(IntellegoError, match=r"targets of shape \(16, 3\) do not match the model's outputs"):
        select_features(nn.Linear(4, 1), torch.randn(16, 4), torch.randn(16, 3))
