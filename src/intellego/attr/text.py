"""Attribution for token models: interpretable embedding layers, token references and output selection.

Two ways to attribute a model that takes integer token ids:

1. Preferred: :class:`~intellego.attr.LayerIntegratedGradients` on the embedding layer with the token ids as
   inputs (and, e.g., a :class:`TokenReferenceBase` sequence as the baseline). Nothing in the model changes.
2. Captum's older route: :func:`configure_interpretable_embedding_layer` swaps the embedding module for an
   :class:`InterpretableEmbeddingBase` that passes precomputed embeddings through, so any primary method can
   run on embeddings; :func:`remove_interpretable_embedding_layer` puts the original back. This *does*
   change the model until it is removed (that is its purpose).

Models that return tuples, dicts or objects with a ``logits`` field are wrapped with :class:`SelectOutput`
so the usual ``target=`` indices apply.

Example:
    >>> import torch
    >>> from intellego.attr import LayerIntegratedGradients, TokenReferenceBase
    >>> from intellego.attr.text import SelectOutput
    >>> class Model(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.emb, self.fc = torch.nn.Embedding(20, 4), torch.nn.Linear(4, 2)
    ...     def forward(self, ids):
    ...         return {"logits": self.fc(self.emb(ids).mean(1))}
    >>> model = Model()
    >>> ids = torch.tensor([[3, 5, 7]])
    >>> ref = TokenReferenceBase(reference_token_idx=0).generate_reference(3, device="cpu").unsqueeze(0)
    >>> lig = LayerIntegratedGradients(SelectOutput(model, "logits"), model.emb)
    >>> lig.attribute(ids, ref, target=1, n_steps=8).shape
    torch.Size([1, 3, 4])
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import IntellegoError, describe, require

__all__ = ["InterpretableEmbeddingBase", "TokenReferenceBase", "configure_interpretable_embedding_layer",
           "remove_interpretable_embedding_layer", "SelectOutput"]


class InterpretableEmbeddingBase(nn.Module):
    """Stands in for an embedding module: ``forward`` returns the (precomputed) embeddings it is given.

    ``indices_to_embeddings(ids)`` runs the original embedding, so the caller can compute embeddings once,
    attribute with respect to them, and feed them to the model in place of the token ids. Made by
    :func:`configure_interpretable_embedding_layer`.

    Args:
        embedding: The original embedding module.
        full_name: Its dotted name in the model (where it is put back).

    Example:
        >>> import torch
        >>> emb = InterpretableEmbeddingBase(torch.nn.Embedding(5, 2), "embedding")
        >>> vectors = emb.indices_to_embeddings(torch.tensor([[1, 4]]))
        >>> vectors.shape, torch.equal(emb(vectors), vectors)
        (torch.Size([1, 2, 2]), True)
    """

    def __init__(self, embedding: nn.Module, full_name: str) -> None:
        super().__init__()
        self.embedding = embedding
        self.full_name = full_name
        self.num_embeddings = getattr(embedding, "num_embeddings", None)
        self.embedding_dim = getattr(embedding, "embedding_dim", None)

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        """Pass the first input (the embeddings) through unchanged."""
        require(len(inputs) > 0 or len(kwargs) > 0, "InterpretableEmbeddingBase got no inputs")
        return inputs[0] if inputs else next(iter(kwargs.values()))

    def indices_to_embeddings(self, *inputs: Any, **kwargs: Any) -> Tensor:
        """The original embedding layer applied to token ids."""
        return self.embedding(*inputs, **kwargs)


def _resolve(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent, _, leaf = name.rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    require(hasattr(owner, leaf), f"the model has no submodule named {name!r}")
    return owner, leaf


def configure_interpretable_embedding_layer(model: nn.Module,
                                            embedding_layer_name: str = "embedding") -> InterpretableEmbeddingBase:
    """Replace ``model.<embedding_layer_name>`` by an :class:`InterpretableEmbeddingBase` and return it.

    Undo with :func:`remove_interpretable_embedding_layer`. Prefer ``LayerIntegratedGradients`` on the
    embedding layer, which needs no change to the model. Warns that the model is changed.

    Args:
        model: The model; it is changed until the layer is removed.
        embedding_layer_name: The dotted name of the embedding module in ``model.named_modules()``.

    Returns:
        The :class:`InterpretableEmbeddingBase` now in the model; its ``indices_to_embeddings`` runs the
        original embedding.

    Example:
        >>> import warnings, torch
        >>> class Classifier(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.embedding, self.fc = torch.nn.Embedding(10, 3), torch.nn.Linear(3, 2)
        ...     def forward(self, x):
        ...         return self.fc(self.embedding(x).mean(1))
        >>> model = Classifier()
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")  # it warns that the model is changed until removed
        ...     emb = configure_interpretable_embedding_layer(model, "embedding")
        >>> from intellego.attr import IntegratedGradients
        >>> inputs = emb.indices_to_embeddings(torch.tensor([[1, 2, 3]]))
        >>> IntegratedGradients(model).attribute(inputs, target=0).shape  # one value per embedding element
        torch.Size([1, 3, 3])
        >>> remove_interpretable_embedding_layer(model, emb)
    """
    try:
        owner, leaf = _resolve(model, embedding_layer_name)
    except AttributeError as err:
        raise IntellegoError(f"the model has no submodule named {embedding_layer_name!r}") from err
    layer = getattr(owner, leaf)
    require(not isinstance(layer, InterpretableEmbeddingBase),
            f"{embedding_layer_name!r} is already an interpretable embedding layer")
    warnings.warn("configure_interpretable_embedding_layer changes the model until "
                  "remove_interpretable_embedding_layer is called; LayerIntegratedGradients on the embedding "
                  "layer needs no change", UserWarning, stacklevel=2)
    wrapper = InterpretableEmbeddingBase(layer, embedding_layer_name)
    setattr(owner, leaf, wrapper)
    return wrapper


def remove_interpretable_embedding_layer(model: nn.Module, interpretable_emb: InterpretableEmbeddingBase) -> None:
    """Put back the embedding module that :func:`configure_interpretable_embedding_layer` replaced.

    Args:
        model: The model given to :func:`configure_interpretable_embedding_layer`.
        interpretable_emb: What it returned.

    Example:
        >>> import warnings, torch
        >>> class Classifier(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.embedding, self.fc = torch.nn.Embedding(10, 3), torch.nn.Linear(3, 2)
        ...     def forward(self, x):
        ...         return self.fc(self.embedding(x).mean(1))
        >>> model = Classifier()
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")  # it warns that the model is changed until removed
        ...     emb = configure_interpretable_embedding_layer(model, "embedding")
        >>> remove_interpretable_embedding_layer(model, emb)
        >>> type(model.embedding).__name__
        'Embedding'
    """
    require(isinstance(interpretable_emb, InterpretableEmbeddingBase),
            f"interpretable_emb must be an InterpretableEmbeddingBase, got {describe(interpretable_emb)}")
    owner, leaf = _resolve(model, interpretable_emb.full_name)
    require(getattr(owner, leaf) is interpretable_emb,
            f"{interpretable_emb.full_name!r} of this model is not the given interpretable embedding layer")
    setattr(owner, leaf, interpretable_emb.embedding)


class TokenReferenceBase:
    """Reference (baseline) token sequences made of one token id, e.g. the padding token.

    Args:
        reference_token_idx: The token id the references are made of.

    Example:
        >>> TokenReferenceBase(reference_token_idx=1).generate_reference(4, device="cpu")
        tensor([1, 1, 1, 1])
    """

    def __init__(self, reference_token_idx: int = 0) -> None:
        require(isinstance(reference_token_idx, int), f"reference_token_idx must be an int, got "
                f"{describe(reference_token_idx)}")
        self.reference_token_idx = reference_token_idx

    def generate_reference(self, sequence_length: int, device: Any) -> Tensor:
        """A 1-D long tensor of ``sequence_length`` reference ids on ``device``."""
        require(isinstance(sequence_length, int) and sequence_length >= 0,
                f"sequence_length must be a non-negative int, got {describe(sequence_length)}")
        return torch.full((sequence_length,), self.reference_token_idx, dtype=torch.long, device=device)


class SelectOutput(nn.Module):
    """``model`` with one part of its output selected: a tuple index, a dict key or an attribute name.

    The model is a child module (so layers of it count as layers of the wrapper) and is not changed.
    """

    def __init__(self, model: nn.Module, key: int | str = 0) -> None:
        super().__init__()
        self.model = model
        self.key = key

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        out = self.model(*args, **kwargs)
        if isinstance(self.key, int) and isinstance(out, (tuple, list)):
            if not -len(out) <= self.key < len(out):
                raise IntellegoError(f"output index {self.key} is out of range for a model output with "
                                     f"{len(out)} entries")
            return out[self.key]
        if isinstance(self.key, str):
            if hasattr(out, "keys") and self.key in out:
                return out[self.key]
            if hasattr(out, self.key):
                return getattr(out, self.key)
        raise IntellegoError(f"cannot select {self.key!r} from a model output of type {type(out).__name__}")
