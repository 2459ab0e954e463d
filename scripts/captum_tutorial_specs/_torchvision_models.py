"""The model classes of the torchvision stand-in (``_torchvision.py``): torchvision's structure and attribute
names, random weights from a fixed seed (so the Captum run and the intellego run build the same model).

``resnet18/34/50/101`` and ``vgg16`` have torchvision's full sizes; ``segmentation.fcn_resnet101`` is small (a
ResNet of Bottleneck blocks ``[1, 1, 1, 3]`` at a quarter of the width, dilated like torchvision's) with the same
output dict ``{"out", "aux"}`` and the same layer names (``backbone.layer4[2].conv3``, ``classifier``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _seeded(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Build under a fixed seed without touching the caller's random state; ``pretrained``/``weights``/
    ``progress`` are accepted and ignored (no download: random weights)."""

    def builder(*args: Any, pretrained: bool = False, weights: Any = None, progress: bool = True,
                **kwargs: Any) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return build(*args, **kwargs)

    builder.__name__ = build.__name__
    builder.__doc__ = build.__doc__
    return builder


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(inplanes, planes, stride), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = _conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.downsample, self.stride = downsample, stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes, stride, dilation), nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample, self.stride = downsample, stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(self.relu(self.bn2(self.conv2(out)))))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision's ResNet: ``conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc`` (``width`` is 64 there)."""

    def __init__(self, block: type[nn.Module], layers: list[int], num_classes: int = 1000, width: int = 64,
                 replace_stride_with_dilation: list[bool] | None = None) -> None:
        super().__init__()
        self.inplanes, self.dilation = width, 1
        dilate = replace_stride_with_dilation or [False, False, False]
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], 2, dilate[0])
        self.layer3 = self._make_layer(block, width * 4, layers[2], 2, dilate[1])
        self.layer4 = self._make_layer(block, width * 8, layers[3], 2, dilate[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)  # type: ignore[attr-defined]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block: Any, planes: int, blocks: int, stride: int = 1, dilate: bool = False
                    ) -> nn.Sequential:
        previous = self.dilation
        if dilate:
            self.dilation, stride = self.dilation * stride, 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, previous)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@_seeded
def resnet18(**kwargs: Any) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


@_seeded
def resnet34(**kwargs: Any) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


@_seeded
def resnet50(**kwargs: Any) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


@_seeded
def resnet101(**kwargs: Any) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)


class VGG(nn.Module):
    """torchvision's VGG: ``features`` (conv 3x3 + ReLU, max pools), ``avgpool`` (7 x 7), ``classifier``."""

    def __init__(self, cfg: list[Any], num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(nn.Linear(512 * 49, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 4096),
                                        nn.ReLU(True), nn.Dropout(), nn.Linear(4096, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@_seeded
def vgg16(**kwargs: Any) -> VGG:
    return VGG([64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"], **kwargs)


class _Backbone(nn.ModuleDict):
    """A ResNet's modules up to ``layer4`` (torchvision's IntermediateLayerGetter): returns ``{"out": layer4,
    "aux": layer3}``."""

    def __init__(self, net: ResNet) -> None:
        super().__init__(OrderedDict((n, getattr(net, n)) for n in ("conv1", "bn1", "relu", "maxpool", "layer1",
                                                                    "layer2", "layer3", "layer4")))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = {}
        for name, module in self.items():
            x = module(x)
            if name in ("layer3", "layer4"):
                out["aux" if name == "layer3" else "out"] = x
        return out


class FCNHead(nn.Sequential):
    def __init__(self, in_channels: int, channels: int) -> None:
        inter = in_channels // 4
        super().__init__(nn.Conv2d(in_channels, inter, 3, padding=1, bias=False), nn.BatchNorm2d(inter), nn.ReLU(),
                         nn.Dropout(0.1), nn.Conv2d(inter, channels, 1))


class FCN(nn.Module):
    """torchvision's FCN: ``backbone`` then ``classifier`` (and ``aux_classifier``), upsampled to the input."""

    def __init__(self, backbone: nn.Module, classifier: nn.Module, aux_classifier: nn.Module | None) -> None:
        super().__init__()
        self.backbone, self.classifier, self.aux_classifier = backbone, classifier, aux_classifier

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        size = x.shape[-2:]
        features = self.backbone(x)
        result = OrderedDict(out=F.interpolate(self.classifier(features["out"]), size=size, mode="bilinear",
                                               align_corners=False))
        if self.aux_classifier is not None:
            result["aux"] = F.interpolate(self.aux_classifier(features["aux"]), size=size, mode="bilinear",
                                          align_corners=False)
        return result


@_seeded
def fcn_resnet101(num_classes: int = 21, aux_loss: bool = True, width: int = 16) -> FCN:
    """Small: Bottleneck blocks ``[1, 1, 1, 3]`` at ``width`` (torchvision: ``[3, 4, 23, 3]`` at 64)."""
    net = ResNet(Bottleneck, [1, 1, 1, 3], width=width, replace_stride_with_dilation=[False, True, True])
    return FCN(_Backbone(net), FCNHead(width * 32, num_classes), FCNHead(width * 16, num_classes) if aux_loss else None)


CLASSIFICATION = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnet101": resnet101,
                  "vgg16": vgg16, "ResNet": ResNet, "VGG": VGG}
SEGMENTATION = {"fcn_resnet101": fcn_resnet101, "FCN": FCN}
