"""Influence family, part one: TracInCP / TracInCPFast against captum.influence and dattri's TracIn.

The job of issue 15: an MLP of 5.9k parameters (32 -> 150 -> 6), 1,000 training x 100 test examples, 3
checkpoints, float32. The floor is the hand-written ``torch.func`` program: per-example gradients of train and
test examples at each checkpoint (``vmap(grad)`` over ``functional_call``) and their products. Captum runs with
its defaults (``batch_size=1``, a Python loop of per-example gradients) and with its sample-wise option over one
batch; dattri's ``TracInAttributor`` with an identity projector (exact scores, the same job) and with its default
random projection to 512 dimensions.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.utils.data import DataLoader, TensorDataset

from intellego.influence import TracInCP, TracInCPFast

from .harness import Case, quiet

SECTION = "Influence (TracIn): MLP of 5.9k parameters, 1,000 train x 100 test, 3 checkpoints"
SECTION_BIG = "Influence (TracIn): the same MLP, 10,000 train x 100 test (memory budget)"


def _job(n_train: int = 1000, n_test: int = 100, seed: int = 0) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(32, 150), nn.Tanh(), nn.Linear(150, 6))
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n_train, 32, generator=gen), torch.randint(0, 6, (n_train,), generator=gen)
    tx, ty = torch.randn(n_test, 32, generator=gen), torch.randint(0, 6, (n_test,), generator=gen)
    ckpts = []
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        ckpts.append({k: v.clone() for k, v in model.state_dict().items()})
    return dict(model=model, x=x, y=y, tx=tx, ty=ty, ckpts=ckpts, ds=TensorDataset(x, y))


def _load(model: nn.Module, ckpt: dict) -> float:
    model.load_state_dict(ckpt)
    return 1.0


def _floor(job: dict[str, Any]) -> Any:
    model = job["model"]

    def one(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, params, (x[None],)), y[None])

    per_example = vmap(grad(one), in_dims=(None, 0, 0))

    def run() -> torch.Tensor:
        total = None
        for ckpt in job["ckpts"]:
            params = {k: v for k, v in ckpt.items()}
            g_tr = per_example(params, job["x"], job["y"])
            g_te = per_example(params, job["tx"], job["ty"])
            for k in g_tr:  # one product per parameter block: no flattened copy of the gradients
                part = g_te[k].reshape(g_te[k].shape[0], -1) @ g_tr[k].reshape(g_tr[k].shape[0], -1).T
                total = part if total is None else total + part
        return total

    return run




def _dattri(job: dict[str, Any], exact: bool) -> Any:
    try:
        from dattri.algorithm.tracin import TracInAttributor
        from dattri.task import AttributionTask
    except ImportError:
        return None
    model = job["model"]

    def loss(params: dict, data: tuple) -> torch.Tensor:
        x, y = data
        return nn.functional.cross_entropy(functional_call(model, params, (x,)), y)

    train = DataLoader(job["ds"], batch_size=64)
    test = DataLoader(TensorDataset(job["tx"], job["ty"]), batch_size=64)

    def run() -> Any:
        task = AttributionTask(loss_func=loss, model=model, checkpoints=job["ckpts"])
        kwargs = {"proj_type": "identity"} if exact else {"proj_dim": 512, "proj_type": "normal"}
        att = TracInAttributor(task, weight_list=torch.ones(3), normalized_grad=False, projector_kwargs=kwargs)
        with open(os.devnull, "w") as devnull:  # dattri always draws tqdm bars on stderr
            old, sys.stderr = sys.stderr, devnull
            try:
                return att.attribute(train, test)
            finally:
                sys.stderr = old

    return run


_PEAK_SCRIPT = """
import torch
torch.set_num_threads(1)
from benchmarks.cases_influence_tracin import _job
from intellego.influence import TracInCP
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
job = _job({n})
loss = torch.nn.CrossEntropyLoss(reduction="none")
tracin = TracInCP(job["model"], job["ds"], job["ckpts"], loss_fn=loss)
tracin.influence((job['tx'][:2], job['ty'][:2]))  # warm up: kernels and allocator pools
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak resident size (VmHWM) to the current one
before = status("VmRSS:")
{call}
print((status("VmHWM:") - before) / 1024)
"""


def peak_mib(n_train: int, naive: bool = False) -> float:
    """Peak resident memory added by one influence call (MiB), measured in a fresh process (Linux: the peak
    resident size is reset just before the call)."""
    call = ("torch.cat([tracin.compute_intermediate_quantities(job['ds'])])" if naive
            else "tracin.influence((job['tx'], job['ty']))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT.format(n=n_train, call=call)], cwd=root,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def cases(quick: bool = False) -> list[Case]:
    import captum.influence as ci

    job = _job()
    t = (job["tx"], job["ty"])
    none, total = nn.CrossEntropyLoss(reduction="none"), nn.CrossEntropyLoss(reduction="sum")

    def ours() -> TracInCP:  # construction (which loads the checkpoints) is timed with the call
        return TracInCP(job["model"], job["ds"], job["ckpts"], _load, loss_fn=none)

    captum = quiet(lambda: ci.TracInCP(job["model"], job["ds"], job["ckpts"], _load, loss_fn=none).influence(t))
    captum_sw = quiet(lambda: ci.TracInCP(job["model"], job["ds"], job["ckpts"], _load, loss_fn=total,
                                           batch_size=1000, sample_wise_grads_per_batch=True).influence(t))
    extra = {"Captum sample-wise, batch 1000": captum_sw}
    for name, exact in (("dattri TracIn (exact)", True), ("dattri TracIn (proj 512)", False)):
        run = _dattri(job, exact)
        if run is not None:
            extra[name] = run
    rows = [Case(SECTION, "TracInCP.influence", "all layers, loss reduction='none', defaults",
                 lambda: ours().influence(t), captum, _floor(job), extra,
                 note="Captum with its defaults (batch_size=1: a Python loop of per-example gradients, every "
                      "checkpoint reloaded for every training batch); floor: the hand-written torch.func program "
                      "(vmap(grad) per checkpoint, then products); dattri exact uses an identity projector, its "
                      "default projects the gradients to 512 dimensions (approximate scores)")]
    floor_self = _floor_self(job)
    rows.append(Case(SECTION, "TracInCP.self_influence", "training set, defaults", lambda: ours().self_influence(),
                     quiet(lambda: ci.TracInCP(job["model"], job["ds"], job["ckpts"], _load, loss_fn=none)
                            .self_influence()), floor_self,
                     note="floor: per-example gradients of the training set at each checkpoint and their norms"))
    rows.append(Case(SECTION, "TracInCP proponents", "k=10", lambda: ours().influence(t, k=10),
                     quiet(lambda: ci.TracInCP(job["model"], job["ds"], job["ckpts"], _load, loss_fn=none)
                            .influence(t, k=10)), _floor(job)))
    m = job["model"]
    rows.append(Case(SECTION, "TracInCPFast.influence", "final layer, reduction='sum', defaults",
                     lambda: TracInCPFast(m, "2", job["ds"], job["ckpts"], _load, loss_fn=total).influence(t),
                     quiet(lambda: ci.TracInCPFast(m, m[2], job["ds"], job["ckpts"], _load, loss_fn=total)
                            .influence(t)), _floor_fast(job),
                     {"Captum, batch 1000": quiet(lambda: ci.TracInCPFast(m, m[2], job["ds"], job["ckpts"], _load,
                                                                           loss_fn=total, batch_size=1000)
                                                   .influence(t))},
                     note="floor: one forward per checkpoint with the final layer's inputs captured, the output "
                          "gradients in closed form and two products"))
    if not quick:
        big = _job(10_000)
        tb = (big["tx"], big["ty"])
        small_mib, big_mib, all_mib = peak_mib(1000), peak_mib(10_000), peak_mib(10_000, naive=True)
        rows.append(Case(SECTION_BIG, "TracInCP.influence", "10,000 train, defaults (64 MiB budget)",
                         lambda: TracInCP(big["model"], big["ds"], big["ckpts"], _load, loss_fn=none).influence(tb),
                         None, _floor(big),
                         note=f"peak memory added by the call, measured in a fresh process: {small_mib:.0f} MiB with "
                              f"1,000 training examples, {big_mib:.0f} MiB with 10,000 (training gradients go "
                              f"through in chunks of the memory budget); holding every training gradient at once "
                              f"(compute_intermediate_quantities of the training set) adds {all_mib:.0f} MiB; the "
                              "floor holds all 10,000 x 5.9k gradients of a checkpoint at once"))
    return rows


def _floor_self(job: dict[str, Any]) -> Any:
    model = job["model"]

    def one(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, params, (x[None],)), y[None])

    per_example = vmap(grad(one), in_dims=(None, 0, 0))

    def run() -> torch.Tensor:
        return sum(sum((g.reshape(g.shape[0], -1) ** 2).sum(1) for g in per_example(c, job["x"], job["y"]).values())
                   for c in job["ckpts"])

    return run


def _floor_fast(job: dict[str, Any]) -> Any:
    model = job["model"]

    def factors(ckpt: dict, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            h = functional_call(model[:2], {k: v for k, v in ckpt.items() if k.startswith("0.")}, (x,))
            out = h @ ckpt["2.weight"].T + ckpt["2.bias"]
            g = torch.softmax(out, 1) - nn.functional.one_hot(y, out.shape[1])
        return g, h

    def run() -> torch.Tensor:
        total = None
        for c in job["ckpts"]:
            g, a = factors(c, job["x"], job["y"])
            gt, at = factors(c, job["tx"], job["ty"])
            part = (gt @ g.T) * (at @ a.T)
            total = part if total is None else total + part
        return total

    return run


# ---------------------------------------------------------------------------------------------- attribution quality


def quality_table(n_train: int = 1000, n_test: int = 100, n_subsets: int = 50, seed: int = 0) -> str:
    """LDS and mislabel-detection AUC of TracInCP, TracInCPFast, TracInCPFastRandProj and grad-dot on the
    synthetic task, for an underfit (2 epochs) and a converged (40 epochs) student. Markdown."""
    from intellego.data.influence_task import make_influence_task
    from intellego.influence import TracInCPFastRandProj
    from intellego.influence.metrics import datamodel_outputs, lds, mislabel_auc

    lines = ["| regime | test accuracy | method | LDS | mislabel AUC |", "|---|---|---|---|---|"]
    for regime, epochs in (("underfit", 2), ("converged", 40)):
        clean = make_influence_task(n_train, n_test, seed=seed)
        noisy = make_influence_task(n_train, n_test, flip_fraction=0.1, seed=seed)
        masks, actual = datamodel_outputs(lambda m, t=clean, e=epochs: t.retrain(m, epochs=e), n_train, n_subsets,
                                          generator=torch.Generator().manual_seed(seed))
        runs = {name: task.train(epochs=epochs, n_checkpoints=3) for name, task in (("clean", clean),
                                                                                    ("noisy", noisy))}

        def methods(task: Any, run: Any) -> dict[str, Any]:
            ds, none, total = task.train_dataset(), task.loss_fn("none"), task.loss_fn("sum")
            return {
                "TracInCP (all layers)": TracInCP(task.model(), ds, run.checkpoints, run.load, loss_fn=none),
                "TracInCPFast (last layer)": TracInCPFast(task.model(), "2", ds, run.checkpoints, run.load,
                                                          loss_fn=total),
                "TracInCPFastRandProj (dim 64)": TracInCPFastRandProj(task.model(), "2", ds, run.checkpoints,
                                                                      run.load, loss_fn=total, projection_dim=64),
                "grad-dot (final model)": TracInCP(task.model(), ds, run.checkpoints[-1:], loss_fn=none),
            }

        scored = methods(clean, runs["clean"])
        detect = methods(noisy, runs["noisy"])
        for name, method in scored.items():
            if isinstance(method, TracInCPFastRandProj):
                scores = method.influence((clean.x_test, clean.y_test), k=None)
            else:
                scores = method.influence((clean.x_test, clean.y_test))
            score = lds(scores, masks, actual).score
            auc = mislabel_auc(detect[name].self_influence(), noisy.flipped)
            lines.append(f"| {regime} ({epochs} epochs) | {runs['clean'].test_accuracy:.2f} | {name} | {score:.3f} | "
                         f"{auc:.3f} |")
        rand = torch.randn(n_test, n_train, generator=torch.Generator().manual_seed(seed + 9))
        lines.append(f"| {regime} ({epochs} epochs) | {runs['clean'].test_accuracy:.2f} | random scores | "
                     f"{lds(rand, masks, actual).score:.3f} | 0.5 (expected) |")
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(quality_table())
