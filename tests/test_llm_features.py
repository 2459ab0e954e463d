"""LLM attribution beyond Captum: contrastive targets, step-score targets (probability, log-prob, entropy, KL),
sub-word-to-word aggregation, encoder-decoder models (test_llm_hf.py) and PartitionShapley (Owen values)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import intellego.attr as ia
from _llm_models import AdditiveLM, random_lm, tokenizer
from intellego.attr.partition_shapley import balanced_hierarchy, owen_plan
from intellego.errors import IntellegoError

TEMPLATE = ("{} {} {} sat on {}", ["the", "big", "cat", "a mat"], ["a", "small", "dog", "the mat"])


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _inp():
    return ia.TextTemplateInput(TEMPLATE[0], values=TEMPLATE[1], baselines=TEMPLATE[2])


def _kw(method):
    if method == "Lime":
        return {"generator": torch.Generator().manual_seed(3), "n_samples": 12}
    return {"generator": torch.Generator().manual_seed(3), "n_samples": 4} if method == "ShapleyValueSampling" else {}


@pytest.mark.parametrize("method", ["FeatureAblation", "ShapleyValues", "ShapleyValueSampling", "Lime",
                                    "PartitionShapley"])
@pytest.mark.parametrize("contrast", ["dog ran", "dog"])
def test_contrastive_is_the_difference_of_the_two_attributions(method, contrast):
    """Every method linear in the scores gives the difference exactly (Lime with a least-squares surrogate:
    its default Lasso is not linear in the scores)."""
    tok, model = tokenizer(), random_lm(4)
    kw = {"interpretable_model": ia.LinearRegression()} if method == "Lime" else {}
    llm = ia.LLMAttribution(getattr(ia, method)(model, **kw), tok)
    both = llm.attribute(_inp(), target="cat sat", contrast_target=contrast, **_kw(method))
    a = llm.attribute(_inp(), target="cat sat", **_kw(method))
    b = llm.attribute(_inp(), target=contrast, **_kw(method))
    torch.testing.assert_close(both.seq_attr, a.seq_attr - b.seq_attr, rtol=1e-9, atol=1e-9)
    if a.token_attr is not None and len(contrast.split()) == 2:
        torch.testing.assert_close(both.token_attr, a.token_attr - b.token_attr, rtol=1e-9, atol=1e-9)
    else:
        assert both.token_attr is None


@pytest.mark.parametrize("bad", [5, "", "  ", ["dog"]])
def test_bad_contrast_target_is_named_before_any_model_call(bad):
    tok, model = tokenizer(), random_lm(4)
    calls = []
    llm = ia.LLMAttribution(ia.FeatureAblation(model), tok)
    with pytest.raises(IntellegoError, match="contrast_target must be a non-empty string or a tensor of token ids"):
        llm.attribute(_inp(), target="cat sat", contrast_target=bad, _inspect_forward=lambda *a: calls.append(a))
    assert calls == []


def _next_dists(model, tok, prompt, target_ids):
    """Next-token log-distributions at each target step, one prompt, no batching (the oracle)."""
    ids = tok.encode(prompt, return_tensors="pt")
    full = torch.cat([ids, target_ids[None]], 1)
    return model(full).logits[0, ids.shape[1] - 1: -1].log_softmax(-1)


@pytest.mark.parametrize("score", ["log_prob", "prob", "entropy", "kl"])
def test_step_scores_match_a_one_prompt_oracle(score):
    tok, model = tokenizer(), random_lm(2)
    inp = _inp()
    target = torch.tensor(tok.encode("dog ran far", add_special_tokens=False))
    res = ia.LLMAttribution(ia.FeatureAblation(model), tok, attr_target=score).attribute(inp, target=target)
    with torch.no_grad():
        ref = _next_dists(model, tok, inp.to_model_input(), target)

        def steps(lp):
            if score in ("log_prob", "prob"):
                return lp[torch.arange(3), target]
            if score == "entropy":
                return -(lp.exp() * lp).sum(-1)
            return (ref.exp() * (ref - lp)).sum(-1)

        def total(s):
            return s.exp().prod() if score == "prob" else s.sum()

        def per(s):
            return s.exp() if score == "prob" else s

        full = steps(ref)
        for j in range(4):
            lp = _next_dists(model, tok, inp.to_model_input(1 - torch.eye(4, dtype=torch.float64)[j:j + 1]), target)
            torch.testing.assert_close(res.seq_attr[j], total(full) - total(steps(lp)), rtol=1e-9, atol=1e-12)
            torch.testing.assert_close(res.token_attr[:, j], per(full) - per(steps(lp)), rtol=1e-9, atol=1e-12)


def test_step_score_errors():
    tok, model = tokenizer(), random_lm()
    with pytest.raises(IntellegoError, match="attr_target"):
        ia.LLMAttribution(ia.FeatureAblation(model), tok, attr_target="logit")
    with pytest.raises(IntellegoError, match="attr_target"):
        ia.RemoteLLMAttribution(ia.FeatureAblation(ia.RemoteLLMAttribution.placeholder_model), tok,
                                provider=object(), attr_target="entropy")


def test_word_aggregation_preserves_sums_on_sub_word_tokens():
    pytest.importorskip("transformers")
    import matplotlib

    from _hf_models import gpt2
    from _hf_models import tokenizer as bpe

    matplotlib.use("Agg")
    tok, model = bpe(), gpt2().double()
    inp = ia.TextTokenInput("the unexplainable cat sat", tok, skip_tokens=["<s>"])
    res = ia.LLMAttribution(ia.FeatureAblation(model), tok).attribute(inp, target=" on the kitchenette")
    assert len(res.input_tokens) > 4 and res.input_words is not None  # 'unexplainable' is several pieces
    words = res.aggregate_words()
    assert words.input_tokens == ["the", "unexplainable", "cat", "sat"]
    assert words.output_tokens[-1] == "kitchenette" and len(words.output_tokens) == 3
    torch.testing.assert_close(words.seq_attr.sum(), res.seq_attr.sum())
    torch.testing.assert_close(words.token_attr.sum(0), words.seq_attr)
    torch.testing.assert_close(words.token_attr.sum(), res.token_attr.sum())
    groups = torch.tensor(res.input_words)
    for w in range(4):
        torch.testing.assert_close(words.seq_attr[w], res.seq_attr[groups == w].sum())
    fig, ax = res.plot_token_attr(by_words=True)
    assert len(ax.texts) == 3 * 4
    fig, ax = res.plot_seq_attr(by_words=True)
    assert len(ax.patches) == 2 * 4
    lig = ia.LLMGradientAttribution(ia.LayerGradientXActivation(model, model.get_input_embeddings()), tok)
    g = lig.attribute(inp, target=" on").aggregate_words()
    assert g.input_tokens == words.input_tokens


def test_aggregation_validation_and_explicit_groups():
    r = ia.LLMAttributionResult(input_tokens=["a", "b", "c"], output_tokens=["x", "y"], seq_attr=[1.0, 2.0, 3.0],
                                token_attr=[[1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])
    w = r.aggregate_words(input_words=[0, 0, 1], output_words=[0, 0])
    assert w.input_tokens == ["ab", "c"] and w.output_tokens == ["xy"]
    assert w.token_attr.tolist() == [[3.0, 3.0]] and w.seq_attr.tolist() == [3.0, 3.0]
    with pytest.raises(IntellegoError, match="input_words"):
        ia.LLMAttributionResult(input_tokens=["a"], output_tokens=[], seq_attr=[1.0], input_words=[0, 1])


def test_partition_shapley_exact_on_additive_lm_and_efficient_on_random_lm():
    tok = tokenizer()
    model = AdditiveLM(len(tok), tok.convert_tokens_to_ids("yes"))
    inp = ia.TextTokenInput("the cat sat on a mat", tok, baselines=2, skip_tokens=["<s>"])
    ids = inp.inp_tensor[0]
    expected = (model.contribution(torch.full_like(ids, 2)) - model.contribution(ids))[1:]
    for estimate in ("owen", "shapley"):
        res = ia.LLMAttribution(ia.PartitionShapley(model), tok).attribute(inp, target="yes yes", estimate=estimate)
        torch.testing.assert_close(res.token_attr, expected.expand(2, -1), rtol=1e-9, atol=1e-9)
    lm = random_lm(5)
    part = ia.LLMAttribution(ia.PartitionShapley(lm), tok).attribute(_inp(), target="on a")
    exact = ia.LLMAttribution(ia.ShapleyValues(lm), tok).attribute(_inp(), target="on a")
    torch.testing.assert_close(part.token_attr.sum(1), exact.token_attr.sum(1), rtol=1e-9, atol=1e-9)
    flat = ia.LLMAttribution(ia.PartitionShapley(lm), tok).attribute(_inp(), target="on a", hierarchy=[0, 1, 2, 3])
    torch.testing.assert_close(flat.token_attr, exact.token_attr, rtol=1e-9, atol=1e-12)  # one level: Shapley


def test_owen_values_of_known_games():
    x = torch.ones(1, 4, dtype=torch.float64)
    inside = lambda z: z[:, 0] + z[:, 2] * z[:, 3]  # noqa: E731  (interaction within group [2, 3])
    across = lambda z: z[:, 1] * z[:, 2]  # noqa: E731  (interaction across groups [0, 1] | [2, 3])
    assert ia.PartitionShapley(inside).attribute(x).tolist() == [[1.0, 0.0, 0.5, 0.5]]
    assert ia.PartitionShapley(across).attribute(x).tolist() == [[0.0, 0.5, 0.5, 0.0]]
    three = lambda z: z[:, 0] * z[:, 1] * z[:, 2]  # noqa: E731
    owen = ia.PartitionShapley(three).attribute(torch.ones(1, 3), hierarchy=[[0, 1], 2])
    torch.testing.assert_close(owen, torch.tensor([[0.25, 0.25, 0.5]]))  # groups first: {0,1} and {2} halve


def test_owen_plan_size_and_errors():
    for n in (4, 8, 16):
        coalitions, coeff = owen_plan(balanced_hierarchy(n), n)
        assert coalitions.shape[0] <= 2 * n * n < 2**n or n == 4
        assert coeff.shape == (coalitions.shape[0], n)
    assert balanced_hierarchy(5) == [[[0, 1], 2], [3, 4]]
    f = lambda z: z.sum(1)  # noqa: E731
    x = torch.ones(1, 3)
    for bad, msg in (([0, 1], "exactly once"), ([0, 1, 1, 2], "exactly once"), ([[0, 5], 1, 2], "feature 5"),
                     ("abc", "feature index or a list")):
        with pytest.raises(IntellegoError, match=msg):
            ia.PartitionShapley(f).attribute(x, hierarchy=bad)
    assert math.isclose(float(ia.PartitionShapley(f).attribute(x).sum()), 3.0)
