"""The four small interfaces every model suite fills, and the identity card each component carries.

Algorithms never see a model class: they see these methods. A suite bundles one of each.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol, Sequence, runtime_checkable

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

    info: ComponentInfo
    embed_dim: int
    identity: str  # what its features depend on (weights, dtype, library version): the key of cached features

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

    info: ComponentInfo

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1], any size -> (B, 1000) logits. Resizing and
        normalisation happen inside so gradients flow back to the raw image."""
        ...


@runtime_checkable
class ContextLabeller(Protocol):
    """Lists the elements of an image other than its main object (an MLLM in the paper)."""

    info: ComponentInfo

    def context(self, image: Image.Image) -> list[str]:
        """A clean, deduplicated list of context elements, most salient first."""
        ...


class Canvas(Protocol):
    """One image prepared for noise optimisation: its start noise and a differentiable renderer."""

    source: torch.Tensor  # (3, S, S) the input as the generator sees it, in [0, 1]
    noise: torch.Tensor  # the seed's noise, where the optimisation starts

    def render(self, noise: torch.Tensor) -> torch.Tensor:
        """noise -> (3, S, S) image in [0, 1], differentiable in `noise`."""
        ...


@runtime_checkable
class Generator(Protocol):
    """Regenerates an image around a text prompt (SD2 inpainting in the paper)."""

    info: ComponentInfo
    step_size: float  # the noise step that suits this generator (r * rho = 10 for diffusion)

    def generate(self, image: Image.Image, prompt: str, seed: int = 0) -> Image.Image:
        """One plain generation with the method's settings, no noise optimisation."""
        ...

    def prepare(self, image: Image.Image, prompt: str, seed: int = 0, gradient: str = "skip",
                checkpointing: bool = True, strength: float = 0.6, steps: int = 20,
                guidance: float = 8.0, context: Sequence[str] = ()) -> Canvas:
        """Everything a generation needs except the noise, computed once for all iterations. `context` is
        the labels the prompt was built from: a text-conditioned generator reads the prompt and ignores
        them; one without a text encoder (the offline classical generator) reads them instead."""
        ...
