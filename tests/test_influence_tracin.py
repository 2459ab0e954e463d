"""TracInCP, TracInCPFast and TracInCPFastRandProj: brute-force oracles, Captum parity, axioms, errors, hygiene."""

from __future__ import annotations

import copy
import importlib
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _hygiene import assert_same, snapshot
from intellego.errors import IntellegoError
from intellego.influence import TracInCP, TracInCPFast, TracInCPFastRandProj
from intellego.influence.tracincp_fast import ExactNearestNeighbors

LRS = [0.1, 0.2, 0.3]


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(bias: bool = True) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3, bias=bias)).double()


def _setup(bias: bool = True, n: int = 30):
    model = _model(bias)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 5, generator=gen, dtype=torch.float64), torch.randint(0, 3, (n,), generator=gen)
    ckpts = []
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
        ckpts.append({k: v.clone() for k, v in model.state_dict().items()})

    def load(m: nn.Module, c: dict) -> float:
        m.load_state_dict(c)
        return LRS[[id(z) for z in ckpts].index(id(c))]

    return x, y, TensorDataset(x, y), ckpts, load


def _brute(bias: bool, x, y, ckpts, layer_names, tx, ty, lrs=LRS):
    """sum_c lr_c grad L(test) . grad L(train), one autograd.grad call per example and checkpoint."""
    scores = torch.zeros(len(tx), len(x), dtype=torch.float64)
    for lr, ckpt in zip(lrs, ckpts):
        model = _model(bias)
        model.load_state_dict(ckpt)
        params = [p for n, p in model.named_parameters() if layer_names is None or n.split(".")[0] in layer_names]

        def g(xi, yi, model=model, params=params):
            loss = nn.functional.cross_entropy(model(xi[None]), yi[None])
            return torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, params)])

        tg = torch.stack([g(tx[i], ty[i]) for i in range(len(tx))])
        trg = torch.stack([g(x[j], y[j]) for j in range(len(x))])
        scores += lr * tg @ trg.T
    return scores


@pytest.mark.parametrize("layers", [None, ["0"], ["2"]])
@pytest.mark.parametrize("sample_wise", [False, True])
def test_tracincp_equals_brute_force_loop(layers, sample_wise) -> None:
    x, y, ds, ckpts, load = _setup()
    loss = nn.CrossEntropyLoss(reduction="mean" if sample_wise else "none")
    tracin = TracInCP(_model(), ds, ckpts, load, layers=layers, loss_fn=loss, batch_size=7,
                      sample_wise_grads_per_batch=sample_wise)
    want = _brute(True, x, y, ckpts, layers, x[:4], y[:4])
    torch.testing.assert_close(tracin.influence((x[:4], y[:4])), want, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(tracin.self_influence(), torch.diagonal(_brute(True, x, y, ckpts, layers, x, y)),
                               atol=1e-10, rtol=1e-8)


def test_results_do_not_depend_on_batching_or_checkpoint_form(tmp_path) -> None:
    x, y, ds, ckpts, load = _setup()
    loss = nn.CrossEntropyLoss(reduction="none")
    ref = TracInCP(_model(), ds, ckpts, load, loss_fn=loss).influence((x[:3], y[:3]))
    loader = DataLoader(ds, batch_size=4)
    tiny = TracInCP(_model(), loader, ckpts, load, loss_fn=loss, memory_budget=1).influence(
        DataLoader(TensorDataset(x[:3], y[:3]), batch_size=2))
    torch.testing.assert_close(tiny, ref, atol=1e-12, rtol=1e-10)
    for i, (c, lr) in enumerate(zip(ckpts, LRS)):  # a directory of files, natural order, learning rate inside
        torch.save({**c, "learning_rate": lr}, tmp_path / f"ckpt_{[2, 10, 11][i]}.pt")
    from_dir = TracInCP(_model(), ds, str(tmp_path), loss_fn=loss).influence((x[:3], y[:3]))
    torch.testing.assert_close(from_dir, ref, atol=1e-12, rtol=1e-10)
    modules = []
    for c in ckpts:
        m = _model()
        m.load_state_dict(c)
        modules.append(m)
    batch = next(iter(DataLoader(TensorDataset(x[:3], y[:3]), batch_size=3)))  # a list, as collation gives it
    assert isinstance(batch, list)
    tracin = TracInCP(_model(), ds, ckpts, load, loss_fn=loss)
    torch.testing.assert_close(tracin.influence(batch), ref, atol=0, rtol=0)
    torch.testing.assert_close(tracin.self_influence(batch), tracin.self_influence((x[:3], y[:3])), atol=0, rtol=0)
    unit_lr = TracInCP(_model(), ds, modules, loss_fn=loss).influence((x[:3], y[:3]))
    torch.testing.assert_close(unit_lr, _brute(True, x, y, ckpts, None, x[:3], y[:3], lrs=[1.0] * 3),
                               atol=1e-10, rtol=1e-8)


def test_proponents_and_opponents_order_and_aggregate() -> None:
    x, y, ds, ckpts, load = _setup()
    tracin = TracInCP(_model(), ds, ckpts, load, loss_fn=nn.CrossEntropyLoss(reduction="none"), batch_size=8)
    scores = tracin.influence((x[:4], y[:4]))
    pro = tracin.influence((x[:4], y[:4]), k=5)
    opp = tracin.influence((x[:4], y[:4]), k=5, proponents=False)
    torch.testing.assert_close(pro.influence_scores, scores.sort(1, descending=True).values[:, :5])
    torch.testing.assert_close(opp.influence_scores, scores.sort(1).values[:, :5])
    torch.testing.assert_close(scores.gather(1, pro.indices), pro.influence_scores)
    assert bool((pro.influence_scores[:, :-1] >= pro.influence_scores[:, 1:]).all())
    agg = tracin.influence((x[:4], y[:4]), aggregate=True)
    torch.testing.assert_close(agg, scores.sum(0, keepdim=True))
    agg_k = tracin.influence((x[:4], y[:4]), k=3, aggregate=True, proponents=False)
    torch.testing.assert_close(agg_k.influence_scores, agg.sort(1).values[:, :3])
    q = tracin.compute_intermediate_quantities((x[:4], y[:4]))
    t = tracin.compute_intermediate_quantities(ds)
    # intermediate quantities carry lr once each side, so their products weigh checkpoint c by lr_c^2
    assert q.shape == (4, 3 * sum(p.numel() for p in _model().parameters())) and t.shape[0] == 30
    torch.testing.assert_close(tracin.compute_intermediate_quantities((x[:4], y[:4]), aggregate=True),
                               q.sum(0, keepdim=True))


def test_fast_equals_tracincp_on_the_last_layer_and_randproj_exact_without_projection() -> None:
    x, y, ds, ckpts, load = _setup(bias=False)
    t = (x[:4], y[:4])
    full = TracInCP(_model(False), ds, ckpts, load, layers=["2"], loss_fn=nn.CrossEntropyLoss(reduction="none"))
    fast = TracInCPFast(_model(False), "2", ds, ckpts, load, loss_fn=nn.CrossEntropyLoss(reduction="sum"))
    torch.testing.assert_close(fast.influence(t), full.influence(t), atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(fast.self_influence(), full.self_influence(), atol=1e-10, rtol=1e-8)
    rp = TracInCPFastRandProj(_model(False), "2", ds, ckpts, load, loss_fn=nn.CrossEntropyLoss(reduction="mean"))
    torch.testing.assert_close(rp.influence(t, k=None), full.influence(t), atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(rp.self_influence(), full.self_influence(), atol=1e-10, rtol=1e-8)
    assert torch.equal(rp.influence(t, k=4).indices, fast.influence(t, k=4).indices)
    assert torch.equal(rp.influence(t, k=4, proponents=False).indices,
                       fast.influence(t, k=4, proponents=False).indices)


def test_random_projection_approaches_exact_scores_as_dimension_grows() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 40), nn.Tanh(), nn.Linear(40, 10)).double()
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(60, 6, generator=gen, dtype=torch.float64), torch.randint(0, 10, (60,), generator=gen)
    ds, ckpt, loss = TensorDataset(x, y), [model.state_dict()], nn.CrossEntropyLoss(reduction="sum")
    exact = TracInCPFast(model, "2", ds, ckpt, loss_fn=loss).influence((x[:10], y[:10]))
    errors = []
    for dim in (4, 25, 100, 400):
        errs = []
        for seed in range(4):
            rp = TracInCPFastRandProj(model, "2", ds, ckpt, loss_fn=loss, projection_dim=dim, seed=seed)
            approx = rp.influence((x[:10], y[:10]), k=None)
            errs.append(float((approx - exact).norm() / exact.norm()))
        errors.append(sum(errs) / len(errs))
    assert errors == sorted(errors, reverse=True), errors
    assert errors[-1] < 0.35 * errors[0], errors
    same = TracInCPFastRandProj(model, "2", ds, ckpt, loss_fn=loss, projection_dim=25, seed=7)
    again = TracInCPFastRandProj(model, "2", ds, ckpt, loss_fn=loss, projection_dim=25, seed=7)
    torch.testing.assert_close(same.src_intermediate_quantities, again.src_intermediate_quantities, atol=0, rtol=0)
    assert same.src_intermediate_quantities.shape == (60, 25)


def test_random_projection_leaves_the_global_rng_alone() -> None:
    x, y, ds, ckpts, load = _setup(bias=False)
    state = torch.get_rng_state()
    TracInCPFastRandProj(_model(False), "2", ds, ckpts, load, loss_fn=nn.CrossEntropyLoss(reduction="sum"),
                         projection_dim=4)
    assert torch.equal(state, torch.get_rng_state())


def test_self_influence_finds_mislabelled_examples() -> None:
    from intellego.data.influence_task import make_influence_task
    from intellego.influence.metrics import mislabel_auc

    task = make_influence_task(400, 20, flip_fraction=0.1, seed=0)
    run = task.train(epochs=15, n_checkpoints=3)
    tracin = TracInCP(task.model(), task.train_dataset(), run.checkpoints, run.load,
                      loss_fn=task.loss_fn("none"))
    self_inf = tracin.self_influence()
    assert mislabel_auc(self_inf, task.flipped) > 0.85
    top = self_inf.topk(40).indices
    assert int(task.flipped[top].sum()) >= 20  # 10% of the data is flipped; more than half of the top 40 are
    fast = TracInCPFast(task.model(), "2", task.train_dataset(), run.checkpoints, run.load,
                        loss_fn=task.loss_fn("sum"))
    assert mislabel_auc(fast.self_influence(), task.flipped) > 0.85


def test_progress_bars_on_every_pass(capsys) -> None:
    x, y, ds, ckpts, load = _setup()
    tracin = TracInCP(_model(), ds, ckpts, load, loss_fn=nn.CrossEntropyLoss(reduction="none"), batch_size=10)
    tracin.influence((x[:2], y[:2]), show_progress=True)
    tracin.influence((x[:2], y[:2]), k=2, show_progress=True)
    tracin.self_influence(show_progress=True)
    err = capsys.readouterr().err
    assert "TracInCP: influence over training batches" in err and "3/3" in err
    assert "TracInCP: proponents" in err and "TracInCP: self influence" in err


# ---------------------------------------------------------------------------------------------- parity with Captum


@pytest.fixture
def captum_influence():
    ci = pytest.importorskip("captum.influence")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield ci


@pytest.mark.parametrize("sample_wise", [False, True])
def test_parity_with_captum_tracincp(captum_influence, sample_wise) -> None:
    x, y, ds, ckpts, load = _setup()
    loss = nn.CrossEntropyLoss(reduction="sum" if sample_wise else "none")
    kw = dict(loss_fn=loss, sample_wise_grads_per_batch=sample_wise, layers=["0", "2"])
    ours = TracInCP(_model(), ds, ckpts, load, **kw)
    theirs = captum_influence.TracInCP(_model(), ds, ckpts, load, batch_size=7, **kw)
    t = (x[:5], y[:5])
    torch.testing.assert_close(ours.influence(t), theirs.influence(t), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.self_influence(), theirs.self_influence(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.influence(t, aggregate=True), theirs.influence(t, aggregate=True))
    for proponents in (True, False):
        a, b = ours.influence(t, k=4, proponents=proponents), theirs.influence(t, k=4, proponents=proponents)
        assert torch.equal(a.indices, b.indices)
        torch.testing.assert_close(a.influence_scores, b.influence_scores, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.compute_intermediate_quantities(t), theirs.compute_intermediate_quantities(t))


def test_parity_with_captum_fast_and_randproj(captum_influence) -> None:
    x, y, ds, ckpts, load = _setup(bias=False)
    t = (x[:5], y[:5])
    for reduction in ("sum", "mean"):
        loss = nn.CrossEntropyLoss(reduction=reduction)
        m = _model(False)
        ours = TracInCPFast(_model(False), "2", ds, ckpts, load, loss_fn=loss)
        theirs = captum_influence.TracInCPFast(m, m[2], ds, ckpts, load, loss_fn=loss, batch_size=7)
        torch.testing.assert_close(ours.influence(t), theirs.influence(t), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.self_influence(), theirs.self_influence(), atol=1e-5, rtol=1e-5)
        a, b = ours.influence(t, k=3), theirs.influence(t, k=3)
        assert torch.equal(a.indices, b.indices)
    m = _model(False)
    # Captum's default index needs the annoy package; it takes any object with the same interface
    theirs_rp = captum_influence.TracInCPFastRandProj(m, m[2], ds, ckpts, load, loss_fn=nn.CrossEntropyLoss(
        reduction="sum"), batch_size=7, nearest_neighbors=ExactNearestNeighbors())
    ours_rp = TracInCPFastRandProj(_model(False), "2", ds, ckpts, load, loss_fn=nn.CrossEntropyLoss(reduction="sum"))
    torch.testing.assert_close(ours_rp.influence(t, k=None), theirs_rp.influence(t, k=None), atol=1e-5, rtol=1e-5)
    a, b = ours_rp.influence(t, k=3), theirs_rp.influence(t, k=3)
    assert torch.equal(a.indices, b.indices)
    torch.testing.assert_close(ours_rp.compute_intermediate_quantities(t), theirs_rp.compute_intermediate_quantities(t))
    with pytest.raises(NotImplementedError):  # Captum's; ours is implemented (checked above)
        theirs_rp.self_influence()


# ---------------------------------------------------------------------------------------------- errors and hygiene


def test_bad_input_is_named_before_the_pass() -> None:
    x, y, ds, ckpts, load = _setup()
    none = nn.CrossEntropyLoss(reduction="none")
    wrong = {k: v[..., :2].clone() if v.dim() == 2 else v for k, v in ckpts[0].items()}
    with pytest.raises(IntellegoError, match=r"(?s)checkpoint 1 \(a state dict of 4 entries\) does not load into "
                                             r"the model: RuntimeError.*size mis"):
        TracInCP(_model(), ds, [ckpts[0], wrong], loss_fn=none)
    with pytest.raises(IntellegoError, match="(?s)checkpoint 0 .* does not load .*Missing key"):
        TracInCP(_model(), ds, [{"0.weight": ckpts[0]["0.weight"]}], loss_fn=none)
    with pytest.raises(IntellegoError, match="must return the checkpoint's learning rate"):
        TracInCP(_model(), ds, ckpts, lambda m, c: "fast", loss_fn=none)
    with pytest.raises(IntellegoError, match="checkpoints is empty"):
        TracInCP(_model(), ds, [], loss_fn=none)
    with pytest.raises(IntellegoError, match=r"`loss_fn` has reduction='mean', but TracInCP with "
                                             r"sample_wise_grads_per_batch=False \(the default\) needs one loss"):
        TracInCP(_model(), ds, ckpts, load, loss_fn=nn.CrossEntropyLoss())
    with pytest.raises(IntellegoError, match="`test_loss_fn` has reduction='none', but TracInCP with "
                                             "sample_wise_grads_per_batch=True needs a loss that reduces"):
        TracInCP(_model(), ds, ckpts, load, loss_fn=nn.CrossEntropyLoss(), test_loss_fn=none,
                 sample_wise_grads_per_batch=True)
    tracin = TracInCP(_model(), ds, ckpts, load, loss_fn=lambda out, t: nn.functional.cross_entropy(out, t))
    with pytest.raises(IntellegoError, match="`loss_fn` returned tensor of shape \\(\\) .* for a batch of 2 examples"):
        tracin.influence((x[:3], y[:3]))
    with pytest.raises(IntellegoError, match="layer 'fc' in `layers` is not in the model"):
        TracInCP(_model(), ds, ckpts, load, layers=["fc"], loss_fn=none)
    tracin = TracInCP(_model(), ds, ckpts, load, loss_fn=none)
    with pytest.warns(UserWarning, match=r"k=31 is larger than the training set \(30 examples\): all 30"):
        idx, top = tracin.influence((x[:3], y[:3]), k=31)  # as Captum: every example, ranked
    scores = tracin.influence((x[:3], y[:3]))
    assert idx.shape == (3, 30) and torch.equal(top, scores.gather(1, idx))
    assert torch.equal(top, scores.sort(1, descending=True).values)
    with pytest.raises(IntellegoError, match="`inputs` is required"):
        tracin.influence(None)
    with pytest.raises(IntellegoError, match="train_dataset must be a Dataset, a DataLoader or one batch"):
        TracInCP(_model(), [1, 2], ckpts, load, loss_fn=none)
    with pytest.raises(IntellegoError, match="final_fc_layer 'fc' is not a layer of the model; its layers are: 0"):
        TracInCPFast(_model(), "fc", ds, ckpts, load, loss_fn=nn.CrossEntropyLoss(reduction="sum"))
    with pytest.raises(IntellegoError, match="`loss_fn` is required by the fast TracIn methods"):
        TracInCPFast(_model(), "2", ds, ckpts, load)
    with pytest.warns(UserWarning, match="k=40 is larger than the indexed data"):
        idx, _ = TracInCPFastRandProj(_model(), "2", ds, ckpts, load, loss_fn=nn.CrossEntropyLoss(reduction="sum")
                                      ).influence((x[:2], y[:2]), k=40)
    assert idx.shape == (2, len(ds)) and all(sorted(row.tolist()) == list(range(len(ds))) for row in idx)


def test_model_and_tensors_are_left_as_they_were() -> None:
    x, y, ds, ckpts, load = _setup()
    model = _model()
    model.train()
    model[0].weight.requires_grad_(False)
    model[2].weight.grad = torch.ones_like(model[2].weight)
    before = snapshot(model, (x, y))
    none = nn.CrossEntropyLoss(reduction="none")
    tracin = TracInCP(model, ds, ckpts, load, layers=["0", "2"], loss_fn=none)
    tracin.influence((x[:2], y[:2]), k=2)
    tracin.self_influence()
    TracInCPFastRandProj(model, "2", ds, ckpts, load, loss_fn=nn.CrossEntropyLoss(reduction="sum")).self_influence()
    assert_same(before, snapshot(model, (x, y)))
    bad = copy.deepcopy(ckpts[1])
    bad["2.weight"] = torch.zeros(1)
    with pytest.raises(IntellegoError):
        TracInCP(model, ds, [ckpts[0], bad], lambda m, c: m.load_state_dict(c) or 1.0, loss_fn=none)
    assert_same(before, snapshot(model, (x, y)))


def test_captum_module_paths_are_aliases() -> None:
    import intellego.influence as ours

    for module, names in {"tracincp": ["TracInCP", "TracInCPBase"],
                          "tracincp_fast_rand_proj": ["TracInCPFast", "TracInCPFastRandProj"],
                          "influence": ["DataInfluence"], "similarity_influence": ["SimilarityInfluence"]}.items():
        alias = importlib.import_module(f"intellego.influence._core.{module}")
        for name in names:
            assert getattr(alias, name) is getattr(ours, name)


def test_mean_loss_without_reduction_attribute_uses_each_examples_loss(captum_influence) -> None:
    """Captum assumes such a loss sums the batch, so it divides every gradient by the batch size; we do not."""
    x, y, ds, ckpts, load = _setup()
    t = (x[:5], y[:5])

    def mean_loss(out, target):
        return nn.functional.cross_entropy(out, target)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = TracInCP(_model(), ds, ckpts, load, loss_fn=mean_loss, sample_wise_grads_per_batch=True)
        theirs = captum_influence.TracInCP(_model(), ds, ckpts, load, loss_fn=mean_loss, batch_size=6,
                                           sample_wise_grads_per_batch=True).influence(t)
    right = TracInCP(_model(), ds, ckpts, load, loss_fn=nn.CrossEntropyLoss(reduction="sum"),
                     sample_wise_grads_per_batch=True).influence(t)
    torch.testing.assert_close(ours.influence(t), right, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(theirs * (6 * 5), right, atol=1e-10, rtol=1e-8)  # train batch 6, test batch 5


@pytest.mark.parametrize("name", ["DataInfluence", "TracInCPBase", "TracInCP", "TracInCPFast", "TracInCPFastRandProj",
                                  "SimilarityInfluence"])
def test_captum_signatures_port(name) -> None:
    """Captum's positional parameters, in Captum's order, for the constructor and the public methods."""
    import inspect

    import intellego.influence as ours

    ci = pytest.importorskip("captum.influence")
    theirs_cls, ours_cls = getattr(ci, name), getattr(ours, name)
    for method in ("__init__", "influence", "self_influence", "compute_intermediate_quantities"):
        if not hasattr(theirs_cls, method) or (method == "__init__" and name == "DataInfluence"):
            continue
        if (name, method) == ("TracInCPBase", "influence"):
            continue  # Captum's abstract base still lists an `unpack_inputs` that no concrete class has
        want = [p for p in inspect.signature(getattr(theirs_cls, method)).parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY)]
        got = [p for p in inspect.signature(getattr(ours_cls, method)).parameters.values()
               if p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY)]
        assert [p.name for p in got[:len(want)]] == [p.name for p in want], (name, method)


def test_nearest_neighbors_path_alias_and_custom_index() -> None:
    from intellego.influence._utils import nearest_neighbors as alias
    from intellego.influence.tracincp_fast import NearestNeighbors

    assert alias.ExactNearestNeighbors is ExactNearestNeighbors and alias.NearestNeighbors is NearestNeighbors
    x, y, ds, ckpts, load = _setup(bias=False)

    class Recording(ExactNearestNeighbors):
        def setup(self, data):
            self.rows = data.shape[0]
            super().setup(data)

    index = Recording(chunk_rows=4)
    rp = TracInCPFastRandProj(_model(False), "2", ds, ckpts, load, loss_fn=nn.CrossEntropyLoss(reduction="sum"),
                              nearest_neighbors=index)
    fast = TracInCPFast(_model(False), "2", ds, ckpts, load, loss_fn=nn.CrossEntropyLoss(reduction="sum"))
    assert index.rows == 30
    assert torch.equal(rp.influence((x[:3], y[:3]), k=5).indices, fast.influence((x[:3], y[:3]), k=5).indices)
