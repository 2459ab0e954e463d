"""A stand-in for the legacy torchtext API (0.8) and spaCy's English tokenizer, as Captum's IMDB tutorials use them
(neither package is installed here; the IMDB reviews and GloVe vectors are downloads).

Our own code, offline: ``data.Field`` / ``LabelField`` (tokenize, lower case, ``build_vocab``), the legacy
``Vocab`` (``itos``, ``stoi`` giving ``<unk>`` for unknown words, ``set_vectors``), ``data.TabularDataset`` over a
CSV file, ``datasets.IMDB.splits`` giving generated reviews (a fixed seed; the words of the tutorials' example
sentences among them), ``vocab.Vectors`` giving seeded random vectors for the words of those reviews (the width
read from the file name, as in ``glove.6B.50d.txt``), and ``spacy.load`` giving a tokenizer that splits off
punctuation and contractions as spaCy's English one does. ``install()`` registers ``torchtext`` (with ``data``,
``datasets``, ``vocab``) and ``spacy`` in ``sys.modules``::

    from captum_tutorial_specs import _torchtext
    _torchtext.install()
    import torchtext  # now this module's stand-in
"""

from __future__ import annotations

import csv
import re
import types
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from captum_tutorial_specs import stand_in_module

__version__ = "0.0-standin"

# stands in for torch.load('models/imdb-model-cnn-large.pt') (not in the clone) in the notebooks that load the IMDB
# CNN: the notebook's own CNN class with seeded random weights, sized for the stand-in vocabulary
RANDOM_CNN_CELL = '''torch.manual_seed(0)
model = CNN(_torchtext.VOCAB_SIZE, 50, 100, [3, 4, 5], 1, 0.5, 1)
model.eval()
'''

POSITIVE = ["fantastic", "terrific", "great", "best", "good", "loved", "love", "amazing", "wonderful", "brilliant",
            "enjoyed", "superb"]
NEGATIVE = ["horrible", "terrible", "bad", "worst", "awful", "boring", "waste", "poor", "hated", "dull", "never",
            "not"]
NEUTRAL = ["it", "was", "a", "the", "this", "that", "film", "movie", "show", "play", "performance", "such", "ever",
           "so", "far", "we", "i", "'ve", "something", "as", "watched", "is", "and", "of", "to", "in", "story",
           "actors", "plot", "!", ".", ",", "pad"]
WORDS = sorted(set(POSITIVE + NEGATIVE + NEUTRAL))
VOCAB_SIZE = len(WORDS) + 2  # the vocabulary a Field builds from the generated reviews: <unk>, <pad>, WORDS


class Token:
    """A token with spaCy's ``text`` attribute."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def spacy_tokenize(text: str) -> list[str]:
    """Words, contractions (``'ve``, ``n't``) and punctuation marks as separate tokens, as spaCy's English
    tokenizer splits short sentences."""
    return re.findall(r"n't|'\w+|\w+(?=n't)|\w+|[^\w\s]", text)


class English:
    """What ``spacy.load('en')`` returns, as far as the tutorials use it: ``nlp.tokenizer(text)``."""

    def tokenizer(self, text: str) -> list[Token]:
        return [Token(t) for t in spacy_tokenize(text)]


def load(name: str) -> English:
    return English()


class Vocab:
    """The legacy Vocab: the special tokens first, then the words by count (ties in alphabetical order); ``stoi``
    gives the ``<unk>`` id for an unknown word when there is one."""

    def __init__(self, counter: Counter, max_size: int | None = None, specials: Iterable[str] = ("<unk>", "<pad>"),
                 vectors: Any = None) -> None:
        specials = list(specials)
        words = sorted((w for w in counter if w not in specials), key=lambda w: (-counter[w], w))
        self.itos = specials + words[:max_size]
        unk = self.itos.index("<unk>") if "<unk>" in self.itos else None
        self.stoi: dict[str, int] = defaultdict(lambda: unk) if unk is not None else {}
        self.stoi.update({w: i for i, w in enumerate(self.itos)})
        self.vectors = None
        if vectors is not None:
            self.set_vectors(vectors.stoi, vectors.vectors, vectors.dim)

    def __len__(self) -> int:
        return len(self.itos)

    def set_vectors(self, stoi: dict[str, int], vectors: torch.Tensor, dim: int) -> None:
        self.vectors = torch.zeros(len(self), dim)
        for i, word in enumerate(self.itos):
            if word in stoi:
                self.vectors[i] = vectors[stoi[word]]


class Field:
    """The legacy Field: ``tokenize`` ('spacy', a function, or None for ``str.split``), ``lower``, ``build_vocab``."""

    def __init__(self, lower: bool = False, tokenize: Any = None, dtype: Any = torch.long,
                 unk_token: str | None = "<unk>", pad_token: str | None = "<pad>", **_: Any) -> None:
        self.lower, self.dtype = lower, dtype
        self.tokenize: Callable[[str], list[str]] = (spacy_tokenize if tokenize == "spacy" else tokenize or str.split)
        self.unk_token, self.pad_token = unk_token, pad_token
        self.vocab: Vocab | None = None

    def preprocess(self, text: str) -> Any:
        return [t.lower() if self.lower else t for t in self.tokenize(text)]

    def build_vocab(self, *datasets: Any, vectors: Any = None, max_size: int | None = None, **_: Any) -> None:
        counter: Counter = Counter()
        for ds in datasets:
            for ex in ds:
                value = getattr(ex, ds.field_name(self))
                counter.update(value if isinstance(value, list) else [value])
        specials = [t for t in (self.unk_token, self.pad_token) if t is not None]
        self.vocab = Vocab(counter, max_size=max_size, specials=specials, vectors=vectors)


class LabelField(Field):
    """A Field of one label per example, no special tokens."""

    def __init__(self, dtype: Any = torch.long, **kwargs: Any) -> None:
        super().__init__(dtype=dtype, unk_token=None, pad_token=None, tokenize=lambda s: s, **kwargs)

    def preprocess(self, text: str) -> Any:
        return text


class Example:
    """One example: an attribute per field."""


class Dataset:
    """Examples and their fields (``[(name, Field)]``)."""

    def __init__(self, examples: list[Example], fields: list[tuple[str, Field]]) -> None:
        self.examples, self.fields = examples, fields

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def __len__(self) -> int:
        return len(self.examples)

    def field_name(self, field: Field) -> str:
        return next(name for name, f in self.fields if f is field)

    def split(self, split_ratio: float = 0.7, **_: Any) -> tuple[Dataset, Dataset]:
        cut = round(len(self.examples) * split_ratio)
        return Dataset(self.examples[:cut], self.fields), Dataset(self.examples[cut:], self.fields)


def _example(values: list[str], fields: list[tuple[str, Field]]) -> Example:
    ex = Example()
    for (name, field), value in zip(fields, values):
        setattr(ex, name, field.preprocess(value))
    return ex


def TabularDataset(path: str, fields: list[tuple[str, Field]], format: str = "csv",  # noqa: N802, A002
                   **_: Any) -> Dataset:
    """The rows of a CSV file, one column per field (missing columns are empty)."""
    with open(path, newline="") as fh:
        rows = [row + [""] * (len(fields) - len(row)) for row in csv.reader(fh) if row]
    return Dataset([_example(row, fields) for row in rows], fields)


def reviews(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` generated (review, 'neg' / 'pos') pairs over :data:`WORDS`, alternating."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = ("neg", "pos")[i % 2]  # as many of each: the label vocabulary is ['neg', 'pos'], as for IMDB
        mood = POSITIVE if label == "pos" else NEGATIVE
        words = [rng.choice(mood) if rng.random() < 0.3 else rng.choice(NEUTRAL)
                 for _ in range(int(rng.integers(8, 40)))]
        out.append((" ".join(str(w) for w in words).capitalize() + " .", label))
    return out


class IMDB:
    """``IMDB.splits`` gives (train, test): 400 and 200 generated reviews."""

    @staticmethod
    def splits(text_field: Field, label_field: Field, **_: Any) -> tuple[Dataset, Dataset]:
        fields = [("text", text_field), ("label", label_field)]
        return tuple(Dataset([_example([t, lab], fields) for t, lab in reviews(n, seed)], fields)  # type: ignore
                     for n, seed in ((400, 0), (200, 1)))


class Vectors:
    """Word vectors from a file name (``glove.6B.50d.txt``): seeded random vectors, ``dim`` from the name, for
    :data:`WORDS` and ``<unk>`` / ``<pad>``."""

    def __init__(self, name: str, **_: Any) -> None:
        match = re.search(r"(\d+)d", name)
        self.dim = int(match.group(1)) if match else 50
        self.itos = ["<unk>", "<pad>", *WORDS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.vectors = torch.randn(len(self.itos), self.dim, generator=torch.Generator().manual_seed(0))


def install() -> types.ModuleType:
    """Register the stand-ins as ``torchtext`` (``data``, ``datasets``, ``vocab``) and ``spacy``; returns
    ``torchtext``."""
    stand_in_module("spacy", load=load, __version__=__version__)
    data = stand_in_module("torchtext.data", Field=Field, LabelField=LabelField, TabularDataset=TabularDataset,
                   Dataset=Dataset, Example=Example)
    datasets = stand_in_module("torchtext.datasets", IMDB=IMDB)
    vocab = stand_in_module("torchtext.vocab", Vocab=Vocab, Vectors=Vectors)
    return stand_in_module("torchtext", data=data, datasets=datasets, vocab=vocab, __version__=__version__)
