"""Offline replacements for Captum's tutorial notebooks, one module per notebook (the notebook's stem, lower case).

A spec module may define:

- ``PRELUDE``: code run before the first cell (stand-ins for packages that cannot be installed here, seeds);
- ``REPLACE``: ``{code cell index: code}``, cells replaced by offline equivalents (data that the notebook
  downloads, models it fetches from a hub, torchvision / torchtext objects); every replacement keeps the names the
  later cells use, and says in a comment what it stands in for. A value may also be a function of the notebook's
  cell returning code: a small edit of the notebook's own text (it must change something);
- ``SKIP``: code cell indices not run (training loops the shipped weights make unnecessary, pure display).
- ``NOT_COMPARED``: names of recorded values left out of the comparison (wall-clock times the cells measure).
- ``PRINTS_IGNORED``: a regular expression, applied to each printed line; the numbers in text it matches are not
  compared (wall-clock times: ``r"in [0-9.]+ minutes"``; package versions).

Cells that call Captum are never replaced: they are what the check runs. The code here is ours; the notebooks are
read from the Captum checkout at run time.
"""

import sys
import types
from typing import Any


def stand_in_module(name: str, **attrs: Any) -> types.ModuleType:
    """A module named ``name`` holding ``attrs``, registered in ``sys.modules`` (how the stand-ins install)."""
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module
