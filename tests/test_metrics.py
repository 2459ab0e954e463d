"""intellego.metrics: closed forms, known orders, sanity checks, localization on hand-built masks, bad input."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from _hygiene import assert_same, snapshot
from intellego.attr import InputXGradient, IntegratedGradients, NoiseTunnel, Saliency
from intellego.errors import IntellegoError
from intellego.metrics import (
    deletion_curve,
    evaluate,
    faithfulness_curve,
    infidelity,
    infidelity_perturb_func_decorator,
    insertion_curve,
    noise_perturbation,
    pointing_game,
    randomization_check,
    relevance_mass,
    relevance_rank,
    sensitivity_max,
    spearman,
    ssim,
)
from intellego.metrics.table import _edge_detector


def _linear(d: int = 5, out: int = 1, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, out).double()


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- infidelity


def test_infidelity_zero_for_exact_linear_attribution():
    model = _linear(6)
    x = torch.randn(4, 6, dtype=torch.float64)
    attr = model.weight.detach().expand(4, 6)
    score = infidelity(model, noise_perturbation(0.3), x, attr, n_perturb_samples=7, generator=_gen())
    assert score.shape == (4,)
    assert score.abs().max() < 1e-20


def test_infidelity_closed_form_for_scaled_attribution():
    # attributions = c * w on a linear model: error per sample is ((c - 1) w.I)^2, so the expectation over
    # the (fixed) perturbations is (c-1)^2 mean((w.I)^2); normalize=True brings it back to 0.
    model = _linear(3)
    w = model.weight.detach()[0]
    x = torch.randn(2, 3, dtype=torch.float64)
    noise = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)

    def fixed(inputs):
        pert = noise.repeat(inputs.shape[0] // 3, 1)
        return pert, inputs - pert

    c = 3.0
    score = infidelity(model, fixed, x, c * w.expand(2, 3), n_perturb_samples=3)
    expected = (c - 1) ** 2 * ((noise @ w) ** 2).mean()
    torch.testing.assert_close(score, expected.expand(2))
    assert infidelity(model, fixed, x, c * w.expand(2, 3), n_perturb_samples=3, normalize=True).abs().max() < 1e-12


def test_infidelity_chunking_and_generator_reproducible():
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    attr = torch.randn(4, 5, dtype=torch.float64)
    a = infidelity(model, noise_perturbation(0.1), x, attr, target=1, n_perturb_samples=6, generator=_gen(3))
    b = infidelity(model, noise_perturbation(0.1), x, attr, target=1, n_perturb_samples=6, generator=_gen(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)

    def fixed(inputs):  # deterministic in the number of rows: same samples whatever the chunking
        k = inputs.shape[0] // 4
        pert = torch.linspace(-1, 1, 6 * 5, dtype=torch.float64).view(6, 5)[:k].repeat(4, 1) * 0.1
        return pert, inputs - pert

    one = infidelity(model, fixed, x, attr, target=1, n_perturb_samples=1, max_examples_per_batch=4)
    assert one.shape == (4,)


def test_infidelity_decorator_multiplies_by_inputs():
    @infidelity_perturb_func_decorator(True)
    def shrink(inputs, baselines):
        return inputs - 0.5 * (inputs - baselines)

    x = torch.tensor([[2.0, 4.0]])
    pert, perturbed = shrink(x, torch.zeros(1, 2))
    torch.testing.assert_close(pert[0], torch.full((1, 2), 0.5))
    torch.testing.assert_close(perturbed[0], torch.tensor([[1.0, 2.0]]))
    # IxG on a linear model through the origin with these perturbations is exact
    model = nn.Linear(2, 1, bias=False)
    attr = InputXGradient(model).attribute(x)
    assert infidelity(model, shrink, x, attr, baselines=torch.zeros(1, 2), n_perturb_samples=2).item() < 1e-10


def test_infidelity_tuple_inputs_and_additional_args():
    class Two(nn.Module):
        def forward(self, a, b, scale):
            return (a.sum(1) * 2 + b.sum(1)) * scale

    a, b = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    attrs = (torch.full_like(a, 6.0), torch.full_like(b, 3.0))  # exact for scale 3
    score = infidelity(Two(), noise_perturbation(0.2), (a, b), attrs, additional_forward_args=3.0,
                       n_perturb_samples=4, generator=_gen())
    assert score.abs().max() < 1e-20


# ---------------------------------------------------------------- sensitivity


def test_sensitivity_zero_for_constant_explanation_and_closed_form_for_input():
    model = _linear(4, 2)
    x = torch.randn(3, 4, dtype=torch.float64)
    assert sensitivity_max(Saliency(model).attribute, x, target=0, generator=_gen()).abs().max() == 0
    # explanation = input, perturbation = +r in the first coordinate: sensitivity = r / ||x||
    r = 0.25

    def shift(inputs, radius):
        out = inputs.clone()
        out[:, 0] += radius
        return out

    score = sensitivity_max(lambda inp: inp, x, shift, perturb_radius=r, n_perturb_samples=3)
    torch.testing.assert_close(score, r / x.norm(dim=1))
    inf_norm = sensitivity_max(lambda inp: inp, x, shift, perturb_radius=r, n_perturb_samples=3,
                               norm_ord=float("inf"))
    torch.testing.assert_close(inf_norm, r / x.abs().amax(dim=1))


def test_sensitivity_default_perturbation_stays_in_ball_and_is_reproducible():
    x = torch.randn(2, 5, dtype=torch.float64) + 3
    a = sensitivity_max(lambda inp: inp, x, perturb_radius=0.1, generator=_gen(1))
    b = sensitivity_max(lambda inp: inp, x, perturb_radius=0.1, generator=_gen(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert bool((a <= 0.1 * 5**0.5 / x.norm(dim=1) + 1e-12).all()) and bool((a > 0).all())


def test_sensitivity_chunks_expand_targets():
    # every sample is the same shifted input, so the score is exact whatever the chunking, and per-example
    # targets must follow their examples through the expansion
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x = torch.randn(4, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1])
    sal = Saliency(model).attribute
    expected = torch.stack([(sal(x[i:i + 1] + 0.05, target=int(y[i])) - sal(x[i:i + 1], target=int(y[i]))).norm()
                            / sal(x[i:i + 1], target=int(y[i])).norm() for i in range(4)])
    for limit in (None, 8, 5, 4):
        score = sensitivity_max(sal, x, lambda inp: inp + 0.05, n_perturb_samples=6, max_examples_per_batch=limit,
                                target=y)
        torch.testing.assert_close(score, expected)


# ---------------------------------------------------------------- curves


def _ordered_model():
    model = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[4.0, 3.0, 2.0, 1.0]]))
    return model


def test_deletion_and_insertion_follow_known_order():
    model = _ordered_model()
    x = torch.ones(2, 4)
    good = model.weight.detach().expand(2, 4).clone()
    bad = -good
    d_good = deletion_curve(model, x, good, n_steps=4)
    d_bad = deletion_curve(model, x, bad, n_steps=4)
    assert d_good.scores[0].tolist() == [10.0, 6.0, 3.0, 1.0, 0.0]
    assert d_bad.scores[0].tolist() == [10.0, 9.0, 7.0, 4.0, 0.0]
    torch.testing.assert_close(d_good.auc, torch.full((2,), (10 / 2 + 6 + 3 + 1 + 0) / 4))
    assert bool((d_good.auc < d_bad.auc).all())
    i_good = insertion_curve(model, x, good, n_steps=4)
    assert i_good.scores[0].tolist() == [0.0, 4.0, 7.0, 9.0, 10.0]
    assert bool((i_good.auc > insertion_curve(model, x, bad, n_steps=4).auc).all())
    lerf = deletion_curve(model, x, good, n_steps=4, order="lerf")
    torch.testing.assert_close(lerf.scores, d_bad.scores)


def test_curve_feature_mask_baselines_and_chunks():
    model = _ordered_model()
    x = torch.ones(3, 4)
    attr = model.weight.detach().expand(3, 4).clone()
    groups = torch.tensor([[0, 0, 1, 1]])  # first two features move together
    c = deletion_curve(model, x, attr, baselines=0.5, n_steps=2, feature_mask=groups)
    assert c.scores[0].tolist() == [10.0, 6.5, 5.0]
    chunked = deletion_curve(model, x, attr, baselines=0.5, n_steps=2, feature_mask=groups, max_examples_per_batch=2)
    torch.testing.assert_close(c.scores, chunked.scores)


# ---------------------------------------------------------------- localization


def test_localization_on_hand_built_masks():
    attr = torch.zeros(2, 1, 3, 3)
    attr[0, 0, 0, 0] = 5.0
    attr[0, 0, 2, 2] = 1.0
    attr[0, 0, 1, 1] = -3.0
    attr[1, 0, 2, 2] = 2.0
    attr[1, 0, 0, 1] = 1.0
    masks = torch.zeros(2, 1, 3, 3, dtype=torch.bool)
    masks[0, 0, 0, 0] = True
    masks[0, 0, 1, 1] = True
    masks[1, 0, 0, 1] = True
    assert pointing_game(attr, masks).tolist() == [1.0, 0.0]
    torch.testing.assert_close(relevance_mass(attr, masks), torch.tensor([5 / 6, 1 / 3]))
    torch.testing.assert_close(relevance_mass(attr, masks, absolute=True), torch.tensor([8 / 9, 1 / 3]))
    torch.testing.assert_close(relevance_rank(attr, masks), torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(relevance_rank(attr, masks, absolute=True), torch.tensor([1.0, 0.0]))
    assert pointing_game(attr, masks, tolerance=1).tolist() == [1.0, 0.0]  # the max (2, 2) is 2 away from (0, 1)
    grown = masks.clone()
    grown[1, 0, 1, 1] = True
    assert pointing_game(attr, grown, tolerance=1).tolist() == [1.0, 1.0]


def test_localization_sums_channels_and_handles_constant_maps():
    attr = torch.zeros(1, 3, 2, 2)
    attr[0, :, 1, 0] = torch.tensor([1.0, 1.0, 1.0])
    attr[0, 0, 0, 0] = 2.0
    mask = torch.tensor([[[False, False], [True, False]]])  # (N, H, W)
    assert pointing_game(attr, mask).item() == 1.0  # 3 summed beats 2
    assert pointing_game(torch.ones(1, 1, 2, 2), mask.unsqueeze(1)).item() == 0.0


# ---------------------------------------------------------------- randomization


def test_spearman_and_ssim_basics():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 2.0, 2.0]])
    torch.testing.assert_close(spearman(a, a), torch.ones(2))
    torch.testing.assert_close(spearman(a, -a), -torch.ones(2))
    assert spearman(a, torch.ones_like(a)).tolist() == [0.0, 0.0]
    maps = torch.rand(2, 12, 12, generator=_gen())
    torch.testing.assert_close(ssim(maps, maps * 3 + 1), torch.ones(2), rtol=0, atol=1e-9)
    assert bool((ssim(maps, torch.rand(2, 12, 12, generator=_gen(1))) < 0.5).all())


@functools.lru_cache(maxsize=1)
def _trained_mlp() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    y = (x[:, :3].sum(1) > 0).long()
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(80):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model.eval(), x[:16], y[:16]


def test_randomization_flags_model_blind_method_and_passes_gradients():
    model, x, y = _trained_mlp()
    before = snapshot(model, (x,))
    grads = randomization_check(model, Saliency(model), x, y, generator=_gen())
    assert grads.layers == ["4", "2", "0"]
    assert grads.score.mean() < 0.3 and grads.flagged().float().mean() <= 0.1, grads.score
    blind = randomization_check(model, lambda m, inputs, t: inputs * 2, x, y, generator=_gen())
    assert bool(blind.flagged().all())
    torch.testing.assert_close(blind.similarity, torch.ones_like(blind.similarity))
    independent = randomization_check(model, (IntegratedGradients(model), {"n_steps": 8}), x, y,
                                      mode="independent", generator=_gen())
    assert independent.layers == ["0", "2", "4"] and independent.similarity.shape == (3, 16)
    assert_same(before, snapshot(model, (x,)))


def test_randomization_demo_cnn_edge_detector_vs_saliency():
    from intellego.data import make_shapes
    from intellego.models import load_shapes_cnn

    model = load_shapes_cnn()
    data = make_shapes(8, seed=3)
    before = snapshot(model, (data.images,))
    sal = randomization_check(model, Saliency(model), data.images, data.labels, generator=_gen())
    edge = randomization_check(model, _edge_detector, data.images, data.labels, similarity="ssim")
    assert not bool(sal.flagged().any()) and bool(edge.flagged().all())
    nt = randomization_check(model, (NoiseTunnel(Saliency(model)), {"nt_samples": 2, "stdevs": 0.05}),
                             data.images, data.labels, layers=[model.fc, "conv3"], generator=_gen())
    assert nt.layers == ["conv3", "fc"]
    assert_same(before, snapshot(model, (data.images,)))


def test_randomization_is_reproducible_with_generator():
    model, x, y = _trained_mlp()
    a = randomization_check(model, Saliency(model), x, y, generator=_gen(5))
    b = randomization_check(model, Saliency(model), x, y, generator=_gen(5))
    torch.testing.assert_close(a.similarity, b.similarity, rtol=0, atol=0)


# ---------------------------------------------------------------- evaluate


def test_evaluate_table_on_shapes():
    from intellego.data import make_shapes
    from intellego.models import load_shapes_cnn

    model = load_shapes_cnn()
    data = make_shapes(8, seed=5)
    before = snapshot(model, (data.images,))
    table = evaluate(model, data, {"saliency": Saliency(model), "edges": _edge_detector},
                     metrics=["deletion", "relevance_mass", "randomization"], batch_size=4, n_steps=4,
                     progress=False, generator=_gen())
    assert [r["n"] for r in table.rows] == [8] * 6
    assert table.get("edges", "randomization") == pytest.approx(1.0)
    assert table.get("saliency", "randomization") < 0.5
    md = table.to_markdown()
    assert md.splitlines()[0].startswith("| method | deletion ↓ | relevance_mass ↑ | randomization ↓")
    assert str(table) == md and len(md.splitlines()) == 4
    assert_same(before, snapshot(model, (data.images,)))


def test_evaluate_plot_writes_figure(tmp_path):
    pytest.importorskip("matplotlib")
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 0, 1])
    table = evaluate(model, (x, y), {"sal": Saliency(model)}, metrics=["infidelity", "insertion"], progress=False)
    fig = table.plot(tmp_path / "metrics.png")
    assert (tmp_path / "metrics.png").stat().st_size > 0 and sum(ax.get_visible() for ax in fig.axes) == 2


# ---------------------------------------------------------------- bad input


def test_perturbation_functions_returning_wrong_shapes():
    model = _linear(4)
    x = torch.randn(3, 4, dtype=torch.float64)
    attr = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(IntellegoError, match=r"perturbations\[0\] of shape \(3, 4\); expected \(30, 4\)"):
        infidelity(model, lambda inp: (torch.zeros(3, 4), inp), x, attr)
    with pytest.raises(IntellegoError, match="must return a pair"):
        infidelity(model, lambda inp: inp, x, attr)
    with pytest.raises(IntellegoError, match=r"perturbed inputs\[0\] of shape \(30, 5\)"):
        sensitivity_max(lambda inp: inp, x, lambda inp: torch.zeros(30, 5))
    with pytest.raises(IntellegoError, match=r"explanations\[0\] of shape \(3, 1\)"):
        sensitivity_max(lambda inp: inp[:, :1], x)
    with pytest.raises(IntellegoError, match="attributions\\[0\\] of shape"):
        infidelity(model, noise_perturbation(), x, attr[:, :2])
    with pytest.raises(IntellegoError, match="n_perturb_samples"):
        infidelity(model, noise_perturbation(), x, attr, n_perturb_samples=0)
    with pytest.raises(IntellegoError, match="norm_ord"):
        sensitivity_max(lambda inp: inp, x, norm_ord="nuc")
    with pytest.raises(IntellegoError, match="perturb_func must be callable, got int 3"):
        infidelity(model, 3, x, attr)
    for radius in (-0.1, "0.1"):  # a negative radius drew noise from an inverted box without a word
        with pytest.raises(IntellegoError, match="perturb_radius must be a non-negative number"):
            sensitivity_max(lambda inp: inp, x, perturb_radius=radius)


def test_empty_and_malformed_masks():
    attr = torch.rand(3, 1, 4, 4)
    masks = torch.ones(3, 1, 4, 4, dtype=torch.bool)
    masks[1] = False
    for fn in (pointing_game, relevance_mass, relevance_rank):
        with pytest.raises(IntellegoError, match=r"masks of examples \[1\] are empty"):
            fn(attr, masks)
    with pytest.raises(IntellegoError, match="do not fit"):
        relevance_mass(attr, torch.ones(3, 1, 5, 5, dtype=torch.bool))
    with pytest.raises(IntellegoError, match="only 0 and 1"):
        relevance_mass(attr, torch.full((3, 1, 4, 4), 0.5))
    with pytest.raises(IntellegoError, match="localization metrics need|needs ground-truth masks"):
        evaluate(nn.Linear(4, 2), (torch.randn(2, 4), torch.tensor([0, 1])), {"s": Saliency(nn.Linear(4, 2))},
                 metrics=["pointing_game"], progress=False)


def test_methods_that_cannot_take_the_required_arguments():
    from intellego.attr import GradientShap

    model = nn.Linear(4, 2)
    x, y = torch.randn(2, 4), torch.tensor([0, 1])
    with pytest.raises(IntellegoError, match="GradientShap.*baselines"):
        evaluate(model, (x, y), {"gs": GradientShap(model)}, metrics=["infidelity"], progress=False)
    with pytest.raises(IntellegoError, match=r"take \(model, inputs, target\)"):
        randomization_check(model, lambda inputs: inputs, x, y)
    other = nn.Linear(4, 2)
    with pytest.raises(IntellegoError, match="does not use the model"):
        randomization_check(model, Saliency(other), x, y)
    with pytest.raises(IntellegoError, match="closure"):
        randomization_check(model, Saliency(lambda inp: model(inp)), x, y)
    with pytest.raises(IntellegoError, match="unknown metric"):
        evaluate(model, (x, y), {"s": Saliency(model)}, metrics=["accuracy"], progress=False)
    with pytest.raises(IntellegoError, match=r"method 's'.*shape \(2, 3\)"):
        evaluate(model, (x, y), {"s": lambda m, inputs, t: inputs[:, :3]}, metrics=["infidelity"], progress=False)
    with pytest.raises(IntellegoError, match="mode"):
        faithfulness_curve(model, x, x, target=y, mode="flip")
