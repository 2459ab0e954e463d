"""The training objective as a function of a flat parameter vector, for curvature products.

Influence functions need ``H v`` (Hessian or Gauss-Newton times a vector) and sometimes the whole matrix for the
parameters of chosen layers. :class:`FlatObjective` wraps a model, the chosen parameters and a per-example loss
so that ``torch.func`` can differentiate the summed loss of a batch with respect to one flat vector ``theta``;
the model's own parameters are never touched (``functional_call`` swaps them in for the call only).

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Linear(3, 1, bias=False)
    >>> obj = FlatObjective(model, ["weight"], lambda out, y: ((out.squeeze(-1) - y) ** 2))
    >>> x, y = torch.eye(3), torch.zeros(3)
    >>> H = obj.hessian(obj.theta(), [(x, y)])
    >>> torch.allclose(H, 2 * torch.eye(3))
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, hessian, jacrev, jvp, vjp, vmap

from ...core.batching import chunks
from ...errors import describe, require

__all__ = ["FlatObjective", "per_example_loss", "Batch"]

Batch = Sequence[Any]  # (features..., labels): model(*batch[:-1]) and labels batch[-1]


def per_example_loss(loss_fn: Callable[..., Tensor] | None, reduction: str) -> Callable[[Any, Any], Tensor]:
    """Per-example losses ``(n,)`` from a Captum-style ``loss_fn`` whose ``reduction`` is given.

    ``reduction="none"``: ``loss_fn`` already returns one loss per example (extra dimensions are summed);
    ``"sum"`` / ``"mean"``: ``loss_fn`` is applied to each example alone (a mean over one example is that
    example's loss, which is Captum's ``mean x batch size`` convention). ``loss_fn=None``: the model's output
    is the loss.
    """

    def none_loss(out: Any, labels: Any) -> Tensor:
        value = out if loss_fn is None else loss_fn(out, labels)
        require(isinstance(value, Tensor) and value.dim() >= 1,
                f"loss_fn with reduction 'none' must return one loss per example, got {describe(value)}")
        return value.reshape(value.shape[0], -1).sum(1)

    if reduction == "none" or loss_fn is None:
        return none_loss
    fn = loss_fn

    def one(out: Any, label: Any) -> Tensor:
        out1 = torch.utils._pytree.tree_map(lambda t: t.unsqueeze(0) if isinstance(t, Tensor) else t, out)
        lab1 = label.unsqueeze(0) if isinstance(label, Tensor) else label
        return fn(out1, lab1)

    def reduced_loss(out: Any, labels: Any) -> Tensor:
        return vmap(one)(out, labels)

    return reduced_loss


class FlatObjective:
    """Summed per-example loss of a batch as a function of a flat vector of the chosen parameters.

    Args:
        model: the network (left unchanged).
        names: names of the parameters that ``theta`` holds, in order.
        loss: ``loss(output, labels) -> (n,)`` per-example losses (see :func:`per_example_loss`).
    """

    def __init__(self, model: nn.Module, names: Sequence[str], loss: Callable[[Any, Any], Tensor]) -> None:
        self.model, self.names, self.loss = model, list(names), loss
        params = dict(model.named_parameters())
        missing = [n for n in self.names if n not in params]
        require(not missing, f"parameters {missing} are not parameters of the model")
        self.shapes = [params[n].shape for n in self.names]
        self.sizes = [params[n].numel() for n in self.names]
        self.numel = sum(self.sizes)

    def theta(self) -> Tensor:
        """The current chosen parameters as one detached flat vector."""
        params = dict(self.model.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, theta.split(self.sizes), self.shapes)}

    def output(self, theta: Tensor, features: Sequence[Any]) -> Any:
        return functional_call(self.model, self.unflatten(theta), tuple(features), strict=False)

    def batch_loss(self, theta: Tensor, batch: Batch) -> Tensor:
        """Sum of the per-example losses of ``batch``."""
        return self.loss(self.output(theta, batch[:-1]), batch[-1]).sum()

    def hvp(self, theta: Tensor, batches: Iterable[Batch], vectors: Tensor) -> Tensor:
        """``H @ vectors`` for ``vectors`` of shape ``(p, k)``, the Hessian summed over ``batches``."""
        out = torch.zeros_like(vectors)
        for batch in batches:
            g = grad(lambda t, b=batch: self.batch_loss(t, b))

            def one(v: Tensor, g: Callable[[Tensor], Tensor] = g) -> Tensor:
                return jvp(g, (theta,), (v,))[1]

            out += vmap(one, in_dims=1, out_dims=1)(vectors)
        return out

    def gnvp(self, theta: Tensor, batches: Iterable[Batch], vectors: Tensor) -> Tensor:
        """Gauss-Newton ``J^T H_out J @ vectors`` (``vectors``: ``(p, k)``) summed over ``batches``."""
        out = torch.zeros_like(vectors)
        for batch in batches:
            features, labels = batch[:-1], batch[-1]
            f = lambda t, fe=features: self.output(t, fe)  # noqa: E731
            o, pull = vjp(f, theta)  # type: ignore[misc]
            loss_of_out = lambda z, y=labels: self.loss(z, y).sum()  # noqa: E731
            gl = grad(loss_of_out)

            def one(v: Tensor, f: Callable = f, pull: Callable = pull, gl: Callable = gl, o: Any = o) -> Tensor:
                jv = jvp(f, (theta,), (v,))[1]
                hjv = jvp(gl, (o,), (jv,))[1]
                return pull(hjv)[0]

            out += vmap(one, in_dims=1, out_dims=1)(vectors)
        return out

    def hessian(self, theta: Tensor, batches: Iterable[Batch], *, columns: int = 256) -> Tensor:
        """The full ``(p, p)`` Hessian of the summed loss, built from Hessian-vector products in column
        chunks of at most ``columns`` (exact, for small parameter counts)."""
        eye = torch.eye(self.numel, dtype=theta.dtype, device=theta.device)
        batches = list(batches)
        H = torch.empty(self.numel, self.numel, dtype=theta.dtype, device=theta.device)
        for s in chunks(self.numel, columns):
            H[:, s] = self.hvp(theta, batches, eye[:, s])
        return (H + H.T) / 2

    def gauss_newton(self, theta: Tensor, batches: Iterable[Batch], *, rows: int = 64) -> Tensor:
        """The full ``(p, p)`` Gauss-Newton matrix ``sum_n J_n^T H_n J_n`` (output Jacobians per example)."""
        G = torch.zeros(self.numel, self.numel, dtype=theta.dtype, device=theta.device)
        for batch in batches:
            features, labels = batch[:-1], batch[-1]
            n = _rows(features)
            for s in chunks(n, rows):
                fe = [t[s] if isinstance(t, Tensor) and t.dim() > 0 and t.shape[0] == n else t for t in features]
                lab = labels[s] if isinstance(labels, Tensor) else labels
                out = self.output(theta, fe)
                require(isinstance(out, Tensor),
                        f"the Gauss-Newton matrix needs a tensor model output, got {describe(out)}; "
                        "use curvature='hessian' or a solver based on products")
                m = out.shape[0]
                J = jacrev(lambda t, fe=fe: self.output(t, fe))(theta).reshape(m, -1, self.numel)
                Hout = vmap(hessian(lambda z, y: self.loss(z.unsqueeze(0), _unsq(y)).sum()))(
                    out.detach(), lab).reshape(m, J.shape[1], J.shape[1])
                G += torch.einsum("nap,nab,nbq->pq", J, Hout, J)
        return (G + G.T) / 2


def _unsq(y: Any) -> Any:
    return y.unsqueeze(0) if isinstance(y, Tensor) else y


def _rows(features: Sequence[Any]) -> int:
    for t in features:
        if isinstance(t, Tensor) and t.dim() > 0:
            return int(t.shape[0])
    raise ValueError("no batched tensor among the features")
