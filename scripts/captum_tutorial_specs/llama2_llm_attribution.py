"""Llama2_LLM_Attribution: the notebook loads Llama-2-13b-chat from the Hugging Face hub in 4 bits (bitsandbytes,
CUDA). Here the same class, ``LlamaForCausalLM``, with a small config and random weights (width 64, 2 layers),
and a byte-level BPE tokenizer trained offline, both from the tests' ``_hf_models`` (``<s>`` is id 1, as in
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

PRELUDE = f'''import sys, types
sys.path.insert(0, {str(_TESTS)!r})  # the tests' offline Hugging Face models (_hf_models)
sys.modules.setdefault("bitsandbytes", types.ModuleType("bitsandbytes"))  # imported by cell 0, never used here
'''


def _without_skip_tokens(cell: str) -> str:
    """The cell with ``skip_tokens=skip_tokens`` dropped from its ``attribute`` call."""
    return cell.replace(", skip_tokens=skip_tokens)", ")").replace(", skip_tokens=skip_tokens,", ",")


REPLACE = {
    1: '''# stands in for the hub download (Llama-2-13b-chat, 4-bit): a random-weight LlamaForCausalLM with a small
# config and a BPE tokenizer trained offline; no quantization config
import _hf_models

def load_model(model_name, bnb_config):
    model = _hf_models.llama()
    tokenizer = _hf_models.tokenizer()
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
