"""intellego.scale adapters: influence (TracInCP), concept (TCAV) and LLM attribution over whole datasets.

Each adapter's stored result is checked against the method called once on the whole dataset (closed over the
same public API), and one ``torchrun --nproc-per-node 2`` job runs all four adapters and must give the
single-process shards bit for bit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from intellego.errors import IntellegoError
from intellego.scale import Batched, PerExample, attribute_dataset, load_results, manifest, tcav_scores

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = ROOT / ".venv" / "bin" / "torchrun"

JOB = textwrap.dedent('''
    import os, sys
    import torch
    from intellego.attr import FeatureAblation, LLMAttribution
    from intellego.concept import TCAV, Concept
    from intellego.influence import TracInCP
    from intellego.models.tiny_lm import TinyCausalLM, WordTokenizer
    from intellego.scale import attribute_dataset, influence, llm_attribution, self_influence, tcav

    WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "."]
    PROMPTS = [("the cat sat", "on a mat"), ("a dog ran far", "away"), ("the mat", "sat on"),
               ("dog and cat ran", "far ."), ("a", "cat")]


    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).eval()


    def data(seed, n):
        g = torch.Generator().manual_seed(seed)
        return torch.utils.data.TensorDataset(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g))


    def tracin():
        m = model()
        later = {k: v + 0.05 * torch.arange(v.numel()).reshape(v.shape).sin() for k, v in m.state_dict().items()}
        return TracInCP(m, data(1, 22), [m.state_dict(), later], loss_fn=torch.nn.CrossEntropyLoss(reduction="none"),
                        batch_size=8)


    def concepts():
        g = torch.Generator().manual_seed(3)
        batches = lambda shift: [torch.randn(8, 4, generator=g) + shift for _ in range(2)]
        return [Concept(0, "up", batches(1.0)), Concept(1, "down", batches(-1.0)), Concept(2, "noise", batches(0.0))]


    def sets():
        c = concepts()
        return [[c[0], c[2]], [c[1], c[2]]]


    def make_tcav(cavs):
        return TCAV(model(), ["0", "2"], save_path=cavs)


    def lm():
        tok = WordTokenizer(WORDS)
        return LLMAttribution(FeatureAblation(TinyCausalLM(len(tok), seed=0).double()), tok)


    def run(root, cavs):
        tr = tracin()
        attribute_dataset(self_influence(tr), data(1, 22), out=os.path.join(root, "self"), batch_size=4, shard_size=8,
                          progress=False)
        attribute_dataset(influence(tr), data(2, 10), out=os.path.join(root, "inf"), batch_size=3, shard_size=3,
                          progress=False)
        xs = [x for x, _ in data(2, 10)]
        attribute_dataset(tcav(make_tcav(cavs), sets(), target=1), xs, out=os.path.join(root, "tcav"), batch_size=2,
                          shard_size=4, progress=False)
        attribute_dataset(llm_attribution(lm()), PROMPTS, out=os.path.join(root, "llm"), batch_size=2, shard_size=2,
                          progress=False)


    if __name__ == "__main__":
        run(sys.argv[1], sys.argv[2])
''')


@pytest.fixture
def job(tmp_path, monkeypatch):
    (tmp_path / "scale_methods_job.py").write_text(JOB)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("scale_methods_job", None)
    import scale_methods_job

    return scale_methods_job


@pytest.fixture
def cavs(job, tmp_path):
    """CAVs trained once and saved, so that every process loads the same ones."""
    path = tmp_path / "cavs"
    job.make_tcav(str(path)).compute_cavs(job.sets())
    return str(path)


def test_self_influence_and_influence_equal_whole_dataset_calls(job, tmp_path):
    tr = job.tracin()
    attribute_dataset(job.self_influence(tr), job.data(1, 22), out=tmp_path / "self", batch_size=4, shard_size=8,
                      progress=False)
    got = load_results(tmp_path / "self")
    torch.testing.assert_close(got.attributions, tr.self_influence(), rtol=1e-5, atol=1e-7)
    assert torch.equal(got.labels, job.data(1, 22).tensors[1])
    assert manifest(tmp_path / "self")["method"] == "TracInCP.self_influence"
    test = job.data(2, 10)
    attribute_dataset(job.influence(tr, k=3), test, out=tmp_path / "top", batch_size=4, progress=False)
    top = load_results(tmp_path / "top").attributions
    whole = tr.influence(test.tensors)
    assert isinstance(top, tuple) and top[0].shape == (10, 3)
    torch.testing.assert_close(top[1], whole.topk(3, dim=1).values, rtol=1e-5, atol=1e-7)
    assert torch.equal(top[0], whole.topk(3, dim=1).indices)


def test_tcav_rows_rebuild_whole_dataset_scores(job, cavs, tmp_path):
    xs = [x for x, _ in job.data(2, 10)]
    adapter = job.tcav(job.make_tcav(cavs), job.sets(), target=1)
    attribute_dataset(adapter, xs, out=tmp_path / "t", batch_size=3, progress=False)
    rows = load_results(tmp_path / "t").attributions
    columns = manifest(tmp_path / "t")["info"]["columns"]
    assert rows.shape == (10, 8) and len(columns) == 8  # 2 sets x 2 layers x 2 concepts
    whole = job.make_tcav(cavs).interpret(torch.stack(xs), job.sets(), target=1)
    for magnitude in ("ratio", "mean"):
        ours = tcav_scores(rows, columns, magnitude)
        theirs = whole if magnitude == "ratio" else job.make_tcav(cavs).interpret(torch.stack(xs), job.sets(),
                                                                                  target=1, magnitude="mean")
        for key, layers in theirs.items():
            for layer, scores in layers.items():
                torch.testing.assert_close(ours[key][layer]["sign_count"], scores["sign_count"])
                torch.testing.assert_close(ours[key][layer]["magnitude"], scores["magnitude"], rtol=1e-5, atol=1e-7)


def test_llm_attribution_keeps_ragged_maps_and_tokens(job, tmp_path):
    from intellego.attr import TextTokenInput

    llm = job.lm()
    attribute_dataset(job.llm_attribution(llm), job.PROMPTS, out=tmp_path / "l", batch_size=2, shard_size=4,
                      progress=False)
    got = load_results(tmp_path / "l")
    seq, tok = got.attributions
    assert len(seq) == len(tok) == len(got.extras) == 5
    for i, (prompt, target) in enumerate(job.PROMPTS):
        ref = llm.attribute(TextTokenInput(prompt, llm.tokenizer), target=target)
        assert torch.equal(seq[i], ref.seq_attr) and torch.equal(tok[i], ref.token_attr)
        assert got.extras[i] == {"input_tokens": list(ref.input_tokens), "output_tokens": list(ref.output_tokens)}
    assert len({t.shape for t in tok}) > 1  # prompts of different lengths: stored ragged, not padded


def test_llm_gradient_attribution(job, tmp_path):
    from intellego.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput
    from intellego.models.tiny_lm import TinyCausalLM, WordTokenizer

    tok = WordTokenizer(job.WORDS)
    model = TinyCausalLM(len(tok), seed=0).double()
    llm = LLMGradientAttribution(LayerIntegratedGradients(model, model.embed_tokens), tok)
    attribute_dataset(job.llm_attribution(llm, n_steps=4), job.PROMPTS[:3], out=tmp_path / "g", batch_size=2,
                      progress=False)
    seq, _ = load_results(tmp_path / "g").attributions
    ref = llm.attribute(TextTokenInput(job.PROMPTS[1][0], tok), target=job.PROMPTS[1][1], n_steps=4)
    assert torch.equal(seq[1], ref.seq_attr)


def test_adapter_errors_are_clear(job, tmp_path):
    with pytest.raises(IntellegoError, match=r"cut returned tensor of shape \(2, 4\).*the batch \(3\) as first"):
        attribute_dataset(Batched(lambda b: b[0][:2], "cut"), job.data(1, 6), out=tmp_path / "a", batch_size=3,
                          progress=False)
    with pytest.raises(IntellegoError, match="stats need results of one shape"):
        attribute_dataset(job.llm_attribution(job.lm()), job.PROMPTS, out=tmp_path / "b", batch_size=2,
                          stats=__import__("intellego.attr", fromlist=["CommonStats"]).CommonStats(), progress=False)
    with pytest.raises(IntellegoError, match="give them to the adapter"):
        attribute_dataset(PerExample(lambda item: ([item[0]], None), "rows"), job.data(1, 6), out=tmp_path / "c",
                          batch_size=2, attribute_kwargs={"n_steps": 2}, progress=False)
    with pytest.raises(IntellegoError, match="dataset inputs must be a tensor.*adapter"):
        attribute_dataset(job.lm(), job.PROMPTS, out=tmp_path / "d", batch_size=2, progress=False)
    with pytest.raises(IntellegoError, match="has no self_influence"):
        job.self_influence(object())


def _compare(one, two):
    a, b = load_results(one), load_results(two)
    pairs = zip(a.attributions, b.attributions) if isinstance(a.attributions, tuple) else [(a.attributions,
                                                                                           b.attributions)]
    for x, y in pairs:
        xs, ys = (x, y) if isinstance(x, list) else ([x], [y])
        assert len(xs) == len(ys) and all(torch.equal(p, q) for p, q in zip(xs, ys)), one
    assert a.extras == b.extras and torch.equal(a.index, b.index)


def test_torchrun_two_ranks_equal_single_process_for_every_kind(job, cavs, tmp_path):
    job.run(str(tmp_path / "one"), cavs)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT / 'src'}", "OMP_NUM_THREADS": "1"}
    cmd = [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", str(tmp_path / "scale_methods_job.py"),
           str(tmp_path / "two"), cavs]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "terminate called without an active exception" in proc.stderr:
        # an abort at process exit with no Python traceback (std::terminate in torch's Gloo/c10d teardown), seen
        # about once in 15 runs on a loaded 2-core host; one rerun: any other failure, or a second one, fails
        shutil.rmtree(tmp_path / "two", ignore_errors=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for kind in ("self", "inf", "tcav", "llm"):
        _compare(tmp_path / "one" / kind, tmp_path / "two" / kind)
        assert len(list((tmp_path / "two" / kind).glob("shard-*"))) == manifest(tmp_path / "one" / kind)["num_shards"]


def test_tcav_target_label_uses_each_items_label(job, cavs, tmp_path):
    data, sets = job.data(2, 5), job.sets()
    attribute_dataset(job.tcav(job.make_tcav(cavs), sets), data, out=tmp_path / "t", batch_size=2, progress=False)
    rows, columns = load_results(tmp_path / "t").attributions, manifest(tmp_path / "t")["info"]["columns"]
    tcav, ids = job.make_tcav(cavs), {"-".join(str(c.id) for c in s): [c.id for c in s] for s in sets}
    for i, (x, y) in enumerate(data):
        scores = tcav.interpret(x[None], sets, target=int(y), magnitude="mean")
        expected = torch.stack([scores[key][layer]["magnitude"][ids[key].index(cid)] for key, layer, cid in columns])
        assert torch.equal(rows[i], expected)
    assert len({tuple(r.tolist()) for r in rows}) == 5


@pytest.mark.parametrize("kind", ["TracInCPFast", "NaiveInfluenceFunction"])
def test_other_influence_methods_through_the_same_adapters(job, tmp_path, kind):
    from intellego import influence as inf

    m, train = job.model(), job.data(1, 22)
    if kind == "TracInCPFast":
        method = inf.TracInCPFast(m, m[2], train, [m.state_dict()], loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"),
                                  batch_size=8)
    else:
        method = inf.NaiveInfluenceFunction(m, train, m.state_dict(), batch_size=8,
                                            loss_fn=torch.nn.CrossEntropyLoss(reduction="none"))
    attribute_dataset(job.self_influence(method), train, out=tmp_path / "s", batch_size=4, progress=False)
    torch.testing.assert_close(load_results(tmp_path / "s").attributions, method.self_influence(train.tensors),
                               rtol=1e-5, atol=1e-7)
    test = job.data(2, 7)
    attribute_dataset(job.influence(method), test, out=tmp_path / "i", batch_size=3, progress=False)
    torch.testing.assert_close(load_results(tmp_path / "i").attributions, method.influence(test.tensors),
                               rtol=1e-5, atol=1e-6)
    assert manifest(tmp_path / "i")["method"] == f"{kind}.influence"
