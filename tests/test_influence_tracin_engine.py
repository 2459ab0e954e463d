"""The per-sample-gradient engine against a brute-force loop of autograd.grad, one example at a time."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from intellego.engines.per_sample import (
    example_loss,
    iter_per_sample_grads,
    model_state,
    per_sample_grads,
    per_sample_losses,
    select_parameters,
)
from intellego.errors import IntellegoError


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def _brute(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module, names: list[str]) -> torch.Tensor:
    params = dict(model.named_parameters())
    rows = []
    for i in range(len(x)):
        loss = loss_fn(model(x[i:i + 1]), y[i:i + 1]).sum()
        grads = torch.autograd.grad(loss, [params[n] for n in names])
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("layers", [None, ["2"], ["0"]])
def test_grads_equal_brute_force_loop(reduction: str, layers: list[str] | None) -> None:
    model = _model()
    x, y = torch.randn(9, 5, dtype=torch.float64), torch.randint(0, 3, (9,))
    names = list(select_parameters(model, layers))
    loss_fn = nn.CrossEntropyLoss(reduction=reduction)
    got = per_sample_grads(model, (x,), y, loss=example_loss(loss_fn, reduction), names=names, chunk_rows=4)
    want = _brute(model, x, y, loss_fn, names)
    assert got.shape == (9, sum(dict(model.named_parameters())[n].numel() for n in names))
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_chunking_does_not_change_results_and_dict_form() -> None:
    model = _model()
    x, y = torch.randn(11, 5, dtype=torch.float64), torch.randint(0, 3, (11,))
    loss = example_loss(nn.CrossEntropyLoss(reduction="sum"))
    whole = per_sample_grads(model, (x,), y, loss=loss)
    tiny = per_sample_grads(model, (x,), y, loss=loss, memory_budget=1)  # one row per chunk
    torch.testing.assert_close(whole, tiny, atol=1e-14, rtol=1e-12)
    parts = per_sample_grads(model, (x,), y, loss=loss, flat=False, chunk_rows=3)
    assert set(parts) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert parts["0.weight"].shape == (11, 7, 5)
    torch.testing.assert_close(torch.cat([v.reshape(11, -1) for v in parts.values()], 1), whole)


def test_state_evaluates_another_checkpoint_without_touching_the_model() -> None:
    model, other = _model(), _model()
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-2.0)
    before = [p.clone() for p in model.parameters()]
    x, y = torch.randn(4, 5, dtype=torch.float64), torch.randint(0, 3, (4,))
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    got = per_sample_grads(model, (x,), y, loss=example_loss(loss_fn), state=model_state(other))
    torch.testing.assert_close(got, _brute(other, x, y, loss_fn, [n for n, _ in other.named_parameters()]))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_iterator_yields_row_slices_and_losses() -> None:
    model = _model()
    x, y = torch.randn(10, 5, dtype=torch.float64), torch.randint(0, 3, (10,))
    loss = example_loss(nn.CrossEntropyLoss(reduction="none"))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    pieces = list(iter_per_sample_grads(model, loader, loss=loss))
    assert [(s.start, s.stop) for s, _ in pieces] == [(0, 4), (4, 8), (8, 10)]
    torch.testing.assert_close(torch.cat([g for _, g in pieces]), per_sample_grads(model, (x,), y, loss=loss))
    losses = per_sample_losses(model, (x,), y, loss=loss)
    torch.testing.assert_close(losses, nn.functional.cross_entropy(model(x), y, reduction="none").detach())


def test_no_loss_means_sum_of_outputs_and_float32() -> None:
    torch.manual_seed(1)
    model = nn.Linear(3, 2)
    x = torch.randn(5, 3)
    g = per_sample_grads(model, (x,), None, names=["weight"])
    # d/dW sum_k (W x + b)_k = ones(2) outer x
    torch.testing.assert_close(g, torch.cat([x, x], 1))
    assert g.dtype == torch.float32


def test_bad_layers_and_targets_are_named() -> None:
    model = _model()
    with pytest.raises(IntellegoError, match="layer 'fc9' in `layers` is not in the model; its layers are: 0, 1, 2"):
        select_parameters(model, ["fc9"])
    with pytest.raises(IntellegoError, match="have no parameters"):
        select_parameters(model, ["1"])
    with pytest.raises(IntellegoError, match="non-empty list"):
        select_parameters(model, [])
    with pytest.raises(IntellegoError, match=r"targets must be a tensor with one row per example \(4\)"):
        per_sample_grads(model, (torch.randn(4, 5, dtype=torch.float64),), torch.zeros(3))
    with pytest.raises(IntellegoError, match="reduction must be"):
        example_loss(nn.MSELoss(), "avg")
