"""Insights session core: filters, validation, jobs (progress, cancel, time limit), cache, features, demos."""

from __future__ import annotations

import itertools
import sys
import threading
import time
import types

import pytest
import torch
from torch import nn

import intellego.attr as attr
from intellego.errors import IntellegoError
from intellego.insights import AttributionVisualizer, Batch, Session
from intellego.insights.example import build
from intellego.insights.features import GeneralFeature, ImageFeature, TabularFeature, TextFeature
from intellego.insights.methods import METHOD_SPECS, available_methods


def _linear_session(labels=(0, 1, 0, 1), **options) -> Session:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    data = [Batch(torch.randn(len(labels), 3), torch.tensor(labels))]
    return Session([model], ["a", "b"], [GeneralFeature("x", ["u", "v", "w"])], data, **options)


def test_saliency_on_a_linear_model_is_the_weight_row_of_the_predicted_class():
    session = _linear_session()
    model = session.models[0]
    result = session.run({"method": "Saliency", "arguments": {"abs": False}, "count": 4})
    for sample in result["samples"]:
        target = sample["predictions"][0]["index"]
        got = torch.tensor(sample["features"][0]["attribution"])
        torch.testing.assert_close(got, model.weight[target].detach())
        assert sample["target"] == target


def test_filters_select_by_true_class_and_correctness():
    labels = torch.randint(0, 2, (20,), generator=torch.Generator().manual_seed(3)).tolist()
    session = _linear_session(labels=labels)
    every = session.run({"method": "InputXGradient", "count": 12})["samples"]
    every += session.run({"method": "InputXGradient", "count": 12, "offset": 12})["samples"]
    assert [s["index"] for s in every] == list(range(20))
    assert [s["label"] for s in every] == [["a", "b"][y] for y in labels]
    wrong_ids = [s["index"] for s in every if not s["correct"]]
    right_ids = [s["index"] for s in every if s["correct"]]
    assert wrong_ids and right_ids  # a random model: both kinds present
    b = session.run({"method": "InputXGradient", "classes": ["b"], "count": 12})["samples"]
    assert [s["index"] for s in b] == [i for i, y in enumerate(labels) if y == 1][:12]
    wrong = session.run({"method": "InputXGradient", "prediction": "incorrect", "count": 12})["samples"]
    assert [s["index"] for s in wrong] == wrong_ids[:12]
    right = session.run({"method": "InputXGradient", "prediction": "correct", "count": 3, "offset": 2})["samples"]
    assert [s["index"] for s in right] == right_ids[2:5]
    both = session.run({"method": "InputXGradient", "prediction": "correct", "classes": ["a"], "count": 12})
    assert [s["index"] for s in both["samples"]] == [i for i in right_ids if labels[i] == 0][:12]


def test_a_filter_that_matches_nothing_ends_on_an_endless_iterator():
    batch = Batch(torch.randn(8, 3), torch.zeros(8, dtype=torch.long))
    session = Session([nn.Linear(3, 2)], ["a", "b"], [GeneralFeature("x", ["u", "v", "w"])],
                      itertools.repeat(batch), max_samples=200)
    start = time.perf_counter()
    result = session.run({"method": "Saliency", "classes": ["b"]})
    assert result["samples"] == [] and result["scanned"] == 200 and not result["has_more"]
    assert "first 200 samples" in result["message"]
    assert time.perf_counter() - start < 5


def test_a_generator_that_leaks_stop_iteration_counts_as_the_end_of_the_data():
    def formatted_data_iter():  # Captum's tutorial pattern: next() on an exhausted loader inside a generator
        loader = iter([(torch.randn(2, 3), torch.tensor([0, 1]))])
        while True:
            x, y = next(loader)
            yield Batch(inputs=x, labels=y)

    session = Session([nn.Linear(3, 2)], ["a", "b"], [GeneralFeature("x", ["u", "v", "w"])], formatted_data_iter())
    result = session.run({"method": "Saliency", "count": 5})
    assert len(result["samples"]) == 2 and result["exhausted"] and "data set" not in result["message"]


@pytest.mark.parametrize("request_, fragment", [
    ({"bogus": 1}, "unknown request key(s) ['bogus']"),
    ({"method": "Nope"}, "method must be one of"),
    ({"count": 0}, "count must be an integer between 1 and 24, got 0"),
    ({"count": 2.5}, "count must be an integer"),
    ({"offset": -1}, "offset must be an integer between 0"),
    ({"classes": ["zebra"]}, "classes must be a list of names from ['a', 'b']"),
    ({"classes": "a"}, "classes must be a list"),
    ({"prediction": "maybe"}, "prediction must be one of ['all', 'correct', 'incorrect']"),
    ({"model": 1}, "model must be an integer between 0 and 0"),
    ({"method": "IntegratedGradients", "arguments": {"n_steps": 0}}, "'n_steps' must be between 1 and 300, got 0"),
    ({"method": "IntegratedGradients", "arguments": {"n_steps": True}}, "'n_steps' must be a finite number"),
    ({"method": "IntegratedGradients", "arguments": {"n_steps": 2.5}}, "'n_steps' must be an integer"),
    ({"method": "IntegratedGradients", "arguments": {"method": "simpson"}}, "'method' must be one of"),
    ({"method": "IntegratedGradients", "arguments": {"steps": 3}}, "unknown argument(s) ['steps']"),
    ({"method": "GradientShap", "arguments": {"stdevs": float("nan")}}, "'stdevs' must be a finite number"),
    ({"method": "Saliency", "arguments": {"abs": "yes"}}, "'abs' must be true or false"),
    ({"method": "Saliency", "arguments": []}, "arguments must be an object"),
    ([1, 2], "request must be a JSON object"),
])
def test_bad_requests_are_refused_with_a_message_before_any_work(request_, fragment):
    session = _linear_session()
    with pytest.raises(IntellegoError) as info:
        session.submit(request_)
    assert fragment in str(info.value)
    assert session._store.samples == []  # nothing was drawn from the data


def test_image_only_arguments_are_not_offered_for_other_features():
    spec = METHOD_SPECS["KernelShap"]
    assert [a.name for a in spec.visible_args([GeneralFeature("x", ["a"])])] == ["n_samples"]
    assert [a.name for a in spec.visible_args([ImageFeature("i")])] == ["n_samples", "patch"]
    with pytest.raises(IntellegoError, match=r"unknown argument\(s\) \['patch'\]"):
        spec.check({"patch": 4}, [GeneralFeature("x", ["a"])])


def test_only_methods_present_in_intellego_attr_are_offered(monkeypatch):
    features = [GeneralFeature("x", ["a"])]
    assert "Saliency" in available_methods(features)
    monkeypatch.delattr(attr, "Saliency")
    assert "Saliency" not in available_methods(features)


class _Slow(nn.Module):
    def __init__(self, delay: float):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.delay = delay

    def forward(self, x):
        time.sleep(self.delay)
        return self.lin(x)


def _slow_session(delay=0.05, **options) -> Session:
    data = [Batch(torch.randn(16, 3), torch.zeros(16, dtype=torch.long))]
    return Session([_Slow(delay)], ["a", "b"], [GeneralFeature("x", ["u", "v", "w"])], data, **options)


def test_job_reports_progress_and_its_result():
    session = _slow_session(delay=0.0)
    seen = []
    job = session.submit({"method": "IntegratedGradients", "count": 3}, on_update=lambda j: seen.append(
        (j.state, j.done, j.total)))
    assert job.wait(10) and job.state == "done"
    assert len(job.result["samples"]) == 3 and job.snapshot()["result"] is job.result
    assert seen[0][0] == "running" and seen[-1] == ("done", 3, 3)
    assert all(a[1] <= b[1] for a, b in zip(seen, seen[1:]) if a[0] == b[0] == "running" and a[2] == b[2])


def test_cancel_stops_a_running_job_at_its_next_model_call():
    session = _slow_session(delay=0.05)
    job = session.submit({"method": "IntegratedGradients", "count": 16, "arguments": {"n_steps": 5}})
    deadline = time.monotonic() + 5
    while job.state != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    job.cancel()
    assert job.wait(2)
    assert job.state == "cancelled" and job.error == "cancelled"
    follow = session.submit({"method": "Saliency", "count": 1})  # the worker keeps serving
    assert follow.wait(5) and follow.state == "done"


def test_a_job_over_its_time_limit_ends_with_an_error():
    session = _slow_session(delay=0.05, job_limit_s=0.2)
    job = session.submit({"method": "Saliency", "count": 16})
    assert job.wait(5)
    assert job.state == "error" and "time limit of 0.2 s" in job.error


def test_a_failing_model_becomes_a_job_error_and_the_worker_survives():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    data = [Batch(torch.randn(2, 3), torch.tensor([0, 1]))]
    session = Session([Broken(), nn.Linear(3, 2)], ["a", "b"], [GeneralFeature("x", ["u", "v", "w"])], data)
    job = session.submit({"method": "Saliency", "model": 0})
    assert job.wait(5) and job.state == "error" and job.error == "RuntimeError: boom"
    job = session.submit({"method": "Saliency", "model": 1, "count": 2})
    assert job.wait(5) and job.state == "done"


def test_queue_is_bounded():
    session = _slow_session(delay=0.2)
    with pytest.raises(IntellegoError, match="too many requests"):
        for i in range(10):  # one running, eight waiting, then refused
            session.submit({"method": "Saliency", "count": 1, "offset": i})
    assert i in (8, 9)
    session.close()


def test_result_cache_is_bounded_and_reused():
    session = _linear_session(labels=(0, 1) * 4, cache_size=3)
    first = session.run({"method": "Saliency", "count": 2})
    assert session.run({"method": "Saliency", "count": 2})["samples"] == first["samples"]
    session.run({"method": "Saliency", "count": 8})
    assert len(session._cache) == 3
    other = session.run({"method": "Saliency", "count": 2, "arguments": {"abs": False}})
    assert other["samples"][0]["features"][0]["attribution"] != first["samples"][0]["features"][0]["attribution"]
    assert len(session._cache) == 3


def test_models_are_left_as_found():
    vis = build("shapes", n=8)
    model = vis.session.models[0]
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in vis.session.methods:
        vis.session.run({"method": method, "count": 1})
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks and not module._backward_hooks
    assert all(p.grad is None for p in model.parameters())


def test_contributions_of_several_features_are_normalised():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)
            self.lin = nn.Linear(4, 2)

        def forward(self, image, row):
            return self.conv(image).mean((2, 3)) + self.lin(row)

    torch.manual_seed(1)
    data = [Batch((torch.rand(3, 3, 8, 8), torch.randn(3, 4)), torch.tensor([0, 1, 1]))]
    features = [ImageFeature("img"), TabularFeature("row", ["a", "b", "c", "d"])]
    session = Session([Two()], ["x", "y"], features, data)
    sample = session.run({"method": "InputXGradient", "count": 1})["samples"][0]
    image, row = sample["features"]
    assert image["kind"] == "image" and image["heat"]["shape"] == [8, 8] and image["image"]["shape"] == [8, 8, 3]
    assert row["kind"] == "columns" and row["names"] == ["a", "b", "c", "d"]
    assert abs(abs(image["contribution"]) + abs(row["contribution"]) - 1) < 1e-9
    assert abs(row["total"] - sum(row["attribution"])) < 1e-4


def test_feature_transforms_baselines_and_views():
    feature = ImageFeature("img", baseline_transforms=[lambda x: x * 0, lambda x: x + 1],
                           input_transforms=[lambda x: x * 2])
    x = torch.rand(3, 4, 4)
    assert torch.equal(feature.transform(x), x * 2)
    zero, shifted = feature.baselines(feature.transform(x))
    assert torch.equal(zero, torch.zeros(3, 4, 4)) and torch.equal(shifted, x * 2 + 1)
    hwc = ImageFeature("hwc").view(torch.rand(5, 6, 3) * 10, torch.ones(5, 6, 3))
    assert hwc["image"]["shape"] == [5, 6, 3] and hwc["heat"]["shape"] == [5, 6]
    with pytest.raises(IntellegoError, match="baseline_transforms\\[0\\] of feature 'img' returned"):
        ImageFeature("img", baseline_transforms=[lambda x: x[0]]).baselines(x)
    with pytest.raises(IntellegoError, match="must be callable"):
        ImageFeature("img", baseline_transforms=[3])
    text = TextFeature("t", visualization_transform=lambda ids: ["a", "b", "c"])
    assert text.view(torch.tensor([1, 2, 3]), torch.ones(4, 2))["attribution"] == [2.0, 2.0, 2.0]
    groups = ImageFeature("img").groups(2, (3, 4, 4))
    assert groups.shape == (3, 4, 4) and groups.unique().numel() == 4 and torch.equal(groups[0], groups[2])
    assert TextFeature("t").window(3, (10, 8)) == (3, 8)


def test_bad_data_is_reported_with_the_offending_shapes():
    data = [Batch((torch.randn(2, 3), torch.randn(3, 3)), torch.tensor([0, 1]))]
    session = Session([nn.Linear(3, 2)], ["a", "b"], [GeneralFeature("x", list("uvw"))] * 2, data)
    with pytest.raises(IntellegoError, match="same batch size"):
        session.run({"method": "Saliency"})
    session = Session([nn.Linear(3, 2)], ["a", "b"], [GeneralFeature("x", list("uvw"))], [object()])
    with pytest.raises(IntellegoError, match="must yield Batch objects"):
        session.run({"method": "Saliency"})
    with pytest.raises(IntellegoError, match="dataset must be an iterable"):
        Session([nn.Linear(3, 2)], ["a", "b"], [GeneralFeature("x", list("uvw"))], 3)


@pytest.mark.parametrize("data", ["tabular", "tokens"])
def test_other_demos_run_every_offered_method(data):
    vis = build(data, n=8)
    kinds = {"tabular": "columns", "tokens": "text"}
    for method in vis.session.methods:
        result = vis.session.run({"method": method, "count": 2})
        assert len(result["samples"]) == 2
        assert result["samples"][0]["features"][0]["kind"] == kinds[data]


def test_perturbation_methods_are_wired_when_present(monkeypatch):
    from intellego.attr.ablation import FeatureAblation, Occlusion

    monkeypatch.setattr(attr, "Occlusion", Occlusion, raising=False)
    monkeypatch.setattr(attr, "FeatureAblation", FeatureAblation, raising=False)
    vis = build("shapes", n=4)
    assert {"Occlusion", "FeatureAblation"} <= set(vis.session.methods)
    result = vis.session.run({"method": "Occlusion", "arguments": {"window": 8, "stride": 8}, "count": 1})
    heat = result["samples"][0]["features"][0]["heat"]
    assert heat["shape"] == [32, 32]
    patches = vis.session.run({"method": "FeatureAblation", "arguments": {"patch": 16}, "count": 1})
    assert patches["arguments"] == {"patch": 16}


def test_captum_program_runs_with_only_its_imports_changed(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    monkeypatch.setattr("IPython.get_ipython", lambda: types.SimpleNamespace(kernel=object()))  # in a notebook
    program = '''
import torch
from intellego.insights import AttributionVisualizer, Batch
from intellego.insights.attr_vis.features import ImageFeature
from intellego.data import make_shapes, SHAPE_CLASSES
from intellego.models import load_shapes_cnn

net = load_shapes_cnn()
classes = list(SHAPE_CLASSES)

def baseline_func(input):
    return input * 0

def transform(x):
    return x

def formatted_data_iter():
    data = make_shapes(16, seed=5)
    dataloader = iter(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.images, data.labels),
                                                  batch_size=4, shuffle=False, num_workers=0))
    while True:
        images, labels = next(dataloader)
        yield Batch(inputs=images, labels=labels)

visualizer = AttributionVisualizer(
    models=[net], score_func=lambda o: torch.nn.functional.softmax(o, 1), classes=classes,
    features=[ImageFeature("Photo", baseline_transforms=[baseline_func], input_transforms=[transform])],
    dataset=formatted_data_iter())
visualizer.render(debug=False)
'''
    scope: dict = {}
    exec(compile(program, "captum_program", "exec"), scope)
    (widget,) = shown
    assert type(widget).__name__ == "InsightsWidget" and widget.config["classes"] == scope["classes"]
    result = scope["visualizer"].session.run({"method": "Saliency", "count": 20})
    assert len(result["samples"]) == 16 and result["exhausted"]


def test_visualizer_serve_binds_loopback_and_stops(capsys):
    vis = AttributionVisualizer([nn.Linear(3, 2)], ["a", "b"], GeneralFeature("x", list("uvw")),
                                [Batch(torch.randn(2, 3), torch.tensor([0, 1]))])
    port = vis.serve()
    try:
        assert f"http://127.0.0.1:{port}/?token=" in capsys.readouterr().out
        assert vis._server.httpd.server_address[0] == "127.0.0.1"
        assert threading.active_count() >= 2
    finally:
        vis.stop()
    assert vis._server is None


def test_class_names_that_do_not_match_the_model_outputs_are_named():
    """Three names for a two-output model: the error names the argument and both counts at the first model call."""
    data = [Batch(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))]
    session = Session([nn.Linear(3, 2)], ["a", "b", "c"], [GeneralFeature("x", list("uvw"))], data)
    with pytest.raises(IntellegoError, match=r"classes has 3 names \(a, b, c\.\.\.\) but model 0 returns 2 scores "
                                             r"per example \(after score_func: shape \(4, 2\)\)"):
        session.run({"method": "Saliency"})


def _visualizer() -> AttributionVisualizer:
    data = [Batch(torch.randn(2, 3), torch.tensor([0, 1]))]
    return AttributionVisualizer([nn.Linear(3, 2)], ["a", "b"], [GeneralFeature("x", list("uvw"))], data)


def test_render_outside_a_notebook_points_to_serve_and_export():
    """A script or terminal has no kernel: render() says what to use instead of showing nothing."""
    pytest.importorskip("IPython")
    with pytest.raises(IntellegoError, match=r"not one \(no IPython kernel\).*serve\(\).*export\('insights.html'\)"):
        _visualizer().render()


def test_render_without_ipython_names_the_extra(monkeypatch):
    """A base install has no IPython: the error names the extra to install, not a bare module name."""
    monkeypatch.setitem(sys.modules, "IPython", None)
    with pytest.raises(IntellegoError, match=r"pip install 'intellego\[insights\]'.*serve\(\)") as info:
        _visualizer().render()
    assert isinstance(info.value.__cause__, ImportError)


def test_render_in_a_notebook_displays_the_widget(monkeypatch):
    ipython = pytest.importorskip("IPython")
    pytest.importorskip("anywidget")
    shown = []
    monkeypatch.setattr(ipython, "get_ipython", lambda: types.SimpleNamespace(kernel=object()))
    monkeypatch.setattr(ipython.display, "display", shown.append)
    _visualizer().render()
    assert [type(w).__name__ for w in shown] == ["InsightsWidget"]
