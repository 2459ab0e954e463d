"""Tutorial: which training examples made the model say this? Influence functions, EK-FAC and TRAK.

Part 1 trains a small classifier on the synthetic task with 10% of its labels flipped, then ranks the training
set by self-influence (flipped labels should come first) and lists a test example's proponents.
Part 2 trains the shipped tiny causal LM on a few sentences, lets it continue a prompt, and asks which training
sentences support that continuation. Runs in a few seconds on a CPU:

    .venv/bin/python docs/tutorials/influence_functions_tutorial.py
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

from intellego.data.influence_task import make_influence_task
from intellego.influence import EKFACInfluence, NaiveInfluenceFunction, TRAKInfluence
from intellego.influence.metrics import mislabel_auc
from intellego.models.tiny_lm import TinyCausalLM, WordTokenizer

torch.manual_seed(0)  # only the tutorial's own LM training below uses the global RNG

# --- Part 1: a classifier with flipped labels -----------------------------------------------------------------
task = make_influence_task(n_train=300, n_test=20, flip_fraction=0.1, seed=0)
run = task.train(epochs=20, n_checkpoints=4)
train = TensorDataset(task.x_train, task.y_train)
ce = nn.CrossEntropyLoss(reduction="none")

naive = NaiveInfluenceFunction(run.model, train, None, loss_fn=ce, batch_size=150)  # full-rank Gauss-Newton
ekfac = EKFACInfluence(run.model, train, loss_fn=ce, batch_size=150)
trak = TRAKInfluence(run.model, train, run.checkpoints, batch_size=150, projection_dim=128)

for name, method in [("Naive (full rank)", naive), ("EK-FAC", ekfac), ("TRAK-4", trak)]:
    auc = mislabel_auc(method.self_influence(), task.flipped)
    print(f"{name:18s} finds flipped labels by self-influence: AUC {auc:.2f}")

test = (task.x_test[:1], task.y_test[:1])
top = ekfac.influence(test, k=3)
print("EK-FAC proponents of test example 0:", top.indices[0].tolist(),
      "labels", task.y_train[top.indices[0]].tolist(), "test label", int(task.y_test[0]))

# --- Part 2: the tiny causal LM --------------------------------------------------------------------------------
sentences = ["the cat sat on the mat", "the dog sat on the rug", "a cat ate the red fish",
             "a dog ate the big bone", "the bird sang in the tree", "the cat slept on the mat",
             "a bird flew over the tree", "the dog ran in the park"]
tok = WordTokenizer(" ".join(sentences).split())
ids = torch.tensor([tok.encode(s) for s in sentences])  # every sentence has 6 words: one (8, 7) batch
lm = TinyCausalLM(len(tok), dim=16, max_len=16, seed=0)
opt = torch.optim.Adam(lm.parameters(), lr=0.03)
for _ in range(150):
    logits = lm(ids).logits
    loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, len(tok)), ids[:, 1:].reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
lm.eval()


def lm_loss(out, labels):
    """Each sequence's next-token loss (summed over positions)."""
    return nn.functional.cross_entropy(out.logits[:, :-1].transpose(1, 2), labels[:, 1:], reduction="none").sum(1)


prompt = torch.tensor([tok.encode("the cat")])
query = lm.generate(prompt, max_new_tokens=4)
print("prompt 'the cat' ->", repr(tok.decode(query[0], skip_special_tokens=True)))
lm_ekfac = EKFACInfluence(lm, TensorDataset(ids, ids), loss_fn=lm_loss, batch_size=8,
                          layers=["mlp.0", "mlp.2", "lm_head"], fisher="sampled",
                          generator=torch.Generator().manual_seed(0))
scores = lm_ekfac.influence((query, query))[0]
for i in scores.argsort(descending=True)[:3].tolist():
    print(f"  {float(scores[i]):+9.3f}  {sentences[i]}")
