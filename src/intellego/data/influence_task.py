"""A small synthetic classification task for checking training-data attribution offline, in seconds.

A random *teacher* network labels Gaussian inputs; a *student* MLP is trained on them by a seeded minibatch SGD
loop that saves checkpoints (state dicts plus the learning rate, what TracIn needs). The same loop trains many
students at once on subsets of the training set (``retrain``: the models are stacked and ``vmap``-ed, each
example weighted 0 or 1 per model), which makes the linear datamodeling score and leave-one-out checks cheap.
Labels of a fraction of the training examples can be flipped, with the flipped set recorded.

Example:
    >>> import torch
    >>> from intellego.data.influence_task import make_influence_task
    >>> task = make_influence_task(n_train=200, n_test=20, seed=0)
    >>> run = task.train(epochs=2, n_checkpoints=2)
    >>> len(run.checkpoints), run.learning_rates, task.x_train.shape
    (2, [0.5, 0.5], torch.Size([200, 10]))
    >>> masks = torch.rand(3, 200, generator=torch.Generator().manual_seed(0)) < 0.5  # three random halves
    >>> task.retrain(masks, epochs=2).shape  # f on the test set for three models, trained at once
    torch.Size([3, 20])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from ..errors import describe, require

__all__ = ["InfluenceTask", "TrainedRun", "make_influence_task", "flip_labels", "student"]


def student(n_features: int, n_classes: int, hidden: int = 32, seed: int = 0,
            dtype: torch.dtype = torch.float32) -> nn.Module:
    """The student network: a two-layer tanh MLP, initialised from ``seed`` (the global RNG is left alone)."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(n_features, hidden), nn.Tanh(), nn.Linear(hidden, n_classes))
    with torch.no_grad():
        for layer in (m for m in model if isinstance(m, nn.Linear)):
            bound = 1.0 / math.sqrt(layer.in_features)
            for p in (layer.weight, layer.bias):
                p.copy_(torch.rand(tuple(p.shape), generator=gen) * 2 * bound - bound)
    return model.to(dtype)


def flip_labels(labels: Tensor, fraction: float, n_classes: int, *,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Labels with ``fraction`` of them moved to another class at random: ``(noisy labels, flipped mask)``.

    Example:
        >>> import torch
        >>> y, flipped = flip_labels(torch.zeros(10, dtype=torch.long), 0.3, 3, generator=torch.Generator())
        >>> int(flipped.sum()), bool((y[flipped] != 0).all()), bool((y[~flipped] == 0).all())
        (3, True, True)
    """
    require(0.0 <= fraction <= 1.0, f"fraction must be in [0, 1], got {describe(fraction)}")
    require(n_classes >= 2, f"n_classes must be at least 2 to flip labels, got {describe(n_classes)}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    n = labels.shape[0]
    chosen = torch.randperm(n, generator=gen)[: round(fraction * n)]
    flipped = torch.zeros(n, dtype=torch.bool)
    flipped[chosen] = True
    shift = torch.randint(1, n_classes, (len(chosen),), generator=gen)
    noisy = labels.clone()
    noisy[chosen] = (labels[chosen] + shift) % n_classes
    return noisy, flipped


@dataclass
class TrainedRun:
    """A trained student and its checkpoints (state dicts, oldest first) with each one's learning rate."""

    model: nn.Module
    checkpoints: list[dict[str, Tensor]]
    learning_rates: list[float]
    test_accuracy: float

    def load(self, model: nn.Module, checkpoint: dict[str, Tensor]) -> float:
        """A ``checkpoints_load_func``: load ``checkpoint`` into ``model`` and return its learning rate."""
        model.load_state_dict(checkpoint)
        return self.learning_rates[[id(c) for c in self.checkpoints].index(id(checkpoint))]


@dataclass
class InfluenceTask:
    """Train and test data of the synthetic task, and the seeded training loop that fits students to it.

    ``y_train`` may hold flipped labels (``flipped`` marks them; ``y_clean`` keeps the teacher's). The quantity
    whose change attribution predicts is ``f(model, x_test, y_test) = -loss``: the log-probability of the
    test label, so a positive score means the training example helps the test prediction.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    y_clean: Tensor
    flipped: Tensor
    n_classes: int
    hidden: int = 32
    seed: int = 0
    lr: float = 0.5
    batch_size: int = 50
    weight_decay: float = 0.0
    _cache: dict[str, object] = field(default_factory=dict, repr=False)

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    def model(self) -> nn.Module:
        """A fresh student at its seeded initialisation, in the task's dtype."""
        return student(self.x_train.shape[1], self.n_classes, self.hidden, self.seed, self.x_train.dtype)

    def loss_fn(self, reduction: str = "sum") -> nn.Module:
        """The training loss (cross-entropy) with the given reduction."""
        return nn.CrossEntropyLoss(reduction=reduction)

    def train_dataset(self) -> torch.utils.data.TensorDataset:
        return torch.utils.data.TensorDataset(self.x_train, self.y_train)

    def _fit(self, masks: Tensor, epochs: int, n_checkpoints: int = 0) -> tuple[dict[str, Tensor], list]:
        """Train ``len(masks)`` students at once with minibatch SGD in one seeded example order; example ``i``
        counts for model ``m`` with weight ``masks[m, i]`` (a batch's loss is divided by the batch size).

        The student is a fixed two-layer MLP, so its gradients are written out with batched matrix products:
        a step for 50 models costs about as much as a few plain steps of one.
        """
        require(masks.dim() == 2 and masks.shape[1] == self.n_train,
                f"masks must have shape (models, {self.n_train}), got {describe(masks)}")
        base = dict(self.model().named_parameters())
        m = masks.shape[0]
        w1, b1, w2, b2 = (base[k].detach().unsqueeze(0).repeat(m, *([1] * base[k].dim())).contiguous()
                          for k in ("0.weight", "0.bias", "2.weight", "2.bias"))
        weights = masks.to(self.x_train.dtype)
        onehot = F.one_hot(self.y_train, self.n_classes).to(self.x_train.dtype)
        gen = torch.Generator().manual_seed(self.seed + 1)
        total = epochs * -(-self.n_train // self.batch_size)
        save_at = {max(1, round(total * (j + 1) / n_checkpoints)) for j in range(n_checkpoints)}
        saved: list[dict[str, Tensor]] = []
        step = 0
        lr, decay = self.lr, self.weight_decay
        for _epoch in range(epochs):
            order = torch.randperm(self.n_train, generator=gen)
            for start in range(0, self.n_train, self.batch_size):
                idx = order[start:start + self.batch_size]
                xb, wb = self.x_train[idx], weights[:, idx].unsqueeze(2) / len(idx)
                h = torch.tanh(torch.matmul(xb, w1.transpose(1, 2)) + b1.unsqueeze(1))  # (M, B, H)
                logits = torch.baddbmm(b2.unsqueeze(1), h, w2.transpose(1, 2))  # (M, B, C)
                d_out = (torch.softmax(logits, 2) - onehot[idx]) * wb
                d_h = torch.bmm(d_out, w2) * (1 - h * h)
                g_w2, g_b2 = torch.bmm(d_out.transpose(1, 2), h), d_out.sum(1)
                g_w1, g_b1 = torch.matmul(d_h.transpose(1, 2), xb), d_h.sum(1)
                if decay:
                    g_w1, g_b1, g_w2, g_b2 = g_w1 + decay * w1, g_b1 + decay * b1, g_w2 + decay * w2, g_b2 + decay * b2
                w1, b1, w2, b2 = w1 - lr * g_w1, b1 - lr * g_b1, w2 - lr * g_w2, b2 - lr * g_b2
                step += 1
                if step in save_at:
                    saved.append({"0.weight": w1[0].clone(), "0.bias": b1[0].clone(), "2.weight": w2[0].clone(),
                                  "2.bias": b2[0].clone()})
        return {"0.weight": w1, "0.bias": b1, "2.weight": w2, "2.bias": b2}, saved

    def train(self, epochs: int = 20, n_checkpoints: int = 3) -> TrainedRun:
        """Train one student on the whole training set; ``n_checkpoints`` checkpoints evenly spaced over the
        SGD steps (the last is the final model). Cached per ``(epochs, n_checkpoints)``."""
        key = f"train-{epochs}-{n_checkpoints}"
        if key not in self._cache:
            params, saved = self._fit(torch.ones(1, self.n_train), epochs, n_checkpoints)
            model = self.model()
            model.load_state_dict({k: v[0] for k, v in params.items()})
            with torch.no_grad():
                acc = float((model(self.x_test).argmax(1) == self.y_test).to(torch.float64).mean())
            self._cache[key] = TrainedRun(model, saved, [self.lr] * len(saved), acc)
        return cast(TrainedRun, self._cache[key])

    def outputs(self, params: dict[str, Tensor]) -> Tensor:
        """``f`` on every test example for stacked parameters ``(M, ...)``: shape ``(M, n_test)``."""
        base = self.model()

        def f(p: dict[str, Tensor]) -> Tensor:
            out = functional_call(base, p, (self.x_test,))
            return -F.cross_entropy(out, self.y_test, reduction="none")

        with torch.no_grad():
            return vmap(f)(params)

    def retrain(self, masks: Tensor, epochs: int = 20) -> Tensor:
        """Train one student per row of ``masks`` (bool, ``(M, n_train)``) and return ``f`` on the test set,
        ``(M, n_test)``: the retraining oracle of :func:`intellego.influence.metrics.linear_datamodeling_score`."""
        params, _ = self._fit(masks, epochs)
        return self.outputs(params)


def make_influence_task(n_train: int = 2000, n_test: int = 200, *, n_features: int = 10, n_classes: int = 3,
                        flip_fraction: float = 0.0, hidden: int = 32, lr: float = 0.5, batch_size: int = 50,
                        seed: int = 0, dtype: torch.dtype = torch.float32) -> InfluenceTask:
    """Gaussian inputs labelled by a random teacher MLP; ``flip_fraction`` of the training labels flipped.

    Every tensor is determined by ``seed``; the global random state is not used.
    """
    require(isinstance(n_train, int) and n_train >= 2, f"n_train must be an int >= 2, got {describe(n_train)}")
    require(isinstance(n_test, int) and n_test >= 1, f"n_test must be a positive int, got {describe(n_test)}")
    gen = torch.Generator().manual_seed(seed)
    teacher_in = torch.randn(n_features, 16, generator=gen) / math.sqrt(n_features)
    teacher_out = torch.randn(16, n_classes, generator=gen) * 2.0

    def label(x: Tensor) -> Tensor:
        return (torch.tanh(x @ teacher_in * 2.0) @ teacher_out).argmax(1)

    x = torch.randn(n_train + n_test, n_features, generator=gen)
    y = label(x)
    y_clean, y_test = y[:n_train], y[n_train:]
    y_train, flipped = flip_labels(y_clean, flip_fraction, n_classes, generator=gen)
    return InfluenceTask(x[:n_train].to(dtype), y_train, x[n_train:].to(dtype), y_test, y_clean, flipped, n_classes,
                         hidden, seed, lr, batch_size)
