"""The numbers a tutorial cell prints, compared between two runs (see ``captum_tutorials.py``).

Each printed line that holds numbers becomes a template (the line with every number replaced by ``#``, white
space dropped (a tensor's column padding), object addresses masked) and its numbers. The two runs' lines are paired
where their templates match, in order (``difflib``'s longest matching blocks, so a line only one run printed leaves
the rest paired), and paired lines' numbers are compared position by position with the tolerance of the recorded
values widened by the rounding of the printed digits (half a unit of the last digit of each of the two numbers).

>>> parse("tensor([ 0.4813, -1.5e-03]) at 0x7f3a linear1")
('tensor([#,#])at0x?linear1', [(0.4813, 5e-05), (-0.0015, 5e-05)])
>>> compare("loss 0.1234\\nacc 97\\n", "loss 0.1235\\nacc 98\\n")
(2, [('`acc 97` here, `acc 98` in Captum', 1, 1.0)], 0)
>>> compare("done in 0.52 s", "done in 1.73 s", ignored=r"in [\\d.]+ s")
(0, [], 0)
"""

from __future__ import annotations

import difflib
import math
import re

NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?!\w)|(?<![\w.])[-+]?\b(?:nan|inf)\b")
ADDRESS = re.compile(r"\b0x[0-9a-fA-F]+\b")
SPACES = re.compile(r"\s+")


def rounding(text: str) -> float:
    """Half a unit of the last printed digit of a number with a decimal point (``0.4813``: 5e-5); 0 for the
    others (integers, ``nan``, Python's shortest repr without a point), which are taken as exact."""
    mantissa, _, exponent = text.lower().partition("e")
    if "." not in mantissa or mantissa.endswith("."):
        return 0.0
    decimals = len(mantissa.split(".")[1])
    return 0.5 * 10.0 ** (int(exponent or 0) - decimals)


def parse(line: str) -> tuple[str, list[tuple[float, float]]]:
    """The line's template and its numbers, each with its rounding."""
    line = ADDRESS.sub("0x?", line)
    found = [(float(m.group()), rounding(m.group())) for m in NUMBER.finditer(line)]
    return SPACES.sub("", NUMBER.sub("#", line)), found


def numbered_lines(text: str, ignored: str = "") -> list[tuple[str, list[tuple[float, float]], str]]:
    """The lines of ``text`` that hold numbers (other than in text matching ``ignored``): template, numbers, the
    line as printed."""
    out = []
    for line in text.splitlines():
        template, found = parse(re.sub(ignored, "<not compared>", line) if ignored else line)
        if found:
            out.append((template, found, line.strip()))
    return out


def close(x: float, y: float, rtol: float, atol: float, slack: float) -> bool:
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    return abs(x - y) <= atol + rtol * abs(y) + slack


def compare(ours: str, theirs: str, ignored: str = "", rtol: float = 1e-4,
            atol: float = 1e-5) -> tuple[int, list[tuple[str, int, float]], int]:
    """Numbers compared; the differing lines (both lines as printed, how many of their numbers differ, the largest
    absolute difference); and how many lines with numbers were left without a counterpart. The numbers in text
    matching the regular expression ``ignored`` (wall-clock times) are not compared."""
    a, b = numbered_lines(ours, ignored), numbered_lines(theirs, ignored)
    matcher = difflib.SequenceMatcher(None, [t for t, _, _ in a], [t for t, _, _ in b], autojunk=False)
    compared, paired = 0, 0
    differing: list[tuple[str, int, float]] = []
    for block in matcher.get_matching_blocks():
        for (_, xs, line_a), (_, ys, line_b) in zip(a[block.a:block.a + block.size],
                                                          b[block.b:block.b + block.size]):
            paired += 1
            compared += len(xs)
            gaps = [abs(x - y) for (x, hx), (y, hy) in zip(xs, ys) if not close(x, y, rtol, atol, hx + hy)]
            if gaps:
                differing.append((f"`{line_a[:80]}` here, `{line_b[:80]}` in Captum", len(gaps), max(gaps)))
    return compared, differing, len(a) + len(b) - 2 * paired
