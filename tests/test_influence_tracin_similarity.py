"""SimilarityInfluence: brute-force oracle, Captum parity (where Captum works), disk round trip, errors, hygiene."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from _hygiene import assert_same, snapshot
from intellego.errors import IntellegoError
from intellego.influence import SimilarityInfluence
from intellego.influence.similarity import cosine_similarity, euclidean_distance


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    x = torch.randn(40, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return model, x, TensorDataset(x, torch.zeros(40))


def test_topk_equals_brute_force_over_all_pairs() -> None:
    model, x, ds = _setup()
    out = SimilarityInfluence(model, ["0", "2"], ds, batch_size=7).influence(x[:5], top_k=4)
    with torch.no_grad():
        acts = {"0": model[0](x), "2": model(x)}
    for layer, act in acts.items():
        sim = nn.functional.cosine_similarity(act[:5, None], act[None], dim=2)
        idx, val = out[layer]
        torch.testing.assert_close(val, sim.topk(4, dim=1).values)
        assert torch.equal(idx[:, 0], torch.arange(5))  # each example is its own nearest neighbour
    far = SimilarityInfluence(model, "2", ds, similarity_metric=euclidean_distance, similarity_direction="min")
    idx, val = far.influence(x[:5], top_k=3)["2"]
    d = torch.cdist(acts["2"][:5], acts["2"])
    torch.testing.assert_close(val, d.topk(3, dim=1, largest=False).values)


def test_activations_round_trip_through_a_directory(tmp_path) -> None:
    model, x, ds = _setup()
    first = SimilarityInfluence(model, ["0", "2"], ds, str(tmp_path), model_id="m").influence(x[:3], top_k=2)
    assert (tmp_path / "m" / "src" / "0.pt").is_file()
    other, _, _ = _setup()
    with torch.no_grad():
        other[0].weight.mul_(-1)
    # loaded from disk: the activations of the first model, whatever the second computes for the inputs
    again = SimilarityInfluence(model, ["0", "2"], ds, str(tmp_path), model_id="m").influence(x[:3], top_k=2)
    for k in first:
        torch.testing.assert_close(first[k], again[k])


def test_zero_activations_get_replace_nan_exactly_and_global_indices() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[0].bias.zero_()
    src = TensorDataset(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]), torch.zeros(3))
    with pytest.warns(RuntimeWarning, match="zero activation vectors"):
        out = SimilarityInfluence(model, "1", src, batch_size=1).influence(torch.tensor([[1.0, 1.0]]), top_k=3)
    assert out["1"][1].tolist()[0][-1] == -2.0  # the zero vector's pair: replace_nan exactly
    assert out["zero_acts-1"].tolist() == [[0, 2]]  # source index 2 of the dataset, not of its batch
    assert cosine_similarity(torch.zeros(1, 2), torch.ones(1, 2), replace_nan=5).item() == 5


def test_parity_with_captum_and_captums_single_layer_failure(tmp_path) -> None:
    ci = pytest.importorskip("captum.influence")
    model, x, ds = _setup()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ci.SimilarityInfluence(model, ["0", "2"], ds, str(tmp_path), batch_size=8).influence(x[:4], top_k=3)
        single = ci.SimilarityInfluence(model, ["2"], ds, str(tmp_path / "s"), batch_size=8)
        with pytest.raises(AttributeError):  # Captum 0.9 wraps a one-layer list twice and fails
            single.influence(x[:4], top_k=3)
    ours = SimilarityInfluence(model, ["0", "2"], ds).influence(x[:4], top_k=3)
    for k in theirs:
        assert torch.equal(theirs[k][0], ours[k][0])
        torch.testing.assert_close(theirs[k][1], ours[k][1], atol=1e-5, rtol=1e-5)
    assert SimilarityInfluence(model, ["2"], ds).influence(x[:4], top_k=3)["2"][0].shape == (4, 3)


def test_errors_and_hygiene() -> None:
    model, x, ds = _setup()
    with pytest.raises(IntellegoError, match="layer 'fc' in `layers` is not in the model"):
        SimilarityInfluence(model, "fc", ds)
    with pytest.raises(IntellegoError, match="similarity_direction must be 'max' or 'min'"):
        SimilarityInfluence(model, "0", ds, similarity_direction="up")
    sim = SimilarityInfluence(model, "0", ds, similarity_metric=lambda a, b: a @ b.T[:, :1])
    with pytest.raises(IntellegoError, match=r"similarity_metric must return shape \(inputs, source batch\)"):
        sim.influence(x[:2])
    with pytest.warns(UserWarning, match=r"k=41 is larger than the source dataset \(40 examples\): all 40"):
        got = SimilarityInfluence(model, "0", ds).influence(x[:2], top_k=41)
    idx, _ = got["0"]
    assert idx.shape == (2, 40) and all(sorted(row.tolist()) == list(range(40)) for row in idx)
    model.train()
    before = snapshot(model, (x,))
    SimilarityInfluence(model, ["0", "2"], ds).influence(x[:2], top_k=2)
    assert_same(before, snapshot(model, (x,)))


def test_every_layer_with_a_zero_activation_is_reported_where_captum_reports_the_last_only(tmp_path) -> None:
    """No biases: the all-zero source example has the zero vector at both layers, so its cosine similarities are
    undefined at both; Captum (0.9) lists it under the second layer only."""
    ci = pytest.importorskip("captum.influence")
    model = nn.Sequential(nn.Linear(4, 5, bias=False), nn.ReLU(), nn.Linear(5, 1, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(0.02)
        model[2].weight.fill_(0.02)
    src = torch.arange(16.0).repeat(4, 1).T
    inputs = src[[1, 8, 14]]
    with pytest.warns(RuntimeWarning):
        ours = SimilarityInfluence(model, ["1", "2"], TensorDataset(src), str(tmp_path / "a"), batch_size=8
                                   ).influence(inputs, top_k=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ci.SimilarityInfluence(model, ["1", "2"], _Rows(src), str(tmp_path / "b"), batch_size=8
                                        ).influence(inputs, top_k=3)
    zero = [[i, 0] for i in range(3)]
    assert ours["zero_acts-1"].tolist() == ours["zero_acts-2"].tolist() == zero
    assert "zero_acts-1" not in theirs and theirs["zero_acts-2"].tolist() == zero
    assert bool((model[1](model[0](src[:1])) == 0).all())  # the zero vector at layer "1" that Captum misses


class _Rows(torch.utils.data.Dataset):
    """Bare rows (Captum's SimilarityInfluence reads each item as the input itself)."""

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.rows[i]
