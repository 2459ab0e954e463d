"""intellego.scale: sharded, resumable, atomic dataset attribution; exact against one process and a plain loop.

The torchrun tests start ``torchrun --nproc-per-node 2`` (Gloo on CPU) on a job module written to a temporary
directory, and compare its shards with the single-process result bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from intellego.attr import ClassSummarizer, CommonStats, IntegratedGradients, Saliency
from intellego.errors import IntellegoError
from intellego.scale import attribute_dataset, load_results, load_summary
from intellego.scale._dist import rank_threads
from intellego.scale._store import completed

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = ROOT / ".venv" / "bin" / "torchrun"

JOB = textwrap.dedent('''
    import json, os, sys, time
    import torch
    from intellego.attr import CommonStats, IntegratedGradients


    def make_model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).eval()


    class Data:
        def __init__(self, n=46, delay=0.0):
            g = torch.Generator().manual_seed(1)
            self.x = torch.randn(n, 6, generator=g)
            self.y = torch.randint(0, 3, (n,), generator=g)
            self.delay = delay

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            time.sleep(self.delay)
            return self.x[i], int(self.y[i])


    def make_data():
        return Data()


    def run(out, delay, pids):
        from intellego.scale import attribute_dataset
        rank = int(os.environ.get("RANK", "0"))
        if pids:
            with open(os.path.join(pids, f"pid-{rank}"), "w") as f:
                f.write(str(os.getpid()))
        report = attribute_dataset(IntegratedGradients(make_model()), Data(delay=delay), out=out, batch_size=4,
                                   shard_size=8, attribute_kwargs={"n_steps": 8}, stats=CommonStats(),
                                   progress=False)
        with open(os.path.join(out, f"report-{rank}-{os.getpid()}.json"), "w") as f:
            json.dump({"written": report.written, "threads": report.threads, "world": report.world_size}, f)


    if __name__ == "__main__":
        run(sys.argv[1], float(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")
''')


@pytest.fixture
def job(tmp_path, monkeypatch):
    """The job module, importable here and by the torchrun workers."""
    (tmp_path / "scale_job.py").write_text(JOB)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("scale_job", None)
    import scale_job

    return scale_job


def _single(job, out):
    return attribute_dataset(IntegratedGradients(job.make_model()), job.Data(), out=out, batch_size=4, shard_size=8,
                             attribute_kwargs={"n_steps": 8}, stats=CommonStats(), progress=False)


def _torchrun(tmp_path, out, delay=0.0, nproc=2, **popen):
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT / 'src'}", "OMP_NUM_THREADS": "1"}
    cmd = [str(TORCHRUN), "--standalone", "--nproc-per-node", str(nproc), str(tmp_path / "scale_job.py"),
           str(out), str(delay), str(tmp_path)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def _stamp(out):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in Path(out).glob("shard-*")}


def _reports(out):
    return [json.loads(p.read_text()) for p in sorted(Path(out).glob("report-*.json"))]


def _assert_same_summaries(a, b):
    assert a.keys() == b.keys() if isinstance(a, dict) else True
    for key in a:
        va, vb = a[key], b[key]
        assert torch.equal(va, vb) if isinstance(va, torch.Tensor) else va == vb, key


def test_single_process_equals_plain_loop_exactly(job, tmp_path):
    report = _single(job, tmp_path / "a")
    model, data = job.make_model(), job.Data()
    ig = IntegratedGradients(model)
    expected = torch.cat([ig.attribute(data.x[s:s + 4], target=data.y[s:s + 4], n_steps=8) for s in range(0, 46, 4)])
    got = load_results(tmp_path / "a")
    assert torch.equal(got.attributions, expected)
    assert torch.equal(got.labels, data.y) and torch.equal(got.index, torch.arange(46))
    assert report.written == list(range(6)) and report.num_shards == 6 and report.examples == 46


def test_summaries_match_class_summarizer(job, tmp_path):
    report = _single(job, tmp_path / "a")
    res = load_results(tmp_path / "a")
    ref = ClassSummarizer(CommonStats())
    ref.update(res.attributions, res.labels)
    for key, value in ref.summary[0].items():  # ClassSummarizer keeps labelled rows as 1-tuples
        torch.testing.assert_close(report.summary[key].to(value.dtype), value, rtol=1e-5, atol=1e-6)
    assert sorted(ref.class_summaries) == sorted(report.class_summaries)
    for label, summary in ref.class_summaries.items():
        for key, value in summary[0].items():
            torch.testing.assert_close(report.class_summaries[label][key].to(value.dtype), value, rtol=1e-5,
                                       atol=1e-6)
    again = load_summary(tmp_path / "a", CommonStats())
    _assert_same_summaries(again["summary"], report.summary)


def test_resume_computes_only_missing_shards(job, tmp_path):
    out = tmp_path / "a"
    _single(job, out)
    clean = load_results(out).attributions.clone()
    (out / "shard-000003.safetensors").unlink()
    (out / ".tmp-left-by-a-killed-writer").write_bytes(b"partial")
    before = _stamp(out)
    report = _single(job, out)
    assert report.written == [3] and report.skipped == 5
    after = _stamp(out)
    assert {k: v for k, v in after.items() if k != "shard-000003.safetensors"} == before
    assert torch.equal(load_results(out).attributions, clean)
    assert not list(out.glob(".tmp-*"))


def test_other_job_in_same_out_is_refused(job, tmp_path):
    _single(job, tmp_path / "a")
    with pytest.raises(IntellegoError, match="holds another job.*shard_size"):
        attribute_dataset(IntegratedGradients(job.make_model()), job.Data(), out=tmp_path / "a", batch_size=4,
                          shard_size=12, stats=CommonStats(), progress=False)


def test_store_false_keeps_summaries_only(job, tmp_path):
    model = job.make_model()
    r = attribute_dataset(Saliency(model), job.Data(), out=tmp_path / "s", batch_size=5, store=False,
                          stats=CommonStats(), progress=False)
    assert r.summary["mean"].shape == (6,)
    with pytest.raises(IntellegoError, match="store=False"):
        load_results(tmp_path / "s")


def test_missing_shards_named(job, tmp_path):
    _single(job, tmp_path / "a")
    (tmp_path / "a" / "shard-000001.safetensors").unlink()
    with pytest.raises(IntellegoError, match=r"misses 1 of 6 shards \(first: \[1\]\)"):
        load_results(tmp_path / "a")


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size must be a positive int, got 0"),
    ({"batch_size": 2, "shard_size": -1}, "shard_size must be a positive int, got -1"),
    ({"batch_size": 2, "store": False}, "store=False without stats"),
    ({"batch_size": 2, "attribute_kwargs": {"target": 0}}, "must not hold 'target'"),
])
def test_bad_arguments_raise_before_work(job, tmp_path, kwargs, match):
    with pytest.raises(IntellegoError, match=match):
        attribute_dataset(Saliency(job.make_model()), job.Data(), out=tmp_path / "x", progress=False, **kwargs)
    assert not (tmp_path / "x").exists()


def test_out_must_be_a_path(job):
    with pytest.raises(IntellegoError, match="out must be a directory path .str or Path., got None"):
        attribute_dataset(Saliency(job.make_model()), job.Data(), out=None, batch_size=2, progress=False)


def test_shuffled_loader_refused(job, tmp_path):
    loader = torch.utils.data.DataLoader(job.Data(), batch_size=4, shuffle=True)
    with pytest.raises(IntellegoError, match="must read in order"):
        attribute_dataset(Saliency(job.make_model()), loader, out=tmp_path / "x", progress=False)


def test_model_and_data_unchanged(job, tmp_path):
    model, data = job.make_model(), job.Data()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = data.x.clone()
    attribute_dataset(Saliency(model), torch.utils.data.DataLoader(data, batch_size=8), out=tmp_path / "d",
                      progress=False)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items()) and torch.equal(data.x, x)
    assert all(p.grad is None for p in model.parameters())


def test_rank_threads_splits_cores_and_restores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0))
    with rank_threads(None, local_world_size=cores * 2) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(IntellegoError, match="num_threads must be a positive int"), rank_threads(0, 1):
        pass


def test_cli_single_process(job, tmp_path, capsys):
    from intellego.insights.__main__ import main

    out = tmp_path / "cli"
    code = main(["attribute", "--method", "integrated_gradients", "--model", "scale_job:make_model", "--data",
                 "scale_job:make_data", "--out", str(out), "--batch-size", "4", "--shard-size", "8",
                 "--attribute-args", '{"n_steps": 8}', "--no-progress"])
    assert code == 0 and "6 shards" in capsys.readouterr().out
    _single(job, tmp_path / "ref")
    assert torch.equal(load_results(out).attributions, load_results(tmp_path / "ref").attributions)
    assert main(["attribute", "--method", "nope", "--model", "scale_job:make_model", "--data", "scale_job:make_data",
                 "--out", str(out)]) == 2
    assert "no attribution class 'nope'" in capsys.readouterr().err


def test_torchrun_two_ranks_equal_single_process(job, tmp_path):
    _single(job, tmp_path / "one")
    proc = _torchrun(tmp_path, tmp_path / "two")
    log, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, log
    one, two = load_results(tmp_path / "one"), load_results(tmp_path / "two")
    assert torch.equal(one.attributions, two.attributions) and torch.equal(one.labels, two.labels)
    reports = _reports(tmp_path / "two")
    assert sorted(r["written"] for r in reports) == [[0, 2, 4], [1, 3, 5]]
    assert all(r["world"] == 2 and r["threads"] == 1 for r in reports)
    s1, s2 = load_summary(tmp_path / "one", CommonStats()), load_summary(tmp_path / "two", CommonStats())
    _assert_same_summaries(s1["summary"], s2["summary"])
    assert s1["class_summaries"].keys() == s2["class_summaries"].keys()
    for label in s1["class_summaries"]:
        _assert_same_summaries(s1["class_summaries"][label], s2["class_summaries"][label])


@pytest.mark.slow  # ~60 s on the loaded 2-core machine: two torchrun starts and a 0.15 s/item dataset
def test_killed_worker_then_rerun_equals_clean_run(job, tmp_path):
    _single(job, tmp_path / "clean")
    out = tmp_path / "killed"
    proc = _torchrun(tmp_path, out, delay=0.15)
    deadline = time.monotonic() + 240
    while len(completed(out, "safetensors")) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(int((tmp_path / "pid-1").read_text()), signal.SIGKILL)
    log, _ = proc.communicate(timeout=240)
    assert proc.returncode != 0, log
    first = _stamp(out)
    assert 2 <= len(first) < 6, sorted(first)
    proc = _torchrun(tmp_path, out)
    log, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, log
    final = _stamp(out)
    assert {k: final[k] for k in first} == first  # nothing finished before the kill was written again
    rerun = [s for r in _reports(out) for s in r["written"]]
    assert sorted(rerun) == sorted(int(k[6:12]) for k in set(final) - set(first))
    assert sorted(final) == [f"shard-{k:06d}.safetensors" for k in range(6)]
    clean, resumed = load_results(tmp_path / "clean"), load_results(out)
    assert torch.equal(clean.attributions, resumed.attributions) and torch.equal(clean.index, resumed.index)
    _assert_same_summaries(load_summary(tmp_path / "clean", CommonStats())["summary"],
                           load_summary(out, CommonStats())["summary"])


class _TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 3), torch.nn.Linear(2, 3)

    def forward(self, x, z):
        return self.a(x) * torch.tanh(self.b(z))


def test_tuple_inputs_give_tuple_results_and_summaries(tmp_path):
    torch.manual_seed(0)
    model = _TwoInputs()
    xs, zs, ys = torch.randn(10, 4), torch.randn(10, 2), torch.arange(10) % 3
    data = [((xs[i], zs[i]), int(ys[i])) for i in range(10)]
    r = attribute_dataset(Saliency(model), data, out=tmp_path / "t", batch_size=3, shard_size=6, stats=CommonStats(),
                          progress=False)
    got = load_results(tmp_path / "t").attributions
    expected = tuple(torch.cat(p) for p in zip(*[Saliency(model).attribute((xs[s:s + 3], zs[s:s + 3]),
                                                                            target=ys[s:s + 3])
                                                 for s in (0, 3, 6, 9)], strict=True))
    assert isinstance(got, tuple) and all(torch.equal(g, e) for g, e in zip(got, expected, strict=True))
    assert isinstance(r.summary, list) and len(r.summary) == 2 and r.summary[1]["mean"].shape == (2,)
    torch.testing.assert_close(r.class_summaries[1][0]["max"], expected[0][ys == 1].amax(0))


@pytest.mark.slow  # a third torchrun start; the CLI itself is covered on one process by test_cli_single_process
def test_cli_under_torchrun_equals_single_process(job, tmp_path):
    from intellego.scale.__main__ import main

    args = ["--method", "saliency", "--model", "scale_job:make_model", "--data", "scale_job:make_data",
            "--batch-size", "4", "--shard-size", "8", "--stats", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT / 'src'}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "intellego.scale", *args,
                           "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("6 shards") == 1  # the summary line, printed by rank 0 only
    assert torch.equal(load_results(tmp_path / "one").attributions, load_results(tmp_path / "two").attributions)
    _assert_same_summaries(load_summary(tmp_path / "one", CommonStats())["summary"],
                           load_summary(tmp_path / "two", CommonStats())["summary"])
