"""TorchVision_Interpret: torchvision's pretrained resnet18 and vgg16 are the stand-in's classes with torchvision's
structure and random weights; the ImageNet class index (downloaded by wget) is generated; the swan image ships with
the tutorial. The image is cut to 64 x 64 (224 in the notebook) so that IG with 200 steps, NoiseTunnel and the
two occlusions run in seconds on this CPU; every window of the occlusion cells still fits."""

# the seed makes NoiseTunnel's draws (cell 8: no seed in the notebook) the same in both runs
PRELUDE = "from captum_tutorial_specs import _torchvision\n_torchvision.install()\nimport torch\ntorch.manual_seed(0)\n"

REPLACE = {
    3: '''# stands in for imagenet_class_index.json: {"i": [wordnet id, label]}
idx_to_labels = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
''',
    4: '''# the notebook's transform at 64 x 64 instead of Resize(256) + CenterCrop(224)
transform = transforms.Compose([
 transforms.Resize(72),
 transforms.CenterCrop(64),
 transforms.ToTensor()
])
transform_normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
img = Image.open('img/resnet/swan-3299528_1280.jpg')
transformed_img = transform(img)
input = transform_normalize(transformed_img)
input = input.unsqueeze(0)
''',
}
