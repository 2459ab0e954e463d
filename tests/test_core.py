"""Core: inputs, baselines, targets, hook scope, batching."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from intellego.core.batching import chunks, plan_rows, saved_bytes_per_row
from intellego.core.grad import ForwardSpec
from intellego.core.hooks import HookScope
from intellego.core.inputs import pack, pack_args, pack_baseline_distribution, pack_baselines, unpack
from intellego.core.sites import Site, Stop, Tap
from intellego.core.targets import expand_target, make_readout
from intellego.errors import IntellegoError


def test_pack_unpack_keeps_structure():
    x = torch.ones(2, 3)
    assert pack(x) == ((x,), False)
    assert unpack(*pack(x)) is x
    assert unpack(*pack((x, x))) == (x, x)
    with pytest.raises(IntellegoError, match="inputs"):
        pack([x, 3])
    with pytest.raises(IntellegoError, match="empty"):
        pack(())


def test_baselines_in_every_form():
    x = torch.randn(4, 3)
    assert torch.equal(pack_baselines(None, (x,))[0], torch.zeros(4, 3))
    assert torch.equal(pack_baselines(2, (x,))[0], torch.full((4, 3), 2.0))
    row = torch.arange(3.0)
    for b in (row, row[None], row.expand(4, 3)):
        assert torch.equal(pack_baselines(b, (x,))[0], row.expand(4, 3))
    two = pack_baselines((0.5, None), (x, x[:, :2]))
    assert two[0].shape == (4, 3) and two[1].shape == (4, 2)
    with pytest.raises(IntellegoError, match=r"\(2, 3\).*\(4, 3\)"):
        pack_baselines(torch.zeros(2, 3), (x,))
    with pytest.raises(IntellegoError, match="2 entries but inputs has 1"):
        pack_baselines((0, 0), (x,))


def test_baseline_distribution():
    x = torch.randn(4, 3)
    assert pack_baseline_distribution(torch.zeros(7, 3), (x,))[0].shape == (7, 3)
    assert pack_baseline_distribution(lambda inp: inp * 0, (x,))[0].shape == (4, 3)
    with pytest.raises(IntellegoError, match="per-example shape"):
        pack_baseline_distribution(torch.zeros(7, 2), (x,))
    with pytest.raises(IntellegoError, match="at least 2"):
        pack_baseline_distribution(torch.zeros(1, 3), (x,), min_count=2)


def test_pack_args_follows_captum():
    t = torch.ones(2)
    assert pack_args(None) == () and pack_args(t) == (t,) and pack_args((t, 3)) == (t, 3)


@pytest.mark.parametrize(
    "target, expected",
    [
        (1, [1, 5, 9]),
        ((2,), [2, 6, 10]),
        (torch.tensor(3), [3, 7, 11]),
        ([0, 1, 2], [0, 5, 10]),
        (torch.tensor([3, 2, 1]), [3, 6, 9]),
        ([(0,), (1,), (3,)], [0, 5, 11]),
        (lambda out: out[:, 0] * 0 + 1, [1, 1, 1]),
    ],
)
def test_readout_formats(target, expected):
    out = torch.arange(12.0).reshape(3, 4)
    assert make_readout(target, 3)(out).tolist() == expected


def test_readout_multi_dim_and_none():
    out = torch.arange(24.0).reshape(2, 3, 4)
    assert make_readout((1, 2), 2)(out).tolist() == [6, 18]
    assert make_readout([(0, 1), (2, 3)], 2)(out).tolist() == [1, 23]
    assert make_readout(None, 2)(torch.tensor([[1.0], [2.0]])).tolist() == [1, 2]
    assert make_readout(None, 2)(torch.tensor(5.0)).item() == 5


@pytest.mark.parametrize(
    "target, batch, message",
    [
        (7, 3, r"target 7 is out of range for model output of shape \(3, 4\)"),
        ([0, 1], 3, "target list has 2 entries but the batch has 3"),
        (torch.tensor([0, 9, 1]), 3, "out of range"),
        (None, 3, "target is None but the model output has shape"),
        ((1, 2), 3, "has 2 indices"),
        (torch.tensor([0.5]), 3, "integer indices"),
        ("cat", 3, "must be None, an int"),
    ],
)
def test_readout_errors_name_the_target_and_shapes(target, batch, message):
    out = torch.zeros(3, 4)
    with pytest.raises(IntellegoError, match=message):
        make_readout(target, batch)(out)


def test_readout_expansion_matches_expanded_batch():
    out = torch.arange(12.0).reshape(3, 4)
    r = make_readout([0, 1, 2], 3)
    assert r.tiled(2)(out.repeat(2, 1)).tolist() == [0, 5, 10, 0, 5, 10]
    assert r.interleaved(2)(out.repeat_interleave(2, 0)).tolist() == [0, 0, 5, 5, 10, 10]
    assert r.rows(slice(1, 3))(out[1:]).tolist() == [5, 10]
    assert expand_target([0, 1], 2, 2) == [0, 0, 1, 1]
    assert expand_target(torch.tensor([0, 1]), 2, 2, interleave=False).tolist() == [0, 1, 0, 1]


def test_forward_spec_expands_only_batched_args():
    table = torch.arange(5.0)
    per_example = torch.tensor([1.0, 2.0])

    def f(x, scale, lut):
        assert lut.shape == (5,)
        return x * scale[:, None]

    spec = ForwardSpec.build(f, 0, (per_example, table), 2)
    x = torch.ones(2, 1)
    assert spec.tiled(3).scores((x.repeat(3, 1),)).tolist() == [1, 2] * 3
    assert spec.interleaved(2).scores((x.repeat_interleave(2, 0),)).tolist() == [1, 1, 2, 2]
    assert spec.rows(slice(1, 2)).scores((x[1:],)).tolist() == [2]


def test_hook_scope_removes_everything_even_on_error():
    layer = nn.Linear(2, 2)
    with pytest.raises(RuntimeError), HookScope() as scope:
        scope.capture(layer)
        scope.at(Site(layer), lambda i, out: out * 0)
        scope.at(Site(layer, to_input=True), lambda i, x: x + 1)
        scope.patch(layer, "extra", 1)
        scope.patch(layer, "training", False)
        raise RuntimeError("fail inside")
    assert not layer._forward_hooks and not layer._forward_pre_hooks
    assert "extra" not in vars(layer) and layer.training


def test_capture_and_substitute_see_every_call():
    relu = nn.ReLU()

    def twice(x):
        return relu(relu(x) - 1)

    with HookScope() as scope:
        seen = scope.capture(relu)
        tap = scope.at(Site(relu), Tap(Site(relu), feed=lambda i, kept: [kept[0] + 10 * i]))
        y = twice(torch.tensor([2.0]))
    assert len(seen.outputs) == 2 and len(tap.values) == 2 and y.item() == 11.0
    assert [v[0].item() for v in tap.values] == [2.0, 1.0]


def test_site_selects_one_call_and_inputs():
    relu = nn.ReLU()

    def twice(x):
        return relu(relu(x) - 1)

    with HookScope() as scope:
        second = scope.at(Site(relu, call=1), Tap(Site(relu, call=1)))
        inputs = scope.at(Site(relu, to_input=True), Tap(Site(relu, to_input=True), feed=lambda i, kept: [kept[0] * 2]))
        y = twice(torch.tensor([3.0]))
    # first call: relu(6) = 6; second: relu(2 * 5) = 10
    assert [v[0].item() for v in inputs.values] == [3.0, 5.0] and y.item() == 10.0
    assert len(second.values) == 1 and second.values[0][0].item() == 10.0
    with pytest.raises(IntellegoError, match="ran 2 times in one forward"):
        inputs.only()
    with HookScope() as scope:
        stop = scope.at(Site(relu), Tap(Site(relu), stop=lambda: True))
        with pytest.raises(Stop):
            twice(torch.tensor([3.0]))
    assert len(stop.values) == 1 and not relu._forward_hooks


def test_chunks_and_plan():
    assert [(s.start, s.stop) for s in chunks(5, 2)] == [(0, 2), (2, 4), (4, 5)]
    assert plan_rows(1000, limit=7) == 7
    assert plan_rows(10) == 10
    assert plan_rows(10_000, memory_budget=1000, measure=lambda: 100) == 5
    with pytest.raises(IntellegoError, match="internal_batch_size must be a positive int"):
        plan_rows(10, limit=0)


def test_saved_bytes_grow_with_rows():
    model = nn.Sequential(nn.Linear(10, 100), nn.ReLU(), nn.Linear(100, 1))

    def run(n):
        return model(torch.randn(n, 10, requires_grad=True))

    per_row = saved_bytes_per_row(run)
    assert 400 <= per_row <= 4 * (10 + 100 + 100 + 100) * 2


def test_walk_modules_is_modules_order_with_shared_children_once():
    from intellego.core.hooks import ModelScan, walk_modules

    shared = torch.nn.Linear(2, 2)
    model = torch.nn.Sequential(torch.nn.Sequential(shared, torch.nn.ReLU()), shared, torch.nn.Sequential())
    assert walk_modules(model) == list(model.modules())
    assert ModelScan(model).first_param is next(model.parameters())
