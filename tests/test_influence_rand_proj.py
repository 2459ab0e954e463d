"""TracInCPFastRandProj as Captum's TracIn tutorial uses it: ``AnnoyNearestNeighbors`` under Captum's path and name
(exact search, so the neighbours are the brute-force top-k, where Captum's annoy trees miss some), and random
projections that differ from Captum's only by the draw."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from intellego.errors import IntellegoError
from intellego.influence import TracInCPFast, TracInCPFastRandProj
from intellego.influence._utils.nearest_neighbors import AnnoyNearestNeighbors, ExactNearestNeighbors


def _data(n: int, d: int, queries: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), torch.randn(queries, d, generator=g)


def test_annoy_name_is_exact_top_k_by_dot_product() -> None:
    data, query = _data(300, 12)
    index = AnnoyNearestNeighbors(num_trees=3)
    index.setup(data.reshape(300, 3, 4))  # stored tensors of any shape are flattened, as in Captum
    indices, scores = index.get_nearest_neighbors(query, k=7)
    brute = query @ data.T
    assert index.num_trees == 3 and isinstance(index, ExactNearestNeighbors)
    assert torch.equal(indices, brute.argsort(dim=1, descending=True)[:, :7])
    torch.testing.assert_close(scores, brute.gather(1, indices))


def test_captum_annoy_index_misses_true_neighbours_where_ours_is_exact() -> None:
    pytest.importorskip("annoy")
    captum_nn = pytest.importorskip("captum.influence._utils.nearest_neighbors")
    data, query = _data(2000, 100)
    exact = (query @ data.T).topk(10).indices
    theirs, ours = captum_nn.AnnoyNearestNeighbors(num_trees=10), AnnoyNearestNeighbors(num_trees=10)
    theirs.setup(data)
    ours.setup(data)
    got_theirs, got_ours = theirs.get_nearest_neighbors(query, 10)[0], ours.get_nearest_neighbors(query, 10)[0]
    recall = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(got_theirs, exact)) / exact.numel()
    assert recall < 0.9  # annoy's approximate trees (about 0.25 here)
    assert torch.equal(got_ours, exact)


def test_rand_proj_with_the_annoy_name_ranks_as_tracin_fast() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 5, generator=g), torch.randint(0, 3, (40,), generator=g)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    ckpts = [{k: v + 0.1 * i for k, v in model.state_dict().items()} for i in range(2)]
    loss = nn.CrossEntropyLoss(reduction="sum")
    ds = TensorDataset(x, y)
    rp = TracInCPFastRandProj(model, model[2], ds, ckpts, loss_fn=loss, nearest_neighbors=AnnoyNearestNeighbors(100))
    fast = TracInCPFast(model, model[2], ds, ckpts, loss_fn=loss)
    for proponents in (True, False):
        a = rp.influence((x[:4], y[:4]), k=6, proponents=proponents)
        b = fast.influence((x[:4], y[:4]), k=6, proponents=proponents)
        assert torch.equal(a.indices, b.indices)
        torch.testing.assert_close(a.influence_scores, b.influence_scores, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_num_trees_is_named(bad) -> None:
    with pytest.raises(IntellegoError, match="num_trees"):
        AnnoyNearestNeighbors(num_trees=bad)


def test_rand_proj_with_captums_projections_gives_captums_scores() -> None:
    captum_influence = pytest.importorskip("captum.influence")
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(30, 6, generator=g), torch.randint(0, 5, (30,), generator=g)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 5))
    ckpts = [{k: v * (1 + 0.2 * i) for k, v in model.state_dict().items()} for i in range(2)]
    loss, ds, test = nn.CrossEntropyLoss(reduction="sum"), TensorDataset(x, y), (x[:4], y[:4])

    def load(net: nn.Module, state: dict) -> float:
        net.load_state_dict(state)
        return 1.0

    torch.manual_seed(5)
    theirs = captum_influence.TracInCPFastRandProj(model, model[2], ds, ckpts, load, loss_fn=loss, batch_size=8,
                                                   nearest_neighbors=ExactNearestNeighbors(), projection_dim=9)
    ours = TracInCPFastRandProj(model, model[2], ds, ckpts, load, loss_fn=loss, projection_dim=9, seed=5)
    assert [p.shape for p in ours.projection_quantities] == [p.shape for p in theirs.projection_quantities]
    assert not torch.allclose(ours.influence(test, k=None), theirs.influence(test, k=None))  # another draw
    ours.projection_quantities = theirs.projection_quantities  # Captum's draw, through our computation
    ours.src_intermediate_quantities = ours.compute_intermediate_quantities(ds)
    ours.nearest_neighbors.setup(ours.src_intermediate_quantities)
    torch.testing.assert_close(ours.influence(test, k=None), theirs.influence(test, k=None), atol=1e-5, rtol=1e-5)
    for proponents in (True, False):
        a, b = ours.influence(test, k=5, proponents=proponents), theirs.influence(test, k=5, proponents=proponents)
        assert torch.equal(a.indices, b.indices)
