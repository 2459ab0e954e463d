"""The random-concept t-test of the TCAV paper (Kim et al., 2018) and its result records.

Each concept ``C`` is scored against every random concept ``R_i`` (experimental sets ``[C, R_i]``); the null scores
come from random-vs-random sets ``[R_i, R_(i+1 mod k)]``. A two-sided Student t-test compares the two groups per
concept and layer, and the p-values are corrected over all concept-layer tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import require
from ._stats import CORRECTIONS, adjust_p_values, student_t_test
from .concept import Concept, concepts_to_str

if TYPE_CHECKING:
    from .tcav import TCAV

__all__ = ["ConceptSignificance", "significance_table", "random_concept_test"]


@dataclass
class ConceptSignificance:
    """The random-concept t-test of one concept at one layer (see :meth:`TCAV.significance`).

    Attributes:
        concept: The concept tested.
        layer: The layer's name.
        score: Which TCAV score was tested: ``"sign_count"`` or ``"magnitude"``.
        scores: The concept's score against each random concept.
        random_scores: The scores of the random-vs-random sets (the null distribution).
        t_statistic: Student's t of ``scores`` against ``random_scores``.
        p_value: The two-sided p-value.
        p_adjusted: The p-value after the correction for all concept-layer tests.
        significant: ``p_adjusted < alpha``.

    Example:
        >>> import torch
        >>> from intellego.concept import Concept
        >>> r = ConceptSignificance(Concept(0, "stripes", None), "conv", "sign_count", torch.tensor([0.9, 0.7]),
        ...                         torch.tensor([0.5, 0.3]), 5.0, 0.01, 0.02, True)
        >>> round(r.mean, 2), round(r.random_mean, 2), r.significant
        (0.8, 0.4, True)
    """

    concept: Concept
    layer: str
    score: str
    scores: Tensor
    random_scores: Tensor
    t_statistic: float
    p_value: float
    p_adjusted: float
    significant: bool

    @property
    def mean(self) -> float:
        return float(self.scores.mean())

    @property
    def random_mean(self) -> float:
        return float(self.random_scores.mean())


def significance_table(results: Mapping[str, Mapping[str, ConceptSignificance]]) -> str:
    """A plain-text table of :meth:`TCAV.significance` results, one row per concept and layer.

    Args:
        results: What :meth:`TCAV.significance` returns: experimental-set key -> layer -> result.

    Returns:
        The table, one line per concept and layer under a header line.

    Example:
        >>> import torch
        >>> from intellego.concept import Concept
        >>> r = ConceptSignificance(Concept(0, "stripes", None), "conv", "sign_count", torch.tensor([0.9, 0.8]),
        ...                         torch.tensor([0.5, 0.4]), 5.0, 0.01, 0.02, True)
        >>> print(significance_table({"0": {"conv": r}}).splitlines()[1])
        stripes      conv          0.850   0.450  1.00e-02  2.00e-02  yes
    """
    rows = ["concept      layer        score   random  p-value   adjusted  significant"]
    for per_layer in results.values():
        for r in per_layer.values():
            rows.append(f"{r.concept.name[:12]:<12} {r.layer[:12]:<12} {r.mean:6.3f}  {r.random_mean:6.3f}  "
                        f"{r.p_value:8.2e}  {r.p_adjusted:8.2e}  {'yes' if r.significant else 'no'}")
    return "\n".join(rows)


def random_concept_test(tcav: TCAV, inputs: Any, concepts: Concept | Sequence[Concept],
                        random_concepts: Sequence[Concept], target: Any, additional_forward_args: Any, *, score: str,
                        correction: str | None, alpha: float, magnitude: str, show_progress: bool,
                        **kwargs: Any) -> dict[str, dict[str, ConceptSignificance]]:
    """The test behind :meth:`TCAV.significance` (see there for the arguments)."""
    targets = [concepts] if isinstance(concepts, Concept) else list(concepts)
    randoms = list(random_concepts)
    require(len(targets) > 0, "concepts must hold at least one Concept")
    require(len(randoms) >= 3, f"significance needs at least 3 random concepts, got {len(randoms)}")
    require(score in ("sign_count", "magnitude"), f"score must be 'sign_count' or 'magnitude', got {score!r}")
    require(correction in CORRECTIONS, f"correction must be one of {CORRECTIONS}, got {correction!r}")
    require(0 < alpha < 1, f"alpha must be in (0, 1), got {alpha!r}")
    random_ids = {r.id for r in randoms if isinstance(r, Concept)}
    clash = [c for c in targets if isinstance(c, Concept) and c.id in random_ids]
    require(not clash, f"concepts {clash} are also listed as random concepts")
    k = len(randoms)
    concept_sets = [[c, r] for c in targets for r in randoms]
    null_sets = [[randoms[i], randoms[(i + 1) % k]] for i in range(k)]
    results = tcav.interpret(inputs, concept_sets + null_sets, target, additional_forward_args,
                             magnitude=magnitude, show_progress=show_progress, **kwargs)
    tests = []
    for c in targets:
        for layer in tcav.layers:
            own = torch.stack([results[concepts_to_str([c, r])][layer][score][0] for r in randoms])
            null = torch.stack([results[concepts_to_str(s)][layer][score][0] for s in null_sets])
            t, p = student_t_test(own.tolist(), null.tolist())
            tests.append((c, layer, own, null, t, p))
    adjusted = adjust_p_values([p for *_, p in tests], correction)
    out: dict[str, dict[str, ConceptSignificance]] = {}
    for (c, layer, own, null, t, p), q in zip(tests, adjusted):
        out.setdefault(str(c.id), {})[layer] = ConceptSignificance(c, layer, score, own, null, t, p, q, q < alpha)
    return out
