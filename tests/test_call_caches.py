"""The per-call caches of the fixed cost (issue #25) cannot give a wrong answer when the model or the inputs change.

``ModelScan`` (one walk over the model per call, shared by the buffer snapshot, the input guard and the chunk-cost
key), the window plans cached per geometry, the ablation masks kept per plan, ShapleyValues' coalition and weight
tables, KernelShap's exact fit and the path's quadrature constants: every answer after a change is compared with a
slow obvious oracle, or with a cold start (every cache cleared).
"""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from torch import nn

from intellego.attr import FeatureAblation, IntegratedGradients, KernelShap, Occlusion, ShapleyValues
from intellego.core.hooks import ModelScan, keep_buffers
from intellego.engines import perturb, perturb_eval

pytestmark = pytest.mark.usefixtures("one_thread")
D = torch.float64


def _net() -> nn.Module:
    torch.manual_seed(0)
    shared = nn.Linear(4, 4)
    return nn.Sequential(nn.Linear(6, 4), nn.Sequential(nn.BatchNorm1d(4), shared, nn.Dropout(0.5)), nn.ReLU(),
                         shared, nn.Linear(4, 3)).to(D)


def ablation_oracle(f, x, base=0.0, target=1):
    """One feature at a time, each example alone."""
    out = torch.zeros_like(x)
    with torch.no_grad():
        for b in range(x.shape[0]):
            ref = f(x[b:b + 1])[0, target]
            for k in range(x.shape[1]):
                cut = x[b:b + 1].clone()
                cut[0, k] = base
                out[b, k] = ref - f(cut)[0, target]
    return out


def occlusion_oracle(f, x, width, stride, target=1):
    """Each window alone; each element the mean change over the windows covering it (last window clipped)."""
    n = x.shape[1]
    starts = list(range(0, n - width + 1, stride))
    if starts[-1] + width < n:
        starts.append(starts[-1] + stride)
    total, count = torch.zeros_like(x), torch.zeros(n, dtype=x.dtype)
    with torch.no_grad():
        ref = f(x)[:, target]
        for s in starts:
            cut = x.clone()
            cut[:, s:s + width] = 0
            total[:, s:s + width] += (ref - f(cut)[:, target])[:, None]
            count[s:s + width] += 1
    return total / count


def test_the_scan_walks_like_modules_and_parameters():
    net = _net()
    scan = ModelScan(net)
    assert scan.modules == list(net.modules())  # depth first, parents first, the shared layer once
    assert scan.first_param is next(net.parameters())
    assert ModelScan(lambda x: net(x)[:, 0]).modules == list(net.modules())  # a model held in a closure
    assert ModelScan(torch.sin).modules == [] and ModelScan(torch.sin).first_param is None


@pytest.mark.parametrize("change", ["swap", "train_child", "freeze", "replace_param"])
def test_the_signature_changes_with_the_structure(change):
    net = _net()
    before = ModelScan(net).signature
    if change == "swap":
        net[4] = nn.Linear(4, 3).to(D)
    elif change == "train_child":
        net[1].train(not net[1].training)
    elif change == "freeze":
        net[0].weight.requires_grad_(False)
    else:
        net[0].bias = nn.Parameter(torch.zeros(4, dtype=D))
    assert ModelScan(net).signature != before
    assert ModelScan(net).signature == ModelScan(net).signature  # and only then


def test_buffers_are_restored_after_train_is_toggled_and_after_a_dtype_change():
    """The snapshot is read per call: a model switched to training mode, or converted (``double()`` replaces
    every buffer tensor), still gets its own current buffers back."""
    net = _net().eval()
    x = torch.randn(5, 6, dtype=D)
    FeatureAblation(net).attribute(x, target=1)  # warm every cache in eval mode
    def changes():  # one at a time: each takes effect when the loop reaches it
        yield net.train(), x
        yield net.float(), x.float()
        yield net.double(), x

    for model, inp in changes():
        bn = model[1][0]
        before = {k: v.clone() for k, v in bn.state_dict().items()}
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            FeatureAblation(model).attribute(inp, target=1)
        assert any("training mode" in str(w.message) for w in seen)
        for k, v in bn.state_dict().items():
            torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # back in eval mode: no warning
        FeatureAblation(net).attribute(x, target=1)


def test_keep_buffers_of_a_closure_sees_a_swapped_layer():
    net = _net().train()
    f = lambda t: net(t)  # noqa: E731 - the closure form of forward_func
    net[1][0] = nn.BatchNorm1d(4).to(D).train()  # swapped after the closure was made
    before = net[1][0].running_mean.clone()
    with keep_buffers(f):
        net(torch.randn(4, 6, dtype=D))
    torch.testing.assert_close(net[1][0].running_mean, before, rtol=0, atol=0)


def test_ablation_after_every_kind_of_change_equals_the_oracle():
    torch.manual_seed(1)
    net = _net().eval()
    fa = FeatureAblation(net)
    x = torch.randn(3, 6, dtype=D)

    def changes():
        yield x
        yield x[:1]  # batch of one: the ablation masks kept by the plan are reused
        net[4] = nn.Linear(4, 3).to(D)  # a layer swapped
        yield x
        with torch.no_grad():
            net[0].weight.mul_(-1)  # weights changed in place
        yield x[:2] + 1
        net[1][0].eval()
        yield torch.randn(4, 6, dtype=D)

    for inp in changes():
        torch.testing.assert_close(fa.attribute(inp, target=1), ablation_oracle(net, inp))
    torch.testing.assert_close(fa.attribute(x, baselines=0.5, target=1), ablation_oracle(net, x, base=0.5))


@pytest.mark.parametrize("window, stride", [((2,), 2), ([3], [1]), ((4,), 2), ((6,), 1)])
def test_cached_window_plans_equal_the_oracle_and_a_cold_start(window, stride):
    net = _net().eval()
    occ = Occlusion(net)
    for x in (torch.randn(2, 6, dtype=D), torch.randn(5, 6, dtype=D), torch.randn(1, 6, dtype=D)):
        warm = occ.attribute(x, sliding_window_shapes=window, strides=stride, target=1)
        torch.testing.assert_close(warm, occlusion_oracle(net, x, window[0], stride if isinstance(stride, int)
                                                          else stride[0]))
        perturb._cached_window_plan.cache_clear()
        perturb._window_average.cache_clear()
        perturb_eval._MEASURED.clear()
        torch.testing.assert_close(occ.attribute(x, sliding_window_shapes=window, strides=stride, target=1), warm)


def test_a_window_plan_of_another_shape_is_not_served():
    net = nn.Linear(8, 3).to(D)
    occ = Occlusion(net)
    occ.attribute(torch.randn(2, 8, dtype=D), sliding_window_shapes=(2,), strides=2, target=1)
    x = torch.randn(2, 6, dtype=D)
    narrow = nn.Linear(6, 3).to(D)
    torch.testing.assert_close(Occlusion(narrow).attribute(x, sliding_window_shapes=(2,), strides=2, target=1),
                               occlusion_oracle(narrow, x, 2, 2))


def test_bad_window_arguments_are_refused_every_time():
    occ = Occlusion(nn.Linear(6, 3).to(D))
    x = torch.randn(2, 6, dtype=D)
    for _ in range(2):  # the second call cannot be served by a cache
        with pytest.raises(Exception, match="sliding_window_shapes"):
            occ.attribute(x, sliding_window_shapes=(0,), target=1)
        with pytest.raises(Exception, match="strides"):
            occ.attribute(x, sliding_window_shapes=(2,), strides=(True,), target=1)


def shapley_oracle(f, x, groups, n):
    """Average marginal gain over all n! orders of the groups, one example at a time (slow and obvious)."""
    out = torch.zeros_like(x)
    orders = list(itertools.permutations(range(n)))
    with torch.no_grad():
        for b in range(x.shape[0]):
            for order in orders:
                kept = torch.zeros(x.shape[1], dtype=torch.bool)
                prev = f(torch.where(kept, x[b], torch.zeros((), dtype=x.dtype))[None])[0, 1]
                for k in order:
                    kept |= groups == k
                    now = f(torch.where(kept, x[b], torch.zeros((), dtype=x.dtype))[None])[0, 1]
                    out[b][groups == k] += (now - prev) / len(orders)
                    prev = now
    return out


def test_kept_shapley_tables_follow_the_feature_count_and_dtype():
    """ShapleyValues keeps its coalition and weight tables per size and dtype: alternating both gives the
    oracle's answer every time."""
    net = _net().eval()
    torch.manual_seed(2)
    for n, dtype in ((3, D), (2, D), (3, torch.float32), (4, D), (3, D)):
        model = net.to(dtype)
        x = torch.randn(2, 6, dtype=dtype)
        groups = torch.arange(6) % n
        got = ShapleyValues(model).attribute(x, target=1, feature_mask=groups[None])
        tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {}
        torch.testing.assert_close(got, shapley_oracle(model, x, groups, n), **tol)


def test_kept_kernel_shap_tables_follow_the_feature_count_dtype_and_model():
    """KernelShap keeps the coalitions and the factored fit of its exact case per feature count: alternating the
    count, the dtype and the model's weights (changed in place between calls) gives the exact Shapley values of
    the oracle every time; a budget too small to enumerate still samples (and differs from the oracle)."""
    net = _net().eval()
    torch.manual_seed(3)
    for n, dtype in ((3, D), (2, D), (3, torch.float32), (4, D), (3, D), (4, D)):
        model = net.to(dtype)
        with torch.no_grad():
            model[0].weight.mul_(-1.5)  # a new model for the same object
        x = torch.randn(2, 6, dtype=dtype)
        groups = torch.arange(6) % n
        got = KernelShap(model).attribute(x, target=1, feature_mask=groups[None], n_samples=2**n)
        tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {}
        torch.testing.assert_close(got, shapley_oracle(model, x, groups, n), **tol)
    x, groups = torch.randn(2, 6, dtype=D), torch.arange(6) % 4
    sampled = KernelShap(net).attribute(x, target=1, feature_mask=groups[None], n_samples=2**4 - 1,
                                        generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(sampled, shapley_oracle(net, x, groups, 4))


def test_coalition_masks_kept_per_plan_follow_a_mask_changed_in_place():
    """ShapleyValues and exact KernelShap keep the removal masks of their coalition tables on the (cached) plan of
    a feature mask: the same mask tensor written in place between calls, with the same number of groups, gives
    the oracle's answer every time, as do tuple inputs sharing ids and a per-example mask."""
    net = _net().eval()
    torch.manual_seed(4)
    x = torch.randn(3, 6, dtype=D)
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    mask = groups[None].clone()
    for order in ([0, 1, 2], [2, 0, 1], [1, 1, 0], [0, 1, 2]):
        mask.copy_(torch.tensor(order).repeat_interleave(2)[None])
        k = int(mask.max()) + 1
        want = shapley_oracle(net, x, mask[0], k)
        torch.testing.assert_close(ShapleyValues(net).attribute(x, target=1, feature_mask=mask), want)
        torch.testing.assert_close(KernelShap(net).attribute(x, target=1, feature_mask=mask, n_samples=2**k), want)
    f = lambda a, b: net(torch.cat([a, b], 1))  # noqa: E731
    got = ShapleyValues(f).attribute((x[:, :3], x[:, 3:]), target=1, feature_mask=(groups[None, :3], groups[None, 3:]))
    want = shapley_oracle(net, x, groups, 3)
    torch.testing.assert_close(torch.cat(got, 1), want)
    per_example = torch.stack([groups, groups.flip(0), groups])
    got = ShapleyValues(net).attribute(x, target=1, feature_mask=per_example)
    for b in range(3):
        torch.testing.assert_close(got[b:b + 1], shapley_oracle(net, x[b:b + 1], per_example[b], 3))


def test_kept_path_constants_follow_the_rule_and_dtype():
    """Integrated gradients keeps its quadrature nodes and weights per rule, size and dtype: on a linear model
    every rule is exact (``w * (x - baseline)``), in the dtype of the inputs."""
    lin = nn.Linear(5, 3)
    for dtype, method, steps in ((D, "gausslegendre", 7), (torch.float32, "gausslegendre", 7),
                                 (D, "riemann_trapezoid", 7), (D, "gausslegendre", 4)):
        model = lin.to(dtype)
        x, base = torch.randn(3, 5, dtype=dtype), torch.randn(1, 5, dtype=dtype)
        got = IntegratedGradients(model).attribute(x, base, target=2, n_steps=steps, method=method)
        assert got.dtype == dtype
        torch.testing.assert_close(got, model.weight[2].detach() * (x - base))


def test_default_plan_spreads_values_in_element_order_across_tuple_inputs():
    """The default plan (every element its own feature, numbered on across the tensors) spreads by slicing:
    equal to one element at a time on the concatenation, for each tensor of a tuple, batch 1 and 3."""
    net = _net().eval()
    f = lambda a, b: net(torch.cat([a, b.reshape(b.shape[0], -1)], 1))  # noqa: E731
    whole = lambda t: net(t)  # noqa: E731 - the same model on the concatenated inputs
    for batch in (1, 3, 1):
        a, b = torch.randn(batch, 2, dtype=D), torch.randn(batch, 2, 2, dtype=D)
        got = FeatureAblation(f).attribute((a, b), target=1)
        want = ablation_oracle(whole, torch.cat([a, b.reshape(batch, -1)], 1))
        torch.testing.assert_close(got[0], want[:, :2])
        torch.testing.assert_close(got[1], want[:, 2:].reshape(batch, 2, 2))
