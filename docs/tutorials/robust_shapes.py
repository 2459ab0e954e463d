"""How robust is the shapes CNN, and which attack breaks it?

Run: ``python docs/tutorials/robust_shapes.py`` (about ten seconds on one CPU thread).
"""

from __future__ import annotations

import torch

from intellego.data import make_shapes
from intellego.models import load_shapes_cnn
from intellego.robust import APGD, CWL2, FGSM, PGD, AttackComparator, DeepFool, MinParamPerturbation


def main(n: int = 64, steps: int = 10) -> dict[str, float]:
    model = load_shapes_cnn()
    data = make_shapes(n, seed=11)
    x, y = data.images, data.labels

    def accuracy(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (out.argmax(1) == target).float()

    # 1. Robust accuracy under a panel of attacks, all through one AttackComparator.
    g = torch.Generator().manual_seed(0)
    eps, l2 = 4 / 255, 0.5
    cmp = AttackComparator(model, accuracy)
    by_target = ["target"]
    cmp.add_attack(lambda t: (t + 0.05 * torch.randn(t.shape, generator=g)).clamp(0, 1), "noise (std 0.05)",
                   num_attempts=3)
    cmp.add_attack(FGSM(model, lower_bound=0, upper_bound=1), "FGSM Linf 4/255",
                   attack_kwargs={"epsilon": eps}, additional_attack_arg_names=by_target)
    cmp.add_attack(PGD(model, lower_bound=0, upper_bound=1), "PGD Linf 4/255",
                   attack_kwargs={"radius": eps, "step_size": eps / 4, "step_num": steps},
                   additional_attack_arg_names=by_target)
    cmp.add_attack(APGD(model, lower_bound=0, upper_bound=1), "APGD-CE Linf 4/255",
                   attack_kwargs={"radius": eps, "step_num": steps, "generator": g},
                   additional_attack_arg_names=by_target)
    cmp.add_attack(PGD(model, lower_bound=0, upper_bound=1), "PGD L2 0.5",
                   attack_kwargs={"radius": l2, "step_size": l2 / 4, "step_num": steps, "norm": "L2"},
                   additional_attack_arg_names=by_target)
    cmp.add_attack(PGD(model, lower_bound=0, upper_bound=1), "PGD L2 0.5, Captum's sign steps",
                   attack_kwargs={"radius": l2, "step_size": l2 / 4, "step_num": steps, "norm": "L2",
                                  "l2_step": "sign"},
                   additional_attack_arg_names=by_target)
    results = cmp.evaluate(x, target=y)
    table = {"clean": float(results["Original"].mean())}
    for name, res in results.items():
        if name != "Original":
            table[name] = float(res["mean"].mean() if "min" not in res else res["min"].mean())
    print(f"{'attack':36s} robust accuracy")
    for name, acc in sorted(table.items(), key=lambda kv: -kv[1]):
        print(f"{name:36s} {acc:6.1%}")

    # 2. How far is each image from a wrong answer? Per-example minimal FGSM step, one vectorized search.
    search = MinParamPerturbation(model, FGSM(model, lower_bound=0, upper_bound=1), "epsilon",
                                  arg_min=0.0, arg_max=0.1, arg_step=1 / 255, mode="binary")
    _, eps_min = search.evaluate(x, target=y, attack_kwargs={"target": y}, per_example=True)
    flipped = ~eps_min.isnan()
    q = eps_min[flipped].quantile(torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)) * 255
    print(f"\nminimal FGSM epsilon (x 255): 10% {q[0]:.0f}, median {q[1]:.0f}, 90% {q[2]:.0f}; "
          f"{int((~flipped).sum())} of {n} images hold up to 0.1")

    # 3. Minimal L2 perturbations: DeepFool (geometry) and CW-L2 (optimisation), per class.
    delta_df = (DeepFool(model, 0, 1).perturb(x, y) - x).flatten(1).norm(dim=1)
    adv_cw = CWL2(model, 0, 1).perturb(x, y, c=1.0, step_num=4 * steps, lr=0.01)
    fooled_cw = model(adv_cw).argmax(1) != y
    delta_cw = (adv_cw - x).flatten(1).norm(dim=1)
    print(f"\n{'class':10s} median L2 to flip: DeepFool   CW-L2 (fooled)")
    for k, name in enumerate(data.classes):
        rows = y == k
        print(f"{name:10s} {float(delta_df[rows].median()):27.3f} {float(delta_cw[rows & fooled_cw].median()):7.3f}"
              f" ({int((rows & fooled_cw).sum())}/{int(rows.sum())})")
    table["median DeepFool L2"] = float(delta_df.median())
    return table


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
