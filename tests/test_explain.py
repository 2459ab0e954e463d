"""intellego.explain: the one-call entry point is a thin layer over the classes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

import intellego  # noqa: E402
from intellego.attr import IntegratedGradients, Occlusion  # noqa: E402


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)).double()


def test_explain_equals_the_class_it_names():
    model, x = _model(), torch.randn(3, 4, dtype=torch.float64)
    result = intellego.explain(model, x, target=2)
    attr, delta = IntegratedGradients(model).attribute(x, target=2, return_convergence_delta=True)
    torch.testing.assert_close(result.attributions, attr)
    torch.testing.assert_close(result.delta, delta)
    assert result.method == "integrated_gradients" and result.target == 2
    occ = intellego.explain(model, x, "occlusion", target=1, sliding_window_shapes=(2,))
    torch.testing.assert_close(occ.attributions, Occlusion(model).attribute(x, (2,), target=1))
    assert occ.delta is None


@pytest.mark.parametrize("name", sorted(intellego.METHODS))
def test_every_short_name_runs(name):
    model, x = _model(), torch.randn(2, 4, dtype=torch.float64)
    kwargs = {"baselines": torch.randn(3, 4, dtype=torch.float64)} if name in {
        "gradient_shap", "deep_lift_shap"} else {}
    if name == "occlusion":
        kwargs["sliding_window_shapes"] = (1,)
    out = intellego.explain(model, x, name, target=0, **kwargs)
    assert out.attributions.shape == x.shape


def test_explanation_plots_itself():
    model, x = _model().float(), torch.randn(2, 4)
    fig, _ax = intellego.explain(model, x, "saliency", target=0).plot(index=1)
    assert fig is not None


def test_unknown_method_is_named():
    with pytest.raises(intellego.IntellegoError, match="method must be one of"):
        intellego.explain(_model(), torch.randn(1, 4, dtype=torch.float64), "grad-cam-ish")
