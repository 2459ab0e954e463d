"""LDS and time of influence-function estimators on the synthetic task (one run each; Captum's take ~20 s).

Run: ``.venv/bin/python -m benchmarks.influence_lds [--quick]``. Prints a markdown table and writes it between the
``<!-- lds-table -->`` markers of ``docs/influence_functions.md``. Kronfluence and dattri are optional dev-only
oracles (rows are skipped when they are not installed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from intellego.data.influence_task import make_influence_task
from intellego.influence import ArnoldiInfluenceFunction, EKFACInfluence, NaiveInfluenceFunction
from intellego.influence.influence_function_trak import TRAKInfluence
from intellego.influence.metrics import datamodel_outputs, lds

CE = nn.CrossEntropyLoss(reduction="none")


def _timed(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip Captum (20-30 s each) and the peers")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    task = make_influence_task(n_train=1000, n_test=50, hidden=133, seed=0)
    run = task.train(epochs=20, n_checkpoints=10)
    model = run.model
    n_params = sum(p.numel() for p in model.parameters())
    ds = TensorDataset(task.x_train, task.y_train)
    test = (task.x_test, task.y_test)
    masks, actual = datamodel_outputs(task.retrain, task.n_train, n_subsets=50,
                                      generator=torch.Generator().manual_seed(1))
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "final.pt")
    torch.save(model.state_dict(), path)
    rows: list[tuple[str, float, float, str]] = []
    # warm-up: torch.func's first use imports torch._dynamo (seconds, once per process)
    NaiveInfluenceFunction(model, TensorDataset(task.x_train[:8], task.y_train[:8]), None, loss_fn=CE, batch_size=8)

    def add(name: str, fn: Callable[[], torch.Tensor], note: str = "") -> None:
        scores, seconds = _timed(fn)
        rows.append((name, lds(scores.detach(), masks, actual).score, seconds, note))
        print(f"{name:40s} LDS {rows[-1][1]:+.3f}  {seconds:7.2f} s", file=sys.stderr)

    add("intellego NaiveInfluenceFunction (full rank, exact)", lambda: NaiveInfluenceFunction(
        model, ds, None, loss_fn=CE, batch_size=250).influence(test), "Gauss-Newton, damping 3 x mean eigenvalue")
    add("intellego ArnoldiInfluenceFunction (default)", lambda: ArnoldiInfluenceFunction(
        model, ds, None, loss_fn=CE, batch_size=250).influence(test), "same estimate as Naive")
    add("intellego NaiveInfluenceFunction(solver='cg')", lambda: NaiveInfluenceFunction(
        model, ds, None, loss_fn=CE, batch_size=250, solver="cg", cg_tol=1e-3).influence(test),
        "CG on GN products, tol 1e-3")
    add("intellego EKFACInfluence", lambda: EKFACInfluence(model, ds, loss_fn=CE, batch_size=250).influence(test),
        "damping 0.1 x mean eigenvalue per layer")
    add("intellego TRAKInfluence, 1 checkpoint", lambda: TRAKInfluence(
        model, ds, [run.checkpoints[-1]], batch_size=250, projection_dim=512).influence(test), "k = 512")
    add("intellego TRAKInfluence, 10 checkpoints", lambda: TRAKInfluence(
        model, ds, run.checkpoints, batch_size=250, projection_dim=512).influence(test), "k = 512")
    if not args.quick:
        _peers(add, model, ds, test, run, task)
        _captum(add, model, ds, test, path)
    table = _table(rows, n_params, task.n_train, len(test[0]))
    print(table)
    if not args.no_write:
        doc = Path(__file__).resolve().parents[1] / "docs" / "influence_functions.md"
        text = doc.read_text()
        new = re.sub(r"<!-- lds-table -->.*<!-- /lds-table -->", lambda _m: f"<!-- lds-table -->\n{table}\n"
                     "<!-- /lds-table -->", text, flags=re.S)
        doc.write_text(new)


def _captum(add: Callable, model: nn.Module, ds: TensorDataset, test: tuple, path: str) -> None:
    try:
        from captum.influence import NaiveInfluenceFunction as CNaive
        from captum.influence._core.arnoldi_influence_function import ArnoldiInfluenceFunction as CArnoldi
    except ImportError:
        return
    add("Captum 0.9 NaiveInfluenceFunction", lambda: CNaive(model, ds, path, loss_fn=CE, batch_size=250)
        .influence(test), "top 50 eigenpairs, reg 1e-6 (defaults)")
    add("Captum 0.9 ArnoldiInfluenceFunction", lambda: CArnoldi(model, ds, path, loss_fn=CE, batch_size=250)
        .influence(test), "arnoldi_dim 200, top 50 (defaults)")


def _peers(add: Callable, model: nn.Module, ds: TensorDataset, test: tuple, run, task) -> None:
    try:
        scores = _kronfluence(model, ds, test)
        add("Kronfluence 1.0.1 EK-FAC", scores, "damping heuristic (0.1 x mean eigenvalue)")
    except ImportError as err:
        print(f"kronfluence unavailable: {err}", file=sys.stderr)
    try:
        add("dattri 0.3 TRAK, 10 checkpoints", _dattri(model, ds, test, run), "proj_dim 512")
    except ImportError as err:
        print(f"dattri unavailable: {err}", file=sys.stderr)


def _kronfluence(model: nn.Module, ds: TensorDataset, test: tuple) -> Callable[[], torch.Tensor]:
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task

    class ClassTask(Task):
        def compute_train_loss(self, batch, model, sample=False):
            x, y = batch
            logits = model(x)
            if sample:
                with torch.no_grad():
                    y = torch.multinomial(torch.softmax(logits.detach(), -1), 1).flatten()
            return nn.functional.cross_entropy(logits, y, reduction="sum")

        def compute_measurement(self, batch, model):
            x, y = batch
            return nn.functional.cross_entropy(model(x), y, reduction="sum")

    def go() -> torch.Tensor:
        import copy

        kmodel = prepare_model(copy.deepcopy(model), ClassTask())
        out = tempfile.mkdtemp()
        with contextlib.redirect_stdout(io.StringIO()):
            analyzer = Analyzer("lds", kmodel, ClassTask(), output_dir=out, disable_tqdm=True, cpu=True)
            analyzer.fit_all_factors("ekfac", ds, per_device_batch_size=250,
                                     factor_args=FactorArguments(strategy="ekfac"), overwrite_output_dir=True)
            analyzer.compute_pairwise_scores("s", "ekfac", TensorDataset(*test), ds, per_device_query_batch_size=50,
                                             per_device_train_batch_size=250,
                                             score_args=ScoreArguments(damping_factor=None), overwrite_output_dir=True)
            return analyzer.load_pairwise_scores("s")["all_modules"]

    return go


def _dattri(model: nn.Module, ds: TensorDataset, test: tuple, run) -> Callable[[], torch.Tensor]:
    from dattri.algorithm.trak import TRAKAttributor
    from dattri.task import AttributionTask
    from torch.utils.data import DataLoader

    def margin(params, data):
        x, y = data
        out = torch.func.functional_call(model, params, x.unsqueeze(0))[0]
        p = torch.softmax(out, -1).gather(0, y.reshape(1)).squeeze(0)
        return torch.log(p) - torch.log(1 - p)

    def prob(params, data):
        x, y = data
        out = torch.func.functional_call(model, params, x.unsqueeze(0))[0]
        return torch.softmax(out, -1).gather(0, y.reshape(1)).squeeze(0)

    def go() -> torch.Tensor:
        task = AttributionTask(loss_func=margin, model=model, checkpoints=list(run.checkpoints))
        attributor = TRAKAttributor(task=task, correct_probability_func=prob, device="cpu",
                                    projector_kwargs={"proj_dim": 512, "device": "cpu"})
        with contextlib.redirect_stderr(io.StringIO()):
            attributor.cache(DataLoader(ds, batch_size=250, shuffle=False))
            return attributor.attribute(DataLoader(TensorDataset(*test), batch_size=50, shuffle=False)).T

    return go


def _table(rows: list[tuple[str, float, float, str]], n_params: int, n_train: int, n_test: int) -> str:
    head = (f"Synthetic task (`make_influence_task(n_train={n_train}, n_test={n_test}, hidden=133)`: "
            f"{n_params:,} parameters), LDS over 50 retrained half-sets, one timed run each (fit + scores for "
            f"{n_test} test examples), one CPU thread (`torch.set_num_threads(1)`).\n\n"
            "| method | LDS | time (s) | note |\n|---|---:|---:|---|")
    lines = [f"| {n} | {s:.3f} | {t:.2f} | {note} |" for n, s, t, note in rows]
    return "\n".join([head, *lines])


if __name__ == "__main__":
    main()
