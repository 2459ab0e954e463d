"""Tutorial: which inputs does a trained model need? Stochastic gates with intellego.module.

Run: ``python docs/tutorials/module_select_features.py`` (a few seconds on a CPU). ``tests/test_module_tutorial.py``
runs it, so the code and the numbers shown in docs/module.md stay true.
"""

from __future__ import annotations

import torch
from torch import nn

from intellego.module import BinaryConcreteStochasticGates, select_features


def make_data(rows: int = 2048, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """20 standardised sensor readings; the label depends on sensors 2, 5, 11 and 17 only."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 20, generator=g)
    score = 1.5 * x[:, 2] - x[:, 5] + x[:, 11] * x[:, 17]
    return x, (score > 0).long()


def train_classifier(x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(300):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def main() -> dict[str, object]:
    x, y = make_data()
    model = train_classifier(x, y)
    accuracy = (model(x).argmax(1) == y).float().mean().item()
    print(f"classifier accuracy: {accuracy:.3f}")

    # 1. Which sensors do the model's predictions depend on? (no targets: the model's own outputs)
    found = select_features(model, x, generator=torch.Generator().manual_seed(0))
    print("selected sensors:", sorted(found.selected().tolist()))
    print("top 6 (sensor: P(open)):", ", ".join(f"{i}: {p:.3f}" for i, p in
                                               zip(found.ranking[:6].tolist(), found.probs[:6].tolist())))
    print(f"epochs: {found.epochs} (stopped early: {found.stopped_early})")

    # 2. Against the labels, with a stricter penalty: only sensors worth 15% of the explained loss stay open
    strict = select_features(model, x, y, reg_weight=0.15, generator=torch.Generator().manual_seed(0))
    print("selected against the labels, reg_weight=0.15:", sorted(strict.selected().tolist()))

    # 3. Groups: sensors come in 5 racks of 4 (rack r holds sensors 4r .. 4r+3); one gate per rack
    racks = torch.arange(20) // 4
    by_rack = select_features(model, x, mask=racks, generator=torch.Generator().manual_seed(0))
    print("racks by P(open):", ", ".join(f"{i}: {p:.3f}" for i, p in
                                          zip(by_rack.ranking.tolist(), by_rack.probs.tolist())))

    # 4. The gates themselves, as in Captum (same API), trained by hand and reproducible through generator=.
    #    Their reg_weight is absolute: it must be tuned against the scale of the loss.
    targets = model(x).detach()
    hand = {}
    for reg_weight in (0.01, 1.0):
        gates = BinaryConcreteStochasticGates(20, reg_weight=reg_weight, generator=torch.Generator().manual_seed(0))
        opt = torch.optim.Adam(gates.parameters(), lr=0.1)
        for _ in range(150):
            gated, reg = gates(x)
            loss = nn.functional.mse_loss(model(gated), targets) + reg
            opt.zero_grad()
            loss.backward(inputs=list(gates.parameters()))
            opt.step()
        hand[reg_weight] = (gates.get_gate_active_probs() > 0.5).nonzero().flatten().tolist()
        print(f"hand-trained gates open with reg_weight={reg_weight}:", hand[reg_weight])
    open_gates = hand[1.0]
    return {"accuracy": accuracy, "selected": sorted(found.selected().tolist()),
            "strict": sorted(strict.selected().tolist()), "racks": by_rack.ranking.tolist(),
            "rack_probs": by_rack.probs.tolist(), "hand": open_gates,
            "hand_weak": hand[0.01]}


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest
    main()
