"""Concept family (TCAV): CAV training and scoring against captum.concept on 16,384-feature layers.

The job of the issue: 21 concepts of 50 examples, 20 experimental sets ``[concept_i, random]``, CAVs on 16,384
features, at two layers: the output of a 16-channel conv + ReLU on 3x32x32 images (the forward passes cost about
as much as our CAV training), and a ReLU over 16x32x32 feature maps given as inputs (a probe on a frozen
backbone's features: the job is CAV training alone). Each ``compute_cavs`` call starts from a
fresh TCAV (empty caches), so it times activations plus training end-to-end; Captum gets a fresh temporary
``save_path`` per call (it writes activations and CAVs there; removing the folder is inside its time). Captum's
default classifier is scikit-learn's SGDClassifier; ours is an exact L2 logistic regression (DefaultClassifier)
or FastCAV (class-mean difference). The floor is the forward passes that produce the concept activations.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import warnings
from typing import Any

import captum.concept as cc
import torch
from torch import nn

import intellego.concept as ic

from .harness import Case, floor_backward

warnings.filterwarnings("ignore", module="captum")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 4)).eval()


def _captum_cavs(model: nn.Module, layer: str, sets: list[list[Any]]) -> Any:
    folder = tempfile.mkdtemp(prefix="captum_cav_")
    try:
        return cc.TCAV(model, [layer], save_path=folder + "/").compute_cavs(sets)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _probe() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(16 * 32 * 32, 4)).eval()


def _cav_cases(sec: str, model: nn.Module, layer: str, data: list[torch.Tensor], what: str,
               notes: bool) -> list[Case]:
    n_sets = len(data) - 1
    ours_c = [ic.Concept(i, f"c{i}", [x]) for i, x in enumerate(data)]
    theirs_c = [cc.Concept(i, f"c{i}", [x]) for i, x in enumerate(data)]
    ours_sets = [[ours_c[i], ours_c[-1]] for i in range(n_sets)]
    theirs_sets = [[theirs_c[i], theirs_c[-1]] for i in range(n_sets)]
    head = model[: int(layer) + 1]

    def floor_acts() -> Any:
        with torch.no_grad():
            return [head(x) for x in data]

    def plain_loop() -> list[torch.Tensor]:
        """A hand-written FastCAV: truncated forward, then one mean difference per set."""
        with torch.no_grad():
            means = [head(x).flatten(1).mean(0) for x in data]
        return [means[i] - means[-1] for i in range(n_sets)]

    note = ("fresh TCAV per call (activations + training); Captum: SGDClassifier with its global-RNG split, "
            "writing to a temporary save_path; floor: the forward passes to the layer") if notes else ""
    fast_note = ("Captum column: its default classifier (Captum has no FastCAV); plain loop: a hand-written "
                 "truncated forward + mean difference per set, without a train/test split or accuracy") if notes else ""
    return [
        Case(sec, "compute_cavs", f"{what}, DefaultClassifier (exact logistic)",
             lambda: ic.TCAV(model, [layer]).compute_cavs(ours_sets),
             lambda: _captum_cavs(model, layer, theirs_sets), floor_acts, note=note),
        Case(sec, "compute_cavs", f"{what}, FastCAVClassifier (class means)",
             lambda: ic.TCAV(model, [layer], classifier="fastcav").compute_cavs(ours_sets),
             lambda: _captum_cavs(model, layer, theirs_sets), floor_acts, extra={"plain loop": plain_loop},
             note=fast_note),
    ]


def cases(quick: bool = False) -> list[Case]:
    n, n_sets = (20, 5) if quick else (50, 20)
    model = _model()
    g = torch.Generator().manual_seed(0)
    data = [torch.rand(n, 3, 32, 32, generator=g) for _ in range(n_sets + 1)]
    features = [torch.randn(n, 16, 32, 32, generator=g) for _ in range(n_sets + 1)]
    sec = f"Concepts (TCAV): {n_sets} experimental sets, {n} examples per concept, 16,384-feature layers"
    out = [*_cav_cases(sec, model, "1", data, "conv + ReLU on images", True),
           *_cav_cases(sec, _probe(), "0", features, "ReLU on feature maps", False)]
    ours_c = [ic.Concept(i, f"c{i}", [x]) for i, x in enumerate(data)]
    theirs_c = [cc.Concept(i, f"c{i}", [x]) for i, x in enumerate(data)]
    ours_sets = [[ours_c[i], ours_c[-1]] for i in range(n_sets)]
    theirs_sets = [[theirs_c[i], theirs_c[-1]] for i in range(n_sets)]
    x = torch.rand(64, 3, 32, 32, generator=g)
    ready: dict[str, Any] = {}

    def trained(lib: str) -> Any:
        """The TCAV of ``lib`` with its CAVs computed, built on first use (collecting cases stays cheap)."""
        if lib not in ready:
            if lib == "ours":
                ready[lib] = ic.TCAV(model, ["1"])
                ready[lib].compute_cavs(ours_sets)
            else:
                folder = tempfile.mkdtemp(prefix="captum_cav_bench_")
                atexit.register(shutil.rmtree, folder, True)
                ready[lib] = cc.TCAV(model, ["1"], save_path=folder + "/")
                ready[lib].compute_cavs(theirs_sets)
        return ready[lib]

    out.append(Case(sec, "interpret", "64 inputs, target=0, CAVs computed beforehand",
                    lambda: trained("ours").interpret(x, ours_sets, target=0),
                    lambda: trained("captum").interpret(x, theirs_sets, target=0), floor_backward(model, x, 0),
                    note="Captum reloads each CAV file per call (its cache is the disk); floor: one forward+"
                         "backward over the inputs"))
    return out
