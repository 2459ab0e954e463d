"""Tiny pretrained demo models for the synthetic data sets in ``intellego.data``.

The models use separate, non-inplace ``nn.ReLU`` modules and no functional
activations, so that every attribution method (including DeepLift and the
layer and neuron methods) can hook them. Pretrained weights ship with the
package and load on the CPU.

Example:
    >>> from intellego.data import make_shapes
    >>> from intellego.models import load_shapes_cnn
    >>> model = load_shapes_cnn()
    >>> data = make_shapes(8, seed=123)
    >>> tuple(model(data.images).shape)
    (8, 4)
"""

from __future__ import annotations

from importlib import resources

import torch
from torch import Tensor, nn

from intellego.data.shapes import SHAPE_CLASSES
from intellego.data.tabular import TABULAR_FEATURE_NAMES
from intellego.data.tokens import TOKEN_VOCAB

__all__ = [
    "WEIGHT_FILES",
    "ShapesCNN",
    "TabularMLP",
    "TokenClassifier",
    "load_shapes_cnn",
    "load_tabular_mlp",
    "load_token_classifier",
]

WEIGHT_FILES: dict[str, str] = {
    "shapes_cnn": "shapes_cnn.pt",
    "tabular_mlp": "tabular_mlp.pt",
    "token_classifier": "token_classifier.pt",
}


class ShapesCNN(nn.Module):
    """A small convolutional classifier for ``make_shapes`` images.

    Three 3x3 convolutions (16, 32 and 32 channels), each followed by a ReLU,
    the first two also by 2x2 max pooling, then global average pooling and a
    linear layer to one logit per class.

    Args:
        n_classes: Number of output logits.

    Example:
        >>> model = ShapesCNN()
        >>> tuple(model(torch.rand(2, 3, 32, 32)).shape)
        (2, 4)
    """

    def __init__(self, n_classes: int = len(SHAPE_CLASSES)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 32, kernel_size=3, padding=1)
        self.relu3 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Map images ``(N, 3, H, W)`` to logits ``(N, n_classes)``."""
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.conv3(x))
        return self.fc(self.gap(x).flatten(1))  # not nn.Flatten: Captum's LRP has no rule for it


class TabularMLP(nn.Module):
    """A two-hidden-layer perceptron for ``make_tabular`` features.

    Args:
        n_features: Number of input features.
        hidden: Width of both hidden layers.
        n_classes: Number of output logits.

    Example:
        >>> model = TabularMLP()
        >>> tuple(model(torch.randn(5, 10)).shape)
        (5, 2)
    """

    def __init__(self, n_features: int = len(TABULAR_FEATURE_NAMES), hidden: int = 32, n_classes: int = 2):
        super().__init__()
        self.fc1 = nn.Linear(n_features, hidden)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, hidden)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Map features ``(N, D)`` to logits ``(N, n_classes)``."""
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(x)))))


class TokenClassifier(nn.Module):
    """Embedding, one transformer encoder layer, masked mean pooling, linear head.

    Token id 0 is padding: it is masked out of attention and pooling. The
    ``embedding`` attribute is the ``nn.Embedding``, the layer to attribute to
    with ``LayerIntegratedGradients(model, model.embedding)``.

    Args:
        vocab_size: Number of token ids.
        d_model: Embedding and model width.
        nhead: Attention heads.
        n_classes: Number of output logits.

    Example:
        >>> model = TokenClassifier()
        >>> tokens = torch.tensor([[5, 9, 12, 0, 0], [1, 2, 3, 4, 6]])
        >>> tuple(model(tokens).shape)
        (2, 2)
    """

    def __init__(
        self, vocab_size: int = len(TOKEN_VOCAB), d_model: int = 16, nhead: int = 2, n_classes: int = 2
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.encoder = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward=2 * d_model, dropout=0.0, batch_first=True
        )
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        """Map token ids ``(N, L)`` to logits ``(N, n_classes)``."""
        padding = _padding_mask(tokens)
        hidden = self.encoder(self.embedding(tokens), src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        return self.head(pooled)


def _padding_mask(tokens: Tensor) -> Tensor:
    """True at padding, except in all-padding rows, which stay unmasked (no NaN)."""
    padding = tokens == 0
    return padding & ~padding.all(dim=1, keepdim=True)


def _load(model: nn.Module, name: str) -> nn.Module:
    ref = resources.files("intellego.models") / "weights" / WEIGHT_FILES[name]
    with ref.open("rb") as file:
        state = torch.load(file, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def load_shapes_cnn() -> ShapesCNN:
    """The ``ShapesCNN`` with its shipped weights, in eval mode, on the CPU.

    Example:
        >>> model = load_shapes_cnn()
        >>> model.training
        False
    """
    model = ShapesCNN()
    _load(model, "shapes_cnn")
    return model


def load_tabular_mlp() -> TabularMLP:
    """The ``TabularMLP`` with its shipped weights, in eval mode, on the CPU.

    Example:
        >>> from intellego.data import make_tabular
        >>> data = make_tabular(4, seed=9)
        >>> tuple(load_tabular_mlp()(data.features).shape)
        (4, 2)
    """
    model = TabularMLP()
    _load(model, "tabular_mlp")
    return model


def load_token_classifier() -> TokenClassifier:
    """The ``TokenClassifier`` with its shipped weights, in eval mode, on the CPU.

    Example:
        >>> from intellego.data import make_tokens
        >>> data = make_tokens(4, seed=9)
        >>> tuple(load_token_classifier()(data.tokens).shape)
        (4, 2)
    """
    model = TokenClassifier()
    _load(model, "token_classifier")
    return model
