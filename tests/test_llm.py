"""LLM attribution: parity with Captum 0.9 on a tiny float64 LM, closed forms on an additive LM, targets,
templates, errors. Captum returns float32 (it accumulates into a float32 tensor); we keep float64."""

from __future__ import annotations

import warnings

import captum.attr as ca
import pytest
import torch

import intellego.attr as ia
from _llm_models import WORDS, AdditiveLM, CachedLM, random_lm, tokenizer
from intellego.errors import IntellegoError
from intellego.models.tiny_lm import CausalLMOutput

TEMPLATE = ("{} cat {} on {}", ["the", "sat", "a mat"], ["a", "ran", "dog"])


def _both(mod, name, *args, **kwargs):
    return getattr(mod, name)(*args, **kwargs)


def _close(ours, theirs):
    """Ours (float64) equals Captum's float32 result up to its rounding."""
    assert ours.dtype == torch.float64 and theirs.dtype == torch.float32
    torch.testing.assert_close(ours.float(), theirs, rtol=2e-6, atol=2e-6)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize("method", ["FeatureAblation", "ShapleyValues"])
@pytest.mark.parametrize("in_tokens", [True, False])
def test_template_parity(method, in_tokens):
    tok, model = tokenizer(), random_lm()
    res = []
    for mod in (ia, ca):
        llm = mod.LLMAttribution(_both(mod, method, model), tok)
        inp = mod.TextTemplateInput(TEMPLATE[0], values=TEMPLATE[1], baselines=TEMPLATE[2])
        res.append(llm.attribute(inp, target="and dog ran", use_cached_outputs=False, forward_in_tokens=in_tokens))
    _close(res[0].seq_attr, res[1].seq_attr)
    _close(res[0].token_attr, res[1].token_attr)
    assert res[0].output_tokens == res[1].output_tokens == ["and", "dog", "ran"]
    assert res[0].input_tokens == res[1].input_tokens


@pytest.mark.parametrize("attr_target", ["log_prob", "prob"])
def test_token_input_generated_target_parity(attr_target):
    tok, model = tokenizer(), random_lm(1)
    res = []
    for mod in (ia, ca):
        llm = mod.LLMAttribution(mod.FeatureAblation(model), tok, attr_target=attr_target)
        inp = mod.TextTokenInput("the cat sat on a mat", tok, baselines="<unk>", skip_tokens=["<s>"])
        res.append(llm.attribute(inp, gen_args={"max_new_tokens": 3}, use_cached_outputs=False))
    _close(res[0].token_attr, res[1].token_attr)
    assert res[0].input_tokens == ["the", "cat", "sat", "on", "a", "mat"] == res[1].input_tokens
    assert res[0].output_tokens == res[1].output_tokens and len(res[0].output_tokens) == 3


def test_masked_dict_template_parity_and_format():
    tok, model = tokenizer(), random_lm(2)
    vals, base = {"a": "the", "b": "big", "c": "cat"}, {"a": "a", "b": "small", "c": "dog"}
    mask = {"a": 4, "b": 1, "c": 4}
    res = []
    for mod in (ia, ca):
        inp = mod.TextTemplateInput("{a} {b} {c} sat", values=vals, baselines=base, mask=mask)
        res.append(mod.LLMAttribution(mod.ShapleyValues(model), tok).attribute(inp, target="on a mat",
                                                                                 use_cached_outputs=False))
    _close(res[0].token_attr, res[1].token_attr)
    assert res[0].seq_attr.shape == (3,) and res[0].seq_attr[0] == res[0].seq_attr[2]


def test_cache_protocol_parity():
    """Captum scores token by token through Hugging Face's prepare/update helpers (use_cached_outputs=True); we
    score teacher-forced in one call (no helpers needed) and get the same numbers."""
    tok = tokenizer()
    model = CachedLM(len(tok), seed=4).double()
    res = []
    for mod in (ia, ca):
        CachedLM.helper_calls = 0
        inp = mod.TextTokenInput("the cat sat", tok)
        res.append(mod.LLMAttribution(mod.FeatureAblation(model), tok).attribute(inp, target="on a mat"))
        assert (CachedLM.helper_calls > 0) == (mod is ca)
    _close(res[0].token_attr, res[1].token_attr)


def test_plain_model_falls_back_without_cache_helpers():
    """Captum fails with use_cached_outputs=True (its default) on a model without HF's helpers; we score
    token by token with plain forwards and match Captum's use_cached_outputs=False."""
    tok, model = tokenizer(), random_lm()
    with pytest.raises(AttributeError):
        ca.LLMAttribution(ca.FeatureAblation(model), tok).attribute(ca.TextTokenInput("the cat", tok), target="sat")
    ours = ia.LLMAttribution(ia.FeatureAblation(model), tok).attribute(ia.TextTokenInput("the cat", tok), target="sat")
    theirs = ca.LLMAttribution(ca.FeatureAblation(model), tok).attribute(
        ca.TextTokenInput("the cat", tok), target="sat", use_cached_outputs=False)
    _close(ours.seq_attr, theirs.seq_attr)


@pytest.mark.parametrize("method", ["LayerIntegratedGradients", "LayerGradientXActivation"])
def test_gradient_parity(method):
    tok, model = tokenizer(), random_lm(3)
    res = []
    for mod in (ia, ca):
        llm = mod.LLMGradientAttribution(_both(mod, method, model, model.embed_tokens), tok)
        inp = mod.TextTokenInput("the cat sat on a mat", tok, skip_tokens=[1])
        kw = {"n_steps": 16} if method == "LayerIntegratedGradients" else {}
        res.append(llm.attribute(inp, target=torch.tensor([7, 8]), **kw))
    torch.testing.assert_close(res[0].token_attr, res[1].token_attr, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(res[0].seq_attr, res[0].token_attr.sum(0))
    assert res[0].output_tokens == res[1].output_tokens == ["a", "mat"]


def test_gradient_shap_runs_and_completeness_of_lig():
    tok, model = tokenizer(), random_lm(3)
    inp = ia.TextTokenInput("the cat sat", tok, skip_tokens=["<s>"])
    g = torch.Generator().manual_seed(0)
    res = ia.LLMGradientAttribution(ia.LayerGradientShap(model, model.embed_tokens), tok).attribute(
        inp, target="on a", baselines=torch.zeros(1, 3, dtype=torch.long), n_samples=4, generator=g)
    assert res.token_attr.shape == (2, 3) and res.token_attr.dtype == torch.float64
    lig = ia.LLMGradientAttribution(ia.LayerIntegratedGradients(model, model.embed_tokens), tok)
    one = lig.attribute(inp, target="on", n_steps=64)
    fa = ia.LLMAttribution(ia.FeatureAblation(model), tok).attribute(inp, target="on")
    # IG completeness: the sum over all prompt tokens equals f(x) - f(all tokens at the baseline id 0)
    sv = ia.LLMAttribution(ia.ShapleyValues(model), tok).attribute(inp, target="on")
    torch.testing.assert_close(one.seq_attr.sum(), sv.seq_attr.sum(), rtol=1e-6, atol=1e-8)
    assert fa.seq_attr.shape == one.seq_attr.shape


def _additive():
    tok = tokenizer()
    return tok, AdditiveLM(len(tok), tok.convert_tokens_to_ids("yes"))


@pytest.mark.parametrize("method", ["FeatureAblation", "ShapleyValues", "ShapleyValueSampling", "KernelShap"])
def test_additive_closed_form(method):
    tok, model = _additive()
    inp = ia.TextTokenInput("the cat sat on", tok, baselines=2, skip_tokens=["<s>"])
    ids = inp.inp_tensor[0]
    gain = model.contribution(torch.full_like(ids, 2)) - model.contribution(ids)  # removing token j adds w[j,x]
    expected = gain[1:]
    kw = {"generator": torch.Generator().manual_seed(0)} if method in ("ShapleyValueSampling", "KernelShap") else {}
    res = ia.LLMAttribution(getattr(ia, method)(model), tok).attribute(inp, target="yes yes", **kw)
    torch.testing.assert_close(res.seq_attr, 2 * expected, rtol=1e-9, atol=1e-9)
    if method == "KernelShap":
        assert res.token_attr is None
    else:
        torch.testing.assert_close(res.token_attr, expected.expand(2, -1), rtol=1e-9, atol=1e-9)


def test_additive_template_segments_and_product_baselines():
    tok = tokenizer()
    model = AdditiveLM(len(tok), tok.convert_tokens_to_ids("yes"), positional=False)
    c = model.w.detach()[0]
    wid = tok.convert_tokens_to_ids
    inp = ia.TextTemplateInput("{} {} sat", values=["the big", "cat"], baselines=["a", "dog"])
    res = ia.LLMAttribution(ia.FeatureAblation(model), tok).attribute(inp, target="yes")
    expected = torch.stack([c[wid("a")] - c[wid("the")] - c[wid("big")], c[wid("dog")] - c[wid("cat")]])
    torch.testing.assert_close(res.seq_attr, expected)
    pb = ia.ProductBaselines({"x": ["dog"], ("y", "z"): [("red", "mat")]}, generator=torch.Generator().manual_seed(0))
    inp = ia.TextTemplateInput("{x} {y} {z}", values={"x": "cat", "y": "big", "z": "on"}, baselines=pb)
    res = ia.LLMAttribution(ia.FeatureAblation(model), tok).attribute(inp, target="yes")
    expected = torch.stack([c[wid(b)] - c[wid(v)] for v, b in [("cat", "dog"), ("big", "red"), ("on", "mat")]])
    torch.testing.assert_close(res.seq_attr, expected)


def test_product_baselines_draws_from_choices():
    pb = ia.ProductBaselines([["a", "b"], ["c"]], generator=torch.Generator().manual_seed(1))
    draws = {tuple(pb()) for _ in range(40)}
    assert draws == {("a", "c"), ("b", "c")}


def test_lime_num_trials_and_inspect():
    tok, model = _additive()
    inp = ia.TextTokenInput("the cat", tok, skip_tokens=["<s>"])
    seen = []
    llm = ia.LLMAttribution(ia.Lime(model), tok)
    res = llm.attribute(inp, target="yes", num_trials=2, n_samples=30, generator=torch.Generator().manual_seed(0),
                        _inspect_forward=lambda p, r, probs: seen.append((p, r, probs)))
    assert res.token_attr is None and res.seq_attr.shape == (2,)
    assert seen and seen[0][1] == "yes" and len(seen[0][2]) == 1


def test_batched_prompts_equal_one_by_one():
    tok, model = tokenizer(), random_lm(5)
    inp = ia.TextTemplateInput("{} {} {} sat", values=["the", "big", "cat"], baselines=["", "small", "a dog"])
    a = ia.LLMAttribution(ia.ShapleyValues(model), tok).attribute(inp, target="on", perturbations_per_eval=1)
    b = ia.LLMAttribution(ia.ShapleyValues(model), tok).attribute(inp, target="on")
    torch.testing.assert_close(a.token_attr, b.token_attr, rtol=1e-12, atol=1e-12)


def test_image_mask_input_parity():
    Image = pytest.importorskip("PIL.Image")
    tok, model = tokenizer(), random_lm(6)
    arr = (torch.arange(48).reshape(4, 4, 3) * 5).to(torch.uint8).numpy()
    mask = torch.tensor([[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2)

    def proc(img):
        a = torch.as_tensor(__import__("numpy").array(img)).double().mean(-1)
        blocks = a.reshape(2, 2, 2, 2).mean((1, 3)).reshape(-1)
        return {"input_ids": torch.cat([torch.tensor([1]), 3 + (blocks > 60).long() * 4 + torch.arange(4)])[None]}

    res = []
    for mod in (ia, ca):
        inp = mod.ImageMaskInput(Image.fromarray(arr), mask=mask, processor_fn=proc)
        res.append(mod.LLMAttribution(mod.FeatureAblation(model), tok).attribute(inp, target="sat on",
                                                                                  use_cached_outputs=False))
    _close(res[0].token_attr, res[1].token_attr)
    ours = ia.ImageMaskInput(arr, mask=mask, processor_fn=proc)
    assert torch.equal(ours.to_model_input(torch.tensor([[1, 0, 1, 0]]))["input_ids"],
                       res[0].inp.to_model_input(torch.tensor([[1, 0, 1, 0]]))["input_ids"])
    pix = ours.format_pixel_attr(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    assert pix.shape == (1, 4, 4) and pix[0, 3, 3] == 4.0
    import matplotlib

    matplotlib.use("Agg")
    fig, ax = res[0].plot_image_heatmap(target_token_pos=(0, 2))
    assert len(ax.texts) == 4  # one id label per segment


def test_remote_attribution_with_local_provider():
    tok, model = tokenizer(), random_lm(7)

    class Local(ia.RemoteLLMProvider):
        def generate(self, prompt, **gen_args):
            ids = tok.encode(prompt, return_tensors="pt")
            return tok.decode(model.generate(ids, max_new_tokens=gen_args["max_new_tokens"])[0, ids.shape[1]:])

        def get_logprobs(self, input_prompt, target_str, tokenizer=None):
            ids = tok.encode(input_prompt, return_tensors="pt")
            tgt = torch.tensor(tok.encode(target_str, add_special_tokens=False))
            logits = model(torch.cat([ids, tgt[None]], 1)).logits[0, ids.shape[1] - 1: -1]
            return logits.log_softmax(-1).gather(1, tgt[:, None]).reshape(-1).tolist()

    inp = ia.TextTemplateInput("{} cat {}", values=["the", "sat"])
    remote = ia.RemoteLLMAttribution(ia.FeatureAblation(ia.RemoteLLMAttribution.placeholder_model), tok, Local())
    local = ia.LLMAttribution(ia.FeatureAblation(model), tok)
    a = remote.attribute(inp, target="on a mat")
    b = local.attribute(inp, target="on a mat", forward_in_tokens=False)
    torch.testing.assert_close(a.token_attr, b.token_attr, rtol=1e-10, atol=1e-10)
    g = remote.attribute(inp, gen_args={"max_new_tokens": 2})
    assert len(g.output_tokens) == 2


def test_remote_job_sends_one_request_per_prompt():
    """No measurement requests: a job of more than 32 prompts sends exactly one request per prompt."""
    tok = tokenizer()

    class Counting(ia.RemoteLLMProvider):
        prompts: list[str] = []

        def generate(self, prompt, **gen_args):
            raise AssertionError("not called with a given target")

        def get_logprobs(self, input_prompt, target_str, tokenizer=None):
            self.prompts.append(input_prompt)
            return [-0.1 * len(input_prompt)] * len(tok.encode(target_str, add_special_tokens=False))

    words = (WORDS * 6)[:40]
    inp = ia.TextTemplateInput(" ".join(["{}"] * len(words)), values=words)
    provider = Counting()
    remote = ia.RemoteLLMAttribution(ia.FeatureAblation(ia.RemoteLLMAttribution.placeholder_model), tok, provider)
    res = remote.attribute(inp, target=WORDS[0])
    assert len(provider.prompts) == len(words) + 1
    assert torch.isfinite(res.seq_attr).all()


def test_vllm_provider_names_missing_package():
    try:
        import openai  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="openai"):
            ia.VLLMProvider("http://localhost:8000/v1")
        with pytest.raises(IntellegoError, match="openai"):
            ia.VLLMProvider("http://localhost:8000/v1")
    with pytest.raises(TypeError):
        ia.RemoteLLMProvider()


def test_result_plots_and_validation():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    r = ia.LLMAttributionResult(input_tokens=["a", "b"], output_tokens=["c", "d"], seq_attr=[1.0, -2.0],
                                token_attr=[[0.5, -1.0], [0.5, -1.0]])
    fig, ax = r.plot_token_attr()
    assert len(ax.texts) == 4
    fig, ax = r.plot_seq_attr()
    assert len(ax.patches) == 4
    assert r.seq_attr_dict == {"a": 1.0, "b": -2.0}
    with pytest.raises(IntellegoError, match="token_attr must have shape"):
        r.token_attr = [[1.0, 2.0]]
    with pytest.raises(IntellegoError, match="seq_attr"):
        ia.LLMAttributionResult(input_tokens=["a"], output_tokens=[], seq_attr=[1.0, 2.0])
    with pytest.raises(IntellegoError, match="plot_seq_attr"):
        ia.LLMAttributionResult(input_tokens=["a"], output_tokens=[], seq_attr=[1.0]).plot_token_attr()
    with pytest.raises(IntellegoError, match="ImageMaskInput"):
        r.plot_image_heatmap()


def test_clear_errors():
    tok, model = tokenizer(), random_lm()
    llm = ia.LLMAttribution(ia.FeatureAblation(model), tok)
    inp = ia.TextTemplateInput("{} cat", values=["the"])
    cases = [
        (lambda: ia.LLMAttribution(ia.Saliency(model), tok), "wraps one of FeatureAblation"),
        (lambda: ia.LLMAttribution(ia.FeatureAblation(model), tok, attr_target="logit"), "attr_target"),
        (lambda: llm.attribute("the cat", target="sat"), "takes inp of type"),
        (lambda: llm.attribute(inp, target="sat", gen_args={"max_new_tokens": 2}), "gen_args"),
        (lambda: llm.attribute(inp, target=3), "target must be a string"),
        (lambda: llm.attribute(inp, target=torch.tensor([0.5])), "1-D integer tensor"),
        (lambda: llm.attribute(inp, target=""), "no tokens"),
        (lambda: llm.attribute(inp, gen_args={"max_new_tokens": 0}), "no tokens"),
        (lambda: llm.attribute(inp, target="sat", num_trials=0), "num_trials"),
        (lambda: llm.attribute(inp, target="sat", additional_forward_args=(1,)), "additional_forward_args"),
        (lambda: ia.LLMGradientAttribution(ia.LayerIntegratedGradients(model, model.embed_tokens), tok).attribute(
            inp, target="sat"), "TextTokenInput"),
        (lambda: ia.TextTemplateInput("{} {}", values=["a", "b"], baselines=["a"]), "one entry per value"),
        (lambda: ia.TextTemplateInput("{} {} sat", values=["a"]), r"slot that values does not fill \(1 value"),
        (lambda: ia.TextTemplateInput("{x} {y}", values={"x": "a"}), r"slot that values does not fill \(keys"),
        (lambda: llm.attribute(inp, target=torch.tensor([10_000])), r"token ids must lie in 0 \.\. \d+.*\[10000\]"),
        (lambda: llm.attribute(inp, target=torch.tensor([-1])), "token ids must lie in"),
        (lambda: ia.TextTemplateInput("{x}", values={"x": "a"}, baselines=["b"]), "must be a dict"),
        (lambda: ia.TextTemplateInput("{}", values=["a"], mask=[0.5]), "mask must give one int"),
        (lambda: ia.TextTemplateInput("{}", values="a"), "values must be a list"),
        (lambda: inp.to_model_input(torch.ones(1, 3)), r"shape \(1, 1\)"),
        (lambda: ia.TextTokenInput("the", tok).to_model_input(torch.ones(3)), "presence rows"),
        (lambda: ia.TextTokenInput("the", tok, baselines=1.5), "baselines must be a token id"),
        (lambda: ia.ImageMaskInput(torch.zeros(2, 2, 3), mask=torch.zeros(3, 3)), "image's shape"),
        (lambda: ia.ProductBaselines([[]]), "non-empty"),
        (lambda: ia.RemoteLLMAttribution(ia.FeatureAblation(model), tok, provider=object()), "get_logprobs"),
    ]
    for fn, msg in cases:
        with pytest.raises(IntellegoError, match=msg):
            fn()


def test_vocabulary_round_trip():
    tok = tokenizer()
    text = "the cat sat on a mat."
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    assert [text[s:e] for s, e in enc["offset_mapping"]] == text.replace(".", " .").split()
    assert len(tok) == len(WORDS) + 3


def test_fractional_presence_values_read_as_captum_reads_them():
    """A presence value between 0 and 1 (e.g. from a custom perturbation): TextTokenInput keeps only 1 as present,
    TextTemplateInput only drops 0 (any truthy value keeps the word), as Captum's inputs do."""
    tok = tokenizer()
    rows = torch.tensor([[0.5, 0.0, 1.0]])
    ours = ia.TextTemplateInput("{} {} {}", values=["the", "cat", "sat"], baselines=["a", "b", "c"])
    theirs = ca.TextTemplateInput("{} {} {}", values=["the", "cat", "sat"], baselines=["a", "b", "c"])
    assert ours.to_model_input(rows) == theirs.to_model_input(rows) == "the b sat"
    ours_tok = ia.TextTokenInput("the cat sat", tok)
    theirs_tok = ca.TextTokenInput("the cat sat", tok)
    n = ours_tok.n_itp_features
    rows = torch.full((1, n), 0.5)
    rows[0, -1] = 1.0
    assert torch.equal(ours_tok.to_model_input(rows), theirs_tok.to_model_input(rows))
    assert torch.equal(ours_tok.to_model_input(rows)[0, -1], ours_tok.to_model_input()[0, -1])
    assert not torch.equal(ours_tok.to_model_input(rows)[0, :-1], ours_tok.to_model_input()[0, :-1])


class _BidirectionalLM(torch.nn.Module):
    """An 'LM' whose positions read later tokens too (a transformer encoder layer without a causal mask, like
    Captum's own test model)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.emb = torch.nn.Embedding(vocab, 8)
        self.enc = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.head = torch.nn.Linear(8, vocab)
        self.double().eval()

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return CausalLMOutput(self.head(self.enc(self.emb(input_ids))))


@pytest.mark.parametrize("method", ["FeatureAblation", "ShapleyValues"])
def test_model_that_is_not_causal_is_scored_step_by_step_as_captum_does(method):
    """Teacher forcing and right padding need a causal model. One that is not (detected once per model: its
    logits change when a token is appended) is scored one target token at a time on the prompt alone, giving
    Captum's numbers; a causal model keeps the one-call scoring (the other parity tests)."""
    tok = tokenizer()
    model = _BidirectionalLM(len(tok))
    res = []
    for mod in (ia, ca):
        llm = mod.LLMAttribution(_both(mod, method, model), tok)
        inp = mod.TextTemplateInput(TEMPLATE[0], values=TEMPLATE[1], baselines=TEMPLATE[2])
        res.append(llm.attribute(inp, target="and dog ran", use_cached_outputs=False))
    _close(res[0].seq_attr, res[1].seq_attr)
    _close(res[0].token_attr, res[1].token_attr)
    from intellego.attr._llm_score import _CAUSAL
    assert _CAUSAL[model] is False


@pytest.mark.parametrize("method", ["LayerIntegratedGradients", "LayerGradientXActivation"])
def test_gradient_attribution_of_a_model_that_is_not_causal_matches_captum(method):
    """The gradient wrapper read every target token off one teacher-forced forward, so on a model whose positions
    read later tokens each step saw the target after it (26% off Captum on this model); it now runs one call per
    target token there, as Captum does, and keeps the one-call form for causal models."""
    tok = tokenizer()
    model = _BidirectionalLM(len(tok))
    kwargs = {"n_steps": 8} if method == "LayerIntegratedGradients" else {}
    res = [mod.LLMGradientAttribution(getattr(mod, method)(model, model.emb), tok).attribute(
        mod.TextTokenInput("the cat sat on a mat", tok), target="and dog ran", **kwargs) for mod in (ia, ca)]
    torch.testing.assert_close(res[0].token_attr, res[1].token_attr.double(), rtol=1e-6, atol=1e-9)
    assert res[0].token_attr.shape == (3, len(res[0].input_tokens))
