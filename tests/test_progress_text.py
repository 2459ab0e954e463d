"""Progress bars read as Captum's: ``<Get Name> attribution`` (e.g. ``Feature Ablation attribution``).

Output that users or their tests read keeps its form. The number of steps differs (intellego evaluates many
perturbations per model call), the description does not. Checked against Captum 0.9 per class.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import intellego.attr as ia

ca = pytest.importorskip("captum.attr")
pytest.importorskip("tqdm")

X = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


CASES: dict[str, Any] = {
    "FeatureAblation": lambda lib, m: lib.FeatureAblation(m).attribute(X, target=0, show_progress=True),
    "FeaturePermutation": lambda lib, m: lib.FeaturePermutation(m).attribute(X, target=0, show_progress=True),
    "Occlusion": lambda lib, m: lib.Occlusion(m).attribute(X, (2,), target=0, show_progress=True),
    "ShapleyValueSampling": lambda lib, m: lib.ShapleyValueSampling(m).attribute(X, target=0, n_samples=2,
                                                                                 show_progress=True),
    "ShapleyValues": lambda lib, m: lib.ShapleyValues(m).attribute(X, target=0, show_progress=True),
    "Lime": lambda lib, m: lib.Lime(m).attribute(X, target=0, n_samples=8, show_progress=True),
    "KernelShap": lambda lib, m: lib.KernelShap(m).attribute(X, target=0, n_samples=8, show_progress=True),
    "DataLoaderAttribution": lambda lib, m: lib.DataLoaderAttribution(lib.FeatureAblation(m)).attribute(
        DataLoader(TensorDataset(X), batch_size=2), to_metric=lambda out: out[:, 0].sum(), show_progress=True),
}


def _descriptions(err: str) -> set[str]:
    return set(re.findall(r"(?:^|[\r\n])([^\r\n:]+): +\d+%", err))


@pytest.mark.parametrize("name", sorted(CASES))
def test_progress_description_is_captums(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    CASES[name](ca, _model())
    theirs = _descriptions(capsys.readouterr().err)
    CASES[name](ia, _model())
    ours = _descriptions(capsys.readouterr().err)
    if name == "DataLoaderAttribution":
        # Captum accepts show_progress here and shows nothing; ours shows its inner method's bar, in Captum's form.
        assert not theirs and ours == {"Feature Ablation attribution"}
    else:
        assert theirs and ours == theirs


def test_get_name_is_captums() -> None:
    for name in ("IntegratedGradients", "LayerGradCam", "LLMAttribution", "FeatureAblation", "NoiseTunnel"):
        assert getattr(ia, name).get_name() == getattr(ca, name).get_name()
    assert ia.FeatureAblation.get_name() == "Feature Ablation"
