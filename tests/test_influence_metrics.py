"""Influence metrics: closed forms, scipy/sklearn as oracles, and the synthetic task's training loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from intellego.data.influence_task import flip_labels, make_influence_task
from intellego.errors import IntellegoError
from intellego.influence.metrics import (
    datamodel_outputs,
    lds,
    leave_one_out_changes,
    leave_one_out_correlation,
    linear_datamodeling_score,
    mislabel_auc,
    random_subsets,
    rank,
    spearman,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rank_and_spearman_match_scipy_with_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (4, 30), generator=gen).double()  # many ties
    b = torch.randn(4, 30, generator=gen, dtype=torch.float64)
    for i in range(4):
        torch.testing.assert_close(rank(a[i]) + 1, torch.as_tensor(stats.rankdata(a[i].numpy())))
        want = stats.spearmanr(a[i].numpy(), b[i].numpy()).statistic
        assert abs(float(spearman(a[i], b[i])) - want) < 1e-12


def test_mislabel_auc_matches_sklearn_with_ties() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    gen = torch.Generator().manual_seed(1)
    s = torch.randint(0, 6, (200,), generator=gen).double()
    flipped = torch.rand(200, generator=gen) < 0.2
    assert abs(mislabel_auc(s, flipped) - metrics.roc_auc_score(flipped.numpy(), s.numpy())) < 1e-12
    assert mislabel_auc(flipped.double(), flipped) == 1.0
    assert mislabel_auc(-flipped.double(), flipped) == 0.0


def _additive_retrain(truth: torch.Tensor, noise: float = 0.0):
    def retrain(masks: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator().manual_seed(int(masks.sum()))
        out = masks.double() @ truth.T
        return out + noise * torch.randn(out.shape, generator=gen, dtype=torch.float64)
    return retrain


def test_lds_is_one_for_exact_scores_and_minus_one_for_negated() -> None:
    truth = torch.randn(5, 40, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    retrain = _additive_retrain(truth)
    assert abs(linear_datamodeling_score(truth, retrain, 20).score - 1.0) < 1e-12
    assert abs(linear_datamodeling_score(-truth, retrain, 20).score + 1.0) < 1e-12
    noisy = linear_datamodeling_score(truth + 3 * torch.randn_like(truth), retrain, 20).score
    assert 0.0 < noisy < 0.99
    masks, actual = datamodel_outputs(retrain, 40, 20)
    assert masks.shape == (20, 40) and actual.shape == (5, 20) and bool((masks.sum(1) == 20).all())
    assert lds(truth, masks, actual).score == pytest.approx(1.0)


def test_random_subsets_are_reproducible_with_generator() -> None:
    a = random_subsets(30, 4, 0.3, generator=torch.Generator().manual_seed(5))
    b = random_subsets(30, 4, 0.3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and bool((a.sum(1) == 9).all())


def test_leave_one_out_on_additive_outputs() -> None:
    truth = torch.randn(3, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    idx = torch.tensor([0, 4, 7, 11])
    changes = leave_one_out_changes(_additive_retrain(truth), 12, idx)
    torch.testing.assert_close(changes, truth[:, idx])
    assert leave_one_out_correlation(truth[:, idx], changes) == pytest.approx(1.0)


def test_metric_errors_name_the_arguments_and_shapes() -> None:
    with pytest.raises(IntellegoError, match=r"masks must have shape \(subsets, 4\)"):
        lds(torch.zeros(2, 4), torch.zeros(3, 5, dtype=torch.bool), torch.zeros(2, 3))
    with pytest.raises(IntellegoError, match=r"actual outputs must have shape \(n_test, subsets\) = \(2, 3\)"):
        lds(torch.zeros(2, 4), torch.zeros(3, 4, dtype=torch.bool), torch.zeros(3, 2))
    with pytest.raises(IntellegoError, match="scores must be a tensor of shape"):
        linear_datamodeling_score(torch.zeros(4), lambda m: m)
    with pytest.raises(IntellegoError, match=r"retrain\(masks\) must return a tensor of shape \(4, n_test\)"):
        linear_datamodeling_score(torch.zeros(2, 6), lambda m: torch.zeros(3), n_subsets=4)
    with pytest.raises(IntellegoError, match="at least one flipped and one clean"):
        mislabel_auc(torch.zeros(3), torch.zeros(3, dtype=torch.bool))
    with pytest.raises(IntellegoError, match="flipped must be a bool mask of shape"):
        mislabel_auc(torch.zeros(3), torch.zeros(4, dtype=torch.bool))
    with pytest.raises(IntellegoError, match=r"fraction must be in \(0, 1\)"):
        random_subsets(10, 3, 1.5)
    with pytest.raises(IntellegoError, match=r"indices must be in \[0, 5\)"):
        leave_one_out_changes(lambda m: m.double(), 5, torch.tensor([5]))


def test_task_is_seeded_and_flips_are_recorded() -> None:
    a = make_influence_task(100, 10, flip_fraction=0.1, seed=3)
    b = make_influence_task(100, 10, flip_fraction=0.1, seed=3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert int(a.flipped.sum()) == 10 and bool((a.y_train[a.flipped] != a.y_clean[a.flipped]).all())
    assert bool((a.y_train[~a.flipped] == a.y_clean[~a.flipped]).all())
    y, f = flip_labels(torch.arange(6) % 3, 0.5, 3, generator=torch.Generator().manual_seed(0))
    assert int(f.sum()) == 3 and bool((y[f] != (torch.arange(6) % 3)[f]).all())


def test_vectorized_training_equals_plain_sgd() -> None:
    """The stacked, hand-differentiated training loop takes the same steps as torch.optim.SGD on each model."""
    task = make_influence_task(60, 5, seed=1, dtype=torch.float64, batch_size=20)
    masks = torch.rand(3, 60, generator=torch.Generator().manual_seed(0)) < 0.5
    params, _ = task._fit(masks, epochs=2)
    for m in range(3):
        model = task.model()
        opt = torch.optim.SGD(model.parameters(), lr=task.lr)
        gen = torch.Generator().manual_seed(task.seed + 1)
        for _ in range(2):
            order = torch.randperm(60, generator=gen)
            for start in range(0, 60, 20):
                idx = order[start:start + 20]
                loss = (F.cross_entropy(model(task.x_train[idx]), task.y_train[idx], reduction="none")
                        * masks[m, idx]).sum() / 20
                opt.zero_grad()
                loss.backward()
                opt.step()
        for name, p in model.named_parameters():
            torch.testing.assert_close(p.detach(), params[name][m], atol=1e-12, rtol=1e-10)


def test_training_learns_and_leave_one_out_on_task_runs() -> None:
    task = make_influence_task(300, 50, seed=0)
    run = task.train(epochs=10, n_checkpoints=3)
    assert run.test_accuracy > 0.7 and len(run.checkpoints) == 3
    changes = leave_one_out_changes(task.retrain, task.n_train, torch.tensor([1, 2]))
    assert changes.shape == (50, 2) and bool(changes.abs().sum() > 0)


def test_tracin_beats_random_scores_on_lds() -> None:
    """The metric can tell a real attribution from noise: TracIn's LDS on the task is high, random scores' near 0."""
    from intellego.influence import TracInCP
    from intellego.influence.metrics import linear_datamodeling_score

    task = make_influence_task(200, 20, seed=0)
    run = task.train(epochs=2, n_checkpoints=2)
    scores = TracInCP(task.model(), task.train_dataset(), run.checkpoints, run.load,
                      loss_fn=task.loss_fn("none")).influence((task.x_test, task.y_test))

    def retrain(masks):
        return task.retrain(masks, epochs=2)

    good = linear_datamodeling_score(scores, retrain, 20, generator=torch.Generator().manual_seed(0))
    noise = linear_datamodeling_score(torch.randn(scores.shape, generator=torch.Generator().manual_seed(1)),
                                      retrain, 20, generator=torch.Generator().manual_seed(0))
    assert good.score > 0.5 and abs(noise.score) < 0.2
    assert good.per_test.shape == (20,) and good.predicted.shape == good.actual.shape == (20, 20)
