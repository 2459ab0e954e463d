"""Stand-ins for the placeholder names Captum's docstring examples use (``scripts/captum_examples.py``).

Our own small models and objects, with the attribute names and shapes the examples state in their comments
(``net.conv1`` gives Nx12x32x32, ``net.conv4`` Nx50x8x8, ...), random weights. Imported by each example program
after the RNG is seeded, so both libraries see the same weights and data.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader


class ImageClassifier(nn.Module):
    """Nx3x32x32 images -> Nx10 scores; ``conv1`` out Nx12x32x32, ``conv4`` out Nx50x8x8 (the last convolution),
    ``linear1``, ``linear2`` (the output layer); every ReLU its own module (DeepLift, LRP)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(3, 12, 3, padding=1), nn.ReLU()
        self.conv2, self.relu2, self.pool1 = nn.Conv2d(12, 24, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv3, self.relu3, self.pool2 = nn.Conv2d(24, 36, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv4, self.relu4 = nn.Conv2d(36, 50, 3, padding=1), nn.ReLU()
        self.linear1, self.relu5 = nn.Linear(50 * 8 * 8, 32), nn.ReLU()
        self.linear2 = nn.Linear(32, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        x = self.relu4(self.conv4(self.pool2(self.relu3(self.conv3(x)))))
        return self.linear2(self.relu5(self.linear1(x.reshape(x.shape[0], -1))))


class SimpleClassifier(nn.Module):
    """Nx4x4 inputs -> Nx3 class probabilities; ``conv1`` (one input channel, 2x2 kernel) out Nx12x3x3."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.relu = nn.Conv2d(1, 12, 2), nn.ReLU()
        self.linear = nn.Linear(12 * 3 * 3, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.conv1(x.unsqueeze(1)))
        return torch.softmax(self.linear(x.reshape(x.shape[0], -1)), dim=1)


class TabularClassifier(nn.Module):
    """Nx5 float features -> Nx3 class probabilities (LimeBase's example calls this one SimpleClassifier)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear1, self.relu, self.linear2 = nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.linear2(self.relu(self.linear1(x))), dim=1)


class DocumentClassifier(nn.Module):
    """Word indices (N, or NxL, averaged over L) -> Nx5 scores through a word ``embedding`` layer."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding, self.linear = nn.Embedding(20, 8), nn.Linear(8, 5)

    def forward(self, indices: Tensor) -> Tensor:
        emb = self.embedding(indices)
        return self.linear(emb.mean(1) if emb.dim() == 3 else emb)


class ConceptClassifier(nn.Module):
    """Nx3x32x32 images -> Nx10 scores with the two layers TCAV's example names, ``inception4c`` and
    ``inception4d``."""

    def __init__(self) -> None:
        super().__init__()
        self.inception4c, self.relu1 = nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()
        self.inception4d, self.relu2 = nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu2(self.inception4d(self.relu1(self.inception4c(x))))
        return self.fc(self.pool(x).flatten(1))


class TimeSeriesClassifier(nn.Module):
    """(batch, length, channels) series -> Nx2 scores (visualize_timeseries_attr's example calls it Classifier)."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.conv1, self.relu = nn.Conv1d(channels, 8, 5, padding=2), nn.ReLU()
        self.linear = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.relu(self.conv1(x.transpose(1, 2))).mean(2))


class WordTokenizer:
    """A tokenizer with the methods TextTokenInput uses: words and punctuation, ``<s>`` first, ids given in the
    order words are first seen (the same in every run of a program)."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {"<pad>": 0, "<s>": 1, "<unk>": 2}

    def convert_tokens_to_ids(self, tokens: Any) -> Any:
        if isinstance(tokens, str):
            return self.vocab.setdefault(tokens, len(self.vocab))
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids: Any) -> Any:
        names = {v: k for k, v in self.vocab.items()}
        if isinstance(ids, int):
            return names.get(ids, "<unk>")
        return [names.get(int(i), "<unk>") for i in ids]

    def encode(self, text: str, add_special_tokens: bool = True, return_tensors: str | None = None) -> Any:
        ids = ([1] if add_special_tokens else []) + self.convert_tokens_to_ids(re.findall(r"\w+|[^\w\s]", text))
        return torch.tensor([ids]) if return_tensors == "pt" else ids

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        tokens = self.convert_ids_to_tokens([int(i) for i in torch.as_tensor(ids).reshape(-1)])
        return " ".join(t for t in tokens if not (skip_special_tokens and t in ("<s>", "<pad>")))


def get_tensor_from_filename(filename: str) -> Tensor:
    """An image for a concept file name (generated: no files are read)."""
    return torch.rand(3, 32, 32)


def dataset_to_dataloader(loader: Any, concepts_path: str, batch_size: int = 4) -> DataLoader:
    """Concept.__init__'s example signature: a loader of 8 images made by ``loader`` for ``concepts_path``."""
    images: Any = [loader(f"{concepts_path}{i}.jpg") for i in range(8)]  # a list serves as a map-style dataset
    return DataLoader(images, batch_size=batch_size)


class Image:
    """PIL's ``Image`` as ImageMaskInput's example uses it: ``Image.open(name)`` gives a generated 48x32 RGB image
    (no file is read)."""

    @staticmethod
    def open(name: str) -> Any:
        from PIL import Image as PILImage

        return PILImage.fromarray((torch.rand(32, 48, 3) * 255).to(torch.uint8).numpy())


class VisionLanguageModel(ImageClassifier):
    """A model with transformers' ``.device`` (ImageMaskInput's example reads only that)."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


class ModelInputs(dict):
    """A processor's output: tensors by name, with ``.to(device)`` as transformers' BatchFeature."""

    def to(self, device: Any) -> ModelInputs:
        return ModelInputs({k: v.to(device) for k, v in self.items()})


class ImageTextProcessor:
    """A vision-language processor as ImageMaskInput's example calls it: a chat template that joins the
    messages' texts, then word ids (``tokenizer``) and the image's pixels scaled to [0, 1]."""

    def apply_chat_template(self, messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> str:
        texts = [part.get("text", "<image>") for m in messages for part in m["content"]]
        return " ".join(texts) + (" <assistant>" if add_generation_prompt else "")

    def __call__(self, text: str, images: Any, return_tensors: str = "pt") -> ModelInputs:
        pixels = torch.as_tensor(__import__("numpy").asarray(images), dtype=torch.float32) / 255
        return ModelInputs(input_ids=tokenizer.encode(text, return_tensors="pt"),
                           pixel_values=pixels.permute(2, 0, 1).unsqueeze(0))


def concept_images(count: int = 8, shift: float = 0.0) -> DataLoader:
    images: Any = [torch.rand(3, 32, 32) + shift for _ in range(count)]
    return DataLoader(images, batch_size=4)


imagenet = ConceptClassifier()
striped_data_iter = concept_images(shift=0.5)
random_data_iter = concept_images()
inputs = torch.rand(4, 3, 32, 32)
tokenizer = WordTokenizer()
resnet18 = ImageClassifier()
processor = ImageTextProcessor()
model = VisionLanguageModel()
dataloader = [(torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))]
orig_image = torch.rand(2, 3, 32, 32)
data = torch.randn(4, 50, 3)

# per example (the docstring's owner), names bound differently: LimeBase's SimpleClassifier takes Nx5 features
PER_EXAMPLE = {"LimeBase.attribute": {"SimpleClassifier": "TabularClassifier"},
               "visualize_timeseries_attr": {"Classifier": "TimeSeriesClassifier"}}

__all__ = ["ImageClassifier", "SimpleClassifier", "TabularClassifier", "DocumentClassifier", "ConceptClassifier",
           "TimeSeriesClassifier", "WordTokenizer", "Image", "get_tensor_from_filename", "dataset_to_dataloader",
           "imagenet", "striped_data_iter", "random_data_iter", "inputs", "tokenizer", "resnet18", "dataloader",
           "processor", "model", "orig_image", "data"]
