"""The zoo (``tests/zoo.py``: real ``transformers`` architectures, tiny configs, seeded random weights): every
method family per model against Captum beside the floor, and a completeness table per model.

Run with ``python -m benchmarks.run --only zoo``. The zoo builder stays in ``tests/zoo.py`` (one copy; the tests
use it too), so ``tests/`` goes on the path here.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import captum.attr as ca
import torch

import intellego.attr as ia

from .harness import Case, floor_backward, floor_forward, quiet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import zoo  # noqa: E402

T = 1  # target class / next token
BATCH = 4
NAMES = {"resnet": "ResNet", "convnext": "ConvNeXt", "vit": "ViT", "swin": "Swin", "mobilenet_v2": "MobileNetV2",
         "efficientnet": "EfficientNet", "bert": "BERT", "llama": "Llama", "gpt2": "GPT-2"}
Make = Callable[[Any], Any]  # the library (intellego.attr or captum.attr) -> an attribution object
Call = Callable[[Any], Any]  # the attribution object -> its result


def _failure(fn: Callable[[], Any]) -> str | None:
    """None when ``fn()`` runs, else ``"error: <type>: <first line>"`` (Captum's failures are shown, not hidden)."""
    try:
        quiet(fn)()
    except Exception as exc:  # noqa: BLE001 - any failure of the peer is reported in the table
        first = str(exc).splitlines()[0] if str(exc) else ""
        return f"error: {type(exc).__name__} ({_short(first)})"
    return None


def _pair(sec: str, name: str, setting: str, make: Make, call: Call, floor: Callable[[], Any], note: str = "") -> Case:
    ours, theirs = make(ia), make(ca)
    case = Case(sec, name, setting, quiet(lambda: call(ours)), quiet(lambda: call(theirs)), floor, note=note,
                cpu_clock=True, spread=True)
    failed = _failure(case.captum)  # type: ignore[arg-type]
    if failed is not None:
        case.captum, case.note = None, f"Captum {failed}" + (f"; {note}" if note else "")
    return case


def _mask(x: torch.Tensor) -> torch.Tensor:
    """Feature groups: image quadrants, or one group per token."""
    if x.dim() == 4:
        h, w = x.shape[2:]
        quad = 2 * (torch.arange(h) >= h // 2).long()[:, None] + (torch.arange(w) >= w // 2).long()[None, :]
        return quad[None, None].expand(1, x.shape[1], h, w)
    return torch.arange(x.shape[1])[None, :, None].expand(1, *x.shape[1:])


def _model_cases(name: str, quick: bool) -> list[Case]:
    model, x = zoo.build(name, batch=BATCH)
    ly = zoo.layer(model, name)
    steps, samples = (4, 4) if quick else (8, 4)
    base = 0.25 * x  # RMSNorm's reference at an all-zero input is degenerate (see tests/test_zoo_rules.py)
    shape = "3x32x32" if x.dim() == 4 else f"{x.shape[1]} tokens x {x.shape[2]} embedding"
    sec = f"Zoo: {NAMES[name]} (transformers), {shape}, batch {BATCH}"
    fb, rep = floor_backward(model, x, T), (lambda k: floor_backward(model, x.repeat(k, *[1] * (x.dim() - 1)), T))
    refs = torch.cat([base, 0.5 * base])
    groups = int(_mask(x).max()) + 1
    out = [
        _pair(sec, "Saliency", name, lambda m: m.Saliency(model), lambda a: a.attribute(x, target=T), fb),
        _pair(sec, "InputXGradient", name, lambda m: m.InputXGradient(model), lambda a: a.attribute(x, target=T), fb),
        _pair(sec, "IntegratedGradients", f"{name}, n_steps={steps}", lambda m: m.IntegratedGradients(model),
              lambda a: a.attribute(x, target=T, n_steps=steps), rep(steps)),
        _pair(sec, "GradientShap", f"{name}, n_samples={samples}", lambda m: m.GradientShap(model),
              lambda a: a.attribute(x, refs, target=T, n_samples=samples), rep(samples)),
        _pair(sec, "NoiseTunnel(Saliency)", f"{name}, nt_samples={samples}", lambda m: m.NoiseTunnel(m.Saliency(model)),
              lambda a: a.attribute(x, target=T, nt_samples=samples, stdevs=0.1), rep(samples)),
        _pair(sec, "GuidedBackprop", name, lambda m: m.GuidedBackprop(model), lambda a: a.attribute(x, target=T), fb),
        _pair(sec, "Deconvolution", name, lambda m: m.Deconvolution(model), lambda a: a.attribute(x, target=T), fb),
        _pair(sec, "DeepLift", name, lambda m: m.DeepLift(model), lambda a: a.attribute(x, base, target=T),
              floor_backward(model, torch.cat([x, base]), T)),
        _pair(sec, "LRP", name, lambda m: m.LRP(model), lambda a: a.attribute(x, target=T), fb),
        _pair(sec, "LayerIntegratedGradients", f"{name}, n_steps={steps}",
              lambda m: m.LayerIntegratedGradients(model, ly), lambda a: a.attribute(x, target=T, n_steps=steps),
              rep(steps)),
        _pair(sec, "FeatureAblation", f"{name}, {groups} groups", lambda m: m.FeatureAblation(model),
              lambda a: a.attribute(x, target=T, feature_mask=_mask(x), perturbations_per_eval=groups),
              floor_forward(model, x.repeat(groups + 1, *[1] * (x.dim() - 1)))),
    ]
    if name in zoo.CONV:
        out += [
            _pair(sec, "LayerGradCam", name, lambda m: m.LayerGradCam(model, ly), lambda a: a.attribute(x, target=T),
                  fb),
            _pair(sec, "GuidedGradCam", name, lambda m: m.GuidedGradCam(model, ly),
                  lambda a: a.attribute(x, target=T), fb),
        ]
    for case in out:
        case.note = NOTES.get((name, case.name), case.note)
    _strip_rules(model)
    return out


def _strip_rules(model: torch.nn.Module) -> None:
    """Captum's LRP sets a ``rule`` attribute on the modules it visits and leaves them there when it then raises
    (on every zoo model, see the completeness table); ours refuses a model carrying foreign rules, so the
    leftovers of Captum's failed probe are removed before the timings."""
    for m in model.modules():
        if "rule" in vars(m):
            del m.rule


# what was found, per (model, method); filled in from the measurements (see the notes section)
NOTES: dict[tuple[str, str], str] = {}


def cases(quick: bool = False, only: str = "") -> list[Case]:
    """Every model's rows; with ``only`` naming models (``--only "zoo: vit"``), only theirs are built."""
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
    heads = {name: f"zoo: {NAMES[name]} (transformers)".lower() for name in zoo.ZOO}
    chosen = [n for n, h in heads.items() if only.lower() in h]
    if not chosen and "zoo" not in only.lower():  # a filter on method names: every model
        chosen = list(zoo.ZOO)
    return [case for name in chosen for case in _model_cases(name, quick)]


# ------------------------------------------------------------------------------------------------ completeness
def _score(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)[:, T]


def _gap(attr_of: Callable[[], torch.Tensor], expected: torch.Tensor) -> str:
    """``max over the batch of |sum(attr) - expected| / |expected|``, or Captum's error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attr = attr_of()
    except Exception as exc:  # noqa: BLE001 - the peer's failure is a result here
        first = str(exc).splitlines()[0] if str(exc) else ""
        return f"error: {type(exc).__name__} ({_short(first)})"
    rel = (attr.flatten(1).sum(1) - expected).abs() / expected.abs()
    return f"{rel.max().item():.1e}"


def _short(message: str) -> str:
    """Captum's LRP message names the module type without a rule: keep that much."""
    if "has no rule" in message and "<class '" in message:
        return "no rule for " + message.split("<class '")[1].split("'")[0].rsplit(".", 1)[-1]
    return message[:80]


def _completeness_row(name: str, steps: int) -> str:
    model, x = zoo.build(name, batch=BATCH, dtype=torch.float64)
    zero, base = torch.zeros_like(x), 0.25 * x
    ig_gap, dl_gap = _score(model, x) - _score(model, zero), _score(model, x) - _score(model, base)
    out = _score(model, x)
    free = zoo.bias_free(zoo.build(name, batch=BATCH, dtype=torch.float64)[0])
    cells = [NAMES[name]]
    for lib in (ia, ca):
        cells.append(_gap(lambda lib=lib: lib.IntegratedGradients(model).attribute(x, target=T, n_steps=steps), ig_gap))
    for lib in (ia, ca):
        cells.append(_gap(lambda lib=lib: lib.DeepLift(model).attribute(x, base, target=T), dl_gap))
    for lib in (ia, ca):
        cells.append(_gap(lambda lib=lib: lib.LRP(model).attribute(x, target=T), out))
    cells.append(_gap(lambda: ia.LRP(free).attribute(x, target=T), _score(free, x)))
    return "| " + " | ".join(cells) + " |"


def completeness(quick: bool = False) -> str:
    steps = 8 if quick else 32
    head = ["model", f"IG ours (n_steps={steps})", "IG Captum", "DeepLift ours", "DeepLift Captum", "LRP ours",
            "LRP Captum", "LRP ours, bias-free"]
    rows = [_completeness_row(name, steps) for name in zoo.ZOO]
    return "\n".join([
        f"Float64, batch {BATCH}, target {T}; each cell is the largest relative gap over the batch, "
        "|sum(attr) - (f(x) - f(baseline))| / |f(x) - f(baseline)|, for LRP |sum(relevance) - f(x)| / |f(x)|. "
        "IG: baseline zero, Gauss-Legendre (both libraries' default); DeepLift: baseline 0.25 x (an all-zero "
        "input is a degenerate reference for RMSNorm); LRP: the default epsilon rules.",
        "",
        "| " + " | ".join(head) + " |", "|" + "---|" * len(head), *rows, "",
        *COMPLETENESS_NOTES,
    ])


COMPLETENESS_NOTES = [
    "- Exact by construction: our DeepLift (the rescale rule on activations and exact forms for products, gates, "
    "LayerNorm, RMSNorm and attention; `docs/rules.md`), asserted in `tests/test_zoo_rules.py::"
    "test_deeplift_is_complete`; and our LRP on the bias-free models (biases, norm shifts and position tables "
    "zeroed: biases absorb relevance by design), asserted to 1e-5 in `tests/test_zoo_rules.py::"
    "test_lrp_conserves_relevance_without_biases`. LRP with biases is not meant to conserve; its column shows how "
    "much the biases take.",
    "- Integrated Gradients is a quadrature: its gap shrinks with `n_steps` in both libraries (the same rule, so "
    "the same gap to rounding); it is checked against its own convergence delta, not asserted small.",
    "- Captum's DeepLift passes the plain gradient through every operation it has no module rule for (functional "
    "GELU/SiLU, products of activations, LayerNorm, attention), silently: its gap is the error that leaves. "
    "Captum's LRP refuses every zoo model (a module type without a rule), and leaves the `rule` attributes it had "
    "set on the modules it visited before raising (the benchmark removes them).",
]

def timing_notes(quick: bool = False) -> str:
    """How the zoo tables above were timed, and what the GuidedBackprop gap was."""
    return "\n".join(TIMING_NOTES)


TIMING_NOTES = [
    "How the `Zoo:` tables were timed: `nice python -m benchmarks.run --module zoo --only \"zoo: <model>\" --repeats 5`"
    " (EfficientNet and MobileNetV2 again with `--repeats 11`), three models at a time in separate processes, one "
    "torch thread, batch 4 of 32x32 images (or 6 token embeddings), on a 2-core machine shared with four other "
    "engineers' test runs (load average 8-11 while these ran). At that load the wall clock measures the scheduler, so"
    " these rows time the process's CPU time (`Case.cpu_clock`: with one torch thread the CPU backward pass runs in "
    "the calling thread, so this is the work each library does); ours, Captum and the floor run in interleaved rounds"
    " in rotating order, medians shown. The ratio column is the ratio of the medians and, in brackets, the 25th-75th "
    "percentile of the per-round ratio ours / Captum (each round's pair ran back to back): a bracket that contains "
    "1.00 is a difference within run noise, and at 5 rounds the brackets are wide. Captum's own failures are written "
    "in the notes (its LRP refuses every zoo model).",
    "",
    "Gradient-only methods (the issue reported GuidedBackprop, GuidedGradCam and Saliency 1.2-1.3x slower than Captum"
    " on EfficientNet/MobileNetV2 in single wall-clock measurements). Saliency and the other plain-gradient rows are "
    "noise: their brackets contain 1.00 and they sit at the floor (the fixed cost of a call, the input checks and the"
    " buffer walk of `public_call`, measured 0.3 ms of a 9 ms call on EfficientNet). GuidedBackprop and Deconvolution"
    " (and with them GuidedGradCam) were really slower: they ran the function-mode rule engine, in which every "
    "operation of the forward pass goes through Python (`TorchFunctionMode`), about 2 ms per call on EfficientNet's "
    "130 operations, while Captum only hooks `nn.ReLU` modules (EfficientNet's SiLU and MobileNetV2's ReLU6 are plain"
    " gradients in both libraries, so there both compute a plain gradient). Profiled with cProfile and CPU-time A/B "
    "runs (40 interleaved rounds, medians): EfficientNet forward+backward 9.2 ms, GuidedBackprop 11.8 ms before, 9.6 "
    "ms after; ResNet 3.3 / 4.7 / 3.7 ms. The fix: the ReLU rules are applied on the autograd graph a plain forward "
    "pass leaves (`intellego.engines.graph_rules`: every ReLU, module or functional, leaves a `ReluBackward0` node, "
    "which gets a gradient hook after the pass; a graph that hides a ReLU inside an in-place update of a view falls "
    "back to the function mode). Equality with the function-mode engine, the fallback and the untouched graph of a "
    "tensor made before the call are pinned in `tests/test_graph_rules.py`; no cache is involved. After it (the "
    "11-round runs), GuidedBackprop is 0.96x Captum on EfficientNet and 0.93x on MobileNetV2, at 1.03x and 1.00x the "
    "floor. GuidedGradCam's 1.14 on EfficientNet has a per-round bracket of 1.00-1.10 while its two parts in the same"
    " run, LayerGradCam and GuidedBackprop, are at 0.99 and 0.96: noise. The 5-round rows of other models still above"
    " 1.0 (GuidedBackprop on ConvNeXt and Swin, 1.09-1.10) are within the spread between two runs of the same row: "
    "EfficientNet's GuidedBackprop measured 1.09 (1.02-1.24) in the 5-round run and 0.96 in the 11-round one, both "
    "after the fix.",
    "",
    "DeepLift is 1.3-2.9x Captum's time on these models, and is not fixed here. Where the time goes (cProfile on BERT"
    " and ResNet): ours runs two forward passes, the baselines' recorded under `no_grad` and then the inputs' with "
    "each rule call paired with its reference, where Captum runs one pass over inputs and baselines concatenated; on "
    "models this small a forward pass is mostly Python (transformers' module code and the function mode), so the "
    "second pass doubles it; and ours runs the exact rules for LayerNorm, products of activations, softmax and "
    "attention (their own autograd nodes, local VJPs for max pooling) where Captum passes the plain gradient, which "
    "is why its completeness gap is 0.8-16 (relative) on these models and ours is 1e-6 or better (the table above). "
    "On the compute-bound benchmark ResNet at batch 16 (`Backward rules` above) ours is 0.6x Captum. A single batched"
    " pass for DeepLift is not the fix: a prototype of one pass over inputs and baselines concatenated (bit-identical"
    " results) saved 0-20% (ViT and EfficientNet within noise) and cannot be the default (a forward that branches on"
    " the whole batch would give a silently different answer instead of our error). Measured per part (CPU time, ms,"
    " MobileNetV2 / ViT): baselines' pass 12.5 / 1.3, inputs' pass 20.1 / 1.7, backward 6.2 / 2.1, against a plain"
    " no-grad forward of 7.6 / 0.8; the function mode alone adds 10-35% to a forward (transformers' `F.*` calls go"
    " through torch's override handling), the exact block rules cost 25-45% of our time on the transformers, and the"
    " rescale multipliers (35 ReLU6 calls on MobileNetV2, ~9 ms) are the rest. Like for like: Captum's DeepLift has"
    " module rules only for ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus, MaxPool and Softmax, so on MobileNetV2"
    " (ReLU6), EfficientNet (SiLU) and the transformers (GELU, LayerNorm, products, attention) it runs little more"
    " than a plain forward+backward (its time is 1.1-1.5x the floor there) and our exact rules are work it does not"
    " do; the ResNet, where both apply the rescale rule to the same nn.ReLU modules, is the like-for-like row (1.26,"
    " per-round spread 1.03-1.66). Closing the gap needs cheaper exact"
    " rules or an interception cheaper than a Python function mode. LRP has no Captum figure: Captum's LRP refuses"
    " every zoo model.",
]

TABLES: dict[str, Callable[[bool], str]] = {"Zoo: completeness per model, ours vs Captum": completeness,
                                            "Zoo: notes on the timings": timing_notes}
