"""The set-up checks of :class:`~intellego.concept.TCAV` (layers, classifier, experimental sets, concept data),
run before any model call; a mixin so that ``tcav.py`` holds the method itself."""

from __future__ import annotations

import difflib
import os
from typing import Any

import torch
from torch import Tensor, nn

from ..core.batching import known_length
from ..errors import IntellegoError, describe, require
from .cav import CAV
from .classifier import DefaultClassifier, FastCAVClassifier
from .concept import Concept, concepts_to_str

__all__ = ["SetupChecks"]


class SetupChecks:
    """Validation and resolution of TCAV's arguments; reads the TCAV attributes declared below."""

    model: nn.Module
    layers: list[str]
    model_id: str
    save_path: str | None
    concepts: set[Concept]
    cavs: dict[str, dict[str, CAV]]
    _activations: dict[int, dict[str, Tensor]]

    def _resolve_layers(self, layers: Any) -> tuple[list[str], list[nn.Module]]:
        named = dict(self.model.named_modules())
        by_id = {id(m): n for n, m in named.items()}
        items = [layers] if isinstance(layers, (str, nn.Module)) else layers
        require(isinstance(items, (list, tuple)) and len(items) > 0,
                f"layers must be a layer name or a non-empty list of names, got {describe(layers)}")
        names, modules = [], []
        for item in items:
            if isinstance(item, nn.Module):
                require(id(item) in by_id, f"layer {type(item).__name__} is not a submodule of the model")
                name = by_id[id(item)]
            else:
                require(isinstance(item, str), f"layers must be names (str) or modules, got {describe(item)}")
                if item not in named:
                    close = difflib.get_close_matches(item, [n for n in named if n], n=3)
                    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                    some = ", ".join(repr(n) for n in list(named)[1:9])
                    raise IntellegoError(f"layer {item!r} does not exist in {type(self.model).__name__}{hint} "
                                         f"(layers are names from model.named_modules(), e.g. {some})")
                name = item
            require(name not in names, f"layer {name!r} is listed twice in layers")
            names.append(name)
            modules.append(named[name])
        return names, modules

    @staticmethod
    def _resolve_classifier(classifier: Any, generator: torch.Generator | None) -> Any:
        if classifier is None or classifier == "default":
            return DefaultClassifier(generator=generator)
        if classifier == "fastcav":
            return FastCAVClassifier(generator=generator)
        missing = [m for m in ("train_and_eval", "weights", "classes") if not callable(getattr(classifier, m, None))]
        require(not missing, f"classifier must be None, 'default', 'fastcav' or have Captum's Classifier methods; "
                f"{describe(classifier)} lacks {missing}")
        return classifier

    def _check_sets(self, experimental_sets: Any, register: bool = True) -> list[list[Concept]]:
        """Validate experimental sets (before any model call) and register their concepts."""
        require(isinstance(experimental_sets, (list, tuple)) and len(experimental_sets) > 0,
                f"experimental_sets must be a non-empty list of lists of concepts, got {describe(experimental_sets)}")
        by_id = {c.id: c for c in self.concepts}
        sets = []
        for k, concepts in enumerate(experimental_sets):
            require(isinstance(concepts, (list, tuple)) and len(concepts) >= 2,
                    f"experimental_sets[{k}] must be a list of at least two concepts, got {describe(concepts)}")
            for c in concepts:
                require(isinstance(c, Concept), f"experimental_sets[{k}] holds {describe(c)}, not a Concept")
                require(isinstance(c.id, int) and not isinstance(c.id, bool),
                        f"concept {c!r} needs an int id, got {describe(c.id)}")
                other = by_id.setdefault(c.id, c)
                require(other is c, f"duplicate concept id {c.id}: {other!r} and {c!r} are different concepts "
                        "with the same id; give each concept its own id (reuse the same Concept instance)")
            ids = [c.id for c in concepts]
            require(len(set(ids)) == len(ids), f"experimental_sets[{k}] lists a concept twice: ids {ids}")
            sets.append(list(concepts))
        if register:
            self.concepts.update(by_id.values())
        return sets

    def _check_data(self, sets: list[list[Concept]], force_train: bool = False) -> None:
        """Every concept whose activations will be needed has a non-empty data iterator."""
        for concepts in sets:
            key = concepts_to_str(concepts)
            for layer in self.layers:
                if not force_train and (layer in self.cavs.get(key, {}) or self._on_disk(concepts, layer)):
                    continue
                for c in concepts:
                    if not force_train and layer in self._activations.get(c.id, {}):
                        continue
                    require(c.data_iter is not None, f"concept {c!r} has no data_iter, and its activations at "
                            f"layer {layer!r} are needed to train the CAVs of set {key}")
                    require(known_length(c.data_iter) != 0, f"concept {c!r} is empty: its data_iter has no batches")

    def _on_disk(self, concepts: list[Concept], layer: str) -> bool:
        return self.save_path is not None and os.path.exists(
            CAV.assemble_save_path(self.save_path, self.model_id, concepts, layer))

