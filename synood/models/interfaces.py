"""The four small interfaces every model suite fills, and the identity card each component carries.

Algorithms never see a model class: they see these methods. A suite bundles one of each.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol, Sequence, runtime_checkable

from synood.config import Gradient

if TYPE_CHECKING:  # torch and PIL stay unimported until a model is used: the probe must be instant
    import torch
    from PIL import Image

ROLES = ("encoder", "classifier", "labeller", "generator")
ROLE_TITLES = {
    "encoder": "Image/text encoder",
    "classifier": "Energy classifier",
    "labeller": "Context labeller",
    "generator": "Generator",
}


@dataclass(frozen=True)
class ComponentInfo:
    """What a loaded component is, shown verbatim in the app and the CLI."""

    role: str
    name: str
    architecture: str
    source: str
    pretrained: bool
    parameters: int

    @property
    def weights(self) -> str:
        return "pretrained" if self.pretrained else "random weights"


def count_parameters(*modules: "torch.nn.Module") -> int:
    """Total number of parameters of the given modules."""
    return sum(p.numel() for m in modules for p in m.parameters())


@runtime_checkable
class ImageTextEncoder(Protocol):
    """A CLIP-like dual encoder: images and texts into one space, compared by cosine.

    `normalize=False` gives the raw embedding before L2 normalisation (open_clip's own switch): the
    authors' stages 2 and 3 train on raw embeddings, whose norm is information (docs/method.md)."""

    @property
    def info(self) -> ComponentInfo: ...

    @property
    def embed_dim(self) -> int:
        """D, the width of every feature it returns."""
        ...

    @property
    def identity(self) -> str:
        """What its features depend on (weights, dtype, library version): the key of cached features."""
        ...

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> (B, 3, S, S) tensor ready for `encode_image`."""
        ...

    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """(B, 3, S, S) preprocessed pixels -> (B, D) unit-norm features (raw when not `normalize`)."""
        ...

    def encode_text(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """N strings -> (N, D) unit-norm features (raw when not `normalize`)."""
        ...

    def text_features(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None,
                      normalize: bool = True) -> torch.Tensor:
        """encode_text over many texts in batches, from the on-disk cache (which keeps raw embeddings)."""
        ...


@runtime_checkable
class EnergyClassifier(Protocol):
    """An ImageNet-1k classifier whose logits give the energy; differentiable in its input."""

    @property
    def info(self) -> ComponentInfo: ...

    @property
    def class_names(self) -> Sequence[str]:
        """The name of each logit's class, in logit order."""
        ...

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        """A PIL image -> (3, H, W) float RGB in [0, 1], the input `logits` expects."""
        ...

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1], any size -> (B, 1000) logits. Resizing and
        normalisation happen inside so gradients flow back to the raw image."""
        ...


@runtime_checkable
class ContextLabeller(Protocol):
    """Lists the elements of an image other than its main object (an MLLM in the paper)."""

    @property
    def info(self) -> ComponentInfo: ...

    def context(self, image: Image.Image) -> list[str]:
        """A clean, deduplicated list of context elements, most salient first."""
        ...


class Canvas(Protocol):
    """One image prepared for noise optimisation: its start noise and a differentiable renderer."""

    @property
    def source(self) -> torch.Tensor:
        """(3, S, S) the input as the generator sees it, in [0, 1]."""
        ...

    @property
    def noise(self) -> torch.Tensor:
        """The seed's noise, where the optimisation starts."""
        ...

    def render(self, noise: torch.Tensor) -> torch.Tensor:
        """noise -> (3, S, S) image in [0, 1], differentiable in `noise`."""
        ...


@dataclass(frozen=True)
class GenerationSettings:
    """What one generation asks of a generator; each family reads the fields it has a use for. A text-conditioned
    generator (diffusion) reads `prompt` and ignores `context`; one without a text encoder (the offline classical
    generator) reads `context`, the labels the prompt was built from, and has no denoising chain for the rest."""

    prompt: str = ""
    seed: int = 0
    context: tuple[str, ...] = ()
    gradient: Gradient = "skip"  # how the noise gets its gradient through the denoising chain (InpaintCanvas)
    checkpointing: bool = True  # "full" gradient: recompute each step in the backward pass to save memory
    strength: float = 0.6  # share of the denoising chain run from the noised image
    steps: int = 20  # denoising steps of the whole chain
    guidance: float = 8.0  # classifier-free guidance scale


@runtime_checkable
class Generator(Protocol):
    """Regenerates an image around a text prompt (SD2 inpainting in the paper)."""

    @property
    def info(self) -> ComponentInfo: ...

    @property
    def step_size(self) -> float:
        """The noise step that suits this generator (r * rho = 10 for diffusion)."""
        ...

    def generate(self, image: Image.Image, prompt: str, seed: int = 0) -> Image.Image:
        """One plain generation with the method's settings, no noise optimisation."""
        ...

    def prepare(self, image: Image.Image, settings: GenerationSettings = GenerationSettings()) -> Canvas:
        """Everything a generation needs except the noise, computed once for all iterations."""
        ...


Component = ImageTextEncoder | EnergyClassifier | ContextLabeller | Generator  # what Suite.get returns for any role
