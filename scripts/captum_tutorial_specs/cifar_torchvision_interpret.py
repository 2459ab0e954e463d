"""CIFAR_TorchVision_Interpret: torchvision (CIFAR10, transforms, make_grid) is the shared stand-in with generated
images; the tutorial's Net loads its shipped weights (models/cifar_torchvision.pt), so training is not run."""

# the seed makes NoiseTunnel's draws the same in both runs (the notebook sets none)
PRELUDE = "from captum_tutorial_specs import _torchvision\n_torchvision.install()\nimport torch\ntorch.manual_seed(0)\n"

REPLACE = {
    5: '''# the notebook's cell with next(dataiter) for dataiter.next() (DataLoader iterators no longer have .next())
def imshow(img):
    img = img / 2 + 0.5     # unnormalize
    npimg = img.numpy()
    plt.imshow(np.transpose(npimg, (1, 2, 0)))
    plt.show()

dataiter = iter(testloader)
images, labels = next(dataiter)
imshow(torchvision.utils.make_grid(images))
print('GroundTruth: ', ' '.join('%5s' % classes[labels[j]] for j in range(4)))
outputs = net(images)
_, predicted = torch.max(outputs, 1)
print('Predicted: ', ' '.join('%5s' % classes[predicted[j]] for j in range(4)))
''',
}
