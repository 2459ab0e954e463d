"""Small float64 models for the backward-rule tests (in-place, reused and functional activations)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Reused(nn.Module):
    """One ReLU module applied twice (optionally in place)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(5, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.relu = nn.ReLU(inplace=inplace)

    def forward(self, x):
        return self.l3(self.relu(self.l2(self.relu(self.l1(x)))))


class Functional(nn.Module):
    """Non-linearities called functionally inside forward: ``torch.relu``, ``F.relu``, ``x.relu_()``."""

    def __init__(self, style: str = "torch") -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(5, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.style = style

    def act(self, x):
        if self.style == "torch":
            return torch.relu(x)
        if self.style == "F":
            return F.relu(x)
        if self.style == "method":
            return x.relu()
        return x.relu_()

    def forward(self, x):
        return self.l3(self.act(self.l2(self.act(self.l1(x)))))


class ResBlock(nn.Module):
    """A torchvision-style residual block: one in-place ReLU module used twice and ``out += identity``."""

    def __init__(self, c: int = 3) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.c2(self.relu(self.c1(x)))
        out += x
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 3, 3, padding=1)
        self.blocks = nn.Sequential(ResBlock(), ResBlock())
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(3 * 16, 3)

    def forward(self, x):
        return self.fc(self.pool(self.blocks(torch.relu(self.stem(x)))).flatten(1))


def seeded(make, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return make().double().eval()
