"""IMDB_TorchText_Interpret: torchtext (legacy 0.8 API) and spaCy are not installed, and the IMDB reviews, the
GloVe vectors and the trained CNN's weights (models/imdb-model-cnn-large.pt, not in the clone) are downloads.
Here the torchtext / spaCy stand-in (``_torchtext``: generated reviews over a small vocabulary that holds the
notebook's example words, seeded random vectors, spaCy's way of splitting punctuation and contractions) and the
notebook's own CNN class with random weights (seeded; 50-wide embeddings, 100 filters of sizes 3, 4, 5)."""

from captum_tutorial_specs._torchtext import RANDOM_CNN_CELL

PRELUDE = '''from captum_tutorial_specs import _torchtext
_torchtext.install()  # torchtext (data, datasets, vocab) and spacy
'''

REPLACE = {4: RANDOM_CNN_CELL + "model = model.to(device)\n"}

# cell 1 prints the packages' versions (captum 0.9.0 in one run, intellego 0.1.0 in the other)
PRINTS_IGNORED = r"^(captum|intellego|spacy|torch|torchtext) \S+$"
