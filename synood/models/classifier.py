"""The "torchvision" energy-classifier family: ImageNet ResNets with differentiable preprocessing.

`ImageNetClassifier` is shared with the offline suite's EfficientNet-Lite0 (efficientnet.py).

Pretrained weights come through torchvision's weights enums and the torch hub cache, or from a
local file; every checkpoint is read with weights_only=True, never fully unpickled.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import open_clip
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from torchvision.models import WeightsEnum, get_model, get_model_weights
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.transforms.functional import to_tensor

from synood.config import CHOICES, check
from synood.runtime import pick_dtype, seeded_init
from synood.models import sources
from synood.models.interfaces import ComponentInfo, count_parameters
from synood.models.suites import ComponentSpec, ModelUnavailableError, weights_only

TINY_RESNET = "synood-tiny-resnet"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WRAPPER_KEYS = ("state_dict", "model")
RESIZES = CHOICES["models.classifier_resize"]  # antialias (default) | plain
PLAIN_SUFFIX = " [resize without antialiasing]"
CPU_PASS = 4  # views per network pass on CPU: more overflow the caches and cost more per image (bench/decode.py)


@dataclass(frozen=True)
class View:
    """How the network sees an image: shorter side resized (antialiased, as torchvision >= 0.17's
    IMAGENET1K_V2 transforms, unless `antialias` is off), centre crop, per-channel normalisation."""

    resize: int
    crop: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    antialias: bool = True


DEFAULT_VIEW = View(224, 224)


class ImageNetClassifier:
    """A frozen ImageNet classifier behind the EnergyClassifier interface; gradients reach the input.

    The network is split into a convolutional `trunk`, global average pooling and a linear `head`,
    so pooled features (the offline encoder's image side) and class activation maps come for free.
    """

    def __init__(self, net: torch.nn.Module, trunk: torch.nn.Module, head: torch.nn.Linear, view: View,
                 class_names: Sequence[str], info: ComponentInfo, device: torch.device, dtype: torch.dtype):
        self.net = net.to(device=device, dtype=dtype).eval().requires_grad_(False)
        self.trunk, self.head = trunk, head
        self.view, self.class_names, self.info = view, list(class_names), info
        self.device, self.dtype = device, dtype
        self._mean = torch.tensor(view.mean, device=device, dtype=dtype).view(1, 3, 1, 1)
        self._std = torch.tensor(view.std, device=device, dtype=dtype).view(1, 3, 1, 1)

    @staticmethod
    def to_tensor(image: Image.Image) -> torch.Tensor:
        """A PIL image -> (3, H, W) float RGB in [0, 1], the input `logits` expects."""
        return to_tensor(image.convert("RGB"))

    def crop_box(self, height: int, width: int) -> tuple[int, int, int]:
        """(top, left, side) of the square of an H x W image that the network sees, in its pixels."""
        side = round(min(height, width) * self.view.crop / self.view.resize)
        return (height - side) // 2, (width - side) // 2, side

    def resized(self, resize: str) -> ImageNetClassifier:
        """This classifier (the same network) resizing with `resize`: antialias, or plain bilinear (the
        pre-0.17 torchvision resize); a plain one says so in its name."""
        check("models.classifier_resize", resize)
        antialias = resize == "antialias"
        if antialias == self.view.antialias:
            return self
        other = copy.copy(self)
        other.view = dataclasses.replace(self.view, antialias=antialias)
        base = self.info.name.removesuffix(PLAIN_SUFFIX)
        other.info = dataclasses.replace(self.info, name=base if antialias else base + PLAIN_SUFFIX)
        return other

    def view_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 3, crop, crop) the network's normalised input: shorter side
        resized, centre crop, normalisation, as torchvision's classification transforms; differentiable."""
        x = images.to(self.device, self.dtype)
        height, width = x.shape[-2:]
        short, long = sorted((height, width))
        resized = (self.view.resize, int(self.view.resize * long / short))
        size = resized if height <= width else resized[::-1]
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=self.view.antialias)
        crop = self.view.crop
        top, left = int(round((size[0] - crop) / 2.0)), int(round((size[1] - crop) / 2.0))
        x = x[..., top:top + crop, left:left + crop]
        return (x - self._mean) / self._std

    def maps(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, C, h, w) last feature maps of the network's view of them."""
        return self.trunk(self.view_pixels(images))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, C) pooled features, the input of the linear head."""
        return self.pooled(self.view_pixels(images))

    def pooled(self, views: torch.Tensor) -> torch.Tensor:
        """(B, 3, crop, crop) network inputs (view_pixels' output) -> (B, C) their pooled last feature maps."""
        return self.trunk(views).mean(dim=(-2, -1))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 1000) logits, differentiable in the pixels."""
        return self.head(self.features(images))

    def batch_logits(self, groups: Sequence[torch.Tensor]) -> torch.Tensor:
        """Stacks of images of one size each -> (B, 1000) logits, rows group after group: each group is viewed at
        its own aspect ratio (every view is crop x crop), then the views pass through the network together (on CPU
        CPU_PASS at a time)."""
        views = torch.cat([self.view_pixels(group) for group in groups])
        size = CPU_PASS if self.device.type == "cpu" else len(views)
        return torch.cat([self.head(self.pooled(chunk)) for chunk in views.split(size)])

    def cam(self, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) class activation maps in [0, 1] for one class per image, over the crop box.

        With average pooling before a linear head, Grad-CAM's channel weights are the head's row
        for the class, so the map is ReLU(sum_c W[class, c] * A_c): exact, and no backward pass.
        """
        with torch.no_grad():
            maps = self.maps(images).float()
            weights = self.head.weight[classes.to(self.device)].float()
            cam = torch.einsum("bchw,bc->bhw", maps, weights).clamp_min(0)
            return cam / cam.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)


def load(spec: ComponentSpec, device: torch.device, dtype: str, resize: str = RESIZES[0]) -> ImageNetClassifier:
    """Build spec.model, random or filled from its torchvision weights enum or a local file, resizing its
    input with `resize` (one of RESIZES)."""
    view, names, source = DEFAULT_VIEW, open_clip.IMAGENET_CLASSNAMES, sources.IN_PROCESS
    if spec.weights is None:
        net = _architecture(spec.model)
    elif sources.looks_like_path(spec.weights):
        path = Path(spec.weights).expanduser().resolve()
        net = _architecture(spec.model)
        net.load_state_dict(read_state_dict(path))
        source = str(path)
    else:
        weights = _weights_enum(spec)
        names = weights.meta["categories"]
        net = get_model(spec.model, weights=None, num_classes=len(names))
        net.load_state_dict(weights.get_state_dict(progress=True, model_dir=str(_checkpoints_dir()),
                                                   weights_only=True))
        t = weights.transforms()
        view = View(t.resize_size[0], t.crop_size[0], tuple(t.mean), tuple(t.std))
        source = str(_cache_file(weights))
    info = ComponentInfo(
        role="classifier", name=f"torchvision {spec.model} ({spec.weights or 'random init'})",
        architecture=spec.model, source=source, pretrained=spec.weights is not None,
        parameters=count_parameters(net))
    trunk, head = split_resnet(net)
    return ImageNetClassifier(net, trunk, head, view, names, info, device, pick_dtype(dtype, device)).resized(resize)


def download(spec: ComponentSpec) -> str:
    """Fill the torch hub cache with spec's weights through torchvision's own download path."""
    if spec.weights is None or sources.looks_like_path(spec.weights):
        raise ModelUnavailableError(
            f"{spec.describe()} has nothing to download: it is a random init or a local file")
    weights = _weights_enum(spec)
    try:
        weights.get_state_dict(progress=True, check_hash=True, model_dir=str(_checkpoints_dir()),
                               weights_only=True)
    except Exception as exc:
        raise ModelUnavailableError(f"could not download {spec.describe()} from {weights.url}: {exc}") from exc
    return str(_cache_file(weights))


def _architecture(model: str) -> torch.nn.Module:
    """A randomly initialised 1000-class network: the tiny ResNet, or any torchvision model by name."""
    with seeded_init():
        if model == TINY_RESNET:
            return ResNet(Bottleneck, [1, 1, 1, 1], num_classes=1000)
        return get_model(model, weights=None)


def split_resnet(net: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Linear]:
    """A ResNet-style network (children ..., avgpool, fc) as its convolutional trunk and linear head."""
    head = getattr(net, "fc", None)
    if not isinstance(head, torch.nn.Linear) or not hasattr(net, "avgpool"):
        raise ModelUnavailableError(f"{type(net).__name__} is not ResNet-shaped (avgpool then a linear fc); "
                                    "the energy classifier needs that split")
    trunk = torch.nn.Sequential(*(m for name, m in net.named_children() if name not in ("avgpool", "fc")))
    return trunk, head


def _weights_enum(spec: ComponentSpec) -> WeightsEnum:
    """torchvision's weights enum member named by spec.weights, or a clear error."""
    try:
        return get_model_weights(spec.model)[spec.weights]
    except (KeyError, ValueError):
        raise ModelUnavailableError(f"torchvision has no weights {spec.weights!r} for {spec.model!r}") from None


def _checkpoints_dir() -> Path:
    """Where torch.hub keeps checkpoints; the same place sources.probe looks."""
    return sources.torch_hub_dir() / "checkpoints"


def _cache_file(weights: WeightsEnum) -> Path:
    """The torch hub cache file torchvision reads (or downloads) for these weights."""
    return _checkpoints_dir() / os.path.basename(weights.url)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors or torch file (optionally under 'state_dict'/'model'), weights only."""
    if not path.is_file():
        raise ModelUnavailableError(f"no classifier checkpoint file at {path}")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    with weights_only(str(path)):
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            return state[key]
    return state
