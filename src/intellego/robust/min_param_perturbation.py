"""``MinParamPerturbation``: the smallest value of an attack's parameter that makes the model wrong.

Captum's search returns one value for a whole batch (the first value at which *some* example is wrong). With
``per_example=True`` (beyond Captum) every example gets its own minimal value from one vectorized search.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._docs import fill_docs
from ..core.batching import check_positive_int
from ..core.hooks import keep_buffers
from ..core.inputs import pack_args
from ..errors import IntellegoError, describe, require
from .engine import check_number, take_rows
from .search import (
    Problem,
    as_output,
    grid,
    midpoint,
    per_example_binary,
    per_example_linear,
    rows_of,
    structure,
)

__all__ = ["MinParamPerturbation", "MODES"]

MODES = ("linear", "binary")


def _default_correct(model_out: Any, target: Any = None) -> bool:
    """Captum's default: every example's argmax equals its target."""
    return bool(_correct_rows(model_out, target).all())


def _correct_rows(model_out: Any, target: Any) -> Tensor:
    require(isinstance(model_out, Tensor) and model_out.dim() == 2,
            f"the default correct_fn needs (N, classes) model outputs, got {describe(model_out)}; pass correct_fn=")
    require(target is not None, "the default correct_fn needs target= (the true class of each example)")
    t = target if isinstance(target, Tensor) else torch.tensor(target)
    return model_out.argmax(1) == t.to(model_out.device)


@fill_docs
class MinParamPerturbation:
    """Find the minimal attack parameter (``arg_name``, from ``arg_min`` up to but excluding ``arg_max`` in steps of
    ``arg_step``) at which the model's prediction is no longer correct. With several attempts a value fools the
    model when any attempt does.

    Args:
        {FORWARD_FUNC}
        attack: A :class:`~intellego.robust.Perturbation` or any callable ``attack(inputs, **kwargs)`` that takes
            ``arg_name`` as a keyword.
        arg_name: The keyword of ``attack`` that is searched (its strength: a noise level, a radius, ...).
        arg_min: The first value tried.
        arg_max: The end of the range (not tried).
        arg_step: The distance between the values tried.
        mode: ``"linear"`` tries the values in increasing order; ``"binary"`` bisects the range, which assumes
            that a stronger attack fools the model whenever a weaker one does.
        {NUM_ATTEMPTS}
        {PREPROC_FN}
        {APPLY_BEFORE_PREPROC}
        correct_fn: ``correct_fn(model_out, **correct_fn_kwargs) -> bool`` (one bool per example with
            ``per_example=True``) that says whether the model is still right; default: the argmax of every
            example's output equals its ``target``.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(1, 2)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        ...     _ = model.bias.zero_()
        >>> shift = lambda x, amount: x - amount  # class 0 wins while x > 0
        >>> search = MinParamPerturbation(model, shift, "amount", arg_min=0.0, arg_max=2.0, arg_step=0.1)
        >>> x = torch.tensor([[0.25], [0.75]])
        >>> _, params = search.evaluate(x, target=torch.tensor([0, 0]), per_example=True)
        >>> [round(p, 2) for p in params.tolist()]
        [0.3, 0.8]
        >>> round(search.evaluate(x, target=torch.tensor([0, 0]))[1], 2)  # Captum's answer: the first to flip
        0.3
    """

    def __init__(self, forward_func: Callable[..., Any], attack: Callable[..., Any], arg_name: str,
                 arg_min: int | float, arg_max: int | float, arg_step: int | float, mode: str = "linear",
                 num_attempts: int = 1, preproc_fn: Callable[..., Any] | None = None,
                 apply_before_preproc: bool = False, correct_fn: Callable[..., Any] | None = None) -> None:
        require(callable(forward_func), f"forward_func must be callable, got {describe(forward_func)}")
        require(callable(attack), f"attack must be a Perturbation or a callable, got {describe(attack)}")
        require(isinstance(arg_name, str) and arg_name != "",
                f"arg_name must be a non-empty str, got {describe(arg_name)}")
        for name, v in (("arg_min", arg_min), ("arg_max", arg_max)):
            require(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
                    f"{name} must be a finite number, got {describe(v)}")
        check_number(arg_step, "arg_step", positive=True)
        require(arg_max > arg_min + arg_step,
                f"arg_max ({arg_max}) must exceed arg_min + arg_step ({arg_min} + {arg_step}): the range holds no step")
        require(isinstance(mode, str) and mode.lower() in MODES, f"mode must be 'linear' or 'binary', got {mode!r}")
        check_positive_int(num_attempts, "num_attempts", allow_none=False)
        require(preproc_fn is None or callable(preproc_fn), f"preproc_fn must be callable, got {describe(preproc_fn)}")
        require(correct_fn is None or callable(correct_fn), f"correct_fn must be callable, got {describe(correct_fn)}")
        self.forward_func = forward_func
        self.attack = attack
        self.arg_name = arg_name
        self.arg_min, self.arg_max, self.arg_step = arg_min, arg_max, arg_step
        self.mode = mode.lower()
        self.num_attempts = num_attempts
        self.preproc_fn = preproc_fn
        self.apply_before_preproc = apply_before_preproc
        self.correct_fn = correct_fn

    # --------------------------------------------------------------------------------------------- public

    def evaluate(self, inputs: Any, additional_forward_args: Any = None, target: Any = None,
                 perturbations_per_eval: int = 1, attack_kwargs: dict[str, Any] | None = None,
                 correct_fn_kwargs: dict[str, Any] | None = None, *, per_example: bool = False) -> tuple[Any, Any]:
        """Search the smallest value of the attack's parameter that fools the model on ``inputs``.

        With ``per_example=True`` ``inputs`` (after ``preproc_fn``) must be a tensor or a tuple of tensors and
        ``correct_fn`` (if given) must return one bool per example; arguments and keyword arguments with one entry
        per example follow their examples.

        Args:
            inputs: The examples: anything ``attack`` and ``preproc_fn`` accept (batch first with
                ``per_example=True``).
            {ADDITIONAL_FORWARD_ARGS}
            target: The true labels, passed to ``correct_fn`` as ``target=`` (the default ``correct_fn`` needs
                one class index per example).
            perturbations_per_eval: How many attacked copies go through the model in one call in linear mode (a
                binary round always evaluates its candidates in one call). Results do not depend on it.
            attack_kwargs: Further keyword arguments of every ``attack`` call.
            correct_fn_kwargs: Further keyword arguments of ``correct_fn``.
            per_example: Keyword-only, beyond Captum: find each example's own minimal value.

        Returns:
            Captum's ``(perturbed_inputs, value)``: the inputs attacked at the first value that fools the model
            on some example, and that value; ``(None, None)`` if none does. With ``per_example=True``:
            ``(perturbed_inputs, values)``, ``values`` a float64 ``(N,)`` tensor with each example's minimal value
            (NaN where none fools the model) and ``perturbed_inputs`` each example attacked at its value
            (unchanged where none).

        Example:
            >>> import torch
            >>> model = torch.nn.Linear(2, 2)
            >>> noise = lambda x, scale: x + scale  # a deterministic "attack"
            >>> search = MinParamPerturbation(model, noise, "scale", arg_min=0.0, arg_max=1.0, arg_step=0.25,
            ...                               correct_fn=lambda out: False)  # wrong from the start
            >>> search.evaluate(torch.zeros(1, 2))[1]
            0.0
        """
        check_positive_int(perturbations_per_eval, "perturbations_per_eval", allow_none=False)
        for name, kw in (("attack_kwargs", attack_kwargs), ("correct_fn_kwargs", correct_fn_kwargs)):
            require(kw is None or isinstance(kw, dict), f"{name} must be a dict or None, got {describe(kw)}")
        args = pack_args(additional_forward_args)
        with keep_buffers(self.forward_func):
            if per_example:
                return self._per_example(inputs, args, target, perturbations_per_eval, attack_kwargs or {},
                                         correct_fn_kwargs or {})
            return self._batch(inputs, args, target, perturbations_per_eval, attack_kwargs or {},
                               correct_fn_kwargs or {})

    # ------------------------------------------------------------------------------------ shared pieces

    def _apply(self, inputs: Any, preproc_input: Any, kwargs: dict[str, Any], value: float) -> tuple[Any, Any]:
        """``(model input, attacked input)`` for one attack at ``value``."""
        if self.apply_before_preproc:
            attacked = self.attack(inputs, **kwargs, **{self.arg_name: value})
            return (self.preproc_fn(attacked) if self.preproc_fn else attacked), attacked
        attacked = self.attack(preproc_input, **kwargs, **{self.arg_name: value})
        return attacked, attacked

    def _correct_kwargs(self, target: Any, extra: dict[str, Any]) -> dict[str, Any]:
        kwargs = {} if target is None else {"target": target}
        kwargs.update(extra)
        return kwargs

    # ------------------------------------------------------------------------------- Captum's batch mode

    def _batch(self, inputs: Any, args: tuple[Any, ...], target: Any, per_call: int, attack_kwargs: dict[str, Any],
               correct_kwargs: dict[str, Any]) -> tuple[Any, Any]:
        preproc_input = self.preproc_fn(inputs) if self.preproc_fn else inputs
        correct = self.correct_fn or _default_correct
        kwargs = self._correct_kwargs(target, correct_kwargs)

        def first_fooling(values: list[float]) -> tuple[Any, Any]:
            """Attack at each value (``num_attempts`` times), ``per_call`` candidates per model call; the first
            candidate the model gets wrong."""
            cands = [(v, *self._apply(inputs, preproc_input, attack_kwargs, v))
                     for v in values for _ in range(self.num_attempts)]
            for s in range(0, len(cands), per_call):
                part = cands[s:s + per_call]
                outs = self._run_batch([c[1] for c in part], args)
                for (v, _m, attacked), out in zip(part, outs):
                    if not correct(out, **kwargs):
                        return attacked, v
            return None, None

        if self.mode == "linear":
            values = grid(self.arg_min, self.arg_max, self.arg_step)
            # attack lazily: per_call values at a time, as each group may already fool the model
            step = max(1, per_call // self.num_attempts)
            for s in range(0, len(values), step):
                found = first_fooling(values[s:s + step])
                if found[1] is not None:
                    return found
            return None, None
        lo, hi = self.arg_min, self.arg_max
        best: tuple[Any, Any] = (None, None)
        while hi > lo:
            mid = midpoint(lo, hi, self.arg_step)
            attacked, value = first_fooling([mid])
            if value is not None:
                hi = mid
                if best[1] is None or best[1] > mid:
                    best = (attacked, mid)
            if math.isclose(lo, mid):
                break
            if value is None:
                lo = mid
        return best

    def _run_batch(self, model_inputs: list[Any], args: tuple[Any, ...]) -> list[Any]:
        """Model outputs for several candidates: one call for a stack of tensor candidates."""
        with torch.no_grad():
            if len(model_inputs) == 1:
                return [self.forward_func(model_inputs[0], *args)]
            packed = []
            for m in model_inputs:
                require(isinstance(m, Tensor) or (isinstance(m, tuple) and all(isinstance(t, Tensor) for t in m)),
                        f"perturbations_per_eval > 1 stacks attacked inputs, so they must be a tensor or a tuple of "
                        f"tensors, got {describe(m)}")
                packed.append(structure(m, "inputs")[0])
            was_tuple = isinstance(model_inputs[0], (tuple, list))
            n = packed[0][0].shape[0]
            k = len(packed)
            stacked = tuple(torch.cat(parts) for parts in zip(*packed))
            tiled = tuple(a.repeat(k, *([1] * (a.dim() - 1))) if _batched(a, n) else a for a in args)
            out = self.forward_func(as_output(stacked, was_tuple), *tiled)
            return [out[i * n:(i + 1) * n] for i in range(k)]

    # ------------------------------------------------------------------------------------- per example

    def _per_example(self, inputs: Any, args: tuple[Any, ...], target: Any, per_call: int,
                     attack_kwargs: dict[str, Any], correct_kwargs: dict[str, Any]) -> tuple[Any, Tensor]:
        raw, raw_tuple = structure(inputs, "inputs")
        n = raw[0].shape[0]
        pre_full = self.preproc_fn(inputs) if self.preproc_fn else inputs
        pre, pre_tuple = structure(pre_full, "preprocessed inputs")
        base, base_tuple = (raw, raw_tuple) if self.apply_before_preproc else (pre, pre_tuple)
        found = [b.detach().clone() for b in base]
        correct_kw = self._correct_kwargs(target, correct_kwargs)
        device = base[0].device
        model_tuple = [pre_tuple]  # whether the model takes its input as a tuple (Captum passes it as one argument)

        def attack(rows: Tensor, value: float) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
            kw = {k: take_rows(v, rows, n) for k, v in attack_kwargs.items()}
            if self.apply_before_preproc:
                x = as_output([r[rows.to(r.device)] for r in raw], raw_tuple)
            else:
                x = as_output([p[rows.to(p.device)] for p in pre], pre_tuple)
            model_in, attacked = self._apply(x, x, kw, value)
            attacked_t: tuple[Tensor, ...] = (
                (attacked,) if isinstance(attacked, Tensor) else structure(attacked, "attack outputs")[0])
            model_t: tuple[Tensor, ...]
            if isinstance(model_in, Tensor):
                model_t, model_tuple[0] = (model_in,), False
            else:
                model_t, model_tuple[0] = structure(model_in, "preprocessed attack outputs")
            return model_t, attacked_t

        def forward(stacked: tuple[Tensor, ...], rows: Tensor) -> Any:
            return self.forward_func(as_output(stacked, model_tuple[0]), *rows_of(args, rows, n))

        def correct(out: Any, rows: Tensor) -> Tensor:
            kw = {k: take_rows(v, rows, n) for k, v in correct_kw.items()}
            if self.correct_fn is None:
                return _correct_rows(out, kw.get("target"))
            ok = self.correct_fn(out, **kw)
            if not (isinstance(ok, Tensor) and ok.shape == (rows.numel(),)):
                raise IntellegoError(f"with per_example=True, correct_fn must return one bool per example, a tensor "
                                     f"of shape ({rows.numel()},), got {describe(ok)}")
            return ok.bool()

        problem = Problem(n, self.num_attempts, attack, forward, correct, device)
        if self.mode == "linear":
            params = per_example_linear(problem, grid(self.arg_min, self.arg_max, self.arg_step), per_call, found)
        else:
            params = per_example_binary(problem, self.arg_min, self.arg_max, self.arg_step, found)
        return as_output(found, base_tuple), params


def _batched(arg: Any, n: int) -> bool:
    return isinstance(arg, Tensor) and arg.dim() > 0 and arg.shape[0] == n
