"""Tutorial: one Insights explorer, three hosts: a local web app, a notebook widget and a static HTML export.

Set-up is Captum Insights' (models, classes, features, a data iterator); the explorer then runs in the browser
(``serve``), in a notebook (``render``, an anywidget) or as one offline file (``export``). All three share the
same session, the same front end and the same requests. Runs in a few seconds:

    .venv/bin/python docs/tutorials/insights_three_hosts.py      # writes docs/img/insights_export.html
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import torch

from intellego.data import make_shapes
from intellego.insights import AttributionVisualizer, Batch
from intellego.insights.features import ImageFeature
from intellego.models import load_shapes_cnn

IMG = Path(__file__).resolve().parent.parent / "img"


def batches(n: int = 256, size: int = 32):
    data = make_shapes(n, seed=0)
    for start in range(0, n, size):
        yield Batch(data.images[start:start + size], data.labels[start:start + size])


def main(out: Path = IMG) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    visualizer = AttributionVisualizer(
        models=[load_shapes_cnn()],
        classes=["circle", "square", "triangle", "cross"],
        features=[ImageFeature("shape", baseline_transforms=[torch.zeros_like], input_transforms=[])],
        dataset=batches(),
        score_func=lambda outputs: outputs.softmax(dim=1),
    )

    # 1. What every host sends: a request. Here straight to the session (the hosts queue it on its worker).
    page = visualizer.session.run({"method": "IntegratedGradients", "arguments": {"n_steps": 16},
                                   "prediction": "incorrect", "count": 2})
    print("incorrect predictions (image: true class):", [(s["index"], s["label"]) for s in page["samples"]])

    # 2. The web app: a background server on a free loopback port; every API call carries the session token.
    port = visualizer.serve(port=None)
    server = visualizer._server
    ask = urllib.request.Request(f"{server.base_url}/api/config", headers={"X-Intellego-Token": server.token})
    with urllib.request.urlopen(ask, timeout=10) as answer:
        config = json.load(answer)
    visualizer.stop()
    print(f"served on port {port}; methods offered: {len(config['methods'])}")

    # 3. The notebook widget: in Jupyter, `visualizer.render()` displays exactly this object.
    widget = visualizer.widget()
    print("widget front end:", len(widget._esm), "bytes of JavaScript, config synced:",
          widget.config == visualizer.session.config())

    # 4. The static export: one HTML file with the front end and the results inlined, no network needed.
    path = visualizer.export(out / "insights_export.html", count=8)
    print(f"wrote {path.name}: {path.stat().st_size / 1e6:.1f} MB")
    visualizer.session.close()
    return {"samples": page["samples"], "config": config, "export": path}


if __name__ == "__main__":
    main()
