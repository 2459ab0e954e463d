"""Chunking and caches of the perturbation engine: an explicit ``perturbations_per_eval`` is an upper limit that
the CPU cache rule may lower, results are the same at every chunk size, and no cache (mask plans, the measured
per-row cost) gives a wrong answer when the model or the inputs change between calls."""

from __future__ import annotations

import pytest
import torch

from intellego.attr import FeatureAblation, FeaturePermutation, KernelShap, Lime, Occlusion, ShapleyValueSampling
from intellego.core import batching
from intellego.engines import perturb, perturb_eval
from intellego.errors import IntellegoError

pytestmark = pytest.mark.usefixtures("one_thread")
D = torch.float64


class Recorder(torch.nn.Module):
    """A small conv net that records the rows of every no-grad call (the measuring calls run with grad)."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(2, channels, 3, padding=1).to(D)
        self.head = torch.nn.Linear(channels, 3).to(D)
        self.rows: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            self.rows.append(x.shape[0])
        return self.head(torch.tanh(self.conv(x)).mean((2, 3)))


def ablation_oracle(f, x, mask, base, target=0):
    """Slow obvious oracle: one example and one feature at a time."""
    out = torch.zeros(x.shape, dtype=x.dtype)
    for b in range(x.shape[0]):
        ref = f(x[b:b + 1])[0, target]
        for k in range(int(mask.max()) + 1):
            where = (mask[0] == k) if mask.shape[0] == 1 else (mask[b] == k)
            cut = torch.where(where, base, x[b])[None]
            out[b][where] = ref - f(cut)[0, target]
    return out


def _largest_row_bytes(model: Recorder, x: torch.Tensor) -> int:
    return model.conv.out_channels * x[0, 0].numel() * x.element_size()


@pytest.mark.parametrize("method", ["occlusion", "ablation", "svs"])
def test_explicit_chunk_is_an_upper_limit_lowered_by_the_cache_rule_and_results_match(method):
    torch.manual_seed(0)
    model, x = Recorder(channels=16), torch.randn(4, 2, 16, 16, dtype=D)
    mask = (torch.arange(16 * 16).reshape(1, 1, 16, 16) // 13).expand(1, 2, 16, 16)
    cap = max(x.shape[0], perturb_eval.CPU_CHUNK_BYTES // _largest_row_bytes(model, x))
    runs = {}
    for ppe in (1, 7, 64, None):
        model.rows.clear()
        g = torch.Generator().manual_seed(1)
        if method == "occlusion":
            runs[ppe] = Occlusion(model).attribute(x, (2, 4, 4), strides=2, target=0, perturbations_per_eval=ppe)
        elif method == "ablation":
            runs[ppe] = FeatureAblation(model).attribute(x, target=0, feature_mask=mask, perturbations_per_eval=ppe)
        else:
            runs[ppe] = ShapleyValueSampling(model).attribute(x, target=0, feature_mask=mask, n_samples=2,
                                                              perturbations_per_eval=ppe, generator=g)
        limit = cap if ppe is None else min(cap, ppe * x.shape[0])
        assert max(model.rows) <= max(limit, x.shape[0]), (ppe, model.rows)
        if ppe == 64:
            assert len(model.rows) > 1  # 64 copies of this batch exceed the cache rule: several calls
    for ppe in (7, 64, None):
        torch.testing.assert_close(runs[ppe], runs[1], rtol=1e-12, atol=1e-12)


def test_small_chunks_keep_the_explicit_size_exactly():
    model, x = Recorder(), torch.randn(2, 2, 4, 4, dtype=D)
    FeatureAblation(model).attribute(x, target=0, perturbations_per_eval=3)
    assert model.rows == [6] * 11  # 32 features + the reference, 3 copies of 2 rows per call (no measuring)
    model.rows.clear()
    FeatureAblation(model).attribute(x, target=0, perturbations_per_eval=5)
    assert model.rows == [10] * 6 + [6]  # an explicit chunk is not rebalanced


def test_a_self_sizing_forward_gets_every_row_and_is_not_measured():
    """A forward marked self_sizing splits rows itself: it gets all rows of a big job in one call (at most an
    explicit perturbations_per_eval) and no measuring call; the answer equals the unmarked run's."""
    model, x = Recorder(channels=64), torch.randn(1, 2, 16, 16, dtype=D)
    mask = torch.arange(16 * 16).reshape(1, 1, 16, 16) // 4  # 64 features: a job the cache rule would cut
    plain = FeatureAblation(model).attribute(x, target=0, feature_mask=mask)
    assert len(model.rows) > 1
    calls: list[tuple[int, bool]] = []

    def forward(t: torch.Tensor) -> torch.Tensor:
        calls.append((t.shape[0], torch.is_grad_enabled()))
        return model(t)

    marked = FeatureAblation(batching.self_sizing(forward)).attribute(x, target=0, feature_mask=mask)
    assert calls == [(65, False)]
    calls.clear()
    capped = FeatureAblation(batching.self_sizing(forward)).attribute(x, target=0, feature_mask=mask,
                                                                      perturbations_per_eval=20)
    assert calls == [(20, False)] * 3 + [(5, False)]
    torch.testing.assert_close(marked, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(capped, plain, rtol=1e-12, atol=1e-12)


def test_masks_built_at_once_equal_masks_built_per_chunk():
    torch.manual_seed(0)
    model, x = Recorder(), torch.randn(3, 2, 8, 8, dtype=D)
    mask = torch.arange(2 * 8 * 8).reshape(1, 2, 8, 8) // 5
    at_once = FeatureAblation(model).attribute(x, target=1, feature_mask=mask, perturbations_per_eval=2)
    limit = perturb_eval._MASKS_AT_ONCE
    try:
        perturb_eval._MASKS_AT_ONCE = 0
        per_chunk = FeatureAblation(model).attribute(x, target=1, feature_mask=mask, perturbations_per_eval=2)
    finally:
        perturb_eval._MASKS_AT_ONCE = limit
    assert torch.equal(at_once, per_chunk)
    torch.testing.assert_close(at_once, ablation_oracle(model, x, mask, torch.zeros(()), target=1))


def test_mask_plan_cache_follows_mask_values_even_behind_the_version_counter():
    f = torch.nn.Linear(6, 1).to(D)
    x = torch.randn(3, 6, dtype=D)
    mask = torch.tensor([[0, 0, 1, 1, 2, 2]])
    first = FeatureAblation(f).attribute(x, target=0, feature_mask=mask)
    torch.testing.assert_close(first, ablation_oracle(f, x, mask, torch.zeros(())))
    mask[0, 1] = 3  # in place: a new feature
    torch.testing.assert_close(FeatureAblation(f).attribute(x, target=0, feature_mask=mask),
                               ablation_oracle(f, x, mask, torch.zeros(())))
    mask.numpy()[0, :2] = [1, 0]  # through numpy: autograd's version counter does not move
    torch.testing.assert_close(FeatureAblation(f).attribute(x, target=0, feature_mask=mask),
                               ablation_oracle(f, x, mask, torch.zeros(())))
    mask.numpy()[0, 1] = 5  # ids with a gap: planned again (FeatureAblation renumbers them, as Captum allows)
    torch.testing.assert_close(FeatureAblation(f).attribute(x, target=0, feature_mask=mask),
                               ablation_oracle(f, x, mask, torch.zeros(())))
    with pytest.raises(IntellegoError, match="without gaps"):  # a method whose result depends on the ids refuses
        ShapleyValueSampling(f).attribute(x, target=0, feature_mask=mask)


def test_mask_plan_cache_follows_input_shape_batch_and_output_mode():
    f = torch.nn.Linear(4, 1).to(D)
    per_example = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    x2, x3 = torch.randn(2, 4, dtype=D), torch.randn(3, 4, dtype=D)
    torch.testing.assert_close(FeatureAblation(f).attribute(x2, target=0, feature_mask=per_example),
                               ablation_oracle(f, x2, per_example, torch.zeros(())))
    with pytest.raises(IntellegoError, match="cannot be broadcast"):  # same mask, a batch it does not fit
        FeatureAblation(f).attribute(x3, target=0, feature_mask=per_example)
    with pytest.raises(IntellegoError, match="masks cannot differ between examples"):  # one output per batch
        FeatureAblation(lambda t: f(t).sum()).attribute(x2, feature_mask=per_example)
    shared = torch.tensor([[0, 1, 1, 0]])
    for x in (x2, x3, x3.float(), torch.randn(5, 4, dtype=D)):
        g = torch.nn.Linear(4, 1).to(x.dtype)
        torch.testing.assert_close(FeatureAblation(g).attribute(x, target=0, feature_mask=shared),
                                   ablation_oracle(g, x, shared, torch.zeros((), dtype=x.dtype)))


@pytest.mark.parametrize("method", [FeatureAblation, FeaturePermutation, KernelShap, Lime])
def test_cached_plans_and_costs_give_the_answer_of_a_cold_start(method):
    """Every cache warm, then the model and inputs change; each answer equals one with every cache cleared."""
    torch.manual_seed(0)
    model, x = Recorder(), torch.randn(4, 2, 8, 8, dtype=D)
    mask = torch.arange(2 * 8 * 8).reshape(1, 2, 8, 8) // 16

    def run(m, inp):
        kw = {"generator": torch.Generator().manual_seed(0), "n_samples": 20} if method in (KernelShap, Lime) else {}
        if method is FeaturePermutation:
            kw = {"generator": torch.Generator().manual_seed(0)}
        return method(m).attribute(inp, target=0, feature_mask=mask, **kw)

    def cold(m, inp):
        perturb._MASK_PLANS.clear()
        perturb_eval._MEASURED.clear()
        return run(m, inp)

    def changes():
        yield model, x
        with torch.no_grad():
            model.conv.weight.mul_(-2)  # weights
        yield model, x
        model.conv = torch.nn.Conv2d(2, 32, 3, padding=1).to(D)  # structure: a wider layer
        model.head = torch.nn.Linear(32, 3).to(D)
        yield model, x
        model.train()  # mode (no layer here behaves differently in training)
        yield model, x
        yield model, x + 1  # values
        yield model, x.float().double()[:3]  # batch size
        yield model.float(), x.float()  # dtype

    for m, inp in changes():
        warm = run(m, inp)
        torch.testing.assert_close(warm, cold(m, inp), rtol=1e-5 if inp.dtype == torch.float32 else 1e-12,
                                   atol=1e-6 if inp.dtype == torch.float32 else 1e-12)


def test_a_changed_structure_is_measured_again():
    model, x = Recorder(channels=4), torch.randn(4, 2, 16, 16, dtype=D)
    perturb_eval._MEASURED.clear()
    FeatureAblation(model).attribute(x, target=0, perturbations_per_eval=64)
    narrow = max(model.rows)
    model.conv = torch.nn.Conv2d(2, 64, 3, padding=1).to(D)
    model.head = torch.nn.Linear(64, 3).to(D)
    model.rows.clear()
    FeatureAblation(model).attribute(x, target=0, perturbations_per_eval=64)
    assert max(model.rows) < narrow  # a layer 16x wider: smaller chunks under the cache rule
    assert max(model.rows) <= max(x.shape[0], perturb_eval.CPU_CHUNK_BYTES // _largest_row_bytes(model, x))


def test_user_functions_cannot_change_a_cached_plan():
    """Lime hands the plan's masks to user sampling code (as Captum does); writing into them changes nothing
    for the next call."""
    f = torch.nn.Linear(4, 1).to(D)
    x = torch.randn(2, 4, dtype=D)

    def vandal(original, **kwargs):
        kwargs["feature_mask"].fill_(0)  # a user function writing into what it was given
        return torch.ones(1, kwargs["num_interp_features"], dtype=torch.long)

    Lime(f, perturb_func=vandal).attribute(x, target=0, n_samples=10)
    torch.testing.assert_close(FeatureAblation(f).attribute(x, target=0), ablation_oracle(f, x, torch.arange(4)[None],
                                                                                          torch.zeros((), dtype=D)))


def test_window_averages_from_the_cached_table_equal_the_chunked_sums():
    torch.manual_seed(0)
    model, x = Recorder(), torch.randn(2, 2, 8, 8, dtype=D)
    table = Occlusion(model).attribute(x, (1, 3, 3), strides=(1, 2, 2), target=2)
    limit = perturb._WINDOW_TABLE_ELEMENTS
    try:
        perturb._WINDOW_TABLE_ELEMENTS = 0
        chunked = Occlusion(model).attribute(x, (1, 3, 3), strides=(1, 2, 2), target=2)
    finally:
        perturb._WINDOW_TABLE_ELEMENTS = limit
    torch.testing.assert_close(table, chunked, rtol=1e-12, atol=1e-12)


def test_gradient_chunk_measurements_never_change_an_answer():
    """The gradient engine remembers bytes per row per model and input shapes; after the weights, a layer, the
    mode or the inputs change, IG equals a cold start (every cache cleared)."""
    from intellego.attr import IntegratedGradients
    from intellego.core import grad

    torch.manual_seed(0)
    model, x = Recorder(), torch.randn(3, 2, 8, 8, dtype=D)

    def run(m, inp):
        return IntegratedGradients(m).attribute(inp, target=1, n_steps=40, memory_budget=1 << 18)  # chunked

    for step in range(5):
        if step == 1:
            with torch.no_grad():
                model.conv.weight.mul_(3)
        elif step == 2:
            model.conv = torch.nn.Conv2d(2, 32, 3, padding=1).to(D)
            model.head = torch.nn.Linear(32, 3).to(D)
        elif step == 3:
            model.train()
        elif step == 4:
            x = torch.randn(5, 2, 12, 12, dtype=D)
        warm = run(model, x)
        assert grad._MEASURED  # the measurement was remembered
        grad._MEASURED.clear()
        torch.testing.assert_close(warm, run(model, x), rtol=1e-12, atol=1e-12)
