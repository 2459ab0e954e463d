"""Architectures the library was not tuned on, built by hand (no torchvision, no downloads), seeded random weights.

Each builder returns a small model so that the whole unseen-model suite stays fast; the shapes follow the real
thing (torchvision's ResNet BasicBlock with one ``nn.ReLU(inplace=True)`` used twice, VGG features with MaxPool and
Dropout, a pre-norm ViT encoder with GELU, an LSTM/GRU text classifier, ...).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


def _randomize_bn(model: nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm statistics, so eval-mode BN is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: one in-place ReLU module called twice, BN, optional downsample."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet18ish(nn.Module):
    """ResNet18's layout (stem conv+BN+ReLU(inplace)+MaxPool, four stages of two BasicBlocks), narrow."""

    def __init__(self, width: int = 4, classes: int = 5) -> None:
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = nn.Sequential(BasicBlock(w, w), BasicBlock(w, w))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w))
        self.layer3 = nn.Sequential(BasicBlock(2 * w, 2 * w, 2), BasicBlock(2 * w, 2 * w))
        self.layer4 = nn.Sequential(BasicBlock(2 * w, 2 * w, 1), BasicBlock(2 * w, 2 * w))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * w, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class VGGish(nn.Module):
    """VGG's layout: conv/ReLU(inplace) stacks with MaxPool, a classifier with Dropout."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Linear(24, 16), nn.ReLU(True), nn.Dropout(0.5),
            nn.Linear(16, 16), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(16, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class Attention(nn.Module):
    """Hand-written multi-head self-attention (softmax over q.k, as in timm's ViT)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(n, t, d))


class EncoderBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = Attention(d, heads)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """A ViT: patch-embedding conv, class token, position embedding, pre-norm encoder blocks, LayerNorm head."""

    def __init__(self, image: int = 8, patch: int = 4, d: int = 8, depth: int = 2, heads: int = 2,
                 classes: int = 5) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, d, patch, patch)
        tokens = (image // patch) ** 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, d) * 0.02)
        self.blocks = nn.Sequential(*[EncoderBlock(d, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class TorchEncoder(nn.Module):
    """Embedding + ``nn.TransformerEncoder`` (GELU, batch_first, PyTorch's own attention) on token ids."""

    def __init__(self, vocab: int = 20, d: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, 2, 16, dropout=0.1, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.fc = nn.Linear(d, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(self.embedding(tokens)).mean(1))


class RNNText(nn.Module):
    """Embedding -> (bi)LSTM or GRU -> last hidden state -> Linear."""

    def __init__(self, cell: str = "lstm", vocab: int = 20, d: int = 6, hidden: int = 5, classes: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, d, padding_idx=0)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(d, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embedding(tokens))
        return self.fc(out[:, -1])


class TupleOut(nn.Module):
    """Returns ``(logits, features)``: the ``model(x)[0]`` pattern reviewers wrap for Captum."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 8), nn.Tanh())
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.head(h), h


class DictOut(TupleOut):
    """Returns ``{"logits": ..., "features": ...}`` (Hugging Face style)."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        logits, h = super().forward(x)
        return {"logits": logits, "features": h}


class ScalarOut(nn.Module):
    """One score per example, output shape ``(N,)`` (a regressor / a binary logit squeezed)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 8), nn.Softplus(), nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class TimeSeriesCNN(nn.Module):
    """1-D conv net for (N, C, T) series: Conv1d/BatchNorm1d/ReLU, MaxPool1d, global average pool."""

    def __init__(self, channels: int = 2, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(channels, 4, 5, padding=2)
        self.bn1 = nn.BatchNorm1d(4)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool1d(2)
        self.conv2 = nn.Conv1d(4, 6, 3, padding=1)
        self.bn2 = nn.BatchNorm1d(6)
        self.relu2 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(6, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu1(self.bn1(self.conv1(x))))
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.fc(self.gap(x).flatten(1))


def build(name: str, dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Module:
    """A seeded, eval-mode model by name, in ``dtype``."""
    _seeded(seed)
    makers: dict[str, Any] = {
        "resnet": ResNet18ish, "vgg": VGGish, "vit": TinyViT, "encoder": TorchEncoder,
        "lstm": lambda: RNNText("lstm"), "gru": lambda: RNNText("gru"), "tuple": TupleOut, "dict": DictOut,
        "scalar": ScalarOut, "ts": TimeSeriesCNN,
    }
    model = makers[name]()
    _randomize_bn(model, seed + 1)
    return model.to(dtype).eval()


def inputs(name: str, batch: int = 2, dtype: torch.dtype = torch.float64, seed: int = 1) -> torch.Tensor:
    """Seeded example inputs for :func:`build` (token ids for the text models)."""
    g = torch.Generator().manual_seed(seed)
    if name == "resnet":
        return torch.randn(batch, 3, 16, 16, generator=g, dtype=dtype)
    if name in ("vgg", "vit"):
        return torch.randn(batch, 3, 8, 8, generator=g, dtype=dtype)
    if name in ("encoder", "lstm", "gru"):
        return torch.randint(1, 20, (batch, 5), generator=g)
    if name == "ts":
        return torch.randn(batch, 2, 16, generator=g, dtype=dtype)
    return torch.randn(batch, 6, generator=g, dtype=dtype)


def first(model: nn.Module) -> Any:
    """``forward_func`` that keeps the first output of a tuple/dict model (what Captum users write)."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        out = model(x)
        return out["logits"] if isinstance(out, dict) else out[0]

    return forward
