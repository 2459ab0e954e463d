"""A zoo of the architectures people use, built from ``transformers`` classes: tiny configs, seeded random weights.

Nothing is downloaded: each model is ``XForY(XConfig(...))`` with a small config (1-2 blocks, 32x32 images, a
vocabulary of 32 tokens), seeded, in eval mode. Hugging Face models return output objects; the one-line
:class:`Logits` wrapper turns them into the tensor every attribution method reads (the docs show users the same).

Example:
    >>> import torch
    >>> from zoo import ZOO, build
    >>> model, x = build("resnet")
    >>> model(x).shape
    torch.Size([2, 4])
    >>> sorted(ZOO)[:3]
    ['bert', 'convnext', 'efficientnet']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

CLASSES = 4  # image classes and text labels
VOCAB = 32
SIZE = 32  # image side
TOKENS = 6  # sequence length


class Logits(nn.Module):
    """``model(...).logits`` as a module (the one-line wrapper a Hugging Face model needs for attribution).

    ``embeds=True`` feeds float embeddings (``inputs_embeds``) instead of token ids, so gradient and rule methods
    can attribute to them.
    """

    def __init__(self, model: nn.Module, embeds: bool = False) -> None:
        super().__init__()
        self.model, self.embeds = model, embeds

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(inputs_embeds=x) if self.embeds else self.model(x)
        logits = out.logits
        return logits[:, -1] if logits.dim() == 3 else logits  # a causal LM: the next-token logits


def _vision(name: str) -> nn.Module:
    import transformers as t

    c = CLASSES
    if name == "resnet":
        cfg = t.ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                             layer_type="basic", num_labels=c)
        return t.ResNetForImageClassification(cfg)
    if name == "convnext":
        cfg = t.ConvNextConfig(num_channels=3, patch_size=4, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2,
                               num_labels=c, drop_path_rate=0.1, layer_scale_init_value=0.5)
        return t.ConvNextForImageClassification(cfg)
    if name == "vit":
        cfg = t.ViTConfig(image_size=SIZE, patch_size=8, num_channels=3, hidden_size=16, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=32, num_labels=c)
        return t.ViTForImageClassification(cfg)
    if name == "swin":
        cfg = t.SwinConfig(image_size=SIZE, patch_size=4, num_channels=3, embed_dim=8, depths=[1, 1],
                           num_heads=[2, 2], window_size=4, num_labels=c, drop_path_rate=0.1)
        return t.SwinForImageClassification(cfg)
    if name == "mobilenet_v2":
        cfg = t.MobileNetV2Config(num_channels=3, image_size=SIZE, depth_multiplier=0.25, finegrained_output=False,
                                   num_labels=c)
        return t.MobileNetV2ForImageClassification(cfg)
    if name == "efficientnet":
        cfg = t.EfficientNetConfig(num_channels=3, image_size=SIZE, width_coefficient=0.25, depth_coefficient=0.2,
                                   hidden_dim=320, num_labels=c, drop_connect_rate=0.1)
        return t.EfficientNetForImageClassification(cfg)
    raise KeyError(name)


def _text(name: str) -> nn.Module:
    import transformers as t

    if name == "bert":
        cfg = t.BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=16, num_labels=CLASSES)
        return t.BertForSequenceClassification(cfg)
    if name == "llama":
        cfg = t.LlamaConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            num_key_value_heads=1, intermediate_size=32, max_position_embeddings=16)
        return t.LlamaForCausalLM(cfg)
    if name == "gpt2":
        cfg = t.GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=16, bos_token_id=0,
                           eos_token_id=0)
        return t.GPT2LMHeadModel(cfg)
    raise KeyError(name)


def _randomize(model: nn.Module, seed: int) -> None:
    """PyTorch's default initialisation (Hugging Face's ``std=0.02`` makes deep tiny models output ~0), and
    non-trivial normalisation statistics and affine parameters, so eval-mode norms are not identities."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        with torch.no_grad():
            if isinstance(m, nn.Conv2d):  # variance-preserving through deep ReLU stacks
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=g)
            elif isinstance(m, nn.Linear):
                m.reset_parameters()
            elif type(m).__name__ == "Conv1D":  # GPT-2's transposed linear layer
                m.weight.normal_(0, m.weight.shape[0] ** -0.5, generator=g)
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)) and m.weight is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def _calibrate(model: nn.Module, seed: int) -> None:
    """BatchNorm statistics of one random batch (momentum 1), so deep random CNNs neither vanish nor explode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 1.0
    g = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        model.train()(torch.randn(8, 3, SIZE, SIZE, generator=g))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum


@dataclass(frozen=True)
class Entry:
    """One zoo model: how to build it and what it takes."""

    make: Callable[[str], nn.Module]
    text: bool = False  # token ids in; attribution to embeddings through ``Logits(embeds=True)``

    def build(self, name: str, seed: int, dtype: torch.dtype) -> nn.Module:
        torch.manual_seed(seed)
        model = self.make(name)
        _randomize(model, seed)
        if not self.text:
            _calibrate(model, seed)
        return model.to(dtype).eval()


ZOO: dict[str, Entry] = {n: Entry(_vision) for n in ("resnet", "convnext", "vit", "swin", "mobilenet_v2",
                                                        "efficientnet")}
ZOO.update({n: Entry(_text, text=True) for n in ("bert", "llama", "gpt2")})
VISION = tuple(n for n, e in ZOO.items() if not e.text)
TEXT = tuple(n for n, e in ZOO.items() if e.text)


# a mid-level module of each model (a tensor output) for layer and neuron methods, and a neuron in it
LAYERS = {"resnet": "model.resnet.encoder.stages.1", "convnext": "model.convnext.encoder.stages.1",
          "vit": "model.vit.layers.0.layernorm_after", "swin": "model.swin.encoder.layers.0.blocks.0.mlp",
          "mobilenet_v2": "model.mobilenet_v2.layer.3", "efficientnet": "model.efficientnet.encoder.blocks.2",
          "bert": "model.bert.encoder.layer.0", "llama": "model.model.layers.0.mlp", "gpt2": "model.transformer.h.0"}
CONV = ("resnet", "convnext", "mobilenet_v2", "efficientnet")  # spatial layer outputs (CAM methods)


def layer(model: nn.Module, name: str) -> nn.Module:
    """The module of :data:`LAYERS` in a model built by :func:`build`."""
    return model.get_submodule(LAYERS[name])


def neuron(name: str) -> tuple[int, ...]:
    """A neuron of the layer of :data:`LAYERS`: (channel, row, column) for CNNs, (position, unit) otherwise."""
    return (1, 0, 0) if name in CONV else (1, 2)


def hf_model(name: str, seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The bare ``transformers`` model (output objects, token ids for text models)."""
    return ZOO[name].build(name, seed, dtype)


def build(name: str, batch: int = 2, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, Tensor]:
    """``(model, x)``: the zoo model wrapped by :class:`Logits` (text models read embeddings) and a seeded input."""
    entry = ZOO[name]
    model = entry.build(name, seed, dtype)
    g = torch.Generator().manual_seed(seed + 1)
    if entry.text:
        width = model.get_input_embeddings().weight.shape[1]
        x = torch.randn(batch, TOKENS, width, generator=g).to(dtype) * 0.5
        return Logits(model, embeds=True).eval(), x
    return Logits(model).eval(), torch.randn(batch, 3, SIZE, SIZE, generator=g).to(dtype)


def bias_free(model: nn.Module) -> nn.Module:
    """Zero every bias, LayerNorm/BatchNorm shift and running mean, position table and class token: what is left
    is a network in which relevance has nowhere to go but the inputs. GPT-2's ``gelu_new`` (a tanh formula with a
    constant ``1 +``) becomes the same GELU as one operation."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            last = name.rsplit(".", 1)[-1]
            if last == "bias" or "position" in name or "cls_token" in name or "token_type" in name or "wpe" in name:
                p.zero_()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.zero_()
    for m in list(model.modules()):
        if type(m).__name__ == "GPT2MLP":
            m.act = nn.GELU(approximate="tanh")
    return model


def token_ids(batch: int = 2, seed: int = 0) -> Tensor:
    """Seeded token ids for the text models (``hf_model(name)(ids)``)."""
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randint(0, VOCAB, (batch, TOKENS), generator=g)
