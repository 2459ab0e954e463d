"""TracInCP_Tutorial: CIFAR-10 is downloaded and the checkpoints of two long trainings are fetched in the notebook;
here the torchvision stand-in's generated CIFAR-shaped images (640 to train on) and the notebook's own ``train``
for 3 epochs, a checkpoint each epoch. The influence calls are the notebook's."""

PRELUDE = '''from captum_tutorial_specs import _torchvision
_torchvision.install()
import torch
torch.manual_seed(0)
'''

_TRAIN = '''num_epochs = 3  # the notebook: {epochs}, or the checkpoints it downloads; here 3 epochs, saved each epoch
torch.manual_seed({seed})  # the fresh net and the shuffling alike in both runs, whatever the cells before drew
net = Net()
train(net, num_epochs, DataLoader({data}, batch_size=32, shuffle=True), DataLoader(test_dataset, batch_size=64),
      {folder}, save_every=1)
'''

REPLACE = {
    # stand in for CIFAR10(download=True): 640 generated training images, 128 test images
    4: '''correct_dataset_path = "data/cifar_10"
correct_dataset = torchvision.datasets.CIFAR10(root=correct_dataset_path, train=True, download=True,
                                               transform=normalize, size=640)
''',
    5: '''test_dataset = torchvision.datasets.CIFAR10(root=correct_dataset_path, train=False, download=True,
                                            transform=normalize, size=128)
''',
    8: _TRAIN.format(epochs=26, seed=1, data="correct_dataset", folder="correct_dataset_checkpoints_dir"),
    # glob's order is the directory's; sorted, so that both runs sum the checkpoints in one order
    9: '''correct_dataset_checkpoint_paths = sorted(glob.glob(os.path.join(correct_dataset_checkpoints_dir,
                                                                  "*.pt")))''',
    # the draw of mislabelled examples, reseeded: the influence cells before it may draw from torch's generator
    # differently in the two libraries (random projections)
    23: '''torch.manual_seed(3)
mislabelled_proportion = 0.10
use_incorrect = torch.rand(len(incorrect_labels)) < mislabelled_proportion
mislabelled_dataset_labels = torch.where(use_incorrect, incorrect_labels, correct_labels)
''',
    27: _TRAIN.format(epochs=101, seed=2, data="mislabelled_dataset", folder="mislabelled_dataset_checkpoints_dir"),
    28: '''mislabelled_dataset_checkpoint_paths = sorted(glob.glob(os.path.join(mislabelled_dataset_checkpoints_dir,
                                                                    "*.pt")))''',
}

NOT_COMPARED = {"total_minutes"}  # the cells time themselves

# the cells print their wall-clock times beside the counts
PRINTS_IGNORED = r"in \d+\.\d+ minutes"
