"""intellego.concept against Captum 0.9: same scores given the same CAVs, same names and signatures.

Where Captum differs on purpose (the "magnitude" score, the save path default), the difference is pinned.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import intellego.concept as ic
from intellego.errors import IntellegoError

cc = pytest.importorskip("captum.concept")


pytestmark = pytest.mark.usefixtures("one_thread")


class FixedCAVs:
    """A classifier with Captum's interface whose weights depend only on the labels it sees, so both libraries
    get identical CAVs. Rows come in a shuffled class order to exercise the reordering to concept order."""

    def __init__(self, features: dict[str, int]) -> None:
        self.features = features
        self.layer_calls = 0

    def train_and_eval(self, dataloader, **kwargs):  # type: ignore[no-untyped-def]
        xs, ys = zip(*dataloader)
        self.f = torch.cat(xs).shape[1]
        self.labels = sorted({int(v) for y in ys for v in y})
        return {"accs": torch.tensor(1.0)}

    def weights(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(sum(self.labels) * 1000 + self.f)
        return torch.randn(len(self.labels), self.f, generator=g, dtype=torch.float64)

    def classes(self) -> list[int]:
        return self.labels[::-1]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 10), nn.Softplus(), nn.Linear(10, 3)).double()


def _concepts() -> list:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, 6, generator=g, dtype=torch.float64) + k for k, n in enumerate((15, 12, 9, 11))]


def test_scores_match_captum_given_the_same_cavs(tmp_path):
    model, data = _model(), _concepts()
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    target = torch.arange(40) % 3
    ours_c = [ic.Concept(i, f"c{i}", [d]) for i, d in enumerate(data)]
    theirs_c = [cc.Concept(i, f"c{i}", [d]) for i, d in enumerate(data)]
    sets = [[0, 1], [2, 3], [1, 3, 0], [3, 2]]
    ours = ic.TCAV(model, ["1", "3"], classifier=FixedCAVs({})).interpret(
        x, [[ours_c[i] for i in s] for s in sets], target=target.tolist(), magnitude="mean")
    theirs = cc.TCAV(model, ["1", "3"], classifier=FixedCAVs({}), save_path=str(tmp_path) + "/").interpret(
        x, [[theirs_c[i] for i in s] for s in sets], target=target.tolist())
    assert set(ours) == set(theirs) == {"0-1", "2-3", "1-3-0", "3-2"}
    for key in theirs:
        for layer in ("1", "3"):
            torch.testing.assert_close(ours[key][layer]["sign_count"].float(), theirs[key][layer]["sign_count"])
            torch.testing.assert_close(ours[key][layer]["magnitude"].float(), theirs[key][layer]["magnitude"],
                                       rtol=1e-5, atol=1e-6)


def test_layer_method_built_without_a_layer_as_captums_tcav_tutorial_does(tmp_path):
    """TCAV_Image builds ``LayerIntegratedGradients(model, None, multiply_by_inputs=False)``: TCAV sets the layer
    (ours raised at construction); the scores equal Captum's given the same CAVs."""
    from captum.attr import LayerIntegratedGradients as TheirLIG

    from intellego.attr import LayerIntegratedGradients

    model, data = _model(), _concepts()
    x = torch.randn(20, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ours_c = [ic.Concept(i, f"c{i}", [d]) for i, d in enumerate(data)]
    theirs_c = [cc.Concept(i, f"c{i}", [d]) for i, d in enumerate(data)]
    sets = [[0, 1], [2, 3, 1]]
    method = LayerIntegratedGradients(model, None, multiply_by_inputs=False)
    ours = ic.TCAV(model, ["1", "3"], classifier=FixedCAVs({}), layer_attr_method=method).interpret(
        x, [[ours_c[i] for i in s] for s in sets], target=2, n_steps=5, magnitude="mean")
    theirs = cc.TCAV(model, ["1", "3"], classifier=FixedCAVs({}), save_path=str(tmp_path) + "/",
                     layer_attr_method=TheirLIG(model, None, multiply_by_inputs=False)).interpret(
        x, [[theirs_c[i] for i in s] for s in sets], target=2, n_steps=5)
    for key in theirs:
        for layer in ("1", "3"):
            for score in ("sign_count", "magnitude"):
                torch.testing.assert_close(ours[key][layer][score].float(), theirs[key][layer][score],
                                           rtol=1e-5, atol=1e-6)
    with pytest.raises(IntellegoError, match="layer=None"):
        method.attribute(x, target=0)  # never set on the method itself: TCAV works on copies
    with pytest.raises(IntellegoError, match="layer must be a torch.nn.Module"):
        method.layer = "1"


def test_magnitude_is_the_documented_ratio_not_captums_mean(tmp_path):
    model, data = _model(), _concepts()
    x = torch.randn(30, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ours = ic.TCAV(model, "3", classifier=FixedCAVs({})).interpret(
        x, [[ic.Concept(i, "c", [data[i]]) for i in (0, 1)]], target=2)["0-1"]["3"]
    theirs = cc.TCAV(model, "3", classifier=FixedCAVs({}), save_path=str(tmp_path) + "/").interpret(
        x, [[cc.Concept(i, "c", [data[i]]) for i in (0, 1)]], target=2)["0-1"]["3"]
    # Captum's docstring: magnitude = SUM(ABS(TCAV * (TCAV > 0))) / SUM(ABS(TCAV)): in [0, 1], summing to 1 over
    # the two concepts of a set (their CAVs are w and -w here only for Captum's default classifier; ours are any).
    assert ((ours["magnitude"] >= 0) & (ours["magnitude"] <= 1)).all()
    assert not torch.allclose(ours["magnitude"].float(), theirs["magnitude"], atol=1e-3)
    assert (theirs["magnitude"] < 0).any() or (theirs["magnitude"].abs() > 1).any()  # a plain signed mean


def test_captum_names_and_signatures_are_kept():
    for name in cc.__all__:
        assert hasattr(ic, name), name

    def params(fn):  # type: ignore[no-untyped-def]
        return [p for p in inspect.signature(fn).parameters if p not in ("self", "kwargs", "classifier_kwargs")]

    for cls, meth in [("TCAV", "__init__"), ("TCAV", "interpret"), ("TCAV", "compute_cavs"),
                      ("TCAV", "load_cavs"), ("TCAV", "generate_activation"), ("CAV", "__init__"),
                      ("CAV", "load"), ("CAV", "assemble_save_path"), ("Concept", "__init__")]:
        theirs = params(getattr(getattr(cc, cls), meth))
        ours = params(getattr(getattr(ic, cls), meth))
        assert ours[:len(theirs)] == theirs, (cls, meth, ours, theirs)
    captum_default = inspect.signature(cc.TCAV.__init__).parameters["save_path"].default
    assert captum_default == "./cav/" and inspect.signature(ic.TCAV.__init__).parameters["save_path"].default is None


def test_a_captum_program_ports_by_renaming_the_imports(tmp_path, monkeypatch):
    """Captum's tutorial pattern (DataLoader concepts, layer names, sets with shared random concepts)."""
    monkeypatch.chdir(tmp_path)
    from torch.utils.data import TensorDataset

    from intellego.concept._utils.data_iterator import dataset_to_dataloader

    model, data = _model(), _concepts()
    concepts = [ic.Concept(i, f"c{i}", dataset_to_dataloader(TensorDataset(d), batch_size=4))
                for i, d in enumerate(data)]
    tcav = ic.TCAV(model=model, layers=["1", "3"])
    scores = tcav.interpret(inputs=data[0][:5], experimental_sets=[[concepts[0], concepts[3]],
                                                                   [concepts[1], concepts[3]]], target=0)
    assert {k: sorted(v) for k, v in scores.items()} == {"0-3": ["1", "3"], "1-3": ["1", "3"]}
    assert all(torch.isclose(s["sign_count"].sum(), torch.tensor(1.0, dtype=torch.float64))
               for v in scores.values() for s in v.values())
    assert list(tmp_path.iterdir()) == []  # Captum would have written ./cav/ here


def test_loaded_cav_keeps_its_model_id_and_path_where_captums_forgets_them(tmp_path):
    """A CAV read back by ``CAV.load(path, model_id, ...)`` carries that path and model id (its ``save()`` writes
    where it was read from); Captum's comes back with the defaults ("./cav/", "default_model_id"), so saving it
    again would write into another model's folder (seen in TCAV_NLP when a second TCAV reloads its CAVs)."""
    for mod in (ic, cc):
        path = str(tmp_path / mod.__name__)
        concepts = [mod.Concept(0, "a", None), mod.Concept(1, "b", None)]
        mod.CAV.create_cav_dir_if_missing(path, "mine")
        mod.CAV(concepts, "fc", {"weights": torch.eye(2), "classes": [0, 1]}, path, "mine").save()
        loaded = mod.CAV.load(path, "mine", concepts, "fc")
        torch.testing.assert_close(loaded.stats["weights"], torch.eye(2))
        if mod is ic:
            assert (loaded.model_id, loaded.save_path) == ("mine", path)
        else:
            assert (loaded.model_id, loaded.save_path) == ("default_model_id", "./cav/")
