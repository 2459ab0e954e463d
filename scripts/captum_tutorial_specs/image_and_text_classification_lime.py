"""Image_and_Text_Classification_LIME: the image part uses the torchvision stand-in (resnet18 with random weights,
generated VOC scenes); the text part's torchtext (AG_NEWS, the basic_english tokenizer, the legacy Vocab) is
replaced by a generated news corpus, a tokenizer of the same rule and a vocabulary of the same interface, and the
EmbeddingBag model (its weights are not in the clone) is trained for 20 epochs on that corpus (with random weights
the Lasso zeroes every attribution). The ImageNet class index is generated."""

# the seed makes Lime's random draws (no seed in the notebook) the same in both runs
PRELUDE = "from captum_tutorial_specs import _torchvision\n_torchvision.install()\nimport torch\ntorch.manual_seed(0)\n"

REPLACE = {
    4: '''# stands in for imagenet_class_index.json: {"i": label}
idx_to_labels = {str(i): f"class_{i}" for i in range(1000)}
''',
    20: '''# the notebook's imports, with offline stand-ins for torchtext's AG_NEWS, get_tokenizer and legacy Vocab
import re
import numpy as np
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.dataset import random_split
from collections import Counter
from IPython.display import HTML, display

def AG_NEWS(split="train"):
    """(label 1..4, text) pairs: sentences drawn from per-class word lists plus shared words (2000 of them)."""
    rng = np.random.default_rng(0 if split == "train" else 1)
    shared = ("the a of to in and for on is at by with from as it said has will new after over this that was "
              "us men aug so not going match seven gold medals won mark too early tell if he she soviet who "
              "eight total 1980 right touch relay duel against").split()
    topics = [("world", "minister", "election", "iraq", "president", "troops", "talks", "government"),
              ("sports", "michael", "phelps", "spitz", "australia", "athens", "gymnast", "olympic", "team"),
              ("business", "oil", "prices", "stocks", "shares", "profit", "market", "company"),
              ("science", "software", "internet", "space", "microsoft", "computer", "research", "nasa")]
    for _ in range(2000):
        label = int(rng.integers(1, 5))
        words = [rng.choice(topics[label - 1]) if rng.random() < 0.4 else rng.choice(shared)
                 for _ in range(int(rng.integers(8, 30)))]
        yield label, " ".join(str(w) for w in words).capitalize() + "."

def get_tokenizer(name):
    """torchtext's basic_english rule: lower case, punctuation split off, split on whitespace."""
    def basic_english(line):
        line = line.lower()
        for pattern, repl in ((r"\\'", " \\'  "), (r'\\"', ""), (r"\\.", " . "), (r"<br \\/>", " "), (r",", " , "),
                              (r"\\(", " ( "), (r"\\)", " ) "), (r"\\!", " ! "), (r"\\?", " ? "), (r"\\;", " "),
                              (r"\\:", " "), (r"\\s+", " ")):
            line = re.sub(pattern, repl, line)
        return line.split()
    return basic_english

class Vocab:
    """The legacy torchtext Vocab interface: '<unk>' is 0, '<pad>' 1, then the words with min_freq by count."""
    def __init__(self, counter, min_freq=1):
        words = sorted((w for w, c in counter.items() if c >= min_freq), key=lambda w: (-counter[w], w))
        self.itos = ["<unk>", "<pad>"] + words
        self.stoi = {w: i for i, w in enumerate(self.itos)}
    def __len__(self):
        return len(self.itos)
    def __getitem__(self, token):
        return self.stoi.get(token, 0)
''',
    24: '''# the checkpoint is not in the clone: the notebook's EmbeddingBagModel trained as in its train_model, for
# 20 epochs on the generated corpus (no validation split: the corpus has fewer than the notebook's 100000 lines)
EPOCHS = 20
EMB_SIZE = 64
torch.manual_seed(0)
eb_model = EmbeddingBagModel(len(voc), EMB_SIZE, num_class)
loss = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(eb_model.parameters())
for epoch in range(1, EPOCHS + 1):
    for label, text, offsets in train_loader:
        optimizer.zero_grad()
        loss(eb_model(text, offsets), label).backward()
        optimizer.step()
eb_model.eval()
''',
}
