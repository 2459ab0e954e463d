"""Scale-out: run a method over a whole dataset on the ranks of ``torchrun``, in resumable, atomic shards.

Attribution objects run as they are; influence, concept and LLM methods go through an adapter
(``self_influence``, ``influence``, ``tcav``, ``llm_attribution``), the one protocol "items of a batch ->
per-example tensors" that ``attribute_dataset`` runs.

Example:
    >>> import tempfile, torch
    >>> from intellego.attr import Saliency, CommonStats
    >>> from intellego.scale import attribute_dataset, load_results
    >>> data = [(torch.ones(3) * i, i % 2) for i in range(6)]
    >>> out = tempfile.mkdtemp()
    >>> r = attribute_dataset(Saliency(torch.nn.Linear(3, 2)), data, out=out, batch_size=2, stats=CommonStats(),
    ...                       progress=False)
    >>> sorted(r.class_summaries), load_results(out).labels.tolist()
    ([0, 1], [0, 1, 0, 1, 0, 1])
"""

from ._adapters import Adapter, Attribute, Batched, Output, PerExample, influence, self_influence
from ._load import ScaleResults, load_results, load_summary, manifest
from ._methods import llm_attribution, tcav, tcav_scores
from ._run import ScaleReport, attribute_dataset

__all__ = ["attribute_dataset", "load_results", "load_summary", "manifest", "ScaleReport", "ScaleResults",
           "Adapter", "Output", "Batched", "PerExample", "Attribute", "self_influence", "influence",
           "llm_attribution", "tcav", "tcav_scores"]
