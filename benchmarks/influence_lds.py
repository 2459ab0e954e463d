"""LDS and time of influence-function estimators on the synthetic task, ours interleaved with Captum and the peers.

Run: ``.venv/bin/python -m benchmarks.influence_lds [--quick] [--rounds N]``. Every method runs once per round, each
of ours next to its peer (Captum Naive / Arnoldi, Kronfluence EK-FAC, dattri TRAK); times are medians over rounds
and the targets use the median of per-round ratios. Prints a markdown table and writes it as its own section of
``docs/benchmarks.md`` and between the ``<!-- lds-table -->`` markers of ``docs/influence_functions.md``.
Kronfluence and dattri are optional dev-only oracles (rows are skipped when they are not installed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import statistics
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


Method = tuple[str, Callable[[], torch.Tensor], str]
SECTION = "Influence functions: LDS and time on the synthetic task (1,865 parameters)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip Captum (20-50 s each) and the peers")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (every method once per round)")
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
    path = os.path.join(tempfile.mkdtemp(), "final.pt")
    torch.save(model.state_dict(), path)
    methods = _ours(model, ds, test, run)
    if not args.quick:
        methods = _ordered(methods + _peers(model, ds, test, run) + _captum(model, ds, test, path))
    # warm-up: torch.func's first use imports torch._dynamo (seconds, once per process)
    NaiveInfluenceFunction(model, TensorDataset(task.x_train[:8], task.y_train[:8]), None, loss_fn=CE, batch_size=8)
    times: dict[str, list[float]] = {name: [] for name, _, _ in methods}
    scores: dict[str, list[float]] = {name: [] for name, _, _ in methods}
    for r in range(args.rounds):
        for name, fn, _ in methods:  # ours and the peers' in one round, one after the other
            start = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - start)
            scores[name].append(lds(out.detach().float(), masks, actual).score)
            print(f"round {r} {name:48s} LDS {scores[name][-1]:+.3f}  {times[name][-1]:7.2f} s", file=sys.stderr)
    table = _table(methods, times, scores, n_params, task.n_train, len(test[0]), args.rounds)
    print(table)
    if not args.no_write:
        _write(table)


def _ours(model: nn.Module, ds: TensorDataset, test: tuple, run) -> list[Method]:
    return [
        (NAIVE, lambda: NaiveInfluenceFunction(model, ds, None, loss_fn=CE, batch_size=250).influence(test),
         "Gauss-Newton, damping 3 x mean eigenvalue"),
        (ARNOLDI, lambda: ArnoldiInfluenceFunction(model, ds, None, loss_fn=CE, batch_size=250).influence(test),
         "same estimate as Naive"),
        ("intellego NaiveInfluenceFunction(solver='cg')", lambda: NaiveInfluenceFunction(
            model, ds, None, loss_fn=CE, batch_size=250, solver="cg", cg_tol=1e-3).influence(test),
         "CG on GN products, tol 1e-3"),
        (EKFAC, lambda: EKFACInfluence(model, ds, loss_fn=CE, batch_size=250).influence(test),
         "damping 0.1 x mean eigenvalue per layer"),
        ("intellego TRAKInfluence, 1 checkpoint", lambda: TRAKInfluence(
            model, ds, [run.checkpoints[-1]], batch_size=250, projection_dim=512).influence(test),
         "k = 512, Kronecker-factored projection (542 dims)"),
        (TRAK10, lambda: TRAKInfluence(model, ds, run.checkpoints, batch_size=250, projection_dim=512)
         .influence(test), "k = 512, Kronecker-factored projection (542 dims)"),
        ("intellego TRAKInfluence, 10 checkpoints, dense", lambda: TRAKInfluence(
            model, ds, run.checkpoints, batch_size=250, projection_dim=512, projection="gaussian").influence(test),
         "k = 512, dense Gaussian projection of per-example gradients"),
    ]


NAIVE, ARNOLDI = "intellego NaiveInfluenceFunction (full rank, exact)", "intellego ArnoldiInfluenceFunction (default)"
EKFAC, TRAK10 = "intellego EKFACInfluence", "intellego TRAKInfluence, 10 checkpoints"
C_NAIVE, C_ARNOLDI = "Captum 0.9 NaiveInfluenceFunction", "Captum 0.9 ArnoldiInfluenceFunction"
KRON, DATTRI = "Kronfluence 1.0.1 EK-FAC", "dattri 0.3 TRAK, 10 checkpoints"


def _captum(model: nn.Module, ds: TensorDataset, test: tuple, path: str) -> list[Method]:
    try:
        from captum.influence import NaiveInfluenceFunction as CNaive
        from captum.influence._core.arnoldi_influence_function import ArnoldiInfluenceFunction as CArnoldi
    except ImportError:
        return []
    return [(C_NAIVE, lambda: CNaive(model, ds, path, loss_fn=CE, batch_size=250).influence(test),
             "top 50 eigenpairs, reg 1e-6 (defaults)"),
            (C_ARNOLDI, lambda: CArnoldi(model, ds, path, loss_fn=CE, batch_size=250).influence(test),
             "arnoldi_dim 200, top 50 (defaults)")]


def _peers(model: nn.Module, ds: TensorDataset, test: tuple, run) -> list[Method]:
    out: list[Method] = []
    try:
        out.append((KRON, _kronfluence(model, ds, test), "damping heuristic (0.1 x mean eigenvalue)"))
    except ImportError as err:
        print(f"kronfluence unavailable: {err}", file=sys.stderr)
    try:
        out.append((DATTRI, _dattri(model, ds, test, run), "proj_dim 512"))
    except ImportError as err:
        print(f"dattri unavailable: {err}", file=sys.stderr)
    return out


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


# each of ours next to its peer, so that a round measures both under the same load
ORDER = [NAIVE, C_NAIVE, ARNOLDI, C_ARNOLDI, EKFAC, KRON, TRAK10, DATTRI]
TARGETS = [(NAIVE, C_NAIVE, "speed-up >= 20x at equal or better LDS", 20.0, 0.0),
           (ARNOLDI, C_ARNOLDI, "speed-up >= 10x at equal or better LDS", 10.0, 0.0),
           (EKFAC, KRON, "time <= 0.5x, LDS within 0.01", 2.0, -0.01),
           (TRAK10, DATTRI, "time <= 0.5x, LDS at or above", 2.0, 0.0)]


def _ordered(methods: list[Method]) -> list[Method]:
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(methods, key=lambda m: rank.get(m[0], len(ORDER)))


def _table(methods: list[Method], times: dict[str, list[float]], scores: dict[str, list[float]], n_params: int,
           n_train: int, n_test: int, rounds: int) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    head = (f"Synthetic task (`make_influence_task(n_train={n_train}, n_test={n_test}, hidden=133)`: "
            f"{n_params:,} parameters), LDS over 50 retrained half-sets; time = fit + scores for {n_test} test "
            f"examples, median of {rounds} interleaved rounds (each of ours run next to its peer), one torch thread; "
            f"the machine was shared (load average {load:.1f} at the end), so times are noisy: the targets use the "
            "median of per-round ratios, with their range.\n\n"
            "| method | LDS | time (s), median | min - max | note |\n|---|---:|---:|---:|---|")
    lines = [f"| {n} | {statistics.median(scores[n]):.3f} | {statistics.median(times[n]):.2f} | "
             f"{min(times[n]):.2f} - {max(times[n]):.2f} | {note} |" for n, _, note in methods]
    checks = ["", "| target | ours vs peer | LDS difference | time ratio (peer / ours), median | range | met |",
              "|---|---|---:|---:|---:|---|"]
    for ours, peer, what, speed, slack in TARGETS:
        if peer not in times:
            continue
        ratios = [p / o for o, p in zip(times[ours], times[peer])]
        diff = statistics.median(scores[ours]) - statistics.median(scores[peer])
        met = statistics.median(ratios) >= speed and diff >= slack
        checks.append(f"| {what} | {ours.removeprefix('intellego ')} vs {peer} | {diff:+.3f} | "
                      f"{statistics.median(ratios):.1f}x | {min(ratios):.1f} - {max(ratios):.1f}x | "
                      f"{'yes' if met else 'no'} |")
    return "\n".join([head, *lines, *(checks if len(checks) > 3 else [])])


def _write(table: str) -> None:
    """The table into ``docs/influence_functions.md`` (between its markers) and as its own section of
    ``docs/benchmarks.md`` (replaced in place; the other sections are kept)."""
    root = Path(__file__).resolve().parents[1]
    doc = root / "docs" / "influence_functions.md"
    doc.write_text(re.sub(r"<!-- lds-table -->.*<!-- /lds-table -->",
                          lambda _m: f"<!-- lds-table -->\n{table}\n<!-- /lds-table -->", doc.read_text(), flags=re.S))
    bench = root / "docs" / "benchmarks.md"
    head, *parts = bench.read_text().split("\n## ")
    section = f"## {SECTION}\n\nWritten by `python -m benchmarks.influence_lds`.\n\n{table}\n"
    body = [section if p.startswith(SECTION) else "## " + p.rstrip("\n") + "\n" for p in parts]
    if not any(p.startswith(SECTION) for p in parts):  # new: after the other influence-function section
        at = next((i + 1 for i, p in enumerate(parts) if p.startswith("Influence functions:")), len(parts))
        body.insert(at, section)
    bench.write_text("\n".join([head.rstrip("\n") + "\n", *body]))


if __name__ == "__main__":
    main()
