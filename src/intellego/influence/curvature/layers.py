"""Per-position rows of a layer's inputs and output gradients, the factors of its per-example weight gradient.

For ``nn.Linear`` and ``nn.Conv2d`` the gradient of the weight (bias as a last input column) for one example is
``sum_t s_t a_t^T``: ``a_t`` is the layer input at position ``t`` (a token for a sequence; for a convolution the
unfolded patch ``(C_in * kh * kw)`` under output pixel ``t``, the KFC treatment of Grosse & Martens 2016) and
``s_t`` the gradient of the layer output there. :func:`layer_rows` reads both with one forward pass (hooks
through :class:`~intellego.core.hooks.HookScope`, training-mode buffers kept) and one backward pass per output
cotangent; K-FAC / EK-FAC and TRAK's factored projection are built from these rows.

Example:
    >>> import torch
    >>> from torch import nn
    >>> conv = nn.Conv2d(2, 3, 3, padding=1, stride=2)
    >>> x = torch.randn(4, 2, 5, 5)
    >>> out, ins, outs = layer_rows(conv, [conv], (x,), lambda o: (o, [torch.ones_like(o)]))
    >>> ins[0].shape, outs[0][0].shape  # 9 output pixels; patches of 2 x 3 x 3 inputs plus the bias column
    (torch.Size([4, 9, 19]), torch.Size([4, 9, 3]))
    >>> g = torch.einsum("nto,nti->oi", outs[0][0], ins[0])  # the summed weight gradient, bias last
    >>> conv.weight.grad is None and bool(torch.allclose(g[:, -1], torch.full((3,), 36.)))
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...core.batching import chunks, default_budget
from ...core.hooks import HookScope, keep_buffers
from ...errors import describe, require

__all__ = ["SUPPORTED", "check_layer", "input_rows", "output_rows", "layer_rows", "logits_of", "rows_per_chunk",
           "split_batch_rows", "layer_calls"]

SUPPORTED = (nn.Linear, nn.Conv2d)

Cotangents = Callable[[Any], tuple[Tensor, Sequence[Tensor]]]


def check_layer(name: str, module: nn.Module, method: str) -> None:
    """A named error unless ``module`` is an ``nn.Linear`` or an ungrouped ``nn.Conv2d``."""
    require(isinstance(module, SUPPORTED), f"{method} supports nn.Linear and nn.Conv2d layers; layer {name!r} is a "
                                           f"{type(module).__name__} (use NaiveInfluenceFunction or TRAKInfluence "
                                           "with projection='gaussian')")
    if isinstance(module, nn.Conv2d):
        require(module.groups == 1, f"{method} supports nn.Conv2d with groups=1; layer {name!r} has "
                                    f"groups={module.groups}")


def _conv_padding(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """``F.pad``'s ``(left, right, top, bottom)`` for the convolution's padding (ints, 'valid' or 'same')."""
    if conv.padding == "valid":
        return (0, 0, 0, 0)
    if conv.padding == "same":  # as torch: the odd pixel of the total padding goes right / bottom
        total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
        return (total[1] // 2, total[1] - total[1] // 2, total[0] // 2, total[0] - total[0] // 2)
    ph, pw = cast(tuple[int, int], conv.padding)
    return (pw, pw, ph, ph)


def input_rows(module: nn.Module, x: Tensor) -> Tensor:
    """The layer input as rows ``(n, T, d_in [+ 1])``: positions ``T`` (1 for a plain linear layer), bias column
    of ones last when the layer has a bias."""
    if isinstance(module, nn.Conv2d):
        pads = _conv_padding(module)
        if any(pads):
            x = F.pad(x, pads, mode="constant" if module.padding_mode == "zeros" else module.padding_mode)
        a = F.unfold(x, module.kernel_size, dilation=module.dilation, stride=module.stride).transpose(1, 2)
    else:
        a = x.reshape(x.shape[0], -1, x.shape[-1])
    if module.bias is not None:
        a = torch.cat([a, torch.ones(*a.shape[:-1], 1, dtype=a.dtype, device=a.device)], -1)
    return a


def output_rows(module: nn.Module, g: Tensor) -> Tensor:
    """The gradient of the layer output as rows ``(n, T, d_out)``, positions in :func:`input_rows`' order."""
    if isinstance(module, nn.Conv2d):
        return g.flatten(2).transpose(1, 2)
    return g.reshape(g.shape[0], -1, g.shape[-1])


def logits_of(out: Any, method: str) -> Tensor:
    """The model output tensor (or its ``.logits``), with a named error for anything else."""
    found = out if isinstance(out, Tensor) else getattr(out, "logits", None)
    require(isinstance(found, Tensor), f"{method} needs a tensor output (or .logits), got {describe(out)}")
    return found  # type: ignore[return-value]


def layer_rows(model: nn.Module, layers: Sequence[nn.Module], features: Sequence[Any], cotangents: Cotangents,
               ) -> tuple[Any, list[Tensor], list[list[Tensor]]]:
    """One forward pass of ``model(*features)`` and one backward pass per cotangent.

    ``cotangents(out)`` returns a tensor of the graph (the logits) and the cotangents to pull back from it.
    Returns the (detached) model output, each layer's input rows and, per layer, one output-gradient row tensor
    per cotangent. Each layer must run once per forward pass.
    """
    with HookScope() as scope, keep_buffers(model), torch.enable_grad():
        in_caps = [scope.capture(m, inputs=True) for m in layers]
        caps = [scope.capture(m) for m in layers]
        out = model(*features)
        root, us = cotangents(out)
        for m, c, ci in zip(layers, caps, in_caps):
            require(len(c.outputs) == 1 and isinstance(ci.outputs[0], Tensor),
                    f"each chosen layer must run once per forward pass with one input; a {type(m).__name__} ran "
                    f"{len(c.outputs)} times (EK-FAC cannot use it; TRAK can with projection='gaussian')")
        acts = [c.outputs[0] for c in caps]
        ins = [input_rows(m, ci.outputs[0].detach()) for m, ci in zip(layers, in_caps)]
        per_u = []
        for k, u in enumerate(us):
            gs = torch.autograd.grad(root, acts, grad_outputs=u, retain_graph=k + 1 < len(us), allow_unused=True)
            per_u.append([output_rows(m, torch.zeros_like(t) if g is None else g.detach())
                          for m, g, t in zip(layers, gs, acts)])
    detached = out.detach() if isinstance(out, Tensor) else out
    return detached, ins, [list(col) for col in zip(*per_u)]


def rows_per_chunk(model: nn.Module, layers: Sequence[nn.Module], features: Sequence[Any], n_cotangents: int | None,
                   budget: int | None) -> int:
    """How many examples one :func:`layer_rows` call may take under ``budget`` bytes (default: the library's
    chunk budget): the rows of one example (inputs and ``n_cotangents`` output gradients, default one per number
    of the model's output; the activations autograd keeps counted as much again), measured on the first example."""
    n = _batch_size(features)
    one = [f[:1] if isinstance(f, Tensor) and f.dim() > 0 and f.shape[0] == n else f for f in features]
    with HookScope() as scope, keep_buffers(model), torch.no_grad():
        in_caps = [scope.capture(m, inputs=True) for m in layers]
        caps = [scope.capture(m) for m in layers]
        out = logits_of(model(*one), "influence")
    r = int(out.numel()) if n_cotangents is None else n_cotangents
    per = 0
    for m, ci, c in zip(layers, in_caps, caps):
        x, y = ci.outputs[0], c.outputs[0]
        per += (input_rows(m, x).numel() + (r + 1) * y.numel()) * y.element_size()
    limit = budget or default_budget(next(iter(model.parameters())).device)
    return max(1, limit // max(2 * per, 1))


def layer_calls(model: nn.Module, layers: Sequence[nn.Module], features: Sequence[Any]) -> list[int]:
    """How often each layer runs in one forward pass of the batch's first example."""
    n = _batch_size(features)
    one = [f[:1] if isinstance(f, Tensor) and f.dim() > 0 and f.shape[0] == n else f for f in features]
    with HookScope() as scope, keep_buffers(model), torch.no_grad():
        caps = [scope.capture(m) for m in layers]
        model(*one)
    return [len(c.outputs) for c in caps]


def _batch_size(features: Sequence[Any]) -> int:
    for f in features:
        if isinstance(f, Tensor) and f.dim() > 0:
            return int(f.shape[0])
    return 1


def split_batch_rows(batch: Sequence[Any], rows: int) -> list[tuple[Any, ...]]:
    """``(*features, labels)`` cut into consecutive pieces of at most ``rows`` examples (tensors whose first
    dimension is the batch are sliced, anything else is passed to every piece)."""
    n = _batch_size(batch[:-1])
    if rows >= n:
        return [tuple(batch)]
    return [tuple(t[s] if isinstance(t, Tensor) and t.dim() > 0 and t.shape[0] == n else t for t in batch)
            for s in chunks(n, rows)]
