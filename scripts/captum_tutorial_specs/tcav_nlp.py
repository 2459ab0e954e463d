"""TCAV_NLP: torchtext (legacy 0.8 API) and spaCy are not installed, and the IMDB reviews, the GloVe vectors and the
trained CNN's weights (models/imdb-model-cnn-large.pt, not in the clone) are downloads. Here the torchtext / spaCy
stand-in (``_torchtext``, as for IMDB_TorchText_Interpret) and the notebook's own CNN class with random weights
(seeded; 50-wide embeddings, 100 filters of sizes 3, 4, 5). The concept sentences are the CSV files the tutorial
ships (data/tcav/text-sensitivity); their words outside the stand-in vocabulary read as ``<unk>``, as words outside
GloVe's vocabulary do in the notebook."""

from captum_tutorial_specs._torchtext import RANDOM_CNN_CELL

PRELUDE = '''from captum_tutorial_specs import _torchtext
_torchtext.install()  # torchtext (data, datasets, vocab) and spacy
'''

REPLACE = {12: RANDOM_CNN_CELL}
