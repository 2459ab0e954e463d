"""Every robust attack and metric leaves the model and the caller's tensors as it found them, after success and
after an error (training flags, buffers, hooks, ``.grad``, ``requires_grad``, grad mode)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import intellego.robust as robust
from _hygiene import Exploding, assert_same, snapshot

pytestmark = pytest.mark.usefixtures("one_thread")


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.0), nn.Linear(6, 3))
    model.train()
    next(model.parameters()).grad = torch.ones_like(next(model.parameters()))
    return model


def make_input() -> torch.Tensor:
    x = torch.rand(5, 4, requires_grad=True)
    x.grad = torch.full_like(x, 2.0)
    return x


LABELS = torch.tensor([0, 1, 2, 0, 1])

CALLS: dict[str, Callable[[nn.Module, torch.Tensor], Any]] = {
    "FGSM": lambda m, x: robust.FGSM(m, lower_bound=0, upper_bound=1).perturb(x, 0.1, LABELS),
    "PGD": lambda m, x: robust.PGD(m).perturb(x, 0.1, 0.05, 3, LABELS, norm="L2", random_start=True),
    "PGD-early": lambda m, x: robust.PGD(m).perturb(x, 0.3, 0.1, 3, LABELS, early_stop=True, random_start=True,
                                                    restarts=2),
}


FAIL_ON = {"FGSM": 1, "PGD-early": 1}  # the model call that raises (the second one where there is one)


def register(name: str, call: Callable[[nn.Module, torch.Tensor], Any]) -> None:
    CALLS[name] = call


def _extend() -> None:
    """Cases for the classes added after the first attacks (kept here so each is listed once)."""
    names = set(robust.__all__)
    if "MinParamPerturbation" in names:
        register("MinParamPerturbation", lambda m, x: robust.MinParamPerturbation(
            m, robust.FGSM(m), "epsilon", 0.0, 1.0, 0.25).evaluate(x, target=LABELS,
                                                                    attack_kwargs={"target": LABELS}))
        # batch norm in training mode needs two rows: the wrapper doubles every batch (one-row groups occur)
        register("MinParamPerturbation-per-example", lambda m, x: robust.MinParamPerturbation(
            _doubled(m), robust.FGSM(_doubled(m)), "epsilon", 0.0, 1.0, 0.25, mode="binary").evaluate(
            x, target=LABELS, attack_kwargs={"target": LABELS}, per_example=True))
    if "AttackComparator" in names:
        def compare(m: nn.Module, x: torch.Tensor) -> Any:
            cmp = robust.AttackComparator(m, lambda out, target: (out.argmax(1) == target).float())
            cmp.add_attack(robust.FGSM(m), "fgsm", attack_kwargs={"epsilon": 0.1},
                           additional_attack_arg_names=["target"])
            cmp.add_attack(lambda t: t + 0.01 * torch.randn_like(t), "noise", num_attempts=2)
            return cmp.evaluate(x, target=LABELS)
        register("AttackComparator", compare)
    for name in ("APGD", "CWL2", "DeepFool"):
        if name in names:
            cls = getattr(robust, name)
            # batch norm in training mode needs two rows; finished examples leave the batch
            register(name, lambda m, x, cls=cls: cls(_doubled(m), lower_bound=0.0, upper_bound=1.0).perturb(
                x, target=LABELS, **_small(cls)))


def _doubled(m: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(t: torch.Tensor) -> torch.Tensor:
        return m(t.repeat(2, 1))[:t.shape[0]]
    return forward


def _small(cls: type) -> dict[str, Any]:
    return {"APGD": {"radius": 0.1, "step_num": 3}, "CWL2": {"step_num": 3}, "DeepFool": {"step_num": 3}}[cls.__name__]


_extend()


def test_every_public_attack_and_metric_has_a_case():
    public = {n for n in robust.__all__ if isinstance(getattr(robust, n), type)} - {"Perturbation"}
    assert public <= {name.split("-")[0] for name in CALLS}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_call_leaves_model_and_inputs_unchanged(name):
    model, x = bn_model(), make_input()
    before = snapshot(model, (x,))
    CALLS[name](model, x)
    assert_same(before, snapshot(model, (x,)))


@pytest.mark.parametrize("name", sorted(CALLS))
def test_failed_call_leaves_model_and_inputs_unchanged(name):
    inner, x = bn_model(), make_input()
    model = Exploding(inner, fail_on=FAIL_ON.get(name, 2))
    before = snapshot(inner, (x,))
    with pytest.raises(RuntimeError, match="boom"):
        CALLS[name](model, x)
    assert_same(before, snapshot(inner, (x,)))
    assert torch.is_grad_enabled()
