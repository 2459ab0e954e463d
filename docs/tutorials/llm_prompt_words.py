"""Tutorial: which words of a prompt drive a completion? On the shipped tiny LM, in a few seconds.

The tiny causal LM (``intellego.models.TinyCausalLM``) learns six short sentences, among them "ann likes red
apples" and "bob likes green pears". We then ask, for the prompt "ann likes", which words made it complete
"red apples": exact Shapley values over the prompt's words, the same question as a contrast ("red apples"
rather than "green pears"), a per-target-token heat map, the entropy of the next-token distribution as the
score, and Owen values (PartitionShapley) over a longer prompt's word groups:

    .venv/bin/python docs/tutorials/llm_prompt_words.py      # writes docs/img/llm_prompt_words.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from intellego.attr import LLMAttribution, PartitionShapley, ShapleyValues, TextTemplateInput
from intellego.models import TinyCausalLM, WordTokenizer, train_tiny_lm

IMG = Path(__file__).resolve().parent.parent / "img"
SENTENCES = ["ann likes red apples", "bob likes green pears", "ann eats red apples", "bob eats green pears",
             "cat likes warm milk", "cat drinks warm milk"]


def train() -> tuple[TinyCausalLM, WordTokenizer]:
    """200 full-batch Adam steps on the six sentences (seeded: the same model every run)."""
    return train_tiny_lm(SENTENCES, steps=200, dim=16, seed=0)


def main(out: Path = IMG) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    lm, tok = train()
    # The prompt's two words are the features; an absent word is replaced by its baseline ("cat", "eats").
    prompt = TextTemplateInput("{} {}", values=["ann", "likes"], baselines=["cat", "eats"])
    shapley = LLMAttribution(ShapleyValues(lm), tok)
    completion = shapley.attribute(prompt, gen_args={"max_new_tokens": 2})  # the model's own completion
    print("completion:", " ".join(completion.output_tokens))
    print("Shapley values of the log-probability:", completion.seq_attr_dict)
    # Why "red apples" rather than "green pears"? The difference of the two attributions, in one call.
    contrast = shapley.attribute(prompt, target="red apples", contrast_target="green pears")
    print("red apples rather than green pears:", contrast.seq_attr_dict)
    # How sure is the model? Attribute the entropy of each next-token distribution instead.
    entropy = LLMAttribution(ShapleyValues(lm), tok, attr_target="entropy").attribute(prompt, target="red apples")
    print("entropy of the next-token distributions:", entropy.seq_attr_dict)
    # To browse these as heat maps (pick a target token, tokens or words): intellego.insights.explore_llm(
    #     {"Shapley": completion, "contrast": contrast, "entropy": entropy}).serve()   # or .render(), .export(path)
    fig, _ = completion.plot_token_attr()
    fig.savefig(out / "llm_prompt_words.png", dpi=100, bbox_inches="tight")
    # A longer prompt, its words grouped: Owen values along the hierarchy need a few dozen prompts where
    # exact Shapley values over 8 words need 256.
    words = ["cat", "likes", "warm", "milk", "and", "ann", "likes", "red"]
    long = TextTemplateInput(" ".join(["{}"] * 8), values=words)
    seen: list[str] = []
    owen = LLMAttribution(PartitionShapley(lm), tok).attribute(
        long, target="apples", hierarchy=[[0, 1, [2, 3]], 4, [5, 6, 7]], _inspect_forward=lambda p, *_: seen.append(p))
    print(f"Owen values over 8 words from {len(seen)} prompts:", [round(v, 3) for v in owen.seq_attr.tolist()])
    return {"completion": completion.output_tokens, "shapley": completion.seq_attr_dict,
            "contrast": contrast.seq_attr_dict, "entropy": entropy.seq_attr_dict, "owen": owen.seq_attr,
            "owen_prompts": len(seen), "words": words}


if __name__ == "__main__":
    main()
