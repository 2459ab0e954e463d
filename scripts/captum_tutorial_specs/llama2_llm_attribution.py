"""Llama2_LLM_Attribution: the notebook loads Llama-2-13b-chat from the Hugging Face hub in 4 bits (bitsandbytes,
CUDA). Here the same class, ``LlamaForCausalLM``, with a small config and random weights (width 64, 2 layers),
and a byte-level BPE tokenizer trained offline (on the tests' sentences and the notebook's texts, 1000 tokens),
both from the tests' ``_hf_models`` (``<s>`` is id 1, as in
Llama's tokenizer, so the notebook's ``skip_tokens = [1]`` holds). The notebook's prompts, targets, templates and
baselines run unchanged; the continuation printed by cell 3 and the targets generated in cell 12 are the random
model's.

The notebook predates Captum 0.9: cells 11, 12 and 14 pass ``skip_tokens=`` to ``LLMAttribution.attribute`` /
``LLMGradientAttribution.attribute``, which hand it on to ``ShapleyValues.attribute`` /
``LayerIntegratedGradients.attribute``, and both libraries raise ``TypeError`` (unexpected keyword argument). Those
three cells run here without that one argument (the prompts already skip ``<s>`` through ``TextTokenInput``'s
``skip_tokens``, and template inputs add no ``<s>`` to skip); every call to the attribution API is kept."""

from pathlib import Path

_TESTS = Path(__file__).resolve().parents[2] / "tests"

# the notebook's texts, added to the tokenizer's training sentences so that their words are whole tokens as in
# Llama's vocabulary (a prompt of ~20 tokens, not ~60 byte pieces: Captum's per-token scoring is 10x shorter)
_TEXTS = ("Dave lives in Palm Coast, FL and is a lawyer. His personal interests include",
          "playing guitar, hiking, and spending time with his family.", "playing golf, hiking, and cooking.",
          "Sarah Seattle WA doctor Her her John Martin Rachel Boston MA engineer teacher technician plumber",
          "Decide if the following movie review enclosed in quotes is Positive or Negative:",
          "'I really liked the Avengers, it had a captivating plot!' Reply only Positive or Negative.",
          "Here are some examples of movie reviews and classification of whether they were Positive or Negative:",
          "'The movie was ok, the actors weren't great' Negative 'I loved it, it was an amazing story!' Positive",
          "'Total waste of time!!' Negative 'Won't recommend' Negative [INST] [/INST]")

PRELUDE = f'''import sys, types
sys.path.insert(0, {str(_TESTS)!r})  # the tests' offline Hugging Face models (_hf_models)
sys.modules.setdefault("bitsandbytes", types.ModuleType("bitsandbytes"))  # imported by cell 0, never used here
_NOTEBOOK_TEXTS = {_TEXTS!r}
'''


def _without_skip_tokens(cell: str) -> str:
    """The cell with ``skip_tokens=skip_tokens`` dropped from its ``attribute`` call."""
    return cell.replace(", skip_tokens=skip_tokens)", ")").replace(", skip_tokens=skip_tokens,", ",")


REPLACE = {
    1: '''# stands in for the hub download (Llama-2-13b-chat, 4-bit): a random-weight LlamaForCausalLM with a small
# config and a BPE tokenizer trained offline; no quantization config
import _hf_models

def load_model(model_name, bnb_config):
    tokenizer = _hf_models.tokenizer(1000, extra=_NOTEBOOK_TEXTS)
    model = _hf_models.llama(vocab=len(tokenizer))
    tokenizer.pad_token = tokenizer.eos_token  # as the notebook does for Llama's tokenizer
    return model, tokenizer

def create_bnb_config():
    return None
''',
    3: lambda cell: cell.replace('.to("cuda")', ""),  # the inputs stay on the CPU
    11: _without_skip_tokens,
    12: _without_skip_tokens,
    14: _without_skip_tokens,
}
