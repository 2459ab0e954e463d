"""Concepts: a named set of examples, and the interface of concept-based interpreters.

Example:
    >>> import torch
    >>> from intellego.concept import Concept, concepts_to_str
    >>> red = Concept(0, "red", [torch.rand(4, 3)])
    >>> red.identifier, repr(red), concepts_to_str([red, Concept(7, "random", None)])
    ('red-0', "Concept(0, 'red')", '0-7')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

__all__ = ["Concept", "ConceptInterpreter", "concepts_to_str"]


class Concept:
    """A concept: an integer ``id`` (unique within a TCAV run), a ``name`` and an iterable of example batches.

    ``data_iter`` yields batches of model inputs: a tensor, a tuple of tensors (multi-input models) or a dict of
    tensors (models called as ``model(**batch)``). A ``DataLoader`` works, and so does a plain list of batches.
    It may be ``None`` when the concept's activations or CAVs are already cached or saved.

    Args:
        id: The concept's id, unique within a TCAV run.
        name: A readable name.
        data_iter: The example batches, or None.

    Example:
        >>> import torch
        >>> stripes = Concept(0, "stripes", [torch.rand(8, 3, 4, 4)])
        >>> stripes.identifier, stripes
        ('stripes-0', Concept(0, 'stripes'))
    """

    def __init__(self, id: int, name: str, data_iter: Iterable[Any] | None) -> None:
        self.id = id
        self.name = name
        self.data_iter = data_iter

    @property
    def identifier(self) -> str:
        """``"<name>-<id>"``."""
        return f"{self.name}-{self.id}"

    def __repr__(self) -> str:
        return f"Concept({self.id!r}, {self.name!r})"


class ConceptInterpreter:
    """Base of concept-based interpreters: holds the model; subclasses define ``interpret``
    (:class:`~intellego.concept.TCAV` is the one intellego ships).

    Args:
        model: The model whose predictions are explained with concepts.

    Example:
        >>> import torch
        >>> class MeanActivation(ConceptInterpreter):
        ...     def interpret(self, inputs, concepts):
        ...         out = self.model(inputs).mean().item()
        ...         return {c.name: out for c in concepts}
        >>> model = torch.nn.Linear(2, 1)
        >>> with torch.no_grad():
        ...     _ = model.weight.fill_(1.0), model.bias.zero_()
        >>> MeanActivation(model).interpret(torch.ones(3, 2), [Concept(0, "any", None)])
        {'any': 2.0}
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def interpret(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """Concept-based scores for ``inputs``; the base class only raises.

        Args:
            inputs: The examples whose predictions are explained.
            *args: What the interpreter needs besides the inputs (e.g. the concepts); each subclass documents its
                own.
            **kwargs: The same, by keyword.

        Returns:
            The interpreter's scores (for TCAV: a dict per experimental set and layer).

        Raises:
            NotImplementedError: Always; subclasses override this method.

        Example:
            >>> import torch
            >>> ConceptInterpreter(torch.nn.Identity()).interpret(None)
            Traceback (most recent call last):
            ...
            NotImplementedError: ConceptInterpreter does not define interpret
        """
        raise NotImplementedError(f"{type(self).__name__} does not define interpret")


def concepts_to_str(concepts: Sequence[Concept]) -> str:
    """The key of an experimental set: the concept ids joined by ``-`` (Captum's key format).

    Args:
        concepts: The concepts of one experimental set.

    Returns:
        The key, e.g. ``"0-3"``.

    Example:
        >>> concepts_to_str([Concept(0, "stripes", None), Concept(3, "random", None)])
        '0-3'
    """
    return "-".join(str(c.id) for c in concepts)
