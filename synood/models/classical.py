"""The "classical" generator family: the offline suite's stand-in for diffusion inpainting.

No natural-image diffusion weights install from a registry. This generator removes the main object
instead of repainting the whole image: the classifier's class activation map for its predicted
class marks the object, OpenCV's Telea inpainting fills that region from its surroundings, and a
smooth low-resolution noise field is added inside it. The noise field is what the energy-guided
optimisation updates (synthesis.optimise_noise), exactly where diffusion would update its noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..images import to_pil
from ..runtime import pick_dtype
from . import efficientnet
from .classifier import ImageNetClassifier
from .interfaces import ComponentInfo
from .suites import GENERATOR_STEP_SIZES, ComponentSpec, ModelUnavailableError

MODEL = "cam-telea-noise"
SIZE = 256  # working resolution (the diffusion generator works at 512)
CAM_THRESHOLD = 0.25  # share of the map's peak that counts as the object
NOISE_CELLS = 8  # the noise field is NOISE_CELLS x NOISE_CELLS per channel, upsampled bicubically
NOISE_SCALE = 0.3  # standard deviation of the initial field (before the tanh)
AMPLITUDE = 0.15  # the field changes a pixel by at most this much, in [0, 1] units: the image stays natural
ARCHITECTURE = "class activation map + OpenCV Telea inpainting + smooth noise field (no learned weights)"


@dataclass(frozen=True)
class Canvas:
    """An image prepared for generation: the inpainted base, the soft object mask and the start noise."""

    source: torch.Tensor  # (3, S, S) the resized input, [0, 1]
    base: torch.Tensor  # (3, S, S) the input with the object region inpainted
    mask: torch.Tensor  # (1, S, S) soft mask of the object region, [0, 1]
    noise: torch.Tensor  # (3, NOISE_CELLS, NOISE_CELLS) the initial noise field
    predicted: int  # the class whose activation map defined the region

    def render(self, noise: torch.Tensor) -> torch.Tensor:
        """The image for a noise field: base plus the bounded, upsampled field inside the mask (differentiable)."""
        field = F.interpolate(noise[None], size=self.base.shape[-2:], mode="bicubic", align_corners=False)[0]
        return (self.base + self.mask * AMPLITUDE * torch.tanh(field)).clamp(0, 1)


class ClassicalGenerator:
    """Generator (interfaces.Generator) that erases the classifier's main object; see the module docstring."""

    def __init__(self, classifier: ImageNetClassifier, info: ComponentInfo):
        self.classifier, self.info = classifier, info
        self.size, self.step_size = SIZE, GENERATOR_STEP_SIZES["classical"]

    def prepare(self, image: Image.Image, prompt: str = "", seed: int = 0, gradient: str = "skip",
                checkpointing: bool = True, strength: float = 0.6, steps: int = 20,
                guidance: float = 8.0) -> Canvas:
        """Find the main object, inpaint it away, and draw the seeded start noise. Only `image` and
        `seed` matter: there is no text conditioning and no denoising chain, so the rest of the
        interface (prompt, gradient mode, diffusion settings) has nothing to change here."""
        source, base, mask, predicted = erase_main_object(self.classifier, image, self.size)
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(3, NOISE_CELLS, NOISE_CELLS, generator=generator) * NOISE_SCALE
        return Canvas(source, base, mask, noise, predicted)

    def generate(self, image: Image.Image, prompt: str = "", seed: int = 0) -> Image.Image:
        """One plain generation without optimisation. `prompt` is accepted for the interface and
        ignored: this generator has no text conditioning."""
        canvas = self.prepare(image, seed=seed)
        return to_pil(canvas.render(canvas.noise))


def erase_main_object(classifier: ImageNetClassifier, image: Image.Image, size: int = SIZE,
                      predicted: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The image resized to size x size, the same with the region of class `predicted` (default: the
    classifier's top class for the resized image) inpainted, the soft (1, S, S) mask of that region,
    and that class."""
    rgb = image.convert("RGB").resize((size, size), Image.BICUBIC)
    source = classifier.to_tensor(rgb)
    if predicted is None:
        with torch.no_grad():
            predicted = int(classifier.logits(source[None]).argmax())
    region = object_mask(classifier, source, predicted)
    filled = cv2.inpaint(np.asarray(rgb), region.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    soft = np.maximum(cv2.GaussianBlur(region.astype(np.float32), (0, 0), sigmaX=size / 64), region)
    base = torch.from_numpy(filled).permute(2, 0, 1).float() / 255
    return source, base, torch.from_numpy(soft).float()[None], predicted


def object_mask(classifier: ImageNetClassifier, source: torch.Tensor, predicted: int) -> np.ndarray:
    """(S, S) boolean mask where the class activation map exceeds CAM_THRESHOLD, slightly dilated."""
    size = source.shape[-1]
    cam = classifier.cam(source[None], torch.tensor([predicted]))
    top, left, side = classifier.crop_box(size, size)
    full = torch.zeros(size, size)
    full[top:top + side, left:left + side] = F.interpolate(cam[None].cpu(), size=(side, side),
                                                           mode="bilinear", align_corners=False)[0, 0]
    mask = (full >= CAM_THRESHOLD).numpy().astype(np.uint8)
    radius = max(1, size // 32)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask, kernel).astype(bool)


def load(spec: ComponentSpec, device: torch.device, dtype: str) -> ClassicalGenerator:
    """The classical generator over the packaged EfficientNet-Lite0 (shared with the classifier role)."""
    if spec.model != MODEL:
        raise ModelUnavailableError(f"the classical family has only {MODEL}, not {spec.model!r}")
    classifier = efficientnet.packaged(device, pick_dtype(dtype, device))
    info = ComponentInfo(role="generator", name="Classical object eraser (stand-in for SD2 inpainting)",
                         architecture=ARCHITECTURE, source=f"OpenCV {cv2.__version__}; {classifier.info.source}",
                         pretrained=True, parameters=0)
    return ClassicalGenerator(classifier, info)


def download(spec: ComponentSpec) -> str:
    """Nothing to download: OpenCV and EfficientNet-Lite0 come with pip packages."""
    return efficientnet.download(efficientnet.PACKAGED)
