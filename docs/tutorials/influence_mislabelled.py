"""Tutorial (docs/influence.md): find the mislabelled examples of the shapes data set with TracIn.

Flip 10% of the labels of 600 shape images, fine-tune the shipped shapes CNN with a seeded loop that keeps three
checkpoints,
then rank the training examples by their TracIn self influence: a mislabelled example keeps a large loss
gradient through training, so it ranks high. Runs in seconds on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from intellego.data import make_shapes
from intellego.data.influence_task import flip_labels
from intellego.influence import TracInCP, TracInCPFast
from intellego.influence.metrics import mislabel_auc
from intellego.models import load_shapes_cnn

torch.set_num_threads(1)
gen = torch.Generator().manual_seed(0)

# 1. Data: 600 shape images, 4 classes, 10% of the labels flipped (the flipped set is known here).
data = make_shapes(600, seed=0)
labels, flipped = flip_labels(data.labels, 0.1, n_classes=4, generator=gen)
train = torch.utils.data.TensorDataset(data.images, labels)

# 2. The shipped shapes CNN with a fresh head; its last convolution and the head are fine-tuned on the noisy
#    labels by plain SGD, and the state after every other epoch is a checkpoint (with its learning rate).
model = load_shapes_cnn()
torch.manual_seed(0)
model.fc.reset_parameters()
tuned = [*model.conv3.parameters(), *model.fc.parameters()]
for p in model.parameters():
    p.requires_grad_(False)
for p in tuned:
    p.requires_grad_(True)
lr, checkpoints = 0.05, []
opt = torch.optim.SGD(tuned, lr=lr)
for epoch in range(6):
    for idx in torch.randperm(600, generator=gen).split(50):
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.images[idx]), labels[idx]).backward()
        opt.step()
    if epoch % 2 == 1:
        checkpoints.append({**{k: v.clone() for k, v in model.state_dict().items()}, "learning_rate": lr})
with torch.no_grad():
    accuracy = (model(data.images).argmax(1) == data.labels).double().mean().item()
print(f"fine-tuned on noisy labels: accuracy against the true labels {accuracy:.2f}")

# 3. TracIn self influence over the three checkpoints (state dicts carrying their learning rate).
tracin = TracInCP(model, train, checkpoints, layers=["conv3", "fc"], loss_fn=nn.CrossEntropyLoss(reduction="none"))
self_influence = tracin.self_influence()
top = self_influence.topk(60).indices  # as many candidates as there are flipped labels
print(f"TracInCP: {int(flipped[top].sum())} of the 60 highest self influences are flipped labels, "
      f"AUC {mislabel_auc(self_influence, flipped):.3f}")

# The last layer alone (TracInCPFast) is much cheaper and nearly as good here.
fast = TracInCPFast(model, "fc", train, checkpoints, loss_fn=nn.CrossEntropyLoss(reduction="sum"))
fast_self = fast.self_influence()
print(f"TracInCPFast: {int(flipped[fast_self.topk(60).indices].sum())} of 60, "
      f"AUC {mislabel_auc(fast_self, flipped):.3f}")

# 4. Look at the top candidates: the label they were given and what the image shows.
for i in top[:5].tolist():
    print(f"  example {i:3d}: labelled {data.classes[int(labels[i])]:8s} shows a {data.classes[int(data.labels[i])]:8s}"
          f" self influence {self_influence[i].item():.2f}")
