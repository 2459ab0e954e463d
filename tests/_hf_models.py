"""Real Hugging Face architectures with random weights and a BPE tokenizer trained offline, for the LLM tests
and benchmarks: GPT-2, Llama (causal) and T5 (encoder-decoder). Nothing is downloaded."""

from __future__ import annotations

import functools
from typing import Any

import torch

CORPUS = [
    "the cat sat on the mat and the dog ran far away .",
    "a big red apple is on a small table in the kitchen .",
    "ann likes red apples and bob likes green pears .",
    "the weather today is sunny , so we walk to the park .",
    "interpretability explains which words of a prompt drive the completion .",
    "my favourite colour is blue because the sky and the sea are blue .",
    "paris is the capital of france and berlin is the capital of germany .",
]


@functools.cache
def tokenizer(vocab_size: int = 300, extra: tuple[str, ...] = ()) -> Any:
    """A byte-level BPE tokenizer (sub-words: rare words split into pieces) as a ``PreTrainedTokenizerFast``,
    trained on ``CORPUS`` and the ``extra`` sentences; ``<s>`` is prepended by ``encode``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator((CORPUS + list(extra)) * 3, trainer)
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")


def _ids() -> dict[str, int]:
    return {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3}


def gpt2(seed: int = 0, width: int = 64, layers: int = 2, positions: int = 4096) -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tokenizer()), n_embd=width, n_layer=layers, n_head=4, n_positions=positions,
                     **_ids())
    return GPT2LMHeadModel(cfg).eval()


def llama(seed: int = 0, width: int = 64, layers: int = 2, vocab: int | None = None) -> Any:
    """A random-weight Llama over ``vocab`` token ids (default: :func:`tokenizer`'s)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab or len(tokenizer()), hidden_size=width, intermediate_size=2 * width,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=8192, **_ids())
    return LlamaForCausalLM(cfg).eval()


def t5(seed: int = 0, width: int = 64, layers: int = 2) -> Any:
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=len(tokenizer()), d_model=width, d_ff=2 * width, num_layers=layers, num_heads=4,
                   d_kv=width // 4, decoder_start_token_id=3, pad_token_id=3, eos_token_id=2)
    return T5ForConditionalGeneration(cfg).eval()


CAUSAL = {"gpt2": gpt2, "llama": llama}


def llava(seed: int = 0) -> Any:
    """A tiny vision-language model: a 1-layer CLIP vision tower (16x16 images, 8x8 patches: 4 image tokens)
    and the Llama above; the image token id is the tokenizer's vocabulary size."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(seed)
    vocab = len(tokenizer())
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              image_size=16, patch_size=8, num_channels=3)
    text = LlamaConfig(vocab_size=vocab + 1, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, **_ids())
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_id=vocab, vision_feature_layer=-1,
                      vision_feature_select_strategy="default")
    return LlavaForConditionalGeneration(cfg).eval()


def procedural_text(n: int, seed: int = 0) -> list[str]:
    """``n`` sentences from a small grammar over the words of ``CORPUS`` (seeded), with dependencies a model
    can learn: the room follows the animal (cat: kitchen, dog: park), the fruit follows the colour (red apples,
    green pears), the country follows the city."""
    import random

    rng = random.Random(seed)
    det, adj = ["the", "a", "my"], ["big", "red", "small", "green", "blue"]
    rooms, fruits = {"cat": "kitchen", "dog": "park"}, {"red": "apples", "green": "pears"}
    capitals = {"paris": "france", "berlin": "germany"}
    out = []
    for _ in range(n):
        kind = rng.randrange(3)
        if kind == 0:
            animal = rng.choice(list(rooms))
            out.append(f"{rng.choice(det)} {rng.choice(adj)} {rng.choice(adj)} {animal} sat on {rng.choice(det)} "
                       f"{rng.choice(adj)} mat in the {rooms[animal]} .")
        elif kind == 1:
            (a, b), (c, d) = rng.sample(["ann", "bob", "we"], 2), rng.sample(list(fruits), 2)
            out.append(f"{a} likes {c} {fruits[c]} and {b} likes {d} {fruits[d]} .")
        else:
            city = rng.choice(list(capitals))
            out.append(f"{city} is the capital of {capitals[city]} and the sky is {rng.choice(adj)} .")
    return out


def trained(arch: str, seed: int = 0, steps: int = 300, batch: int = 32) -> Any:
    """``CAUSAL[arch](seed)`` after ``steps`` AdamW steps of next-token loss on :func:`procedural_text` (seeded;
    a few seconds of CPU), in eval mode."""
    tok = tokenizer()
    model = CAUSAL[arch](seed).train()
    ids = tok(procedural_text(4 * batch * 8, seed), padding=True, return_tensors="pt")
    labels = ids["input_ids"].masked_fill(ids["attention_mask"] == 0, -100)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        rows = torch.randint(0, labels.shape[0], (batch,), generator=gen)
        loss = model(input_ids=ids["input_ids"][rows], attention_mask=ids["attention_mask"][rows],
                     labels=labels[rows]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
