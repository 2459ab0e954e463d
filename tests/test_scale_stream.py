"""intellego.scale over iterable datasets (sharded by stream position) and the all_reduce summaries.

The torchrun test resumes, on 2 ranks with ``reduce="all_reduce"``, a single-process run over a stream whose
shards 1 and 4 were deleted: the results must equal the single-process ones bit for bit and the summaries must
equal the single-process shard-order summaries (count, min and max exactly; the float64 moments to rounding).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from intellego.attr import CommonStats
from intellego.errors import IntellegoError
from intellego.scale import load_results, load_summary, manifest

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = ROOT / ".venv" / "bin" / "torchrun"
EXACT = ("count", "min", "max")

JOB = textwrap.dedent('''
    import os, sys
    import torch
    from intellego.attr import CommonStats, Saliency


    def make_model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(5, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3)).eval()


    class Items(torch.utils.data.Dataset):
        def __init__(self, n=45):
            g = torch.Generator().manual_seed(1)
            self.x, self.y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i], int(self.y[i])


    class Stream(torch.utils.data.IterableDataset):
        def __init__(self, n=45):
            self.items = Items(n)

        def __iter__(self):
            return (self.items[i] for i in range(len(self.items)))


    def run(out, data, reduce="shards"):
        from intellego.scale import attribute_dataset
        return attribute_dataset(Saliency(make_model()), data, out=out, batch_size=4, shard_size=8,
                                 stats=CommonStats(), reduce=reduce, progress=False)


    if __name__ == "__main__":
        report = run(sys.argv[1], Stream(), "all_reduce")
        torch.save({"written": report.written, "summary": report.summary, "classes": report.class_summaries},
                   os.path.join(sys.argv[2], f"rank-{report.rank}.pt"))
''')


@pytest.fixture
def job(tmp_path, monkeypatch):
    (tmp_path / "scale_stream_job.py").write_text(JOB)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("scale_stream_job", None)
    import scale_stream_job

    return scale_stream_job


def _same(a, b, exact_only=False):
    """Summaries equal: count, min, max bit for bit; the moments to float rounding (or bit for bit)."""
    assert a.keys() == b.keys()
    for key in a:
        va, vb = a[key], b[key]
        if not isinstance(va, torch.Tensor):
            assert va == vb, key
        elif key in EXACT or exact_only:
            assert torch.equal(va, vb), key
        else:
            torch.testing.assert_close(va, vb, rtol=1e-6, atol=1e-9)


def _same_all(a, b, exact_only=False):
    _same(a["summary"], b["summary"], exact_only)
    assert a["class_summaries"].keys() == b["class_summaries"].keys()
    for label in a["class_summaries"]:
        _same(a["class_summaries"][label], b["class_summaries"][label], exact_only)


def test_stream_equals_map_style_exactly(job, tmp_path):
    job.run(tmp_path / "map", job.Items())
    report = job.run(tmp_path / "stream", job.Stream())
    job.run(tmp_path / "loader", torch.utils.data.DataLoader(job.Stream(), batch_size=4))
    a, b, c = (load_results(tmp_path / k) for k in ("map", "stream", "loader"))
    assert torch.equal(a.attributions, b.attributions) and torch.equal(a.attributions, c.attributions)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.index, b.index)
    assert report.num_shards == 6 and report.written == list(range(6))
    assert manifest(tmp_path / "stream")["examples"] == 45 and manifest(tmp_path / "stream")["complete"]
    _same_all(load_summary(tmp_path / "map", CommonStats()), load_summary(tmp_path / "stream", CommonStats()), True)


def test_stream_resume_recomputes_only_missing_and_checks_length(job, tmp_path):
    out = tmp_path / "s"
    job.run(out, job.Stream())
    clean = load_results(out).attributions.clone()
    (out / "shard-000002.safetensors").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    report = job.run(out, job.Stream())
    assert report.written == [2] and report.skipped == 5
    assert all(before[p.name] == p.stat().st_mtime_ns for p in out.glob("shard-*") if p.name in before)
    assert torch.equal(load_results(out).attributions, clean)
    with pytest.raises(IntellegoError, match="gave 40 examples but .* was started with 45"):
        job.run(out, job.Stream(40))
    with pytest.raises(IntellegoError, match="the iterable dataset yielded nothing"):
        job.run(tmp_path / "empty", job.Stream(0))


def test_all_reduce_on_one_process_matches_shard_order(job, tmp_path):
    shards = job.run(tmp_path / "a", job.Items())
    reduced = job.run(tmp_path / "b", job.Items(), "all_reduce")
    _same_all({"summary": shards.summary, "class_summaries": shards.class_summaries},
              {"summary": reduced.summary, "class_summaries": reduced.class_summaries})
    with pytest.raises(IntellegoError, match="reduce must be one of"):
        job.run(tmp_path / "c", job.Items(), "mean")


def test_torchrun_stream_resume_with_all_reduce(job, tmp_path):
    job.run(tmp_path / "one", job.Items())
    one = load_summary(tmp_path / "one", CommonStats())
    out = tmp_path / "two"
    job.run(out, job.Stream())
    for k in (1, 4):
        (out / f"shard-00000{k}.safetensors").unlink()
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT / 'src'}", "OMP_NUM_THREADS": "1"}
    cmd = [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", str(tmp_path / "scale_stream_job.py"), str(out),
           str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ranks = [torch.load(tmp_path / f"rank-{r}.pt", weights_only=False) for r in (0, 1)]
    assert sorted(r["written"] for r in ranks) == [[1], [4]]
    assert torch.equal(load_results(tmp_path / "one").attributions, load_results(out).attributions)
    for r in ranks:
        _same_all(one, {"summary": r["summary"], "class_summaries": r["classes"]})
    _same_all({"summary": ranks[0]["summary"], "class_summaries": ranks[0]["classes"]},
              {"summary": ranks[1]["summary"], "class_summaries": ranks[1]["classes"]}, True)
