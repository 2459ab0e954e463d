"""The torch functions that backward rules can intercept, and how to call each out of place.

Each entry of the table maps a torch function (``torch.relu``, ``F.conv2d``, ``Tensor.relu_``, ``operator``
additions...) to a :class:`OpKind`: its rule kind, an out-of-place function computing the same value, and
whether and where it works in place. :mod:`intellego.engines.rules` looks calls up here.

Example:
    >>> import torch
    >>> from intellego.engines.ops import kind_of
    >>> kind_of(torch.relu), kind_of(torch.nn.functional.conv2d), kind_of(torch.cat)
    ('relu', 'conv', None)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..core.inputs import TRAINING_WARNED
from ..errors import IntellegoError

__all__ = ["ACTIVATIONS", "GATES", "PRODUCTS", "OpKind", "kind_of", "operands_fit", "warn_unruled", "out_of_place",
           "unruled_nonlinearity"]


@dataclass(frozen=True)
class OpKind:
    kind: str
    plain: Callable[..., Any]  # out-of-place function computing the same value
    inplace: bool = False  # the function always works in place
    inplace_arg: int | None = None  # position of an ``inplace`` flag, also accepted as keyword
    operands: int = 1  # how many leading positional tensors receive gradients
    indices: bool = False  # returns (values, indices): no rule can route a gradient through it
    numbers_only: bool = False  # elementwise only while its other arguments are numbers (clamp's bounds)
    indices_arg: int | None = None  # position of a ``return_indices`` flag among the non-operand arguments
    free: bool = False  # tensor operands of any shapes (broadcast); a Parameter operand makes the call linear


# elementwise non-linearities (one activation operand; parameters such as PReLU's weight ride along)
ACTIVATIONS = ("relu", "elu", "leaky_relu", "sigmoid", "tanh", "softplus", "gelu", "silu", "relu6", "hardtanh",
               "hardswish", "hardsigmoid", "mish", "selu", "celu", "logsigmoid", "softsign", "tanhshrink", "prelu",
               "clamp", "pow", "sqrt", "rsqrt")
# operations whose output scales another activation (a gate, a softmax's weights) or normalises one
GATES = ("sigmoid", "hardsigmoid", "softmax", "sqrt", "rsqrt")
# products and quotients of two activations, and attention
PRODUCTS = ("mul", "matmul", "div", "attention")


def _table() -> dict[Any, OpKind]:
    f: Any
    t: dict[Any, OpKind] = {}
    for f in (torch.relu, torch.Tensor.relu):
        t[f] = OpKind("relu", torch.relu)
    t[F.relu] = OpKind("relu", F.relu, inplace_arg=1)
    for f in (torch.relu_, torch.Tensor.relu_, F.relu_):
        t[f] = OpKind("relu", torch.relu, inplace=True)
    t[F.elu] = OpKind("elu", F.elu, inplace_arg=2)
    t[F.elu_] = OpKind("elu", F.elu, inplace=True)
    t[F.leaky_relu] = OpKind("leaky_relu", F.leaky_relu, inplace_arg=2)
    t[F.leaky_relu_] = OpKind("leaky_relu", F.leaky_relu, inplace=True)
    for name in ("sigmoid", "tanh"):
        plain = getattr(torch, name)
        for f in (plain, getattr(torch.Tensor, name), getattr(F, name)):
            t[f] = OpKind(name, plain)
        for f in (getattr(torch, name + "_"), getattr(torch.Tensor, name + "_")):
            t[f] = OpKind(name, plain, inplace=True)
    t[F.softplus] = OpKind("softplus", F.softplus)
    # beyond Captum's list: MobileNet's ReLU6 (an nn.Hardtanh) and Hardswish, Mish, SELU, ...
    for name, flag in (("relu6", 1), ("hardtanh", 3), ("hardswish", 1), ("hardsigmoid", 1), ("mish", 1), ("selu", 1),
                       ("celu", 2)):
        t[getattr(F, name)] = OpKind(name, getattr(F, name), inplace_arg=flag)
    t[F.hardtanh_] = OpKind("hardtanh", F.hardtanh, inplace=True)
    t[torch.selu], t[torch.selu_] = OpKind("selu", torch.selu), OpKind("selu", torch.selu, inplace=True)
    t[torch.celu], t[torch.celu_] = OpKind("celu", torch.celu), OpKind("celu", torch.celu, inplace=True)
    for f in (torch.clamp, torch.Tensor.clamp, torch.clip, torch.Tensor.clip):  # x.clamp(min=0) is a ReLU
        t[f] = OpKind("clamp", torch.clamp, numbers_only=True)
    for f in (torch.clamp_, torch.Tensor.clamp_, torch.clip_, torch.Tensor.clip_):
        t[f] = OpKind("clamp", torch.clamp, inplace=True, numbers_only=True)
    for name in ("logsigmoid", "softsign", "tanhshrink"):
        t[getattr(F, name)] = OpKind(name, getattr(F, name))
    t[torch.prelu] = OpKind("prelu", torch.prelu)
    t[F.gelu] = OpKind("gelu", F.gelu)
    t[F.silu] = OpKind("silu", F.silu, inplace_arg=1)
    for f in (F.softmax, torch.softmax, torch.Tensor.softmax):
        t[f] = OpKind("softmax", f)
    for d in (1, 2, 3):
        for f in (getattr(F, f"max_pool{d}d"), getattr(torch, f"max_pool{d}d")):
            t[f] = OpKind(f"max_pool{d}d", f, indices_arg=5)
        # F.max_pool2d(..., return_indices=True) may dispatch to these
        for name, kind in ((f"max_pool{d}d_with_indices", f"max_pool{d}d"),
                           (f"adaptive_max_pool{d}d_with_indices", "adaptive_max_pool")):
            t[getattr(F, name)] = OpKind(kind, getattr(F, name), indices=True)
        t[getattr(F, f"adaptive_max_pool{d}d")] = OpKind("adaptive_max_pool", getattr(F, f"adaptive_max_pool{d}d"),
                                                        indices_arg=1)
        t[getattr(F, f"conv{d}d")] = OpKind("conv", getattr(F, f"conv{d}d"))
        for name in (f"avg_pool{d}d", f"adaptive_avg_pool{d}d"):
            t[getattr(F, name)] = OpKind("avg_pool", getattr(F, name))
    for f in (torch.amax, torch.Tensor.amax):  # global max pooling written as x.amax((2, 3))
        t[f] = OpKind("amax", torch.amax)
    t[F.linear] = OpKind("linear", F.linear)
    # products of two tensors (squeeze-excitation gates, attention, SwiGLU, RMSNorm), normalisation, attention
    for f in (torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__):
        t[f] = OpKind("mul", torch.mul, operands=2, free=True)
    for f in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm, torch.Tensor.bmm):
        t[f] = OpKind("matmul", f, operands=2, free=True)
    for f in (torch.div, torch.Tensor.div, torch.Tensor.__truediv__):
        t[f] = OpKind("div", torch.div, operands=2, free=True)
    t[F.layer_norm] = OpKind("layer_norm", F.layer_norm)
    t[F.scaled_dot_product_attention] = OpKind("attention", F.scaled_dot_product_attention, operands=3, free=True)
    for name in ("sqrt", "rsqrt"):
        for f in (getattr(torch, name), getattr(torch.Tensor, name)):
            t[f] = OpKind(name, getattr(torch, name))
    for f in (torch.pow, torch.Tensor.pow, torch.Tensor.__pow__):
        t[f] = OpKind("pow", torch.pow, numbers_only=True)
    t[F.batch_norm] = OpKind("batch_norm", F.batch_norm)
    for f in (torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__):
        t[f] = OpKind("add", torch.add, operands=2)
    for f in (torch.Tensor.add_, torch.Tensor.__iadd__):
        t[f] = OpKind("add", torch.add, inplace=True, operands=2)
    return t


KINDS = _table()


def kind_of(func: Any) -> str | None:
    """The rule kind of a torch function (``"relu"``, ``"conv"``, ``"add"``...), or None if it has none."""
    k = KINDS.get(func)
    return None if k is None else k.kind


def out_of_place(spec: OpKind, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict, bool]:
    """The call's non-operand arguments for the out-of-place function, and whether it was in place."""
    if spec.inplace_arg is None and spec.kind != "add":  # nothing to rewrite: the arguments as they are
        return args[spec.operands:], kwargs, spec.inplace
    rest = tuple(args[spec.operands:])
    kw = dict(kwargs)
    inplace = spec.inplace
    if spec.inplace_arg is not None:
        pos = spec.inplace_arg - spec.operands
        if "inplace" in kw:
            inplace = bool(kw.pop("inplace"))
        elif len(rest) > pos:
            inplace = bool(rest[pos])
            rest = rest[:pos] + (False,) + rest[pos + 1:]
    if spec.kind == "add" and ("alpha" in kw or rest):
        raise IntellegoError("add with alpha is not supported by backward rules")
    return rest, kw, inplace


def operands_fit(spec: OpKind, operands: tuple[Any, ...]) -> bool:
    """Whether the call's operands are ones its rule handles: tensors; for ``free`` kinds (products) of any
    shapes but no Parameter (a product with a weight is linear); otherwise of one shape."""
    if len(operands) < spec.operands:
        return False
    if spec.free:
        return all(isinstance(t, torch.Tensor) and not isinstance(t, torch.nn.Parameter) for t in operands)
    if not isinstance(operands[0], torch.Tensor):
        return False
    return spec.operands == 1 or isinstance(operands[1], torch.Tensor) and operands[0].shape == operands[1].shape


def _unruled_table() -> dict[Any, tuple[str, int]]:
    """Operations with no rule that are non-linear in their inputs: name and which operands must be activations
    (1: the first, 2: the first two, 3: the second and third, -2: the second; 0: the first, for dropout while it
    is in training mode)."""
    t: dict[Any, tuple[str, int]] = {}
    for f in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm, torch.Tensor.bmm):
        t[f] = ("matmul of two activations", 2)
    for f in (torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__):
        t[f] = ("product of two activations", 2)
    for g in (torch.baddbmm, torch.Tensor.baddbmm, torch.addbmm, torch.addmm, torch.Tensor.addmm):
        t[g] = ("matmul of two activations", 3)  # nn.MultiheadAttention's q @ k^T
    for f in (torch.div, torch.Tensor.div, torch.Tensor.__truediv__):
        t[f] = ("division by an activation", -2)
    t[F.layer_norm], t[F.group_norm], t[F.log_softmax] = ("layer_norm", 1), ("group_norm", 1), ("log_softmax", 1)
    t[F.scaled_dot_product_attention] = ("scaled_dot_product_attention", 1)
    t[F.hardshrink], t[F.softshrink], t[F.glu] = ("hardshrink", 1), ("softshrink", 1), ("glu", 1)
    for name in ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"):
        t[getattr(F, name)] = ("dropout in training mode (call model.eval())", 0)
    for name in ("lstm", "gru", "rnn_tanh", "rnn_relu"):  # nn.LSTM / GRU / RNN: one fused operation
        t[getattr(torch, name)] = (f"{name} (a fused recurrent layer)", 1)
    for name in ("max", "min", "amin"):  # e.g. global max pooling written as x.max(1).values
        t[getattr(torch, name)] = t[getattr(torch.Tensor, name)] = (f"{name} of an activation", 1)
    for f in (torch.maximum, torch.minimum, torch.Tensor.maximum, torch.Tensor.minimum):
        t[f] = ("maximum or minimum of two activations", 2)
    for name in ("exp", "log", "sqrt", "rsqrt", "pow", "sin", "cos", "abs"):
        for f in (getattr(torch, name), getattr(torch.Tensor, name)):
            t[f] = (name, 1)
    t[torch.Tensor.__pow__] = ("pow", 1)
    return t


UNRULED = _unruled_table()


def _activation(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.requires_grad and not isinstance(value, torch.nn.Parameter)


def unruled_nonlinearity(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> str | None:
    """The name of ``func`` when it has no rule and is non-linear in the activations it gets here, else None."""
    how = UNRULED.get(func)
    if how is None:
        return None
    name, which = how
    if which == 0:  # dropout: random unless it is off (eval mode)
        training = (kwargs or {}).get("training", args[2] if len(args) > 2 else True)
        ok = bool(training) and len(args) > 0 and _activation(args[0])
    elif which == 1:
        ok = len(args) > 0 and _activation(args[0])
    elif which == 2:
        ok = len(args) > 1 and _activation(args[0]) and _activation(args[1])
    elif which == 3:
        ok = len(args) > 2 and _activation(args[1]) and _activation(args[2])
    else:
        ok = len(args) > 1 and _activation(args[1])
    return name if ok else None


def warn_unruled(method: str, names: tuple[str, ...], total: str = "f(inputs) - f(baselines)") -> None:
    """One warning naming the non-linear operations that passed the plain gradient (no rule for them); dropout and
    batch norm in training mode are left out when the call's input guard named those layers already."""
    names = tuple(n for n in names if not n.startswith(TRAINING_WARNED.get() or ("\0",)))
    if names:
        warnings.warn(f"{method} has no rule for {', '.join(names)}: these pass the plain gradient, so the "
                      f"attributions need not sum to {total}", UserWarning, stacklevel=3)
