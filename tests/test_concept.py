"""intellego.concept: TCAV on models with a planted concept direction, significance, caching, errors, hygiene."""

from __future__ import annotations

import math
import os

import pytest
import torch
from torch import nn

from _hygiene import Exploding, assert_same, snapshot
from intellego.concept import CAV, TCAV, Concept, DefaultClassifier, FastCAVClassifier, concepts_to_str
from intellego.concept._fit import logistic_ovr, mean_difference
from intellego.concept._stats import adjust_p_values, student_t_test
from intellego.errors import IntellegoError

D = 20


pytestmark = pytest.mark.usefixtures("one_thread")


class Planted(nn.Module):
    """``layer`` is the identity, and output 0 is ``h.v + 0.5 * sum_j (h.u_j)^2`` with ``v`` orthogonal to the
    ``u_j``: its gradient at the layer is ``v + sum_j (h.u_j) u_j``, so the derivative along ``v`` is exactly 1
    for every input while the derivative along a random direction changes sign from input to input."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
        self.register_buffer("v", q[:, 0].clone())
        self.register_buffer("u", q[:, 1:6].clone())
        self.layer = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layer(x)
        return torch.stack([h @ self.v + 0.5 * ((h @ self.u) ** 2).sum(1), -(h @ self.v)], 1)


MODEL = Planted()


def batch(seed: int, shift: float = 0.0, n: int = 100) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=g, dtype=torch.float64) + shift * MODEL.v


INPUTS = batch(999, n=50)


def randoms(offset: int, k: int = 5) -> list[Concept]:
    return [Concept(i, f"random{i}", [batch(offset + i)]) for i in range(1, k + 1)]


# ------------------------------------------------------------------------------------------ the criteria


def test_planted_concept_is_found_and_significant():
    planted = Concept(0, "planted", [batch(1, shift=3.0)])
    tcav = TCAV(MODEL, "layer")
    result = tcav.significance(INPUTS, planted, randoms(100), target=0)["0"]["layer"]
    weights = tcav.cavs["0-1"]["layer"].stats["weights"]
    assert torch.nn.functional.cosine_similarity(weights[0], MODEL.v, 0) >= 0.9
    assert result.scores.min() >= 0.95
    assert result.p_value < 0.01 and result.p_adjusted < 0.01 and result.significant
    assert 0.2 < result.random_mean < 0.8  # random directions: the derivative's sign varies across inputs


def test_random_concepts_are_not_significant_in_at_least_90_percent_of_trials():
    p_values = []
    for trial in range(40):
        tcav = TCAV(MODEL, "layer", generator=torch.Generator().manual_seed(trial))
        fake = Concept(0, "fake", [batch(5000 + trial)])
        res = tcav.significance(INPUTS, fake, randoms(1000 * trial), target=0, correction=None)
        p_values.append(res["0"]["layer"].p_value)
    assert sum(p > 0.05 for p in p_values) >= 36, p_values


def test_reruns_with_the_same_generator_are_bit_identical():
    def run(seed: int | None) -> tuple[dict, torch.Tensor]:
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        tcav = TCAV(MODEL, "layer", generator=gen)
        concepts = [Concept(0, "planted", [batch(1, 1.0)]), *randoms(10, 2)]
        sets = [[concepts[0], concepts[1]], [concepts[0], concepts[2]], concepts]
        scores = tcav.interpret(INPUTS, sets, target=0)
        return scores, torch.cat([tcav.cavs[concepts_to_str(s)]["layer"].stats["weights"] for s in sets])

    (s1, w1), (s2, w2), (_, w3) = run(7), run(7), run(8)
    assert torch.equal(w1, w2)
    assert all(torch.equal(s1[k]["layer"][m], s2[k]["layer"][m]) for k in s1 for m in ("sign_count", "magnitude"))
    assert not torch.equal(w1, w3)  # another seed draws another train/test split
    assert torch.equal(run(None)[1], run(None)[1])  # no generator: a fixed seed, never the global RNG


def test_global_rng_is_neither_used_nor_changed():
    state = torch.random.get_rng_state()
    TCAV(MODEL, "layer").interpret(INPUTS, [[Concept(0, "a", [batch(1, 1.0)]), *randoms(3, 1)]], target=0)
    assert torch.equal(state, torch.random.get_rng_state())


# ------------------------------------------------------------------------------------------ classifiers and scores


def test_default_classifier_is_l2_logistic_regression_like_sklearn():
    sk = pytest.importorskip("sklearn.linear_model")
    multiclass = pytest.importorskip("sklearn.multiclass")
    g = torch.Generator().manual_seed(0)
    for n, f in [(60, 5), (60, 400)]:  # primal Newton and the Gram-matrix path
        x = torch.randn(n, f, generator=g, dtype=torch.float64)
        y = torch.arange(n) % 2 * 4 + 3  # labels 3 and 7
        x[y == 7] += 0.4
        w, b, classes = logistic_ovr(x, y, alpha=0.01)
        ref = sk.LogisticRegression(C=1 / (n * 0.01), solver="newton-cg", tol=1e-12, max_iter=1000)
        ref.fit(x.numpy(), y.numpy())
        assert classes == [3, 7]
        torch.testing.assert_close(w[1], torch.tensor(ref.coef_[0]), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(w[0], -w[1])
        assert abs(float(b[1]) - float(ref.intercept_[0])) < 1e-5
    y3 = torch.arange(60) % 3
    x3 = torch.randn(60, 300, generator=g, dtype=torch.float64) + y3[:, None] * 0.3
    w3, b3, _ = logistic_ovr(x3, y3, alpha=0.01)
    ovr = multiclass.OneVsRestClassifier(sk.LogisticRegression(C=1 / 0.6, solver="newton-cg", tol=1e-12,
                                                              max_iter=1000))
    ovr.fit(x3.numpy(), y3.numpy())
    for k, est in enumerate(ovr.estimators_):
        torch.testing.assert_close(w3[k], torch.tensor(est.coef_[0]), atol=1e-6, rtol=1e-5)


def test_fastcav_is_the_centred_class_means():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 8, generator=g, dtype=torch.float64)
    y = torch.tensor([5] * 10 + [2] * 12 + [9] * 8)
    w, b, classes = mean_difference([x[:7], x[7:]], y)
    means = torch.stack([x[y == c].mean(0) for c in (2, 5, 9)])
    assert classes == [2, 5, 9]
    torch.testing.assert_close(w, means - means.mean(0))
    torch.testing.assert_close(b, -(w @ means.mean(0)))


def test_builtin_classifiers_report_held_out_accuracy_and_weights():
    for clf in (DefaultClassifier(generator=torch.Generator().manual_seed(0)), FastCAVClassifier()):
        x = torch.cat([batch(1, 8.0, 30), batch(2, 0.0, 30)])
        y = torch.tensor([1] * 30 + [0] * 30)
        stats = clf.train_and_eval([(x[:30], y[:30]), (x[30:], y[30:])], test_split_ratio=0.5)
        assert float(stats["accs"]) == 1.0 and clf.classes() == [0, 1]
        assert torch.nn.functional.cosine_similarity(clf.weights()[1], MODEL.v, 0) > 0.9
    with pytest.raises(IntellegoError, match="test_split_ratio must be in"):
        DefaultClassifier().train_and_eval([(x, y)], test_split_ratio=1.0)
    with pytest.raises(IntellegoError, match="call train_and_eval first"):
        FastCAVClassifier().weights()
    with pytest.raises(IntellegoError, match="at least two concepts"):
        DefaultClassifier().train_and_eval([(x, torch.zeros(60))])


def test_t_test_and_corrections_match_scipy_and_their_definitions():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(3)
    for n1, n2, shift in [(3, 3, 0.0), (5, 8, 0.4), (20, 20, 2.0), (10, 4, 8.0)]:
        a = (torch.rand(n1, generator=g, dtype=torch.float64) + shift).tolist()
        b = torch.rand(n2, generator=g, dtype=torch.float64).tolist()
        t, p = student_t_test(a, b)
        ref = stats.ttest_ind(a, b)
        assert math.isclose(t, ref.statistic, rel_tol=1e-10)
        assert math.isclose(p, ref.pvalue, rel_tol=1e-8, abs_tol=1e-300)
    assert student_t_test([1.0, 1.0], [0.5, 0.5]) == (math.inf, 0.0)
    assert student_t_test([1.0, 1.0], [1.0, 1.0])[1] == 1.0
    ps = [0.01, 0.04, 0.03, 0.2]
    assert adjust_p_values(ps, "bonferroni") == [0.04, 0.16, 0.12, 0.8]
    assert adjust_p_values(ps, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.2])
    with pytest.raises(IntellegoError, match="correction must be one of"):
        adjust_p_values(ps, "fdr")


def test_magnitude_follows_the_documented_formula_and_mean_reproduces_captum():
    concepts = [Concept(0, "planted", [batch(1, 1.0)]), *randoms(20, 2)]
    tcav = TCAV(MODEL, "layer")
    ratio = tcav.interpret(INPUTS, [concepts], target=0)["0-1-2"]["layer"]
    mean = tcav.interpret(INPUTS, [concepts], target=0, magnitude="mean")["0-1-2"]["layer"]
    x = INPUTS.clone().requires_grad_(True)
    grads = torch.autograd.grad(MODEL(x)[:, 0].sum(), x)[0]
    weights = tcav.cavs["0-1-2"]["layer"].stats["weights"]
    s = grads @ weights.T  # brute force: one directional derivative per input and concept
    torch.testing.assert_close(ratio["sign_count"], (s > 0).double().mean(0))
    torch.testing.assert_close(ratio["magnitude"], (s.abs() * (s > 0)).sum(0) / s.abs().sum(0))
    torch.testing.assert_close(mean["magnitude"], s.mean(0))
    torch.testing.assert_close(mean["sign_count"], ratio["sign_count"])


# ------------------------------------------------------------------------------------------ inputs and pooling


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(4, 6), nn.Linear(3, 6)
        self.mix = nn.Tanh()
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor, z: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.head(self.mix(self.a(x) + self.b(z))) * scale


class DictModel(nn.Module):
    def __init__(self, inner: TwoInputs) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *, x: torch.Tensor, z: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.inner(x, z, scale)


def test_multi_input_and_dict_input_models_give_the_same_scores():
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(12, 4, generator=g), torch.randn(12, 3, generator=g) + k) for k in range(3)]
    xs = (torch.randn(10, 4, generator=g), torch.randn(10, 3, generator=g))
    tuple_model = TwoInputs()
    concepts = [Concept(i, f"c{i}", [d]) for i, d in enumerate(data)]
    ours = TCAV(tuple_model, ["mix", "a"]).interpret(xs, [concepts[:2], concepts], target=1)
    dict_model = DictModel(tuple_model)
    dict_concepts = [Concept(i, f"c{i}", [{"x": d[0], "z": d[1], "scale": 1.0}]) for i, d in enumerate(data)]
    by_name = TCAV(dict_model, ["inner.mix", "inner.a"]).interpret(
        {"x": xs[0], "z": xs[1], "scale": 1.0}, [dict_concepts[:2], dict_concepts], target=1)
    for key in ("0-1", "0-1-2"):
        for a, b in (("mix", "inner.mix"), ("a", "inner.a")):
            for m in ("sign_count", "magnitude"):
                torch.testing.assert_close(ours[key][a][m], by_name[key][b][m])
    with pytest.raises(IntellegoError, match="cannot be combined with dict inputs"):
        TCAV(dict_model, "inner.mix").interpret({"x": xs[0], "z": xs[1]}, [dict_concepts[:2]], target=0,
                                                additional_forward_args=(2.0,))


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.embed = nn.Embedding(30, 8)
        self.mix = nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.mix(self.embed(ids))).mean(1))


def test_token_concepts_of_different_lengths_are_mean_pooled():
    model = Tokens()
    g = torch.Generator().manual_seed(0)
    short = Concept(0, "short", [torch.randint(0, 15, (6, 3), generator=g), torch.randint(0, 15, (5, 7), generator=g)])
    other = Concept(1, "other", [torch.randint(15, 30, (9, 5), generator=g)])
    ids = torch.randint(0, 30, (7, 11), generator=g)
    with pytest.raises(IntellegoError, match="pass pool='mean'"):
        TCAV(model, "mix").interpret(ids, [[short, other]], target=1)
    tcav = TCAV(model, "mix", pool="mean")
    scores = tcav.interpret(ids, [[short, other]], target=1)["0-1"]["mix"]
    cav = tcav.cavs["0-1"]["mix"].stats["weights"][0]
    assert cav.shape == (8,)
    # brute force: the derivative of the output when every token's activation moves along the CAV
    eps = torch.zeros((), requires_grad=True)
    with torch.no_grad():
        h = model.mix(model.embed(ids))
    out = model.head(torch.tanh(h + eps * cav).mean(1))[:, 1]
    s = torch.stack([torch.autograd.grad(o, eps, retain_graph=True)[0] for o in out])
    torch.testing.assert_close(scores["sign_count"][0], (s > 0).float().mean())
    torch.testing.assert_close(scores["magnitude"][0], (s.abs() * (s > 0)).sum() / s.abs().sum())


def test_conv_layer_pooled_over_space_with_channels_first():
    from intellego.models import ShapesCNN

    model = ShapesCNN().eval()
    g = torch.Generator().manual_seed(0)
    big = Concept(0, "big", [torch.rand(6, 3, 40, 40, generator=g)])
    small = Concept(1, "small", [torch.rand(6, 3, 32, 32, generator=g)])
    tcav = TCAV(model, "conv3", pool="mean", feature_dim=1)
    tcav.interpret(torch.rand(4, 3, 32, 32, generator=g), [[big, small]], target=0)
    assert tcav.cavs["0-1"]["conv3"].stats["weights"].shape == (2, 32)


# ------------------------------------------------------------------------------------------ caching and files


class CountingClassifier(DefaultClassifier):
    def __init__(self) -> None:
        super().__init__()
        self.fits = 0

    def train_and_eval(self, dataloader, **kwargs):  # type: ignore[no-untyped-def]
        self.fits += 1
        return super().train_and_eval(dataloader, **kwargs)


class Counting(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def test_cavs_and_activations_are_cached_in_memory_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, clf = Counting(Planted()), CountingClassifier()
    concepts = [Concept(0, "planted", [batch(1, 1.0)]), *randoms(20, 2)]
    tcav = TCAV(model, "inner.layer", classifier=clf)
    first = tcav.interpret(INPUTS, [concepts[:2], concepts[::2]], target=0)
    assert clf.fits == 2 and model.calls == 1 + 3  # inputs once, each concept once
    second = tcav.interpret(INPUTS, [concepts[:2], concepts[::2]], target=0)
    assert clf.fits == 2 and model.calls == 1 + 3 + 1
    assert torch.equal(first["0-1"]["inner.layer"]["sign_count"], second["0-1"]["inner.layer"]["sign_count"])
    tcav.compute_cavs([concepts[:2]], force_train=True)
    assert clf.fits == 3 and model.calls == 5 + 2
    assert os.listdir(tmp_path) == []


def test_save_path_round_trip_needs_no_data_and_no_training(tmp_path):
    concepts = [Concept(0, "planted", [batch(1, 1.0)]), *randoms(20, 1)]
    tcav = TCAV(MODEL, "layer", model_id="planted", save_path=str(tmp_path))
    scores = tcav.interpret(INPUTS, [concepts], target=0)
    assert sorted(os.listdir(tmp_path / "planted")) == ["0-1-layer.pt"]
    bare = [Concept(0, "planted", None), Concept(1, "random1", None)]
    clf = CountingClassifier()
    again = TCAV(MODEL, "layer", model_id="planted", save_path=str(tmp_path), classifier=clf)
    loaded = again.interpret(INPUTS, [bare], target=0)
    assert clf.fits == 0
    assert torch.equal(scores["0-1"]["layer"]["magnitude"], loaded["0-1"]["layer"]["magnitude"])
    cav = CAV.load(str(tmp_path), "planted", bare, "layer")
    assert cav is not None and isinstance(cav.stats["accs"], torch.Tensor) and cav.stats["classes"] == [0, 1]


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned",))


def test_loading_never_unpickles_arbitrary_objects(tmp_path):
    concepts = [Concept(0, "a", None), Concept(1, "b", None)]
    path = CAV.assemble_save_path(str(tmp_path), "m", concepts, "layer")
    os.makedirs(os.path.dirname(path))
    torch.save({"format": "intellego.cav/1", "stats": _Evil()}, path)
    with pytest.raises(IntellegoError, match="not a plain intellego CAV file"):
        CAV.load(str(tmp_path), "m", concepts, "layer")
    with pytest.raises(IntellegoError, match="has no save_path"):
        CAV(concepts, "layer", {"weights": torch.eye(2)}).save()
    with pytest.raises(IntellegoError, match="cannot save stats"):
        CAV(concepts, "layer", {"obj": object()}, save_path=str(tmp_path)).save()


def test_any_object_with_the_classifier_methods_is_accepted():
    class Fixed:  # Captum's Classifier interface, duck-typed
        def train_and_eval(self, dataloader, **kwargs):  # type: ignore[no-untyped-def]
            self.labels = sorted({int(v) for _, y in dataloader for v in y})
            return {"accs": 0.5}

        def weights(self) -> torch.Tensor:
            return torch.stack([-MODEL.v, MODEL.v]) if self.labels[0] == 0 else torch.stack([MODEL.v, -MODEL.v])

        def classes(self) -> list[int]:
            return self.labels

    concepts = [Concept(0, "planted", [batch(1, 1.0)]), *randoms(20, 1)]
    scores = TCAV(MODEL, "layer", classifier=Fixed()).interpret(INPUTS, [concepts], target=0)
    assert scores["0-1"]["layer"]["sign_count"].tolist() == [0.0, 1.0]  # row for class 0 is -v


# ------------------------------------------------------------------------------------------ errors


class Watched:
    """A data iterator that fails the test if iterated: errors must come before any concept work."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        raise AssertionError("the concept data was read before the error")


def test_bad_input_errors_name_the_problem_before_any_model_call():
    model = Counting(Planted())
    a, b = Concept(0, "a", Watched()), Concept(1, "b", Watched())
    tcav = TCAV(model, "inner.layer")
    cases = [
        (lambda: tcav.interpret(INPUTS, []), "experimental_sets must be a non-empty list"),
        (lambda: tcav.interpret(INPUTS, [[a]]), r"experimental_sets\[0\] must be a list of at least two"),
        (lambda: tcav.interpret(INPUTS, [[a, Concept(0, "dup", [batch(1)])]]), "duplicate concept id 0"),
        (lambda: tcav.interpret(INPUTS, [[a, a]]), "lists a concept twice"),
        (lambda: tcav.interpret(INPUTS, [[a, Concept(2, "none", None)]]), "has no data_iter"),
        (lambda: tcav.interpret(INPUTS, [[a, Concept(3, "empty", [])]]), "is empty"),
        (lambda: tcav.interpret(INPUTS, [[a, b]], magnitude="abs"), "magnitude must be one of"),
        (lambda: tcav.interpret(INPUTS, [[a, b]], attribute_to_layer_input=True), "set attribute_to_layer_input"),
        (lambda: tcav.interpret("text", [[a, b]]), "inputs must be a tensor"),
        (lambda: tcav.significance(INPUTS, a, [b]), "at least 3 random concepts"),
        (lambda: tcav.significance(INPUTS, a, [a, b, Concept(9, "r", Watched())]), "also listed as random"),
        (lambda: tcav.significance(INPUTS, a, [b, Concept(9, "r", Watched()), Concept(8, "s", Watched())],
                                   correction="fdr"), "correction must be one of"),
        (lambda: TCAV(model, "inner.layr"), "layer 'inner.layr' does not exist.*did you mean 'inner.layer'"),
        (lambda: TCAV(model, ["inner.layer", "inner.layer"]), "listed twice"),
        (lambda: TCAV(model, "inner.layer", model_id=""), "model_id must be a non-empty name"),
        (lambda: TCAV(model, "inner.layer", classifier=object()), "lacks"),
        (lambda: TCAV(model, "inner.layer", pool="max"), "pool must be one of"),
    ]
    for call, message in cases:
        with pytest.raises(IntellegoError, match=message):
            call()
    assert model.calls == 0
    concepts = [Concept(5, "c", Watched()), Concept(6, "d", Watched())]
    with pytest.raises(IntellegoError, match="target"):  # checked at the inputs' pass, before concept data
        TCAV(model, "inner.layer").interpret(INPUTS, [concepts], target=5)
    assert model.calls == 1


def test_captum_paths_alias_the_public_objects():
    import intellego.concept as ic
    from intellego.concept._core import cav, concept, tcav
    from intellego.concept._utils import classifier, common, data_iterator

    assert common.concepts_to_str is ic.concepts_to_str
    assert tcav.TCAV is ic.TCAV and cav.CAV is ic.CAV
    assert concept.Concept is ic.Concept and concept.ConceptInterpreter is ic.ConceptInterpreter
    assert classifier.Classifier is ic.Classifier and classifier.DefaultClassifier is ic.DefaultClassifier
    assert data_iterator.dataset_to_dataloader is ic.dataset_to_dataloader


# ------------------------------------------------------------------------------------------ hygiene


def _hygiene_case() -> tuple[nn.Module, torch.Tensor, list[Concept]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.0), nn.Linear(8, 2)).double()
    model.train()
    next(model.parameters()).grad = torch.ones_like(next(model.parameters()))
    x = batch(999, n=10).requires_grad_(True)
    x.grad = torch.ones_like(x)
    return model, x, [Concept(0, "planted", [batch(1, 1.0, 20)]), *randoms(20, 1)]


def test_interpret_leaves_model_and_inputs_unchanged():
    model, x, concepts = _hygiene_case()
    before = snapshot(model, (x, *[c.data_iter[0] for c in concepts]))
    TCAV(model, ["1", "2"]).interpret(x, [concepts], target=1)
    assert_same(before, snapshot(model, (x, *[c.data_iter[0] for c in concepts])))


def test_failed_interpret_leaves_model_and_inputs_unchanged():
    model, x, concepts = _hygiene_case()
    before = snapshot(model, (x,))
    with pytest.raises(RuntimeError, match="boom"):
        TCAV(Exploding(model, fail_on=2), ["inner.1"]).interpret(x, [concepts], target=1)
    assert_same(before, snapshot(model, (x,)))
    assert torch.is_grad_enabled()


def test_custom_layer_attr_method_is_copied_not_changed():
    from intellego.attr import LayerIntegratedGradients

    model, x, concepts = _hygiene_case()
    model.eval()
    method = LayerIntegratedGradients(model, model[0], multiply_by_inputs=False)
    tcav = TCAV(model, ["1", "2"], layer_attr_method=method)
    scores = tcav.interpret(x.detach(), [concepts], target=1, n_steps=8)
    assert method.layer is model[0]
    assert set(scores["0-1"]) == {"1", "2"}


def test_tutorial_script_runs():
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "docs" / "tutorials" / "concept_shapes.py"
    out = runpy.run_path(str(script), run_name="__main__")
    assert out["significant_circles"] and not out["significant_random"]


def test_progress_bar_over_the_experimental_sets(capsys):
    concepts = [Concept(0, "planted", [batch(1, 1.0)]), *randoms(20, 2)]
    TCAV(MODEL, "layer").compute_cavs([concepts[:2], concepts[::2]], show_progress=True)
    assert "CAVs" in capsys.readouterr().err


def test_docs_page_shows_the_tutorial_code():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    script = (root / "docs" / "tutorials" / "concept_shapes.py").read_text()
    assert script.strip() in (root / "docs" / "concept.md").read_text()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_model_gives_the_cpu_scores():
    concepts = [Concept(0, "planted", [batch(1, 1.0)]), *randoms(20, 2)]
    cpu = TCAV(MODEL, "layer").interpret(INPUTS, [concepts], target=0)
    model = Planted().cuda()
    gpu_concepts = [Concept(c.id, c.name, [c.data_iter[0].cuda()]) for c in concepts]
    gpu = TCAV(model, "layer").interpret(INPUTS.cuda(), [gpu_concepts], target=0)
    for m in ("sign_count", "magnitude"):
        torch.testing.assert_close(gpu["0-1-2"]["layer"][m].cpu(), cpu["0-1-2"]["layer"][m], atol=1e-6, rtol=1e-6)


def test_concepts_read_from_files_through_an_iterable_dataset(tmp_path):
    """A DataLoader over an IterableDataset (Captum's file-per-example CustomIterableDataset) has no length: the
    concept's data is read as it comes, with the CAVs of the same examples given as a list of batches."""
    from torch.utils.data import DataLoader

    from intellego.concept import CustomIterableDataset

    for cid, data in ((0, batch(1, shift=3.0)), (1, batch(2))):
        folder = tmp_path / str(cid)
        folder.mkdir()
        for i, row in enumerate(data):
            torch.save(row, folder / f"{i:03d}.pt")
    loaded = [Concept(cid, name, DataLoader(CustomIterableDataset(torch.load, str(tmp_path / str(cid))),
                                            batch_size=16)) for cid, name in ((0, "v"), (1, "random"))]
    listed = [Concept(0, "v", [batch(1, shift=3.0)]), Concept(1, "random", [batch(2)])]
    scores = [TCAV(MODEL, ["layer"]).interpret(INPUTS, [c], target=0) for c in (loaded, listed)]
    key = concepts_to_str(listed)
    for name in ("sign_count", "magnitude"):
        torch.testing.assert_close(scores[0][key]["layer"][name], scores[1][key]["layer"][name])
    assert float(scores[0][key]["layer"]["sign_count"][0]) > 0.9  # the planted direction, found from the files
