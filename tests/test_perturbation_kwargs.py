"""``**kwargs`` on the perturbation ``attribute`` methods, with Captum's semantics.

Captum's FeatureAblation and FeaturePermutation take ``**kwargs`` (kept for its subclasses' internals) and ignore
what nothing uses, FeaturePermutation a ``baselines=`` included; LimeBase passes them on to its perturbation and
transform functions; LLMAttribution passes its own on to the wrapped method. Ours does the same and names, in a
warning, every keyword that nothing used (a misspelt option or Captum 0.7's ``skip_tokens`` would otherwise pass
in silence).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

import intellego.attr as ia
from _llm_models import WORDS, random_lm, tokenizer

ca = pytest.importorskip("captum.attr")

X = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


def test_feature_ablation_accepts_and_names_unused_kwargs() -> None:
    model = _model()
    with pytest.warns(UserWarning, match=r"FeatureAblation.attribute does not use the keyword argument\(s\) "
                                         r"skip_tokens, window \(Captum accepts and ignores them too\)") as rec:
        ours = ia.FeatureAblation(model).attribute(X, target=1, window=3, skip_tokens=[0])
    assert rec[0].filename == __file__  # the warning points at the caller's line
    theirs = ca.FeatureAblation(model).attribute(X, target=1, window=3, skip_tokens=[0])
    torch.testing.assert_close(ours, theirs)


def test_feature_permutation_ignores_baselines_as_captum() -> None:
    model = _model()
    perm = torch.tensor([1, 0, 3, 2])

    def swap(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.where(mask.bool(), x[perm], x)

    with pytest.warns(UserWarning, match=r"FeaturePermutation.attribute does not use the keyword argument\(s\) "
                                         r"baselines"):
        ours = ia.FeaturePermutation(model, perm_func=swap).attribute(X, target=0, baselines=torch.zeros(1, 3))
    theirs = ca.FeaturePermutation(model, perm_func=swap).attribute(X, target=0, baselines=torch.zeros(1, 3))
    torch.testing.assert_close(ours, theirs)


def test_no_warning_without_extra_kwargs() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ia.FeatureAblation(_model()).attribute(X, target=0)
        ia.FeaturePermutation(_model()).attribute(X, target=0)


def test_kwargs_go_through_attribute_future() -> None:
    model = _model()

    def remote(x: torch.Tensor) -> torch.futures.Future[torch.Tensor]:
        fut: torch.futures.Future[torch.Tensor] = torch.futures.Future()
        fut.set_result(model(x))
        return fut

    with pytest.warns(UserWarning, match="does not use the keyword argument\\(s\\) extra"):
        out = ia.FeatureAblation(remote).attribute_future(X, target=0, extra=1).wait()
    torch.testing.assert_close(out, ca.FeatureAblation(remote).attribute_future(X, target=0, extra=1).wait())


def test_llm_attribution_passes_its_kwargs_to_the_method() -> None:
    """Captum 0.9 passes LLMAttribution.attribute's **kwargs to the wrapped method's attribute: show_progress and
    perturbations_per_eval are used; skip_tokens (an LLMAttribution argument before Captum 0.8) is not."""
    tok, model = tokenizer(), random_lm()
    inp = ia.TextTokenInput("the cat sat", tok)
    llm = ia.LLMAttribution(ia.FeatureAblation(model), tok)
    plain = llm.attribute(inp, target="on")
    with pytest.warns(UserWarning, match=r"FeatureAblation.attribute does not use the keyword argument\(s\) "
                                         r"skip_tokens .*pass them where they belong \(e.g. skip_tokens to "
                                         r"TextTokenInput\)"):
        skipped = llm.attribute(inp, target="on", skip_tokens=[WORDS.index("the")])
    torch.testing.assert_close(skipped.seq_attr, plain.seq_attr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        used = llm.attribute(inp, target="on", perturbations_per_eval=2)
    torch.testing.assert_close(used.seq_attr, plain.seq_attr)


def test_lime_base_passes_kwargs_to_its_functions() -> None:
    """Captum's LimeBase hands **kwargs to perturb_func and the transforms; a function that takes them sees them."""
    seen: dict[str, Any] = {}

    def perturb(x: torch.Tensor, **kw: Any) -> torch.Tensor:
        seen.update(kw)
        return torch.randint(0, 2, (1, x.shape[1]), dtype=x.dtype)

    lime = ia.LimeBase(_model(), ia.SkLearnLinearRegression(), similarity_func=lambda a, b, c, **kw: 1.0,
                       perturb_func=perturb, perturb_interpretable_space=True,
                       from_interp_rep_transform=lambda z, x, **kw: z * x, to_interp_rep_transform=None)
    lime.attribute(X[:1], target=0, n_samples=5, marker="m")
    assert seen.get("marker") == "m"
