"""TCAV_Image: the notebook's concept images (striped, zigzagged, dotted, random) and ImageNet zebras are fetched by
hand, and its model is a pretrained GoogLeNet; here generated images in the folders the notebook reads (small
JPEGs, resized to 32 x 32 instead of 224 x 224) and a small CNN with random seeded weights whose layers carry
GoogLeNet's names (``inception4c``, ``inception4d``, ``inception4e``) and 1000 outputs."""

PRELUDE = '''from captum_tutorial_specs import _torchvision
_torchvision.install()
import math, os
import numpy as np
from PIL import Image


def _pattern(kind, rng, size=48):
    """One generated concept image (uint8 H x W x 3)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle, freq = rng.uniform(0, math.pi), rng.uniform(4, 9)
    u = xx * math.cos(angle) + yy * math.sin(angle)
    v = -xx * math.sin(angle) + yy * math.cos(angle)
    if kind in ("striped", "zebra"):
        grey = (np.sin(2 * math.pi * freq * u) > 0).astype(float)
    elif kind == "zigzagged":
        grey = (np.sin(2 * math.pi * freq * (u + 0.08 * np.abs(((v * 8) % 2) - 1))) > 0).astype(float)
    elif kind == "dotted":
        grey = ((np.sin(2 * math.pi * freq * u) * np.sin(2 * math.pi * freq * v)) > 0.55).astype(float)
    else:  # random: smooth noise
        grey = rng.random((size, size))
    colour = rng.uniform(0.2, 1.0, 3) if kind != "zebra" else np.ones(3)
    img = grey[:, :, None] * colour + (1 - grey[:, :, None]) * rng.uniform(0.0, 0.3, 3)
    if kind == "zebra":  # a striped animal on a grassy background
        mask = ((xx - 0.5) ** 2 / 0.12 + (yy - 0.55) ** 2 / 0.05) < 1
        img = np.where(mask[:, :, None], img, np.array([0.35, 0.55, 0.2]) + 0.1 * rng.random((size, size, 1)))
    return (np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1) * 255).astype(np.uint8)


def _write_images(folder, kind, count, seed):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        Image.fromarray(_pattern(kind, rng)).save(os.path.join(folder, f"{kind}_{k:03d}.jpg"), quality=95)


for _i, _kind in enumerate(["striped", "zigzagged", "dotted", "random_0", "random_1", "random_2", "random_3"]):
    _write_images(os.path.join("data/tcav/image/concepts", _kind), _kind.split("_")[0], 24, 100 + _i)
_write_images("data/tcav/image/imagenet/zebra", "zebra", 48, 7)
'''

REPLACE = {
    # the notebook's ImageNet transform, at 32 x 32 (the stand-in model's input) instead of 224 x 224
    1: '''def transform(img):
    return transforms.Compose([
        transforms.Resize(36),
        transforms.CenterCrop(32),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])(img)
''',
    # stands in for torchvision.models.googlenet(pretrained=True): a small CNN with GoogLeNet's layer names
    6: '''import torch.nn as nn


class SmallGoogLeNet(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        def block(c_in, c_out):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU())
        self.conv1 = nn.Sequential(nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU())
        self.inception4c = block(16, 24)
        self.inception4d = block(24, 32)
        self.maxpool4 = nn.MaxPool2d(2)
        self.inception4e = block(32, 32)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.inception4d(self.inception4c(self.conv1(x)))
        x = self.inception4e(self.maxpool4(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


torch.manual_seed(0)
model = SmallGoogLeNet()
model = model.eval()
''',
}
