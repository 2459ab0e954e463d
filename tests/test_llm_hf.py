"""LLM attribution on real Hugging Face architectures (random-weight GPT-2, Llama, T5; a BPE tokenizer trained
offline): parity with Captum 0.9 on every wrapped method and input type, generated and given targets, the
shared-prefix cache, one padded call per chunk, encoder-decoder scoring against a slow oracle, hygiene."""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("transformers")

import captum.attr as ca  # noqa: E402

import intellego.attr as ia  # noqa: E402
from _hf_models import CAUSAL, t5, tokenizer  # noqa: E402
from _hygiene import assert_same, snapshot  # noqa: E402

TEMPLATE = ("{} cat {} on {}", ["the", "sat", "a mat"], ["a", "ran", "dog"])
SYSTEM = "you are a helpful assistant who answers with one short sentence about the kitchen . "


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module", params=["gpt2", pytest.param("llama", marks=pytest.mark.slow)])
def causal(request):
    """GPT-2 in the default run, Llama as well in the slow run (the Captum comparisons take seconds each)."""
    return CAUSAL[request.param]()


def _close(ours, theirs, tol=1e-5):
    torch.testing.assert_close(ours.to(theirs.dtype), theirs, rtol=tol, atol=tol)


def _run(mod, method, model, inp_fn, seed=0, **kw):
    """Captum runs without its cache: its cached path is wrong on transformers 5 (pinned below)."""
    llm = mod.LLMAttribution(getattr(mod, method)(model), tokenizer())
    torch.manual_seed(seed)
    extra = {"use_cached_outputs": False} if mod is ca else {}
    return llm.attribute(inp_fn(mod), **kw, **extra)


def _template(mod):
    return mod.TextTemplateInput(TEMPLATE[0], values=TEMPLATE[1], baselines=TEMPLATE[2])


@pytest.mark.parametrize("method", ["FeatureAblation", "ShapleyValues", pytest.param("Lime", marks=pytest.mark.slow)])
def test_template_parity_deterministic_and_seeded(causal, method):
    kw = {"n_samples": 20} if method == "Lime" else {}
    ours, theirs = (_run(mod, method, causal, _template, target=" the mat", **kw) for mod in (ia, ca))
    _close(ours.seq_attr, theirs.seq_attr)
    if theirs.token_attr is None:
        assert ours.token_attr is None
    else:
        _close(ours.token_attr, theirs.token_attr)
    assert ours.output_tokens == theirs.output_tokens and ours.input_tokens == theirs.input_tokens


def test_sampling_shapley_and_kernel_shap_against_exact_shapley(causal):
    """ShapleyValueSampling draws other permutations than Captum (porting table), so it is checked by its
    efficiency (every permutation telescopes to f(x) - f(baselines)); KernelShap on 3 features enumerates
    all coalitions and equals Captum's exact ShapleyValues."""
    exact = _run(ia, "ShapleyValues", causal, _template, target=" the mat")  # Captum parity: above
    svs = _run(ia, "ShapleyValueSampling", causal, _template, target=" the mat", n_samples=2)
    torch.testing.assert_close(svs.token_attr.sum(1), exact.token_attr.sum(1), rtol=1e-5, atol=1e-5)
    ks = _run(ia, "KernelShap", causal, _template, target=" the mat", n_samples=20)
    assert ks.token_attr is None
    _close(ks.seq_attr, exact.seq_attr)


@pytest.mark.parametrize("attr_target", ["log_prob", pytest.param("prob", marks=pytest.mark.slow)])
def test_token_input_skip_tokens_generated_target_parity(causal, attr_target):
    tok = tokenizer()
    res = []
    for mod in (ia, ca):
        llm = mod.LLMAttribution(mod.FeatureAblation(causal), tok, attr_target=attr_target)
        inp = mod.TextTokenInput("the big cat sat on", tok, baselines="<unk>", skip_tokens=["<s>"])
        res.append(llm.attribute(inp, gen_args={"max_new_tokens": 4, "do_sample": False},
                                 use_cached_outputs=mod is ia))
    _close(res[0].token_attr, res[1].token_attr)
    assert res[0].output_tokens == res[1].output_tokens and len(res[0].output_tokens) == 4
    assert "<s>" not in res[0].input_tokens and res[0].input_tokens == res[1].input_tokens


@pytest.mark.parametrize("method", ["LayerIntegratedGradients", "LayerGradientXActivation"])
def test_gradient_parity(causal, method):
    """One call of the wrapped method for all target tokens equals Captum's one call per token."""
    tok = tokenizer()
    res = []
    for mod in (ia, ca):
        llm = mod.LLMGradientAttribution(getattr(mod, method)(causal, causal.get_input_embeddings()), tok)
        inp = mod.TextTokenInput("the cat sat on", tok, skip_tokens=["<s>"])
        kw = {"n_steps": 8} if method == "LayerIntegratedGradients" else {}
        res.append(llm.attribute(inp, target=" the mat", **kw))
    _close(res[0].token_attr, res[1].token_attr)
    torch.testing.assert_close(res[0].seq_attr, res[0].token_attr.sum(0))


def test_gradient_shap_runs_on_real_model(causal):
    tok = tokenizer()
    llm = ia.LLMGradientAttribution(ia.LayerGradientShap(causal, causal.get_input_embeddings()), tok)
    inp = ia.TextTokenInput("the cat sat", tok, skip_tokens=["<s>"])
    res = llm.attribute(inp, target=" on", baselines=torch.zeros(1, inp.n_itp_features, dtype=torch.long),
                        n_samples=3, generator=torch.Generator().manual_seed(0))
    assert res.token_attr.shape == (len(res.output_tokens), inp.n_itp_features)
    assert torch.isfinite(res.token_attr).all()


class _Counting(torch.nn.Module):
    """Counts calls and the rows and cache use of each (a transparent proxy for a HF model)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []
        self.config = inner.config

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()

    def forward(self, input_ids=None, attention_mask=None, cache=None, use_cache=None, logits_to_keep=0, **kw):
        self.calls.append((input_ids.shape, cache is not None))
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, cache=cache, use_cache=use_cache,
                          logits_to_keep=logits_to_keep, **kw)


def _probed(spy, tok):
    """The spy after its one-time causality probe (two one-row calls on a model's first use; none after)."""
    ia.LLMAttribution(ia.FeatureAblation(spy), tok).attribute(ia.TextTemplateInput("{} x", ["a"]), target=" y z")
    assert [c[0][0] for c in spy.calls[:2]] == [1, 1]
    spy.calls.clear()
    ia.LLMAttribution(ia.FeatureAblation(spy), tok).attribute(ia.TextTemplateInput("{} x", ["a"]), target=" y z")
    assert len(spy.calls) == 1
    spy.calls.clear()
    return spy


def _oracle_log_prob(model, tok, prompt, target):
    """log p(target | prompt) summed, one prompt at a time, no cache, no padding."""
    ids = tok.encode(prompt, return_tensors="pt")
    tgt = torch.tensor(tok.encode(target, add_special_tokens=False))
    with torch.no_grad():
        logits = model(torch.cat([ids, tgt[None]], 1)).logits[0, ids.shape[1] - 1: -1]
    return logits.log_softmax(-1)[torch.arange(tgt.numel()), tgt].sum()


def test_captum_cached_scoring_is_wrong_on_transformers_5(causal):
    """Captum's use_cached_outputs=True (its default) feeds the cache through the generation helpers and gets
    other log-probabilities than scoring each prompt on its own; ours (cache or not) equals that oracle."""
    tok = tokenizer()
    inp = _template(ia)
    oracle = torch.stack([_oracle_log_prob(causal, tok, inp.to_model_input(), " the mat")
                          - _oracle_log_prob(causal, tok, inp.to_model_input(1 - torch.eye(3)[j:j + 1]), " the mat")
                          for j in range(3)])
    ours = ia.LLMAttribution(ia.FeatureAblation(causal), tok).attribute(inp, target=" the mat")
    theirs = ca.LLMAttribution(ca.FeatureAblation(causal), tok).attribute(_template(ca), target=" the mat")
    _close(ours.seq_attr, oracle.double())
    assert (theirs.seq_attr - oracle).abs().max() > 1e-3


def test_shared_prefix_cache_one_call_per_chunk(causal):
    """A long fixed system prompt runs once and its cache serves every perturbed prompt of the chunk; the
    numbers equal ours without the cache and Captum's uncached scoring."""
    tok = tokenizer()
    inp = lambda mod: mod.TextTemplateInput(SYSTEM + "{} likes {} apples", values=["ann", "red"],  # noqa: E731
                                            baselines=["bob", "green"])
    spy = _probed(_Counting(causal), tok)
    cached = ia.LLMAttribution(ia.ShapleyValues(spy), tok).attribute(inp(ia), target=" and bob")
    assert len(spy.calls) == 2 and not spy.calls[0][1] and spy.calls[1][1]  # prefix once, then one batch
    assert spy.calls[1][0][0] == 4  # the 4 coalitions in one padded call
    plain = ia.LLMAttribution(ia.ShapleyValues(causal), tok).attribute(inp(ia), target=" and bob",
                                                                       use_cached_outputs=False)
    theirs = ca.LLMAttribution(ca.ShapleyValues(causal), tok).attribute(inp(ca), target=" and bob",
                                                                         use_cached_outputs=False)
    _close(cached.token_attr, plain.token_attr)
    _close(cached.token_attr, theirs.token_attr)


LONG_PROMPT = "the big red cat sat on a small mat in the kitchen and the dog ran far away"


def test_perturbation_wrappers_one_model_call_per_job(causal):
    """A job of more than 32 prompts goes to the model in one padded call: the scorer sizes its own calls, so
    the perturbation engine measures nothing (it used to run 2 + 4 extra prompts, prefix calls included). An
    explicit perturbations_per_eval still caps the rows per call, with the same numbers."""
    tok = tokenizer()
    spy = _probed(_Counting(causal), tok)
    inp = ia.TextTokenInput(LONG_PROMPT, tok, skip_tokens=["<s>"])
    assert inp.n_itp_features > 32
    one = ia.LLMAttribution(ia.FeatureAblation(spy), tok).attribute(inp, target=" and so")
    assert [c[0][0] for c in spy.calls] == [inp.n_itp_features + 1]
    spy.calls.clear()
    capped = ia.LLMAttribution(ia.FeatureAblation(spy), tok).attribute(inp, target=" and so",
                                                                       perturbations_per_eval=10)
    calls = spy.calls
    batches = [c[0][0] for i, c in enumerate(calls) if not (i + 1 < len(calls) and calls[i + 1][1])]  # no prefixes
    assert max(batches) <= 10 and sum(batches) == inp.n_itp_features + 1
    _close(capped.token_attr, one.token_attr)
    spy.calls.clear()
    words = LONG_PROMPT.split()
    tmpl = ia.TextTemplateInput(" ".join(["{}"] * 8 + words[8:]), values=words[:8])
    ia.LLMAttribution(ia.KernelShap(spy), tok).attribute(tmpl, target=" and so", n_samples=40)
    assert [c[0][0] for c in spy.calls] == [40]


class _CountingTokenizer:
    """The test tokenizer, counting the texts it encodes."""

    def __init__(self, inner):
        self.inner, self.encoded = inner, []

    def encode(self, text, **kw):
        self.encoded.append(text)
        return self.inner.encode(text, **kw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_repeated_texts_are_tokenized_once_and_scored_per_row(causal):
    """ShapleyValueSampling meets the 8 coalitions of 3 slots many times: each distinct text is encoded once per
    call, and every row's score is still its own prompt's (checked against one-prompt-at-a-time scoring)."""
    tok = _CountingTokenizer(tokenizer())
    seen = []
    llm = ia.LLMAttribution(ia.ShapleyValueSampling(causal), tok)
    llm.attribute(_template(ia), target=" the mat", n_samples=6, generator=torch.Generator().manual_seed(0),
                  _inspect_forward=lambda prompt, response, probs: seen.append((prompt, probs[0])))
    prompts = [t for t in tok.encoded if t != " the mat"]
    assert len(prompts) == len(set(prompts)) <= 8 and len(seen) > len(prompts)
    by_text = {tok.decode(tok.inner.encode(t)): t for t in prompts}
    for decoded, prob in seen:
        oracle = _oracle_log_prob(causal, tok.inner, by_text[decoded], " the mat")
        torch.testing.assert_close(torch.tensor(prob, dtype=oracle.dtype).log(), oracle, rtol=1e-5, atol=1e-5)


def test_batched_tokenization_equals_encode_per_text(causal):
    """A Hugging Face tokenizer encodes a call's distinct texts in one batched call: the ids (and dtype) equal
    ``encode(text, return_tensors="pt")`` per row, the empty text and repeated rows included."""
    tok = tokenizer()
    llm = ia.LLMAttribution(ia.FeatureAblation(causal), tok)
    inp = ia.TextTemplateInput("{}{}{}", values=["the", " cat", " sat on the mat"])
    rows = torch.tensor([[(k >> j) & 1 for j in range(3)] for k in [*range(8), 7, 0, 5]], dtype=torch.float64)
    prompts = llm._prompts(inp, rows)
    assert inp.to_model_input(rows[0:1]) == ""
    for row, prompt in zip(rows, prompts):
        expected = tok.encode(inp.to_model_input(row[None]), return_tensors="pt")
        assert prompt["input_ids"].dtype == expected.dtype and torch.equal(prompt["input_ids"], expected)


def test_chunks_and_one_by_one_agree(causal):
    tok = tokenizer()
    a = _run(ia, "ShapleyValues", causal, _template, target=" the", perturbations_per_eval=1)
    b = _run(ia, "ShapleyValues", causal, _template, target=" the")
    torch.testing.assert_close(a.token_attr, b.token_attr, rtol=1e-5, atol=1e-6)
    assert tok is tokenizer()


def _t5_oracle(model, ids, target):
    """log p(target | prompt) of a seq2seq model through its own loss-free path, one prompt at a time."""
    dec = torch.cat([torch.tensor([model.config.decoder_start_token_id]), target[:-1]])[None]
    logits = model(input_ids=ids, decoder_input_ids=dec).logits[0]
    return logits.log_softmax(-1)[torch.arange(target.numel()), target]


def test_encoder_decoder_feature_ablation_matches_slow_oracle():
    tok, model = tokenizer(), t5()
    inp = ia.TextTemplateInput("{} cat {} on the mat", values=["the", "sat"], baselines=["a big", "ran"])
    target = torch.tensor(tok.encode(" and the dog", add_special_tokens=False))
    res = ia.LLMAttribution(ia.FeatureAblation(model), tok).attribute(inp, target=target)
    with torch.no_grad():
        full = _t5_oracle(model, tok.encode(inp.to_model_input(), return_tensors="pt"), target)
        for j in range(2):
            z = torch.ones(1, 2)
            z[0, j] = 0
            ablated = _t5_oracle(model, tok.encode(inp.to_model_input(z), return_tensors="pt"), target)
            torch.testing.assert_close(res.token_attr[:, j], (full - ablated), rtol=1e-5, atol=1e-5)
    gen = ia.LLMAttribution(ia.FeatureAblation(model), tok).attribute(inp, gen_args={"max_new_tokens": 3})
    assert gen.token_attr.shape[0] >= 1


def test_hygiene_on_real_model(causal):
    tok = tokenizer()
    causal.train()
    try:
        emb = causal.get_input_embeddings()
        emb.weight.grad = torch.zeros_like(emb.weight)
        before = snapshot(causal, ())
        ia.LLMAttribution(ia.ShapleyValueSampling(causal), tok).attribute(_template(ia), target=" the", n_samples=2)
        ia.LLMGradientAttribution(ia.LayerIntegratedGradients(causal, emb), tok).attribute(
            ia.TextTokenInput("the cat", tok, skip_tokens=["<s>"]), target=" sat", n_steps=4)
        assert_same(before, snapshot(causal, ()))
    finally:
        causal.eval()
        causal.get_input_embeddings().weight.grad = None


def test_scoring_under_enable_grad_with_a_cached_prefix(causal):
    """The perturbation engine measures a chunk's memory under enable_grad; the prefix cache must still work
    (its tensors would otherwise carry a graph and refuse to be copied) and the scores carry no gradient."""
    from intellego.attr._llm_score import TargetScorer

    tok = tokenizer()
    ids = [tok.encode(SYSTEM + w, return_tensors="pt") for w in ("ann", "bob likes")]
    target = torch.tensor(tok.encode(" and", add_special_tokens=False))
    with torch.enable_grad():
        scores = TargetScorer(causal, target).score([{"input_ids": x} for x in ids])
    assert not scores.requires_grad
    for row, x in zip(scores, ids):
        torch.testing.assert_close(row.sum(), _oracle_log_prob(causal, tok, tok.decode(x[0, 1:]), " and"),
                                   rtol=1e-5, atol=1e-5)


def test_sub_batches_of_unequal_prompt_lengths(causal, monkeypatch):
    """Rows per call below the chunk (a small memory budget): each call keeps the logits its own rows need."""
    from intellego.attr._llm_score import TargetScorer

    tok = tokenizer()
    inp = ia.TextTemplateInput("{} cat {} on {}", values=["the", "sat", "a"], baselines=["a very big", "", "my"])
    whole = ia.LLMAttribution(ia.ShapleyValues(causal), tok).attribute(inp, target=" the mat")
    monkeypatch.setattr(TargetScorer, "_rows_per_call", lambda self, length: 3)
    split = ia.LLMAttribution(ia.ShapleyValues(causal), tok).attribute(inp, target=" the mat")
    torch.testing.assert_close(split.token_attr, whole.token_attr, rtol=1e-5, atol=1e-6)


def test_image_mask_input_on_a_tiny_vision_language_model():
    """ImageMaskInput through a processor on a tiny Llava (CLIP tower + Llama): the perturbed images of a chunk
    go through in one call (their inputs have equal shapes) and match Captum's one-by-one scoring."""
    np = pytest.importorskip("numpy")
    Image = pytest.importorskip("PIL.Image")
    from _hf_models import llava

    tok, model = tokenizer(), llava()
    image_token = len(tok)
    image = (np.arange(16 * 16 * 3).reshape(16, 16, 3) % 251).astype("uint8")
    mask = torch.arange(4).reshape(2, 2).repeat_interleave(8, 0).repeat_interleave(8, 1)

    def processor(img):
        pixels = torch.as_tensor(np.array(img), dtype=torch.float32).permute(2, 0, 1)[None] / 127.5 - 1
        ids = [1, *[image_token] * 4, *tok.encode(" the cat", add_special_tokens=False)]
        return {"input_ids": torch.tensor([ids]), "pixel_values": pixels}

    res = []
    for mod in (ia, ca):
        inp = mod.ImageMaskInput(Image.fromarray(image), mask=mask, processor_fn=processor)
        extra = {"use_cached_outputs": False} if mod is ca else {}
        res.append(mod.LLMAttribution(mod.FeatureAblation(model), tok).attribute(inp, target=" sat on", **extra))
    _close(res[0].token_attr, res[1].token_attr)
    assert res[0].token_attr.shape[1] == 4 and res[0].token_attr.abs().sum() > 0


def test_output_labels_of_split_characters_match_captum():
    """Targets whose bytes do not re-encode to the same ids (a random model's output: lone UTF-8 continuation
    bytes, as Llama2_LLM_Attribution's generated target) are labelled token by token; of two adjacent fragments of
    a character the second is marked [OVERLAP], Captum's labels; a valid character split over two tokens too."""
    from captum.attr._core.llm_attr import _convert_ids_to_pretty_tokens

    from intellego.attr.llm_result import pretty_tokens

    tok = tokenizer()
    lead, cont = tok.encode("é", add_special_tokens=False)  # two byte tokens
    (the,) = tok.encode(" the", add_special_tokens=False)
    for ids in ([cont, cont, the], [the, cont, cont, cont, cont, the], [lead, cont, the], [the, cont, the, cont, cont],
                [the, cont, cont, lead, cont]):
        ours = pretty_tokens(torch.tensor(ids), tok)
        assert ours == _convert_ids_to_pretty_tokens(torch.tensor(ids), tok), ids
        assert len(ours) == len(ids)
    assert pretty_tokens(torch.tensor([the, cont]), tok) == ["the", "\ufffd"]  # Captum: IndexError at the end
