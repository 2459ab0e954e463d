"""Sites: the one way to read or replace a value inside a model's forward pass.

A :class:`Site` names a module, whether we look at its output or its positional inputs, and which of its calls
(a module may run several times in one forward). ``HookScope.at(site, fn)`` registers ``fn(call, value)`` for
the calls the site selects; a result other than None replaces the value. What layer, neuron and rule methods
do at a site is one :class:`Tap`: keep each call's tensors (as they are, cloned, or as fresh graph nodes),
optionally let the model go on with other tensors, and optionally end the forward pass (:class:`Stop`).

Example:
    >>> import torch
    >>> from intellego.core.hooks import HookScope
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    >>> with HookScope() as scope:
    ...     tap = scope.at(Site(model[0]), Tap(Site(model[0]), keep=torch.clone))
    ...     _ = model(torch.ones(1, 3))
    >>> tap.values[0][0].shape, len(model[0]._forward_hooks)
    (torch.Size([1, 2]), 0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ..errors import IntellegoError, describe
from .inputs import unpack

__all__ = ["Site", "Tap", "Stop", "as_tuple", "copies"]


def as_tuple(value: Any) -> tuple[Any, ...]:
    """A module's input or output as a tuple (a lone tensor becomes a 1-tuple)."""
    return value if isinstance(value, tuple) else (value,)


@dataclass(frozen=True)
class Site:
    """A module's output (or, with ``to_input``, its positional inputs) at call ``call``.

    ``call=None`` selects every call; ``k >= 0`` only the ``k``-th; a negative ``k`` counts from the end, which
    is known only once the forward pass is over, so it selects every call and the caller picks afterwards.
    """

    module: nn.Module
    to_input: bool = False
    call: int | None = None

    @property
    def name(self) -> str:
        return f"layer {type(self.module).__name__}" + (" (input)" if self.to_input else "")

    def selects(self, call: int) -> bool:
        """Whether call number ``call`` (counted from 0) is one this site looks at."""
        return self.call is None or self.call < 0 or call == self.call

    def tensors(self, call: int, value: Any) -> tuple[Tensor, ...]:
        """The call's value as a tuple of tensors, or a named error for anything else in it."""
        values = as_tuple(value)
        for j, v in enumerate(values):
            if not isinstance(v, Tensor):
                raise IntellegoError(f"{self.name} call {call} produced {describe(v)} at position {j}; layer "
                                     "attribution needs tensors (use attribute_to_layer_input or another layer)")
        return values


class Stop(Exception):
    """Raised by a :class:`Tap` to end a forward pass once it has what it needs."""


Feed = Callable[[int, tuple[Tensor, ...]], Sequence[Tensor]]


class Tap:
    """What happens at each selected call of a site: the single hook body of every layer and neuron method.

    Args:
        site: where.
        keep: how each tensor of a call is kept in :attr:`values` (``torch.clone``, a fresh graph node...);
            None keeps the tensors as they are.
        feed: ``feed(call, kept) -> tensors`` the model continues with instead of the call's value (same
            structure as the value); None lets the value pass unchanged.
        stop: after keeping a call, end the forward pass when ``stop()`` is true (raises :class:`Stop`).
        check: sees each selected call's value first (a neuron selector checked against the layer).
        record: False keeps nothing (only the call structure), for a tap that only feeds.
    """

    def __init__(self, site: Site, *, keep: Callable[[Tensor], Tensor] | None = None, feed: Feed | None = None,
                 stop: Callable[[], bool] | None = None, check: Callable[[Any], None] | None = None,
                 record: bool = True) -> None:
        self.site, self.keep, self.feed, self.stop, self.check, self.record = site, keep, feed, stop, check, record
        self.values: list[tuple[Tensor, ...]] = []
        self.kinds: list[tuple[int, bool]] = []

    def __call__(self, call: int, value: Any) -> Any:
        tensors = self.site.tensors(call, value)
        if self.check is not None:
            self.check(value)
        kept = tensors if self.keep is None else tuple(self.keep(t) for t in tensors)
        if self.record:
            self.values.append(kept)
        self.kinds.append((len(kept), isinstance(value, tuple)))
        out = None if self.feed is None else unpack(list(self.feed(call, kept)), isinstance(value, tuple))
        if self.stop is not None and self.stop():
            raise Stop
        return out

    def value(self, i: int) -> Any:
        """The ``i``-th kept call in the structure the module gave it (a tensor or a tuple)."""
        return unpack(list(self.values[i]), self.kinds[i][1])

    def only(self) -> tuple[Tensor, ...]:
        """The tensors of the one call, with a named error when the module ran zero or several times."""
        if not self.values:
            raise IntellegoError(f"{self.site.name} did not run in the forward pass: no activations to attribute")
        if len(self.values) > 1:
            raise IntellegoError(f"{self.site.name} ran {len(self.values)} times in one forward; layer attribution "
                                 "needs a module that runs once")
        return self.values[0]

    def clear(self) -> None:
        self.values.clear()
        self.kinds.clear()


def copies(_call: int, kept: tuple[Tensor, ...]) -> list[Tensor]:
    """A ``feed`` that lets the model go on with copies of the kept tensors, so an in-place operation after
    the site cannot change what was kept."""
    return [t.clone() for t in kept]
