"""Robust accuracy of the shapes CNN under L2 PGD: intellego (normalized steps), Captum 0.9 (sign steps, then
projection) and torchattacks' PGDL2, same radius, step size, steps and no random start.

Run: ``python docs/tutorials/robust_l2_table.py`` (needs captum and torchattacks; about a minute on one thread).
"""

from __future__ import annotations

import torch

from intellego.data import make_shapes
from intellego.models import load_shapes_cnn
from intellego.robust import PGD


def main(n: int = 256, radii: tuple[float, ...] = (0.25, 0.5, 1.0), steps: int = 20) -> dict[float, dict[str, float]]:
    import captum.robust as cr
    import torchattacks as ta

    model = load_shapes_cnn()
    data = make_shapes(n, seed=7)
    x, y = data.images, data.labels

    def acc(adv: torch.Tensor) -> float:
        with torch.no_grad():
            return float((model(adv).argmax(1) == y).float().mean())

    ce = torch.nn.CrossEntropyLoss(reduction="none")
    table: dict[float, dict[str, float]] = {}
    print(f"clean accuracy {acc(x):.1%} on {n} images; {steps} steps of 2.5 * radius / {steps}")
    print(f"{'L2 radius':>9s}  {'intellego':>9s}  {'Captum 0.9':>10s}  {'torchattacks':>12s}")
    for r in radii:
        step = 2.5 * r / steps
        ours = acc(PGD(model, ce, 0.0, 1.0).perturb(x, r, step, steps, y, norm="L2"))
        captum = acc(cr.PGD(model, ce, 0.0, 1.0).perturb(x, r, step, steps, y, norm="L2"))
        peer = acc(ta.PGDL2(model, eps=r, alpha=step, steps=steps, random_start=False)(x, y))
        table[r] = {"intellego": ours, "captum": captum, "torchattacks": peer}
        print(f"{r:9.2f}  {ours:9.1%}  {captum:10.1%}  {peer:12.1%}")
    return table


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
