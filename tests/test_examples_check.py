"""scripts/captum_examples.py: the code of a docstring's example block, its split into statements, and the
stand-ins' shapes as the examples' comments state them."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

with torch.random.fork_rng():  # the stand-in module builds its shared objects from the global stream
    from _example_standins import DocumentClassifier, ImageClassifier, SimpleClassifier
    from captum_examples import example_code, statements

DOC = '''Attribution of a thing.

Args:
    func: called as
        >>> func(
        >>>    x: Tensor) -> Tensor

Examples::

    >>> # a model
    >>> net = Model()
    >>> attr = net.attribute(x,
                             target=3)
    More prose, not code.
    >>> total = attr.sum()
'''


def test_the_examples_block_with_its_unprompted_continuation_lines_and_without_prose() -> None:
    assert example_code(DOC) == "# a model\nnet = Model()\nattr = net.attribute(x,\ntarget=3)\ntotal = attr.sum()"
    assert example_code("No example here.\n>>> f(1)\n") is None


def test_one_cell_per_statement_with_the_comments_above_it_and_one_cell_when_it_does_not_parse() -> None:
    code = example_code(DOC)
    assert statements(code) == ["# a model\nnet = Model()", "attr = net.attribute(x,\ntarget=3)",
                                "total = attr.sum()"]
    assert statements("x = f(1]\ny = 2") == ["x = f(1]\ny = 2"]


def test_stand_ins_have_the_layers_and_shapes_the_examples_name() -> None:
    net = ImageClassifier()
    seen: dict[str, torch.Size] = {}
    for name in ("conv1", "conv4", "linear1"):
        getattr(net, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.shape))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert seen["conv1"][1:] == (12, 32, 32) and seen["conv4"][1:] == (50, 8, 8)
    simple = SimpleClassifier()
    simple.conv1.register_forward_hook(lambda m, i, o: seen.__setitem__("simple", o.shape))
    probs = simple(torch.randn(2, 4, 4))
    assert seen["simple"][1:] == (12, 3, 3)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))
    assert DocumentClassifier()(torch.tensor([1, 0, 2])).shape == (3, 5)
