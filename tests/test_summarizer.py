"""Summarizer, ClassSummarizer and their statistics: closed forms and parity with Captum."""

from __future__ import annotations

import pytest
import torch

import intellego.attr as ia
from intellego.errors import IntellegoError

ca = pytest.importorskip("captum.attr")


def _all_stats(lib):
    return lib.CommonStats() + [lib.Count(), lib.Sum(), lib.Var(), lib.StdDev(), lib.MSE(), lib.Mean()]


def test_statistics_equal_the_closed_forms():
    torch.manual_seed(0)
    xs = torch.randn(7, 3, 2, dtype=torch.float64)
    s = ia.Summarizer(_all_stats(ia))
    for x in xs:
        s.update(x)
    out = s.summary
    torch.testing.assert_close(out["mean"], xs.mean(0))
    torch.testing.assert_close(out["sample_variance"], xs.var(0, unbiased=True))
    torch.testing.assert_close(out["variance"], xs.var(0, unbiased=False))
    torch.testing.assert_close(out["sample_std_dev"], xs.std(0))
    torch.testing.assert_close(out["mse"], ((xs - xs.mean(0)) ** 2).sum(0))
    torch.testing.assert_close(out["min"], xs.min(0).values)
    torch.testing.assert_close(out["max"], xs.max(0).values)
    torch.testing.assert_close(out["sum"], xs.sum(0))
    assert out["count"] == 7


def test_summary_matches_captum_for_tensors_numbers_and_tuples():
    torch.manual_seed(1)
    ours, theirs = ia.Summarizer(_all_stats(ia)), ca.Summarizer(_all_stats(ca))
    for _ in range(4):
        x = (torch.randn(2, 3), torch.randn(4))
        ours.update(x)
        theirs.update(x)
    assert len(ours.summary) == len(theirs.summary) == 2
    for o, t in zip(ours.summary, theirs.summary):
        assert o.keys() == t.keys()
        for k in o:
            torch.testing.assert_close(torch.as_tensor(o[k]), torch.as_tensor(t[k]))
    ours, theirs = ia.Summarizer([ia.Mean(), ia.Max()]), ca.Summarizer([ca.Mean(), ca.Max()])
    for v in (1.0, 5.0, 3.0):
        ours.update(v)
        theirs.update(v)
    assert {k: float(v) for k, v in ours.summary.items()} == {k: float(v) for k, v in theirs.summary.items()}


def test_summary_shows_only_requested_statistics():
    s = ia.Summarizer([ia.StdDev()])
    assert s.summary is None
    s.update(torch.tensor([1.0]))
    assert list(s.summary) == ["std_dev"] and s.summary["std_dev"].item() == 0.0


def test_class_summarizer_matches_captum_with_list_labels():
    torch.manual_seed(2)
    x, labels = torch.randn(6, 3), [0, 1, 0, 2, 1, 0]
    ours, theirs = ia.ClassSummarizer(ia.CommonStats()), ca.ClassSummarizer(ca.CommonStats())
    ours.update(x, labels)
    theirs.update(x, labels)
    assert ours.class_summaries.keys() == theirs.class_summaries.keys()
    for key, summary in theirs.class_summaries.items():
        for o, t in zip(ours.class_summaries[key], summary):
            for k in t:
                torch.testing.assert_close(o[k], t[k], equal_nan=True, check_dtype=False)
    torch.testing.assert_close(ours.summary[0]["mean"], x.mean(0))


def test_class_summarizer_groups_tensor_labels_by_value_unlike_captum():
    """Captum keys class summaries by the 0-d label tensors themselves, which hash by identity: a batch with
    labels tensor([0, 1, 0, 1]) gives four 'classes'. We key by value: two classes."""
    x, labels = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    theirs = ca.ClassSummarizer(ca.CommonStats())
    theirs.update(x, labels)
    assert len(theirs.class_summaries) == 4
    ours = ia.ClassSummarizer(ia.CommonStats())
    ours.update(x, labels)
    assert sorted(ours.class_summaries) == [0, 1]
    torch.testing.assert_close(ours.class_summaries[1][0]["mean"], x[1::2].mean(0))


def test_bad_input_is_named():
    s = ia.Summarizer([ia.Mean()])
    s.update(torch.ones(2))
    with pytest.raises(IntellegoError, match="earlier updates got single values"):
        s.update((torch.ones(2),))
    with pytest.raises(IntellegoError, match="stats must hold Stat objects"):
        ia.Summarizer(["mean"])
    with pytest.raises(IntellegoError, match="labels has 3 entries"):
        ia.ClassSummarizer([ia.Mean()]).update(torch.ones(2, 3), [0, 1, 2])
