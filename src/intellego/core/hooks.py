"""``HookScope``: the only place that registers hooks or patches objects; everything is undone on exit.

Every attribution call runs inside one scope. Hooks, temporary attribute patches and context managers
(e.g. a ``TorchFunctionMode``) are entered on it and removed when the call ends, also when it raises, so a
user's model never keeps a hook, an attribute or a changed flag. Methods reach a layer with
``scope.at(site, fn)`` (a :class:`~intellego.core.sites.Site` and, usually, a :class:`~intellego.core.sites.Tap`).

Hooks belong to their call: a module hook registered on a scope runs only for forward passes made inside that
scope's ``with`` block by the same thread (and asyncio task), so two threads attributing one shared model each
see only their own activations. The scope marks itself active in a :mod:`contextvars` variable on entry; a new
thread starts with an empty context, so another thread's forward pass of the same module skips the hook.

Example:
    >>> import torch
    >>> from intellego.core.hooks import HookScope
    >>> layer = torch.nn.Linear(3, 2)
    >>> with HookScope() as scope:
    ...     seen = scope.capture(layer)
    ...     _ = layer(torch.ones(1, 3))
    >>> seen.outputs[0].shape, len(layer._forward_hooks)
    (torch.Size([1, 2]), 0)
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from ..errors import require
from .sites import Site, as_tuple

__all__ = ["HookScope", "Capture", "ModelScan", "ACTIVE_SCAN", "keep_buffers", "modules_of", "walk_modules"]

_MISSING = object()

# what HookScope.at calls: fn(call, value) -> a replacement or None (a Tap, or any such callable)
SiteFn = TypeVar("SiteFn", bound=Callable[[int, Any], Any])

# The scopes entered in the current thread / task, innermost last: a hook runs only when its scope is among them.
_ACTIVE: contextvars.ContextVar[tuple[HookScope, ...]] = contextvars.ContextVar("intellego_hook_scopes", default=())

# The ModelScan of the outermost ``attribute`` call running in this thread / task (set by attr/_guard.py), so
# that engines reuse its walk: see :func:`scan_of`.
ACTIVE_SCAN: contextvars.ContextVar[ModelScan | None] = contextvars.ContextVar("intellego_model_scan", default=None)


@dataclass
class Capture:
    """What a captured module saw, one entry per call in the forward pass (a module may run twice).

    ``outputs[i]`` is the i-th call's output (or input, when capturing inputs), a tensor or a tuple.
    """

    outputs: list[Any] = field(default_factory=list)

    def clear(self) -> None:
        self.outputs.clear()

    def single(self, where: str) -> Any:
        """The value of the only call, with a clear error when the module ran zero or several times."""
        require(len(self.outputs) > 0, f"{where} did not run in the forward pass: no activations to attribute")
        return self.outputs[-1] if len(self.outputs) == 1 else tuple(self.outputs)


class HookScope(contextlib.ExitStack):
    """An ``ExitStack`` that owns every hook and patch of one attribution call.

    Module hooks fire only for forward passes run inside the ``with`` block on the entering thread (and
    asyncio task); calls of the same module elsewhere pass through untouched.
    """

    _entered = False

    def __enter__(self) -> HookScope:
        super().__enter__()
        token = _ACTIVE.set((*_ACTIVE.get(), self))
        self._entered = True
        self.callback(_deactivate, self, token)
        return self

    def _owned(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` wrapped to run only in this scope's own thread/context (else the hook does nothing)."""
        require(self._entered, "HookScope: enter the scope (`with HookScope() as scope:`) before registering hooks")

        def hook(*args: Any, **kwargs: Any) -> Any:
            if self in _ACTIVE.get():
                return fn(*args, **kwargs)
            return None

        return hook

    def forward_hook(self, module: nn.Module, fn: Callable[..., Any], *, with_kwargs: bool = False) -> None:
        """Register ``fn(module, args, output)`` (or with kwargs) and remove it on exit."""
        handle = module.register_forward_hook(self._owned(fn), with_kwargs=with_kwargs)
        self.callback(handle.remove)

    def forward_pre_hook(self, module: nn.Module, fn: Callable[..., Any], *, with_kwargs: bool = False) -> None:
        """Register ``fn(module, args)`` (or with kwargs) and remove it on exit."""
        handle = module.register_forward_pre_hook(self._owned(fn), with_kwargs=with_kwargs)
        self.callback(handle.remove)

    def tensor_hook(self, tensor: Tensor, fn: Callable[[Tensor], Tensor | None]) -> None:
        """Register a gradient hook on a tensor created inside the call, removed on exit.

        Backward-rule methods register one per rule-bearing operation, so this is on the hot path: the handles
        go into one list removed by a single exit callback.
        """
        self._handles().append(tensor.register_hook(fn))

    def node_hook(self, node: Any, fn: Callable[..., Any], *, pre: bool) -> None:
        """Register a hook on an autograd graph node created inside the call, removed on exit: ``pre`` gets
        ``fn(grad_outputs)`` (``Node.register_prehook``), otherwise ``fn(grad_inputs, grad_outputs)``
        (``Node.register_hook``); either may return replacements."""
        self._handles().append(node.register_prehook(fn) if pre else node.register_hook(fn))

    def _handles(self) -> list[Any]:
        """The one list of tensor and graph-node hook handles, removed by a single exit callback."""
        handles = self.__dict__.get("_tensor_handles")
        if handles is None:
            handles = []
            self._tensor_handles: list[Any] = handles
            self.callback(_remove_all, handles)
        return handles

    def patch(self, obj: Any, name: str, value: Any) -> None:
        """Set ``obj.name = value`` and restore the old value (or absence) on exit."""
        old = obj.__dict__.get(name, _MISSING) if hasattr(obj, "__dict__") else getattr(obj, name, _MISSING)

        def restore() -> None:
            if old is _MISSING:
                with contextlib.suppress(AttributeError):
                    delattr(obj, name)
            else:
                setattr(obj, name, old)

        setattr(obj, name, value)
        self.callback(restore)

    def at(self, site: Site, fn: SiteFn) -> SiteFn:
        """Call ``fn(call, value)`` at each call of ``site.module`` that the site selects (``call`` counts every
        call from 0; ``value`` is the output, or the positional inputs: a tensor alone, else a tuple); a result
        other than None replaces the value. Returns ``fn``. The one way methods reach into a forward pass."""
        calls = [0]

        def on_output(_m: nn.Module, _args: Any, out: Any) -> Any:
            call = calls[0]
            calls[0] += 1
            return fn(call, out) if site.selects(call) else None

        def on_input(_m: nn.Module, args: tuple[Any, ...]) -> Any:
            call = calls[0]
            calls[0] += 1
            if not site.selects(call):
                return None
            new = fn(call, args if len(args) != 1 else args[0])
            return None if new is None else as_tuple(new)

        if site.to_input:
            self.forward_pre_hook(site.module, on_input)
        else:
            self.forward_hook(site.module, on_output)
        return fn

    def capture(self, module: nn.Module, *, inputs: bool = False) -> Capture:
        """Record the module's output (or its positional inputs) at every call."""
        seen = Capture()
        self.at(Site(module, inputs), lambda _call, value: seen.outputs.append(value))
        return seen


def _deactivate(scope: HookScope, token: contextvars.Token[tuple[HookScope, ...]]) -> None:
    scope._entered = False
    try:
        _ACTIVE.reset(token)
    except ValueError:  # exited in another context than entered: drop just this scope
        _ACTIVE.set(tuple(s for s in _ACTIVE.get() if s is not scope))


def _remove_all(handles: list[Any]) -> None:
    for handle in handles:
        handle.remove()


def walk_modules(model: nn.Module) -> list[nn.Module]:
    """``list(model.modules())`` (each module once, parents first) without building names: a few times faster,
    which matters for per-call scans of small models."""
    return ModelScan(model).modules  # the one walk (ModelScan) serves a plain module too


def modules_of(forward_func: Any) -> list[nn.Module]:
    """The modules a ``forward_func`` runs: the model itself, the owner of a bound method, or modules held in a
    closure (``lambda x: model(x)[0]``)."""
    if isinstance(forward_func, nn.Module):
        return [forward_func]
    owner = getattr(forward_func, "__self__", None)
    if isinstance(owner, nn.Module):
        return [owner]
    cells = getattr(forward_func, "__closure__", None) or ()
    found = []
    for cell in cells:
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(value, nn.Module):
            found.append(value)
    return found


class ModelScan:
    """One walk over the modules a ``forward_func`` runs, shared by the per-call work of an ``attribute`` call:
    the buffer snapshot (:func:`keep_buffers`), the input guard (the first parameter, whether any module is in
    training mode) and the perturbation engine's chunk-cost cache (``signature``).

    Nothing is cached across calls: a model can change between two calls in ways no cheap check sees (a layer
    swapped deep inside, ``train()`` on one block, ``double()`` replacing buffers), so every call walks once and
    what depends on the structure is keyed by ``signature`` (each module's identity and mode, each parameter's
    identity and ``requires_grad``, read when first asked for). One walk replaces the three the checks made
    before.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
        >>> scan = ModelScan(net)
        >>> len(scan.modules), scan.first_param is net[0].weight, scan.training
        (3, True, True)
        >>> before = scan.signature
        >>> _ = net.eval()
        >>> ModelScan(net).signature == before
        False
    """

    __slots__ = ("forward_func", "models", "modules", "first_param", "training", "_signature")

    def __init__(self, forward_func: Any) -> None:
        self.forward_func = forward_func
        self.models = modules_of(forward_func)
        modules: list[nn.Module] = []
        seen: set[int] = set()
        first: Tensor | None = None
        training = False
        stack = list(reversed(self.models))
        while stack:  # depth first, parents first: the order of ``modules()`` and ``parameters()``
            m = stack.pop()
            key = id(m)
            if key in seen:
                continue
            seen.add(key)
            modules.append(m)
            if m.training:
                training = True
            if first is None and m._parameters:
                for p in m._parameters.values():
                    if p is not None:
                        first = p
                        break
            if m._modules:
                stack.extend([c for c in reversed(m._modules.values()) if c is not None])
        self.modules, self.first_param, self.training = modules, first, training
        self._signature: tuple[Any, ...] | None = None

    @property
    def signature(self) -> tuple[Any, ...]:
        """Each module's identity and training flag, each parameter's identity and ``requires_grad``, in walk
        order (built on first use, from the modules walked)."""
        if self._signature is None:
            out: list[Any] = []
            for m in self.modules:
                out.append(id(m))
                out.append(m.training)
                for p in m._parameters.values():
                    if p is not None:
                        out.append(id(p))
                        out.append(p.requires_grad)
            self._signature = tuple(out)
        return self._signature

    @staticmethod
    def of(forward_func: Any) -> ModelScan:
        """The scan of the current ``attribute`` call when it is of ``forward_func``, else a fresh one."""
        scan = ACTIVE_SCAN.get()
        return scan if scan is not None and scan.forward_func is forward_func else ModelScan(forward_func)

    def keep_buffers(self) -> _KeptBuffers:
        """:func:`keep_buffers` for the scanned modules (the buffers are read now, not at scan time)."""
        return _KeptBuffers(self.modules if self.training else ())


class _KeptBuffers:
    """The context manager :func:`keep_buffers` returns (a plain class: it wraps every ``attribute`` call)."""

    __slots__ = ("saved",)

    def __init__(self, modules: Any) -> None:
        self.saved = [(b, b.detach().clone()) for m in modules if m.training
                      for b in m._buffers.values() if b is not None]

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: Any) -> None:
        if self.saved:
            with torch.no_grad():
                for buf, value in self.saved:
                    buf.copy_(value)


def keep_buffers(forward_func: Any) -> _KeptBuffers:
    """Restore the buffers of any module in training mode on exit (BatchNorm running statistics would
    otherwise absorb every path point, noisy sample or perturbed copy an attribution method runs).

    Costs nothing for models in eval mode: only buffers of modules with ``training=True`` are copied (and all of
    them are written back: batch norm updates its running statistics without bumping their version counter).
    """
    return ModelScan(forward_func).keep_buffers()
