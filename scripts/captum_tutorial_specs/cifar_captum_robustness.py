"""CIFAR_Captum_Robustness: CIFAR-10 is downloaded in the notebook; here the torchvision stand-in's generated
CIFAR-shaped images (the model's weights ship with the tutorial)."""

PRELUDE = '''from captum_tutorial_specs import _torchvision
_torchvision.install()
import torch
torch.manual_seed(0)  # the transforms' random draws (rotation angles, blur sigmas) alike in both runs
'''

REPLACE = {
    1: '''transform_tensor = transforms.ToTensor()
normalize = transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
unnormalize = lambda x: 0.5*x + 0.5

# stands in for CIFAR10(download=True): generated 32x32 images; no worker processes
testset = torchvision.datasets.CIFAR10(root='./data', train=False,
                                       download=True, transform=transform_tensor)
testloader = torch.utils.data.DataLoader(testset, batch_size=5,
                                         shuffle=False, num_workers=0)

classes = ('plane', 'car', 'bird', 'cat',
           'deer', 'dog', 'frog', 'horse', 'ship', 'truck')
''',
}
