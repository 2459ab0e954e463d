"""A stand-in for the parts of torchvision that Captum's tutorials use (torchvision is not installed here).

Our own code, offline: transforms on PIL images and tensors, datasets that generate their images (CIFAR10,
VOCSegmentation), ``utils.make_grid``, and the model classes with torchvision's attribute names (ResNet with
``conv1 .. layer4, fc``, VGG with ``features, avgpool, classifier``, FCN with ``backbone, classifier``) built with
random weights (a fixed seed, so two processes build the same model; ``pretrained`` / ``weights`` are accepted
and ignored). ``install()`` puts the module in ``sys.modules`` as ``torchvision`` and its submodules::

    from captum_tutorial_specs import _torchvision
    _torchvision.install()
    import torchvision.transforms as transforms  # now this module's transforms
"""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor, nn

from captum_tutorial_specs import stand_in_module

__version__ = "0.0-standin"


# ---- transforms (functional) -------------------------------------------------------------------------------

def to_tensor(pic: Any) -> Tensor:
    """A PIL image or an ``H x W (x C)`` array as a float ``C x H x W`` tensor (uint8 scaled to [0, 1])."""
    arr = np.asarray(pic)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    out = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return out.float().div(255) if out.dtype == torch.uint8 else out


def to_pil_image(pic: Tensor) -> Image.Image:
    arr = pic.detach().cpu().numpy() if isinstance(pic, Tensor) else np.asarray(pic)
    arr = arr.transpose(1, 2, 0) if arr.ndim == 3 and arr.shape[0] in (1, 3) else arr
    arr = (arr * 255).round().clip(0, 255).astype(np.uint8) if arr.dtype.kind == "f" else arr
    return Image.fromarray(arr.squeeze(-1) if arr.ndim == 3 and arr.shape[-1] == 1 else arr)


def normalize(t: Tensor, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> Tensor:
    m = torch.as_tensor(mean, dtype=t.dtype).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=t.dtype).view(-1, 1, 1)
    return t.sub_(m).div_(s) if inplace else (t - m) / s


def _size_of(img: Any) -> tuple[int, int]:
    """(height, width) of a PIL image or a ``... x H x W`` tensor."""
    return (img.size[1], img.size[0]) if isinstance(img, Image.Image) else tuple(img.shape[-2:])


def resize(img: Any, size: int | Sequence[int]) -> Any:
    """Bilinear resize; an int sets the shorter side (aspect kept), a pair sets ``(h, w)``."""
    h, w = _size_of(img)
    if isinstance(size, int) or len(size) == 1:
        s = size if isinstance(size, int) else size[0]
        oh, ow = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
    else:
        oh, ow = size
    if isinstance(img, Image.Image):
        return img.resize((ow, oh), Image.BILINEAR)
    batch = img if img.dim() == 4 else img.unsqueeze(0)
    out = F.interpolate(batch.float(), size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)
    return out if img.dim() == 4 else out.squeeze(0)


def center_crop(img: Any, size: int | Sequence[int]) -> Any:
    th, tw = (size, size) if isinstance(size, int) else (size[0], size[-1])
    h, w = _size_of(img)
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    if isinstance(img, Image.Image):
        return img.crop((left, top, left + tw, top + th))
    return img[..., top:top + th, left:left + tw]


def gaussian_blur(img: Tensor, kernel_size: int | Sequence[int], sigma: float | Sequence[float] | None = None
                  ) -> Tensor:
    """Separable Gaussian blur of a ``(N x) C x H x W`` tensor, reflect padding."""
    ks = [kernel_size] * 2 if isinstance(kernel_size, int) else list(kernel_size)
    sig = [0.3 * ((k - 1) * 0.5 - 1) + 0.8 for k in ks] if sigma is None else (
        [float(sigma)] * 2 if isinstance(sigma, (int, float)) else [float(s) for s in sigma])
    batch = img if img.dim() == 4 else img.unsqueeze(0)
    c = batch.shape[1]
    out = F.pad(batch, [ks[0] // 2, ks[0] // 2, ks[1] // 2, ks[1] // 2], mode="reflect")
    for axis, (k, s) in enumerate(zip(ks, sig)):
        x = torch.arange(k, dtype=batch.dtype) - (k - 1) / 2
        kern = torch.exp(-0.5 * (x / s) ** 2)
        kern = (kern / kern.sum()).view(1, 1, *((1, k) if axis == 0 else (k, 1))).repeat(c, 1, 1, 1)
        out = F.conv2d(out, kern, groups=c)
    return out if img.dim() == 4 else out.squeeze(0)


def rotate(img: Tensor, angle: float, fill: float = 0.0) -> Tensor:
    """Rotation of a ``(N x) C x H x W`` tensor by ``angle`` degrees (counter-clockwise) about its centre."""
    batch = img if img.dim() == 4 else img.unsqueeze(0)
    a = math.radians(angle)
    theta = torch.tensor([[math.cos(a), math.sin(a), 0.0], [-math.sin(a), math.cos(a), 0.0]], dtype=batch.dtype)
    grid = F.affine_grid(theta.expand(batch.shape[0], 2, 3), list(batch.shape), align_corners=False)
    out = F.grid_sample(batch - fill, grid, mode="nearest", align_corners=False) + fill
    return out if img.dim() == 4 else out.squeeze(0)


# ---- transforms (classes) ----------------------------------------------------------------------------------

class Compose:
    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img


class ToTensor:
    def __call__(self, pic: Any) -> Tensor:
        return to_tensor(pic)


class Normalize(nn.Module):
    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        super().__init__()
        self.mean, self.std, self.inplace = mean, std, inplace

    def forward(self, t: Tensor) -> Tensor:
        return normalize(t, self.mean, self.std, self.inplace)


class Resize(nn.Module):
    def __init__(self, size: int | Sequence[int], interpolation: Any = None, antialias: Any = True) -> None:
        super().__init__()
        self.size = size

    def forward(self, img: Any) -> Any:
        return resize(img, self.size)


class CenterCrop(nn.Module):
    def __init__(self, size: int | Sequence[int]) -> None:
        super().__init__()
        self.size = size

    def forward(self, img: Any) -> Any:
        return center_crop(img, self.size)


class Lambda:
    def __init__(self, lambd: Callable[[Any], Any]) -> None:
        self.lambd = lambd

    def __call__(self, img: Any) -> Any:
        return self.lambd(img)


class GaussianBlur(nn.Module):
    """Blur with a sigma drawn uniformly from ``sigma`` (a range) at each call, as torchvision does."""

    def __init__(self, kernel_size: int | Sequence[int], sigma: float | Sequence[float] = (0.1, 2.0)) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.sigma = (float(sigma), float(sigma)) if isinstance(sigma, (int, float)) else tuple(sigma)

    def forward(self, img: Tensor) -> Tensor:
        s = torch.empty(1).uniform_(self.sigma[0], self.sigma[1]).item()
        return gaussian_blur(img, self.kernel_size, [s, s])


class RandomRotation(nn.Module):
    def __init__(self, degrees: float | Sequence[float], fill: float = 0.0) -> None:
        super().__init__()
        self.degrees = (-float(degrees), float(degrees)) if isinstance(degrees, (int, float)) else tuple(degrees)
        self.fill = fill

    def forward(self, img: Tensor) -> Tensor:
        return rotate(img, torch.empty(1).uniform_(self.degrees[0], self.degrees[1]).item(), self.fill)


# ---- utils -------------------------------------------------------------------------------------------------

def make_grid(tensor: Tensor | Sequence[Tensor], nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range: tuple[float, float] | None = None, scale_each: bool = False, pad_value: float = 0.0
              ) -> Tensor:
    """A batch ``N x C x H x W`` tiled into one ``3 x H' x W'`` image, ``nrow`` images a row."""
    t = torch.stack(list(tensor)) if not isinstance(tensor, Tensor) else tensor
    t = t.unsqueeze(0) if t.dim() == 3 else t
    t = t.repeat(1, 3, 1, 1) if t.shape[1] == 1 else t
    if normalize:
        lo, hi = value_range if value_range is not None else (float(t.min()), float(t.max()))
        t = (t.clamp(lo, hi) - lo) / max(hi - lo, 1e-5)
    n, c, h, w = t.shape
    cols, rows = min(nrow, n), int(math.ceil(n / min(nrow, n)))
    grid = t.new_full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value)
    for k in range(n):
        y, x = divmod(k, cols)
        grid[:, y * (h + padding) + padding:(y + 1) * (h + padding), x * (w + padding) + padding:
             (x + 1) * (w + padding)] = t[k]
    return grid


# ---- datasets (generated images) ---------------------------------------------------------------------------

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class CIFAR10(torch.utils.data.Dataset):
    """CIFAR-10's interface (``data`` N x 32 x 32 x 3 uint8, ``targets``, ``classes``) over generated images:
    smooth random colour fields with a class-dependent tint (``size`` images; 1000 train, 200 test by default)."""

    def __init__(self, root: str = "", train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False, size: int | None = None) -> None:
        n = size if size is not None else (1000 if train else 200)
        rng = np.random.default_rng(10 if train else 11)
        self.targets = [int(t) for t in rng.integers(0, 10, n)]
        coarse = torch.from_numpy(rng.random((n, 3, 4, 4), dtype=np.float32))
        smooth = F.interpolate(coarse, size=(32, 32), mode="bicubic", align_corners=False).numpy()
        tint = np.stack([np.cos(np.arange(10) * k) for k in (0.7, 1.3, 2.1)], 1)[self.targets]
        img = smooth * 0.6 + 0.2 + 0.15 * tint[:, :, None, None] + rng.normal(0, 0.04, smooth.shape)
        self.data = (img.clip(0, 1) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
        self.classes, self.transform, self.target_transform = list(CIFAR_CLASSES), transform, target_transform
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.train, self.root = train, root

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        img, target = Image.fromarray(self.data[i]), self.targets[i]
        img = self.transform(img) if self.transform is not None else img
        return img, (self.target_transform(target) if self.target_transform is not None else target)


class _GeneratedFiles(Sequence):
    """Paths of generated files, each written on its first access through this object (so a data set of 1464
    images costs what is used, and a file never outlives a change of ``SCENE_CLASSES``)."""

    def __init__(self, paths: list[Path], write: Callable[[int, Path], None]) -> None:
        self.paths, self.write, self.written = paths, write, set()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = i if i >= 0 else len(self) + i
        path = self.paths[i]
        if i not in self.written:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.write(i, path)
            self.written.add(i)
        return str(path)


def _voc_colour(i: int) -> tuple[int, int, int]:
    """VOC's colour map: the bits of the class id spread over the high bits of r, g, b."""
    r = g = b = 0
    for k in range(8):
        r, g, b = r | ((i >> 0) & 1) << (7 - k), g | ((i >> 1) & 1) << (7 - k), b | ((i >> 2) & 1) << (7 - k)
        i >>= 3
    return r, g, b


SCENE_CLASSES: dict[int, tuple[int, ...]] = {}  # scene index -> its object classes (a spec may set some)


def voc_scene(index: int, size: tuple[int, int] = (200, 150)) -> tuple[Image.Image, Image.Image]:
    """A generated VOC-like scene: an RGB image and its class mask (a 'P' image: 0 background, object classes
    1..20, 255 on a 3-pixel border around each object); the classes are ``SCENE_CLASSES[index]`` if set, else
    two drawn at random."""
    rng = np.random.default_rng(1000 + index)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    base = rng.random(3) * 0.5 + 0.25
    rgb = np.stack([base[k] + 0.2 * np.sin(3 * xx + k) * np.cos(2 * yy) for k in range(3)], -1)
    mask = Image.new("P", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    drawn = rng.choice(np.arange(1, 21), size=2, replace=False)
    for cls in SCENE_CLASSES.get(index, drawn):
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        box = (x0, y0, x0 + int(rng.integers(w // 5, w // 2)), y0 + int(rng.integers(h // 5, h // 2)))
        draw.rectangle(box, fill=255)
        draw.rectangle((box[0] + 3, box[1] + 3, box[2] - 3, box[3] - 3), fill=int(cls))
    m = np.asarray(mask)
    for cls in np.unique(m[(m > 0) & (m < 255)]):
        rgb[m == cls] = np.cos(np.array([0.3, 0.7, 1.1]) * cls) * 0.35 + 0.5
    rgb = (rgb + rng.normal(0, 0.03, rgb.shape)).clip(0, 1)
    mask.putpalette([v for i in range(256) for v in _voc_colour(i)])  # without a palette PNG renumbers the ids
    return Image.fromarray((rgb * 255).round().astype(np.uint8)), mask


class VOCSegmentation(torch.utils.data.Dataset):
    """VOC 2012 segmentation's interface (``images``, ``masks``: file paths; items ``(image, mask)`` as PIL
    images through the transforms) over generated scenes written under ``root`` when first read."""

    def __init__(self, root: str, year: str = "2012", image_set: str = "train", download: bool = False,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 transforms: Callable | None = None, size: int | None = None) -> None:
        n = size if size is not None else {"train": 1464, "val": 1449}.get(image_set, 2913)
        base = Path(root) / "VOCdevkit" / f"VOC{year}"
        names = [f"{year}_{k:06d}" for k in range(n)]
        self.images = _GeneratedFiles([base / "JPEGImages" / f"{s}.jpg" for s in names], self._write_image)
        self.masks = _GeneratedFiles([base / "SegmentationClass" / f"{s}.png" for s in names], self._write_mask)
        self.transform, self.target_transform, self.transforms = transform, target_transform, transforms

    @staticmethod
    def _write_image(i: int, path: Path) -> None:
        voc_scene(i)[0].save(path, quality=95)

    @staticmethod
    def _write_mask(i: int, path: Path) -> None:
        voc_scene(i)[1].save(path)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        img, target = Image.open(self.images[i]).convert("RGB"), Image.open(self.masks[i])
        if self.transforms is not None:
            return self.transforms(img, target)
        img = self.transform(img) if self.transform is not None else img
        return img, (self.target_transform(target) if self.target_transform is not None else target)


# ---- install -----------------------------------------------------------------------------------------------

def install() -> types.ModuleType:
    """Register this stand-in as ``torchvision`` (with ``transforms``, ``transforms.functional``, ``datasets``,
    ``models``, ``models.segmentation`` and ``utils``) in ``sys.modules``; returns the top module."""
    from captum_tutorial_specs import _torchvision_models as models_impl

    here = sys.modules[__name__]
    names = ("Compose", "ToTensor", "Normalize", "Resize", "CenterCrop", "Lambda", "GaussianBlur", "RandomRotation")
    functional = stand_in_module("torchvision.transforms.functional", **{
        n: getattr(here, n) for n in ("to_tensor", "to_pil_image", "normalize", "resize", "center_crop",
                                      "gaussian_blur", "rotate")})
    transforms = stand_in_module("torchvision.transforms", functional=functional,
                                 **{n: getattr(here, n) for n in names})
    datasets = stand_in_module("torchvision.datasets", CIFAR10=CIFAR10, VOCSegmentation=VOCSegmentation)
    segmentation = stand_in_module("torchvision.models.segmentation", **models_impl.SEGMENTATION)
    models = stand_in_module("torchvision.models", segmentation=segmentation, **models_impl.CLASSIFICATION)
    utils = stand_in_module("torchvision.utils", make_grid=make_grid)
    return stand_in_module("torchvision", transforms=transforms, datasets=datasets, models=models, utils=utils,
                   __version__=__version__, install=install)
