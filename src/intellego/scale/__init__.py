"""Scale-out: attribute a whole dataset over the ranks of ``torchrun``, in resumable, atomically written shards.

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

from ._run import ScaleReport, ScaleResults, attribute_dataset, load_results, load_summary

__all__ = ["attribute_dataset", "load_results", "load_summary", "ScaleReport", "ScaleResults"]
