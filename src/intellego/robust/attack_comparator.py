"""``AttackComparator``: a metric of the model on the original inputs and under each of several attacks."""

from __future__ import annotations

import warnings
from collections import namedtuple
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

import torch
from torch import Tensor

from .._docs import fill_docs
from ..core.batching import check_positive_int
from ..core.hooks import keep_buffers
from ..core.inputs import pack_args
from ..errors import IntellegoError, describe, require
from .batch_eval import outputs_for

__all__ = ["AttackComparator", "AttackInfo", "DuplicateAttackError", "RunningStats", "ORIGINAL_KEY"]

ORIGINAL_KEY = "Original"

MetricResultType = TypeVar("MetricResultType")


class DuplicateAttackError(IntellegoError, RuntimeError):
    """A second attack with the same name (a ``RuntimeError`` too, as Captum raises)."""


class AttackInfo(NamedTuple):
    """One registered attack."""

    attack_fn: Callable[..., Any]
    name: str
    num_attempts: int
    apply_before_preproc: bool
    attack_kwargs: dict[str, Any]
    additional_args: list[str]


class RunningStats:
    """Element-wise running statistics (``"mean"``, ``"min"``, ``"max"``) of observations that are numbers,
    tensors or tuples of them; ``summary`` is a dict per tuple element (a list of dicts for tuples), as Captum's
    ``Summarizer`` gives. A few tensor operations per update (the general ``Summarizer`` copies its statistics
    objects per stream, which cost more than the model on small batches)."""

    def __init__(self, stats: tuple[str, ...]) -> None:
        self.stats, self.n = stats, 0
        self.values: list[dict[str, Tensor]] = []
        self.is_tuple = False

    def update(self, x: Any) -> None:
        self.is_tuple = isinstance(x, tuple)
        items = [v if isinstance(v, Tensor) else torch.tensor(v) for v in (x if self.is_tuple else (x,))]
        self.n += 1
        if not self.values:
            self.values = [{"mean": v.clone() if v.is_floating_point() else v.double(), "min": v, "max": v}
                           for v in items]
            return
        for cur, v in zip(self.values, items):
            cur["mean"] = cur["mean"] + (v - cur["mean"]) / self.n
            if "min" in self.stats:
                cur["min"], cur["max"] = torch.minimum(cur["min"], v), torch.maximum(cur["max"], v)

    @property
    def summary(self) -> Any:
        out = [{k: cur[k] for k in self.stats} for cur in self.values]
        return out if self.is_tuple else out[0]


def _batch_mean(value: Any) -> Any:
    """Tensor metrics are averaged over their first (example) dimension when batches are aggregated."""
    if isinstance(value, Tensor):
        return value.mean(dim=0)
    if isinstance(value, tuple):
        return tuple(_batch_mean(v) for v in value)
    return value


@fill_docs
class AttackComparator(Generic[MetricResultType]):
    """Measure ``metric(model_out, **kwargs)`` on the inputs and under each added attack.

    As in Captum, ``evaluate`` returns this batch's results and ``summary`` the running means over all batches.
    Unlike Captum, all model calls of a batch (original and every attempt of every attack) are stacked and run
    without gradients in as few calls as the memory budget allows.

    Args:
        {FORWARD_FUNC}
        metric: ``metric(model_out, **kwargs)`` -> a number, a tensor (per example: averaged over the batch) or a
            tuple of them; ``kwargs`` are the keyword arguments of :meth:`evaluate`.
        {PREPROC_FN}

    Example:
        >>> import torch
        >>> from intellego.robust import FGSM
        >>> model = torch.nn.Linear(4, 3)
        >>> x, y = torch.rand(8, 4), torch.arange(8) % 3
        >>> def accuracy(out, target):  # every keyword of evaluate() reaches the metric
        ...     return (out.argmax(1) == target).float()
        >>> cmp = AttackComparator(model, accuracy)
        >>> cmp.add_attack(FGSM(model), "FGSM", attack_kwargs={"epsilon": 0.1},
        ...                additional_attack_arg_names=["target"])
        >>> cmp.add_attack(lambda t: t + 0.05 * torch.randn_like(t), "noise", num_attempts=3)
        >>> results = cmp.evaluate(x, target=y)
        >>> sorted(results), sorted(results["noise"])
        (['FGSM', 'Original', 'noise'], ['max', 'mean', 'min'])
    """

    def __init__(self, forward_func: Callable[..., Any], metric: Callable[..., Any],
                 preproc_fn: Callable[..., Any] | None = None) -> None:
        require(callable(forward_func), f"forward_func must be callable, got {describe(forward_func)}")
        require(callable(metric), f"metric must be callable, got {describe(metric)}")
        require(preproc_fn is None or callable(preproc_fn), f"preproc_fn must be callable, got {describe(preproc_fn)}")
        self.forward_func = forward_func
        self.metric = metric
        self.preproc_fn = preproc_fn
        self.attacks: dict[str, AttackInfo] = {}
        self.summary_results: dict[str, RunningStats] = {}
        self.metric_aggregator: Callable[[Any], Any] = _batch_mean
        self.batch_stats: tuple[str, ...] = ("mean", "max", "min")  # over the attempts of one attack
        self.aggregate_stats: tuple[str, ...] = ("mean",)  # over batches
        self.out_format: Any = None

    def add_attack(self, attack: Callable[..., Any], name: str | None = None, num_attempts: int = 1,
                   apply_before_preproc: bool = True, attack_kwargs: dict[str, Any] | None = None,
                   additional_attack_arg_names: list[str] | None = None) -> None:
        """Register an attack (a :class:`~intellego.robust.Perturbation` or any callable of the inputs).

        Args:
            attack: The attack: ``attack(inputs, **kwargs)`` -> perturbed inputs.
            name: Key of its results; defaults to the class name and must be unique.
            {NUM_ATTEMPTS}
            {APPLY_BEFORE_PREPROC}
            attack_kwargs: Keyword arguments passed to every call of the attack.
            additional_attack_arg_names: Keyword arguments of :meth:`evaluate` (such as ``target``) that the
                attack receives too.

        Example:
            >>> import torch
            >>> cmp = AttackComparator(torch.nn.Linear(2, 2), lambda out: out.sum())
            >>> cmp.add_attack(lambda x: x + 1, "shift")
            >>> list(cmp.attacks)
            ['shift']
        """
        require(callable(attack), f"attack must be a Perturbation or a callable, got {describe(attack)}")
        name = type(attack).__name__ if name is None else name
        if name in self.attacks:
            raise DuplicateAttackError(f"an attack named {name!r} was already added; pass a different name=")
        check_positive_int(num_attempts, "num_attempts", allow_none=False)
        require(attack_kwargs is None or isinstance(attack_kwargs, dict),
                f"attack_kwargs must be a dict or None, got {describe(attack_kwargs)}")
        self.attacks[name] = AttackInfo(attack, name, num_attempts, apply_before_preproc, dict(attack_kwargs or {}),
                                        list(additional_attack_arg_names or []))

    def evaluate(self, inputs: Any, additional_forward_args: Any = None, perturbations_per_eval: int | None = None,
                 **kwargs: Any) -> dict[str, Any]:
        """The metric on ``inputs`` and under every attack; the results are added to :meth:`summary` too.

        Args:
            inputs: The examples, as ``preproc_fn`` (or the model) and the attacks take them.
            {ADDITIONAL_FORWARD_ARGS}
            perturbations_per_eval: Candidates (the original or one attempt of one attack) per model call; None
                (the default) stacks as many as fit the memory budget. Results do not depend on it.
            **kwargs: Keyword arguments of the metric, also given to the attacks that name them in
                ``additional_attack_arg_names`` (such as ``target``).

        Returns:
            A dict: ``"Original"`` -> the metric on the inputs; per attack name -> ``{"mean": value}`` or, with
            several attempts, ``{"mean", "min", "max"}`` over the attempts (element-wise for tensor metrics).

        Example:
            >>> import torch
            >>> model = torch.nn.Linear(2, 2)
            >>> cmp = AttackComparator(model, lambda out, target: (out.argmax(1) == target).float())
            >>> cmp.add_attack(lambda x: x, "identity")
            >>> results = cmp.evaluate(torch.rand(4, 2), target=torch.tensor([0, 1, 0, 1]))
            >>> torch.equal(results["Original"], results["identity"]["mean"])
            True
        """
        check_positive_int(perturbations_per_eval, "perturbations_per_eval")
        args = pack_args(additional_forward_args)
        with keep_buffers(self.forward_func):
            preproc_input = self.preproc_fn(inputs) if self.preproc_fn is not None else inputs
            names, candidates = [ORIGINAL_KEY], [preproc_input]
            for key, attack in self.attacks.items():
                extra = {}
                for arg in attack.additional_args:
                    if arg in kwargs:
                        extra[arg] = kwargs[arg]
                    else:
                        warnings.warn(f"Additional sample arg {arg} not provided for {key}", stacklevel=2)
                for _ in range(attack.num_attempts):
                    if attack.apply_before_preproc:
                        attacked = attack.attack_fn(inputs, **extra, **attack.attack_kwargs)
                        candidates.append(self.preproc_fn(attacked) if self.preproc_fn else attacked)
                    else:
                        candidates.append(attack.attack_fn(preproc_input, **extra, **attack.attack_kwargs))
                    names.append(key)
            outputs = outputs_for(self.forward_func, candidates, args, perturbations_per_eval)
        batch: dict[str, RunningStats] = {ORIGINAL_KEY: RunningStats(("mean",))}
        for key, attack in self.attacks.items():
            batch[key] = RunningStats(self.batch_stats if attack.num_attempts > 1 else ("mean",))
        for key, out in zip(names, outputs):
            value = self.metric(out, **kwargs)
            self._remember_format(value)
            batch[key].update(value)
        return self._record(batch)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Running means of every result over all batches since construction or :meth:`reset`; an attack with
        several attempts has keys ``"<name> Mean Attempt"``, ``"<name> Min Attempt"`` and ``"<name> Max Attempt"``."""
        return {key: self._format(s.summary) for key, s in self.summary_results.items()}

    def reset(self) -> None:
        """Forget the results of earlier batches."""
        self.summary_results = {}

    # ---------------------------------------------------------------------------------------------- helpers

    def _remember_format(self, value: Any) -> None:
        if self.out_format is None and isinstance(value, tuple) and hasattr(value, "_fields"):
            self.out_format = namedtuple(type(value).__name__, value._fields)  # type: ignore[misc]

    def _format(self, summary: Any) -> dict[str, Any]:
        if isinstance(summary, dict):
            return summary
        out: dict[str, Any] = {}
        for key in summary[0]:
            values = tuple(s[key] for s in summary)
            out[key] = self.out_format(*values) if self.out_format else values
        return out

    def _aggregate(self, key: str, value: Any) -> None:
        if key not in self.summary_results:
            self.summary_results[key] = RunningStats(self.aggregate_stats)
        self.summary_results[key].update(self.metric_aggregator(value))

    def _record(self, batch: dict[str, RunningStats]) -> dict[str, Any]:
        results: dict[str, Any] = {ORIGINAL_KEY: self._format(batch[ORIGINAL_KEY].summary)["mean"]}
        self._aggregate(ORIGINAL_KEY, results[ORIGINAL_KEY])
        for key in self.attacks:
            found = self._format(batch[key].summary)
            results[key] = found
            if len(found) == 1:
                self._aggregate(key, next(iter(found.values())))
            else:
                for stat, value in found.items():
                    self._aggregate(f"{key} {stat.title()} Attempt", value)
        return results
