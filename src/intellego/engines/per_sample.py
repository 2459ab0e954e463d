"""Per-example gradients of a loss with respect to chosen parameters: the engine of every influence method.

One ``torch.func`` program, ``vmap(grad(loss of one example))`` over ``functional_call``, computes the gradient
of each example's loss with respect to a chosen set of parameters, in chunks of rows sized by the memory budget.
The model itself is never modified: parameters are passed as tensors (a checkpoint's state can be passed
without loading it into the model), buffers are passed as copies when any module is in training mode.

Interface:

* :func:`select_parameters` ``(model, layers) -> {name: tensor}``: the parameters of the named layers (all
  trainable parameters when ``layers`` is None), with a clear error for a layer that is not in the model.
* :func:`example_loss` ``(loss_fn, reduction) -> loss(out, target) -> scalar``: one example's loss from a
  Captum-style loss (``reduction`` "none", "sum" or "mean", or no loss: the sum of the outputs).
* :func:`per_sample_grads` ``(model, inputs, targets, ...) -> (N, P) tensor`` (or ``{name: (N, *shape)}``
  with ``flat=False``); ``P`` is the total size of the chosen parameters in their order.
* :func:`iter_per_sample_grads` yields ``(rows, grads)`` chunk by chunk over an iterable of batches
  (a DataLoader or a list of ``(*inputs, target)`` tuples), so nothing holds ``N x P`` at once.
* :func:`per_sample_losses` ``-> (N,)``: each example's loss, batched.

Example:
    >>> import torch
    >>> from intellego.engines.per_sample import per_sample_grads, example_loss
    >>> model = torch.nn.Linear(3, 1, bias=False)
    >>> x, y = torch.randn(4, 3), torch.zeros(4, 1)
    >>> g = per_sample_grads(model, (x,), y, loss=example_loss(torch.nn.MSELoss(reduction="sum")))
    >>> g.shape
    torch.Size([4, 3])
    >>> bool(torch.allclose(g, 2 * model(x).detach() * x, atol=1e-6))  # d/dw (w.x)^2 = 2 (w.x) x
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from ..core.batching import check_positive_int, chunks, default_budget
from ..errors import describe, require

__all__ = ["select_parameters", "example_loss", "per_sample_grads", "iter_per_sample_grads", "per_sample_losses",
           "model_state", "flat_size", "ExampleLoss"]

ExampleLoss = Callable[[Tensor, Any], Tensor]


def select_parameters(model: nn.Module, layers: Sequence[str | nn.Module] | None = None) -> dict[str, Tensor]:
    """Names and tensors of the parameters gradients are taken for.

    ``layers`` names sub-modules (``"fc2"``, ``"blocks.0.conv"``) or passes them; all parameters of each (its
    sub-modules included) are chosen, whatever their ``requires_grad``. ``None`` chooses every parameter that
    requires grad. Order follows ``model.named_parameters()``.
    """
    named = dict(model.named_parameters())
    if layers is None:
        trainable: dict[str, Tensor] = {n: p for n, p in named.items() if p.requires_grad}
        require(len(trainable) > 0, "the model has no parameter that requires grad; name the layers to use in `layers`")
        return trainable
    require(isinstance(layers, (list, tuple)) and len(layers) > 0,
            f"`layers` must be a non-empty list of layer names or modules, got {describe(layers)}")
    modules = dict(model.named_modules())
    by_id = {id(m): n for n, m in modules.items()}
    prefixes = []
    for layer in layers:
        if isinstance(layer, nn.Module):
            require(id(layer) in by_id, f"`layers` holds a module of type {type(layer).__name__} that is not part "
                                        "of the model")
            prefixes.append(by_id[id(layer)])
        else:
            require(isinstance(layer, str), f"`layers` must hold layer names (str) or modules, got {describe(layer)}")
            if layer not in modules:
                known = [n for n in modules if n]
                raise_missing(layer, known)
            prefixes.append(layer)
    chosen: dict[str, Tensor] = {}
    for name, p in named.items():
        if any(pre == "" or name.startswith(pre + ".") for pre in prefixes):
            chosen[name] = p
    require(len(chosen) > 0, f"the layers {list(prefixes)} have no parameters to take gradients for")
    return chosen


def raise_missing(layer: str, known: list[str]) -> None:
    shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    require(False, f"layer {layer!r} in `layers` is not in the model; its layers are: {shown}")


def model_state(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Detached parameters and buffers of ``model`` (buffers copied when a module is in training mode, so an
    update of running statistics can never reach the model)."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    training = any(m.training for m in model.modules())
    buffers = {n: (b.detach().clone() if training else b.detach()) for n, b in model.named_buffers()}
    return params, buffers


def flat_size(params: Mapping[str, Tensor]) -> int:
    """Total number of elements of the chosen parameters (``P``)."""
    return sum(int(p.numel()) for p in params.values())


def example_loss(loss_fn: Callable[..., Tensor] | None = None, reduction: str = "sum") -> ExampleLoss:
    """One example's loss ``(out of shape (1, ...), target of shape (1, ...)) -> scalar``.

    A loss with a "sum" or "mean" reduction is applied to the one-row batch as is (the mean over one row is that
    row's loss, which is what Captum's batch-size scaling of a "mean" loss gives); a "none" loss is summed over
    its elements. Without a loss, the example's outputs are summed. ``target=None`` calls ``loss_fn(out)``.
    """
    require(reduction in ("none", "sum", "mean"),
            f"reduction must be 'none', 'sum' or 'mean', got {describe(reduction)}")

    def one(out: Tensor, target: Any) -> Tensor:
        if loss_fn is None:
            return out.sum()
        value = loss_fn(out) if target is None else loss_fn(out, target)
        return value.sum()

    return one


def _batched(inputs: tuple[Any, ...], n: int) -> tuple[int | None, ...]:
    """vmap dimensions: tensors whose first dimension is the batch follow their examples, the rest are shared."""
    return tuple(0 if isinstance(x, Tensor) and x.dim() > 0 and x.shape[0] == n else None for x in inputs)


def _grad_program(model: nn.Module, frozen: dict[str, Tensor], buffers: dict[str, Tensor],
                  loss: ExampleLoss, dims: tuple[int | None, ...], has_target: bool) -> Callable[..., Any]:
    def one(chosen: dict[str, Tensor], *args: Any) -> Tensor:
        xs, target = (args[:-1], args[-1]) if has_target else (args, None)
        xs = tuple(x.unsqueeze(0) if d == 0 else x for x, d in zip(xs, dims))
        out = functional_call(model, ({**frozen, **chosen}, buffers), xs)
        if target is not None and isinstance(target, Tensor):
            target = target.unsqueeze(0)
        return loss(out, target)

    in_dims = (None, *dims, *((0,) if has_target else ()))
    return vmap(grad(one), in_dims=in_dims, randomness="different")


def _rows_per_chunk(model: nn.Module, n: int, p: int, itemsize: int, inputs: tuple[Any, ...],
                    chunk_rows: int | None, memory_budget: int | None, flat: bool) -> int:
    if chunk_rows is not None:
        return chunk_rows
    budget = memory_budget or default_budget(_device_of(model, inputs))
    # the gradients themselves (the vmapped result, plus the flattened copy when ``flat``) and each example's
    # input and activations, estimated as 4x the input row: small next to P for the models influence methods
    # are used with. Chunks are made even (no small remainder chunk).
    row_in = sum(int(x[0].numel()) * x.element_size() for x in inputs if isinstance(x, Tensor) and x.dim() > 0)
    per_row = (2 if flat else 1) * p * itemsize + 4 * row_in
    rows = int(max(1, min(n, budget // max(per_row, 1))))
    return -(-n // -(-n // rows)) if n else rows


def _device_of(model: nn.Module, inputs: tuple[Any, ...]) -> torch.device:
    for x in inputs:
        if isinstance(x, Tensor):
            return x.device
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def per_sample_grads(
    model: nn.Module,
    inputs: tuple[Any, ...],
    targets: Any = None,
    *,
    loss: ExampleLoss | None = None,
    names: Sequence[str] | None = None,
    state: tuple[Mapping[str, Tensor], Mapping[str, Tensor]] | None = None,
    chunk_rows: int | None = None,
    memory_budget: int | None = None,
    flat: bool = True,
) -> Any:
    """Per-example gradients of ``loss(model(x_i), y_i)`` w.r.t. the parameters ``names``: ``(N, P)`` (``flat``,
    columns in the order of ``names``) or ``{name: (N, *shape)}``.

    ``names`` defaults to every parameter that requires grad (see :func:`select_parameters`). ``state`` =
    ``(parameters, buffers)`` evaluates the model at another state, e.g. a checkpoint's, without loading it
    (default: the model's own, see :func:`model_state`). Rows go through in chunks of ``chunk_rows`` or as many
    as fit in ``memory_budget`` bytes.
    """
    require(isinstance(inputs, tuple) and len(inputs) > 0, f"inputs must be a non-empty tuple, got {describe(inputs)}")
    check_positive_int(chunk_rows, "chunk_rows")
    check_positive_int(memory_budget, "memory_budget")
    first = inputs[0]
    require(isinstance(first, Tensor) and first.dim() > 0,
            f"the first input must be a batched tensor, got {describe(first)}")
    n = int(first.shape[0])
    loss = loss or example_loss(None)
    base_params, buffers = model_state(model) if state is None else (dict(state[0]), dict(state[1]))
    chosen_names = tuple(names) if names is not None else tuple(
        name for name, p in model.named_parameters() if p.requires_grad)
    missing = [k for k in chosen_names if k not in base_params]
    require(not missing, f"parameters {missing} are not in the model's state")
    chosen = {k: base_params[k] for k in chosen_names}
    frozen = {k: v for k, v in base_params.items() if k not in chosen}
    has_target = targets is not None
    if has_target:
        require(isinstance(targets, Tensor) and targets.dim() > 0 and targets.shape[0] == n,
                f"targets must be a tensor with one row per example ({n}), got {describe(targets)}")
    dims = _batched(inputs, n)
    program = _grad_program(model, frozen, buffers, loss, dims, has_target)
    p_total = flat_size(chosen)
    itemsize = next(iter(chosen.values())).element_size() if chosen else 4
    rows = _rows_per_chunk(model, n, p_total, itemsize, inputs, chunk_rows, memory_budget, flat)
    pieces: list[Any] = []
    for sl in chunks(n, rows):
        args = tuple(x[sl] if d == 0 else x for x, d in zip(inputs, dims))
        if has_target:
            args = (*args, targets[sl])
        with torch.enable_grad():
            g = program(chosen, *args)
        pieces.append(torch.cat([g[k].reshape(g[k].shape[0], -1) for k in chosen_names], 1) if flat else g)
    if flat:
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, 0)
    if len(pieces) == 1:
        return pieces[0]
    return {k: torch.cat([piece[k] for piece in pieces], 0) for k in chosen_names}


def split_batch(batch: Any) -> tuple[tuple[Any, ...], Any]:
    """A Captum-style batch ``(*inputs, target)`` as ``(inputs, target)``; a lone tensor has no target."""
    if isinstance(batch, Tensor):
        return (batch,), None
    require(isinstance(batch, (tuple, list)) and len(batch) >= 2,
            f"a batch must be a tuple (*inputs, targets) of at least two elements, got {describe(batch)}")
    return tuple(batch[:-1]), batch[-1]


def iter_per_sample_grads(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    loss: ExampleLoss | None = None,
    names: Sequence[str] | None = None,
    state: tuple[Mapping[str, Tensor], Mapping[str, Tensor]] | None = None,
    chunk_rows: int | None = None,
    memory_budget: int | None = None,
) -> Iterator[tuple[slice, Tensor]]:
    """Yield ``(rows, grads)`` for each batch ``(*inputs, target)`` of ``batches``: ``rows`` is the slice of the
    dataset the ``(len(rows), P)`` gradients belong to. Memory holds one batch's gradients at a time.

    Example:
        >>> import torch
        >>> from intellego.engines.per_sample import iter_per_sample_grads
        >>> model = torch.nn.Linear(2, 1)
        >>> batches = [(torch.randn(3, 2), torch.zeros(3, 1)), (torch.randn(2, 2), torch.zeros(2, 1))]
        >>> [(rows.start, rows.stop, tuple(g.shape)) for rows, g in iter_per_sample_grads(model, batches)]
        [(0, 3, (3, 3)), (3, 5, (2, 3))]
    """
    start = 0
    for batch in batches:
        inputs, target = split_batch(batch)
        g = per_sample_grads(model, inputs, target, loss=loss, names=names, state=state, chunk_rows=chunk_rows,
                             memory_budget=memory_budget)
        yield slice(start, start + g.shape[0]), g
        start += g.shape[0]


def per_sample_losses(model: nn.Module, inputs: tuple[Any, ...], targets: Any = None, *,
                      loss: ExampleLoss | None = None,
                      state: tuple[Mapping[str, Tensor], Mapping[str, Tensor]] | None = None) -> Tensor:
    """Each example's loss, shape ``(N,)``, without gradients (vmapped like the gradients).

    Example:
        >>> import torch
        >>> from intellego.engines.per_sample import per_sample_losses, example_loss
        >>> model = torch.nn.Linear(2, 1)
        >>> x, y = torch.randn(3, 2), torch.zeros(3, 1)
        >>> l = per_sample_losses(model, (x,), y, loss=example_loss(torch.nn.MSELoss(reduction="none")))
        >>> bool(torch.allclose(l, model(x).detach().squeeze(1) ** 2))
        True
    """
    n = int(inputs[0].shape[0])
    loss = loss or example_loss(None)
    params, buffers = model_state(model) if state is None else (dict(state[0]), dict(state[1]))
    dims = _batched(inputs, n)
    has_target = targets is not None

    def one(*args: Any) -> Tensor:
        xs, target = (args[:-1], args[-1]) if has_target else (args, None)
        xs = tuple(x.unsqueeze(0) if d == 0 else x for x, d in zip(xs, dims))
        out = functional_call(model, (params, buffers), xs)
        return loss(out, target.unsqueeze(0) if isinstance(target, Tensor) else target)

    with torch.no_grad():
        return vmap(one, in_dims=(*dims, *((0,) if has_target else ())), randomness="different")(
            *inputs, *((targets,) if has_target else ()))
