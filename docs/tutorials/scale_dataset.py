"""Tutorial: a whole data set with intellego.scale, in resumable shards, with per-class mean maps.

``attribute_dataset`` runs an attribution method over every example of a data set (here 96 images of the
shapes data), writes the maps as atomic shard files under an output folder, and folds per-class statistics
(``CommonStats``) as it goes. A rerun on the same folder resumes: it computes only the shards that are
missing (none, here). ``load_results`` reads the maps back in data-set order; they are exactly what one direct
call gives. The per-class mean maps come from the summaries, without loading a single map. An adapter runs a
training-data method (TracInCP's self influence) over the same shards. Runs in a few seconds at one thread:

    .venv/bin/python docs/tutorials/scale_dataset.py      # writes docs/img/scale_class_means.png

On several processes the same call runs under ``torchrun`` (see docs/scale.md); the maps are bit-identical.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window

import matplotlib.pyplot as plt
import torch
from torch import nn

from intellego.attr import CommonStats, IntegratedGradients
from intellego.data import make_shapes
from intellego.influence import TracInCP
from intellego.models import load_shapes_cnn
from intellego.scale import attribute_dataset, load_results, self_influence
from intellego.viz import visualize_image_attr

IMG = Path(__file__).resolve().parent.parent / "img"


def main(out: Path = IMG, n: int = 96) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scale_tutorial_") as tmp:  # on a cluster: a folder every rank sees
        return walk_through(Path(tmp), out, n)


def walk_through(work: Path, out: Path, n: int) -> dict:
    model = load_shapes_cnn()  # eval mode, 4 classes
    data = make_shapes(n, seed=2)
    dataset = torch.utils.data.TensorDataset(data.images, data.labels)  # items (image, label): label = target
    ig = IntegratedGradients(model)

    # 1. The whole data set in shards of 32 examples (batches of 16), with per-class summaries of the maps.
    report = attribute_dataset(ig, dataset, out=work / "ig", batch_size=16, shard_size=32,
                               attribute_kwargs={"n_steps": 8}, stats=CommonStats(), progress=False)
    print(report)  # 3 shards (0 already done) ...

    # 2. The same call again (e.g. after a crash or preemption): every shard is there, nothing is computed.
    rerun = attribute_dataset(ig, dataset, out=work / "ig", batch_size=16, shard_size=32,
                              attribute_kwargs={"n_steps": 8}, stats=CommonStats(), progress=False)
    print(f"rerun: {rerun.skipped} shards already done, {len(rerun.written)} written, {rerun.examples} examples")

    # 3. The maps, in data-set order, are what one direct call on the same images gives.
    results = load_results(work / "ig")
    direct = ig.attribute(data.images, target=data.labels, n_steps=8)
    print(f"loaded {tuple(results.attributions.shape)}; largest difference from a direct call: "
          f"{(results.attributions - direct).abs().max():.1e}")

    # 4. The per-class mean maps, straight from the summaries (green: for the class, red: against it).
    means = {c: report.class_summaries[c]["mean"] for c in sorted(report.class_summaries)}
    fig, axes = plt.subplots(1, len(means), figsize=(2.4 * len(means), 2.8))
    for ax, (c, mean) in zip(axes, means.items()):
        visualize_image_attr(mean.permute(1, 2, 0), method="heat_map", sign="all", plt_fig_axis=(fig, ax),
                             use_pyplot=False, title=f"{data.classes[c]} ({int((data.labels == c).sum())} images)")
    fig.suptitle("Mean Integrated Gradients map per class, from the shard summaries")
    fig.tight_layout()
    fig.savefig(out / "scale_class_means.png", dpi=100)
    plt.close(fig)

    # 5. Training-data attribution through an adapter: TracInCP's self influence of every example, sharded.
    tracin = TracInCP(model, dataset, [model.state_dict()], layers=["fc"], batch_size=32,
                      loss_fn=nn.CrossEntropyLoss(reduction="none"))
    attribute_dataset(self_influence(tracin), dataset, out=work / "self", batch_size=16, shard_size=32,
                      progress=False)
    scores = load_results(work / "self").attributions
    print(f"self influence: highest for image {int(scores.argmax())} ({scores.max():.3f})")
    return {"report": report, "rerun": rerun, "results": results, "direct": direct, "means": means,
            "self_influence": scores, "tracin_direct": tracin.self_influence(), "labels": data.labels,
            "picture": out / "scale_class_means.png"}


if __name__ == "__main__":
    main()
