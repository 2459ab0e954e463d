"""A synthetic token-sequence sentiment task with known deciding tokens.

Each sequence is filler words with one to three sentiment words, all of the
same polarity, at random positions, followed by padding (``<pad>``, id 0).
The label is 1 when the sentiment words are positive ("good", "great", ...)
and 0 when they are negative ("bad", "awful", ...). ``key_mask`` marks the
sentiment words, the only tokens that decide the label.

Example:
    >>> from intellego.data.tokens import make_tokens
    >>> data = make_tokens(4, seed=0)
    >>> tuple(data.tokens.shape), data.vocab[0]
    ((4, 16), '<pad>')
    >>> words = [data.vocab[t] for t in data.tokens[0][data.key_mask[0]]]
    >>> all(w in POSITIVE_WORDS + NEGATIVE_WORDS for w in words)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "NEGATIVE_WORDS",
    "POSITIVE_WORDS",
    "TOKEN_VOCAB",
    "TokenData",
    "make_tokens",
]

PAD = "<pad>"
POSITIVE_WORDS: tuple[str, ...] = ("good", "great", "excellent", "love")
NEGATIVE_WORDS: tuple[str, ...] = ("bad", "awful", "terrible", "hate")
_FILLER_WORDS: tuple[str, ...] = (
    "the", "a", "movie", "film", "was", "is", "and", "it", "this", "plot",
    "actors", "story", "very", "really", "i", "but", "so", "with", "of", "to",
    "quite", "ending",
)  # fmt: skip
TOKEN_VOCAB: tuple[str, ...] = (PAD, *POSITIVE_WORDS, *NEGATIVE_WORDS, *_FILLER_WORDS)
_MAX_KEYS = 3


@dataclass
class TokenData:
    """Token sequences, binary labels and the positions that decide them.

    Attributes:
        tokens: Int64 tensor of shape ``(N, L)``; ids into ``vocab``, padded
            at the end with id 0.
        labels: Int64 tensor of shape ``(N,)``: 1 positive, 0 negative.
        vocab: The words; ``vocab[0]`` is ``"<pad>"``.
        key_token_ids: Dict with the ``"positive"`` and ``"negative"`` word ids.
        key_mask: Bool tensor of shape ``(N, L)``, true on the sentiment words.

    Example:
        >>> data = make_tokens(2, seed=1)
        >>> sorted(data.key_token_ids)
        ['negative', 'positive']
    """

    tokens: Tensor
    labels: Tensor
    vocab: tuple[str, ...]
    key_token_ids: dict[str, tuple[int, ...]]
    key_mask: Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.tokens[index], self.labels[index], self.key_mask[index]

    def decode(self, index: int) -> str:
        """The words of one sequence, without padding.

        Example:
            >>> make_tokens(1, seed=0).decode(0).count("<pad>")
            0
        """
        return " ".join(self.vocab[t] for t in self.tokens[index].tolist() if t != 0)


def _ids(words: tuple[str, ...]) -> Tensor:
    return torch.tensor([TOKEN_VOCAB.index(w) for w in words])


def make_tokens(n: int, *, seed: int = 0, seq_len: int = 16) -> TokenData:
    """Generate ``n`` labelled token sequences, deterministically from ``seed``.

    Sequence lengths (before padding) are uniform in ``[seq_len // 2, seq_len]``.
    Labels are balanced (counts differ by at most one) and shuffled.

    Args:
        n: Number of sequences.
        seed: Seed of the private ``torch.Generator``; the global RNG is untouched.
        seq_len: Padded length ``L`` of every sequence; at least 4.

    Returns:
        The tokens, labels, vocabulary, key word ids and key mask.

    Example:
        >>> data = make_tokens(10, seed=0, seq_len=8)
        >>> data.labels.sum().item(), int(data.key_mask.sum(1).min()) >= 1
        (5, True)
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if seq_len < 4:
        raise ValueError(f"seq_len must be at least 4, got {seq_len}")
    gen = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 2)[torch.randperm(n, generator=gen)]
    lengths = torch.randint(seq_len // 2, seq_len + 1, (n, 1), generator=gen)
    valid = torch.arange(seq_len)[None] < lengths
    filler, positive, negative = _ids(_FILLER_WORDS), _ids(POSITIVE_WORDS), _ids(NEGATIVE_WORDS)
    tokens = filler[torch.randint(0, len(filler), (n, seq_len), generator=gen)]
    n_keys = torch.randint(1, _MAX_KEYS + 1, (n, 1), generator=gen)
    scores = torch.rand((n, seq_len), generator=gen).masked_fill(~valid, 2.0)
    rank = scores.argsort(dim=1).argsort(dim=1)
    key_mask = rank < n_keys
    choice = torch.randint(0, len(positive), (n, seq_len), generator=gen)
    sentiment = torch.where(labels[:, None] == 1, positive[choice], negative[choice])
    tokens = torch.where(key_mask, sentiment, tokens).masked_fill(~valid, 0)
    return TokenData(
        tokens=tokens,
        labels=labels,
        vocab=TOKEN_VOCAB,
        key_token_ids={
            "positive": tuple(positive.tolist()),
            "negative": tuple(negative.tolist()),
        },
        key_mask=key_mask,
    )
