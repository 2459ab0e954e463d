"""Influence functions (part two): Naive / Arnoldi against Captum on a 227-parameter MLP, EK-FAC and TRAK.

The job is the synthetic task with a 16-unit student (227 parameters, as in the issue's correlation example),
200 training and 20 test examples. Captum's classes are timed with their defaults (top-50 eigenpairs); ours with
theirs: the full-rank damped Gauss-Newton inverse. The floor is one per-example-gradient pass over the training
and test examples (what every method needs at least). The LDS/time table on the 1,865-parameter job is written by
``benchmarks/influence_lds.py`` into ``docs/influence_functions.md``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from intellego.data.influence_task import make_influence_task
from intellego.engines.per_sample import example_loss, per_sample_grads
from intellego.influence import ArnoldiInfluenceFunction, EKFACInfluence, NaiveInfluenceFunction
from intellego.influence.influence_function_trak import TRAKInfluence

from .harness import Case, quiet

CE = nn.CrossEntropyLoss(reduction="none")




def cases(quick: bool = False) -> list[Case]:
    from captum.influence import NaiveInfluenceFunction as CNaive
    from captum.influence._core.arnoldi_influence_function import ArnoldiInfluenceFunction as CArnoldi

    task = make_influence_task(n_train=100 if quick else 200, n_test=20, hidden=16, seed=0)
    run = task.train(epochs=10, n_checkpoints=5)
    model = run.model
    ds = TensorDataset(task.x_train, task.y_train)
    test = (task.x_test, task.y_test)
    path = os.path.join(tempfile.mkdtemp(), "final.pt")
    torch.save(model.state_dict(), path)
    n = task.n_train
    sec = "Influence functions: Naive / Arnoldi / EK-FAC / TRAK"
    setting = f"MLP 227 params, {n} train, 20 test"

    def floor() -> Any:
        loss = example_loss(CE, "none")
        with torch.enable_grad():
            return per_sample_grads(model, (task.x_train,), task.y_train, loss=loss), \
                per_sample_grads(model, (task.x_test,), task.y_test, loss=loss)

    def naive() -> Any:
        return NaiveInfluenceFunction(model, ds, None, loss_fn=CE, batch_size=n).influence(test)

    return [
        Case(sec, "NaiveInfluenceFunction", setting, naive,
             quiet(lambda: CNaive(model, ds, path, loss_fn=CE, batch_size=n).influence(test)), floor,
             note="ours: full-rank damped Gauss-Newton inverse (Cholesky); Captum: Hessian, top-50 eigenpairs"),
        Case(sec, "ArnoldiInfluenceFunction", setting,
             lambda: ArnoldiInfluenceFunction(model, ds, None, loss_fn=CE, batch_size=n).influence(test),
             quiet(lambda: CArnoldi(model, ds, path, loss_fn=CE, batch_size=n).influence(test)), floor,
             extra={"ours captum_parity": lambda: ArnoldiInfluenceFunction(
                 model, ds, path, loss_fn=CE, batch_size=n, captum_parity=True).influence(test)},
             note="ours by default = the Naive estimate; captum_parity=True runs Captum's 200-step Arnoldi"),
        Case(sec, "EKFACInfluence", setting,
             lambda: EKFACInfluence(model, ds, loss_fn=CE, batch_size=n).influence(test), None, floor,
             note="fit (two passes) + scores; no Captum counterpart"),
        Case(sec, "TRAKInfluence (5 checkpoints)", setting,
             lambda: TRAKInfluence(model, ds, run.checkpoints, batch_size=n, projection_dim=128).influence(test),
             None, floor, note="k = 128 per checkpoint; no Captum counterpart"),
    ]
