"""Train the demo models and write their weights.

Run ``python -m intellego.models.train [--out DIR] [--only NAME ...]``. The
weights go to ``src/intellego/models/weights/`` by default. Training is
deterministic (fixed seeds, one CPU thread) and takes a minute or two. Each
model is scored on a held-out seed never used in training.

Example:
    >>> from intellego.models.train import train_tabular
    >>> model, accuracy = train_tabular(epochs=1, n_train=512)
    >>> 0.0 <= accuracy <= 1.0
    True
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from intellego.data import make_shapes, make_tabular, make_tokens
from intellego.models.demo import WEIGHT_FILES, ShapesCNN, TabularMLP, TokenClassifier

__all__ = ["accuracy", "fit", "main", "train_shapes", "train_tabular", "train_tokens"]

DEFAULT_OUT = Path(__file__).resolve().parent / "weights"
TEST_SEED = 1  # held out: training data uses seeds from 1000 upward
TRAIN_SEED = 1000

EpochData = Callable[[int], tuple[Tensor, Tensor]]


@torch.no_grad()
def accuracy(model: nn.Module, inputs: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    """Fraction of ``inputs`` whose argmax logit equals the label.

    Example:
        >>> accuracy(nn.Identity(), torch.eye(3), torch.tensor([0, 1, 0]))
        0.6666666865348816
    """
    was_training = model.training
    model.eval()
    predictions = torch.cat([model(chunk).argmax(dim=1) for chunk in inputs.split(batch_size)])
    model.train(was_training)
    return (predictions == labels).float().mean().item()


def fit(
    model: nn.Module,
    epoch_data: EpochData,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    seed: int = 0,
) -> nn.Module:
    """Train ``model`` with Adam, a one-cycle learning rate schedule and cross-entropy.

    Args:
        model: The classifier, trained in place.
        epoch_data: Maps the epoch index to that epoch's ``(inputs, labels)``.
        epochs: Number of passes.
        lr: Peak learning rate.
        batch_size: Minibatch size.
        seed: Seed of the shuffling generator.

    Returns:
        ``model``, in eval mode.

    Example:
        >>> data = make_tabular(256, seed=5)
        >>> model = fit(TabularMLP(), lambda e: (data.features, data.labels), epochs=1, lr=1e-2)
        >>> model.training
        False
    """
    gen = torch.Generator().manual_seed(seed)
    inputs, labels = epoch_data(0)
    steps = epochs * -(-len(labels) // batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        if epoch > 0:
            inputs, labels = epoch_data(epoch)
        order = torch.randperm(len(labels), generator=gen)
        for batch in order.split(batch_size):
            optimizer.zero_grad()
            loss_fn(model(inputs[batch]), labels[batch]).backward()
            optimizer.step()
            schedule.step()
    return model.eval()


class _ConvBatchNorm(nn.Module):
    """A convolution followed by batch norm, for training; ``folded`` merges the two."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        self.norm = nn.BatchNorm2d(conv.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(x))

    @torch.no_grad()
    def folded(self) -> nn.Conv2d:
        """The single convolution equal to this module in eval mode."""
        mean, var = self.norm.running_mean, self.norm.running_var
        if mean is None or var is None:
            raise RuntimeError("BatchNorm without running statistics cannot be folded")
        scale = self.norm.weight / (var + self.norm.eps).sqrt()
        conv = self.conv
        bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
        conv.weight.mul_(scale[:, None, None, None])
        conv.bias = nn.Parameter((bias - mean) * scale + self.norm.bias)
        return conv


_SHAPES_CONVS = ("conv1", "conv2", "conv3")


def train_shapes(*, epochs: int = 30, n_train: int = 4000, seed: int = 0) -> tuple[ShapesCNN, float]:
    """Train ``ShapesCNN`` on fresh images every epoch; return it and its test accuracy.

    The convolutions train with batch norm, which is folded into them afterwards,
    so the returned model is the plain ``ShapesCNN``.
    """
    torch.manual_seed(seed)
    model = ShapesCNN()
    for name in _SHAPES_CONVS:
        setattr(model, name, _ConvBatchNorm(getattr(model, name)))

    def epoch_data(epoch: int) -> tuple[Tensor, Tensor]:
        data = make_shapes(n_train, seed=TRAIN_SEED + epoch)
        return data.images, data.labels

    fit(model, epoch_data, epochs=epochs, lr=3e-3, seed=seed)
    for name in _SHAPES_CONVS:
        setattr(model, name, getattr(model, name).folded())
    test = make_shapes(2000, seed=TEST_SEED)
    return model, accuracy(model, test.images, test.labels)


def train_tabular(*, epochs: int = 40, n_train: int = 8000, seed: int = 0) -> tuple[TabularMLP, float]:
    """Train ``TabularMLP``; return it and its test accuracy."""
    torch.manual_seed(seed)
    model = TabularMLP()
    data = make_tabular(n_train, seed=TRAIN_SEED)
    fit(model, lambda epoch: (data.features, data.labels), epochs=epochs, lr=3e-3, seed=seed)
    test = make_tabular(2000, seed=TEST_SEED)
    return model, accuracy(model, test.features, test.labels)


def train_tokens(*, epochs: int = 10, n_train: int = 4000, seed: int = 0) -> tuple[TokenClassifier, float]:
    """Train ``TokenClassifier``; return it and its test accuracy."""
    torch.manual_seed(seed)
    model = TokenClassifier()
    data = make_tokens(n_train, seed=TRAIN_SEED)
    fit(model, lambda epoch: (data.tokens, data.labels), epochs=epochs, lr=3e-3, seed=seed)
    test = make_tokens(2000, seed=TEST_SEED)
    return model, accuracy(model, test.tokens, test.labels)


TRAINERS: dict[str, Callable[[], tuple[nn.Module, float]]] = {
    "shapes_cnn": train_shapes,
    "tabular_mlp": train_tabular,
    "token_classifier": train_tokens,
}


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point: train, report test accuracy, save state dicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="weights folder")
    parser.add_argument("--only", nargs="+", choices=sorted(TRAINERS), help="train just these")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or TRAINERS:
        start = time.perf_counter()
        model, test_accuracy = TRAINERS[name]()
        elapsed = time.perf_counter() - start
        path = args.out / WEIGHT_FILES[name]
        torch.save(model.state_dict(), path)
        size_kb = path.stat().st_size / 1024
        print(f"{name}: test accuracy {test_accuracy:.4f}, {elapsed:.1f} s, {path} ({size_kb:.0f} KB)")


if __name__ == "__main__":
    main()
