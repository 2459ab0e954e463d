"""Concept activation vectors: the weights of a concept classifier at one layer, kept in memory or saved safely.

Saved files hold only tensors, numbers, strings and lists/dicts of them (``torch.save``), and are read back with
``torch.load(weights_only=True)``, which refuses anything else: loading a CAV file never runs code. Nothing is
written unless a ``save_path`` is given.

Example:
    >>> import tempfile, torch
    >>> from intellego.concept import CAV, Concept
    >>> concepts = [Concept(0, "red", None), Concept(1, "random", None)]
    >>> cav = CAV(concepts, "conv1", {"weights": torch.eye(2), "classes": [0, 1]})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     CAV(concepts, "conv1", cav.stats, save_path=d).save()
    ...     back = CAV.load(d, "default_model_id", concepts, "conv1")
    >>> back.concepts, back.layer, torch.equal(back.stats["weights"], torch.eye(2))
    ([Concept(0, 'red'), Concept(1, 'random')], 'conv1', True)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .._docs import fill_docs
from ..errors import IntellegoError, require
from .concept import Concept, concepts_to_str

__all__ = ["CAV"]

_FORMAT = "intellego.cav/1"


def _safe(value: Any, where: str) -> Any:
    """``value`` as tensors, numbers, strings and containers of them (numpy arrays become tensors)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _safe(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise IntellegoError(f"cannot save {where}: an object of type {type(value).__name__}; CAV files hold only "
                         "tensors, numbers, strings and lists or dicts of them")


@fill_docs
class CAV:
    """The CAVs of one experimental set at one layer: ``stats["weights"]`` (one row per class),
    ``stats["classes"]`` (the concept ids of the rows) and classifier statistics such as ``"accs"``.

    Args:
        concepts: The experimental set: the concepts the classifier told apart.
        layer: The name of the layer (in ``model.named_modules()``) whose activations were classified.
        stats: ``{"weights": (C, F) tensor, "classes": [concept ids], ...}``, or None before training.
        {CAV_SAVE_PATH}
        {CONCEPT_MODEL_ID}

    Example:
        >>> import torch
        >>> from intellego.concept import Concept
        >>> cav = CAV([Concept(0, "red", None), Concept(1, "random", None)], "conv1",
        ...           {"weights": torch.tensor([[-1.0, 2.0], [1.0, -2.0]]), "classes": [0, 1]})
        >>> cav.stats["weights"][cav.stats["classes"].index(1)].tolist()  # the CAV of concept 1
        [1.0, -2.0]
    """

    def __init__(self, concepts: list[Concept], layer: str, stats: dict[str, Any] | None = None,
                 save_path: str | None = None, model_id: str = "default_model_id") -> None:
        self.concepts = concepts
        self.layer = layer
        self.stats = stats
        self.save_path = save_path
        self.model_id = model_id

    @staticmethod
    def assemble_save_path(path: str, model_id: str, concepts: Sequence[Concept], layer: str) -> str:
        """``<path>/<model_id>/<concept ids>-<layer>.pt``."""
        return os.path.join(path, model_id, f"{concepts_to_str(concepts)}-{layer}.pt")

    @staticmethod
    def create_cav_dir_if_missing(save_path: str, model_id: str) -> None:
        """Create ``<save_path>/<model_id>`` when it does not exist."""
        os.makedirs(os.path.join(save_path, model_id), exist_ok=True)

    def save(self) -> None:
        """Write the CAV under ``save_path`` (an error when there is none)."""
        if self.save_path is None:
            raise IntellegoError("this CAV has no save_path: pass save_path= to CAV (or TCAV) to save it; intellego "
                                 "never writes to disk unless asked")
        CAV.create_cav_dir_if_missing(self.save_path, self.model_id)
        payload = {
            "format": _FORMAT,
            "concept_ids": [int(c.id) for c in self.concepts],
            "concept_names": [str(c.name) for c in self.concepts],
            "layer": str(self.layer),
            "stats": _safe(self.stats, "stats"),
        }
        torch.save(payload, CAV.assemble_save_path(self.save_path, self.model_id, self.concepts, self.layer))

    @staticmethod
    def load(cavs_path: str, model_id: str, concepts: Sequence[Concept], layer: str) -> CAV | None:
        """The CAV saved for ``concepts`` at ``layer`` under ``cavs_path``, or ``None`` when there is no file.

        Files are read with ``weights_only=True``: a file holding anything but tensors and plain data is an
        error, never executed.
        """
        path = CAV.assemble_save_path(cavs_path, model_id, concepts, layer)
        if not os.path.exists(path):
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # the unpickler refuses unknown globals
            raise IntellegoError(f"cannot load the CAV file {path}: it is not a plain intellego CAV file "
                                 f"(only tensors and plain data are loaded): {exc}") from exc
        require(isinstance(payload, dict) and payload.get("format") == _FORMAT,
                f"{path} is not an intellego CAV file (format {_FORMAT})")
        loaded = [Concept(i, n, None) for i, n in zip(payload["concept_ids"], payload["concept_names"])]
        return CAV(loaded, payload["layer"], payload["stats"], cavs_path, model_id)
