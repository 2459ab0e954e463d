"""Significance engine: Student's two-sample t-test without scipy, and multiple-comparison corrections.

The two-sided p-value of a t statistic with ``df`` degrees of freedom is the regularized incomplete beta function
``I_x(df/2, 1/2)`` at ``x = df / (df + t^2)``, evaluated with its continued fraction (accurate also for tiny
p-values, where ``1 - cdf`` would cancel).

Example:
    >>> from intellego.concept._stats import student_t_test, adjust_p_values
    >>> t, p = student_t_test([0.9, 0.95, 1.0], [0.4, 0.5, 0.6])
    >>> round(t, 3), round(p, 5)
    (6.971, 0.00223)
    >>> adjust_p_values([0.01, 0.04, 0.03], "holm")
    [0.03, 0.06, 0.06]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import require

__all__ = ["betainc", "t_sf_two_sided", "student_t_test", "adjust_p_values", "CORRECTIONS"]

CORRECTIONS = ("bonferroni", "holm", None)


def _beta_fraction(a: float, b: float, x: float, max_terms: int = 400, eps: float = 1e-15) -> float:
    """The continued fraction of ``I_x(a, b)`` (modified Lentz), convergent for ``x < (a + 1) / (a + b + 2)``."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    value = d
    for m in range(1, max_terms + 1):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            value *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return value


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)`` for ``a, b > 0`` and ``0 <= x <= 1``."""
    require(a > 0 and b > 0 and 0.0 <= x <= 1.0, f"betainc needs a, b > 0 and 0 <= x <= 1, got {a}, {b}, {x}")
    if x in (0.0, 1.0):
        return x
    log_front = a * math.log(x) + b * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def t_sf_two_sided(t: float, df: float) -> float:
    """``P(|T| >= |t|)`` for Student's t with ``df`` degrees of freedom."""
    require(df > 0, f"degrees of freedom must be positive, got {df}")
    if math.isnan(t):
        return 1.0
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def student_t_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Student's two-sample t-test with pooled variance (``scipy.stats.ttest_ind``'s default): ``(t, p)``.

    Two groups with no spread give ``t = +-inf, p = 0`` when their means differ and ``t = nan, p = 1`` otherwise.
    """
    n1, n2 = len(a), len(b)
    require(n1 >= 2 and n2 >= 2, f"the t-test needs at least two scores per group, got {n1} and {n2}")
    m1, m2 = math.fsum(a) / n1, math.fsum(b) / n2
    ss = math.fsum((v - m1) ** 2 for v in a) + math.fsum((v - m2) ** 2 for v in b)
    df = n1 + n2 - 2
    se = math.sqrt(ss / df * (1.0 / n1 + 1.0 / n2))
    if se == 0.0:
        return (math.nan, 1.0) if m1 == m2 else (math.copysign(math.inf, m1 - m2), 0.0)
    t = (m1 - m2) / se
    return t, t_sf_two_sided(t, df)


def adjust_p_values(p_values: Sequence[float], correction: str | None) -> list[float]:
    """Family-wise corrected p-values: ``"bonferroni"`` (``m * p``), ``"holm"`` (step-down) or ``None``."""
    require(correction in CORRECTIONS, f"correction must be one of {CORRECTIONS}, got {correction!r}")
    m = len(p_values)
    if correction is None:
        return list(p_values)
    if correction == "bonferroni":
        return [min(1.0, m * p) for p in p_values]
    order = sorted(range(m), key=lambda i: p_values[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out
