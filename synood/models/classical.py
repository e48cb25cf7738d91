"""The "classical" generator family: the offline suite's stand-in for diffusion inpainting.

No natural-image diffusion weights install from a registry. This generator replaces the main object
with the image's own context instead of repainting the whole image:
1. Object region: the classifier's class activation map (CAM) for its predicted class, above
   CAM_THRESHOLD of its peak, slightly dilated.
2. Context map: where the classifier sees each context label. A label that is an ImageNet class name
   is that class; any other word is turned into its CONTEXT_CLASSES nearest ImageNet classes by the
   offline encoder's sentence model (cosine to the classes' anchor texts, softmax at CONTEXT_TEMPERATURE).
   The label's map is the weighted mean of those classes' peak-normalised CAMs; the context map is the
   mean of the labels' maps, the first (most salient) label weighted most (1 / rank).
3. Fill: OpenCV contrib's exemplar-based shift-map inpainting (cv2.xphoto INPAINT_SHIFTMAP, at
   FILL_SIZE px in CIELab, upsampled) copies patches of the image into the object region. It may copy
   only from the "clear" pixels (outside the region, the object's CAM below BACKGROUND_THRESHOLD) that
   the context map ranks in its top KNOWN_SHARE, so the patches come from where the classifier sees
   the context labels. Measurable: shift-map copies pixels verbatim, so the share of filled pixels
   whose exact colour occurs among the context-ranked pixels is the "context share" that
   bench/offline_generator.py reports beside plain shift-map from all clear pixels (what this
   generator does without labels).
4. A smooth low-resolution noise field modulates the fill (added, bounded by tanh, inside the soft
   object mask). It is what the energy-guided optimisation updates (synthesis.optimise_noise),
   exactly where diffusion would update its noise; render() is differentiable in it.
The prompt string is not read: the labels arrive as `context` (the prompt is built from them).
Cost: shift-map dominates, a few seconds of CPU per image at FILL_SIZE = 128 (BENCHMARKS.md, offline generator).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from synood.data.images import to_pil
from synood.runtime import pick_dtype
from synood.models import standin
from synood.models.classifier import ImageNetClassifier
from synood.models.interfaces import ComponentInfo, GenerationSettings
from synood.models.suites import GENERATOR_STEP_SIZES, ComponentSpec, ModelUnavailableError

MODEL = "cam-context-shiftmap-noise"
SIZE = 224  # working resolution, the classifier's own input size (the diffusion generator works at 512)
CAM_THRESHOLD = 0.25  # share of the map's peak that counts as the object
ERASE_SIZE = 256  # erase_main_object's working resolution
CONTEXT_CLASSES = 3  # ImageNet classes standing for a context word that is not a class name
CONTEXT_TEMPERATURE = 0.05  # softmax temperature over those classes' cosine similarities
KNOWN_SHARE = 0.5  # share of the clear pixels, highest on the context map, that patches may come from
BACKGROUND_THRESHOLD = 0.1  # below this share of its peak the object's CAM marks pixels clear of the object
FILL_SIZE = 128  # shift-map's working resolution (its time grows fast with size; the fill is upsampled)
SEAM = 1.5  # pixels (Gaussian sigma) over which the fill blends into the image outside the region
MIN_CLEAR = 0.2  # share of the image always offered as clear (the lowest-CAM pixels) when the object fills it
NOISE_CELLS = 8  # the noise field is NOISE_CELLS x NOISE_CELLS per channel, upsampled bicubically
NOISE_SCALE = 0.3  # standard deviation of the initial field (before the tanh)
AMPLITUDE = 0.15  # the field changes a pixel by at most this much, in [0, 1] units: the image stays natural
ARCHITECTURE = ("class activation map of the main object + context-label CAMs (ImageNet names, or MiniLM-nearest "
                "classes) + OpenCV shift-map exemplar inpainting + smooth noise field (no generative weights)")
DESCRIPTION = (
    "This offline generator is not a diffusion model. It finds the classifier's main object with a class "
    "activation map, finds where the classifier sees each context label (an ImageNet class, or the classes "
    "nearest to the word), and fills the object's place with patches copied from those context regions of "
    "the same photo by OpenCV's shift-map inpainting, so the picture becomes the scene with its object "
    "replaced by its context. A smooth, bounded noise field is added over the filled region; the energy-guided "
    "optimisation moves that field, the way the paper moves the diffusion noise, pushing the image's energy "
    "toward the OOD threshold m_out.")

WordClasses = Callable[[str], dict[int, float]]  # a context word -> ImageNet class weights summing to 1


@dataclass(frozen=True)
class Canvas:
    """An image prepared for generation: the filled base, the soft object mask and the start noise."""

    source: torch.Tensor  # (3, S, S) the resized input, [0, 1]
    base: torch.Tensor  # (3, S, S) the input with the object region filled
    mask: torch.Tensor  # (1, S, S) soft mask of the object region, [0, 1]
    noise: torch.Tensor  # (3, NOISE_CELLS, NOISE_CELLS) the initial noise field
    predicted: int  # the class whose activation map defined the region

    def render(self, noise: torch.Tensor) -> torch.Tensor:
        """The image for a noise field: base plus the bounded, upsampled field inside the mask (differentiable)."""
        field = F.interpolate(noise[None], size=self.base.shape[-2:], mode="bicubic", align_corners=False)[0]
        return (self.base + self.mask * AMPLITUDE * torch.tanh(field)).clamp(0, 1)


@dataclass(frozen=True)
class Fill:
    """How one image's object region was filled, kept for inspection and the bench."""

    region: np.ndarray  # (S, S) bool, the replaced object region
    context: np.ndarray  # (S, S) float in [0, 1], the context map (uniform without labels)
    known: np.ndarray  # (S, S) bool, the pixels shift-map could copy from
    filled: np.ndarray  # (S, S, 3) uint8, the image with the region filled


class ClassicalGenerator:
    """Generator (interfaces.Generator) that replaces the main object by its context; see the module docstring."""

    def __init__(self, classifier: ImageNetClassifier, word_classes: WordClasses, info: ComponentInfo):
        self.classifier, self.word_classes, self.info = classifier, word_classes, info
        self.size, self.step_size = SIZE, GENERATOR_STEP_SIZES["classical"]

    def prepare(self, image: Image.Image, settings: GenerationSettings = GenerationSettings()) -> Canvas:
        """Fill the main object's region from the context and draw the seeded start noise. Only the settings'
        `context` and `seed` matter: the prompt is built from the context labels, and there is no denoising
        chain for the gradient mode or diffusion settings to change."""
        source, fill, predicted = self.replace(image, settings.context)
        base = torch.from_numpy(fill.filled.copy()).permute(2, 0, 1).float() / 255
        generator = torch.Generator().manual_seed(settings.seed)
        noise = torch.randn(3, NOISE_CELLS, NOISE_CELLS, generator=generator) * NOISE_SCALE
        return Canvas(source, base, soft_mask(fill.region), noise, predicted)

    def replace(self, image: Image.Image, context: Sequence[str] = ()) -> tuple[torch.Tensor, Fill, int]:
        """The resized image as a [0, 1] tensor, how its main object was replaced, and that object's class."""
        rgb = image.convert("RGB").resize((self.size, self.size), Image.Resampling.BICUBIC)
        source = self.classifier.to_tensor(rgb)
        with torch.no_grad():
            predicted = int(self.classifier.logits(source[None]).argmax())
        return source, replace_object(self.classifier, self.word_classes, np.asarray(rgb), source, predicted,
                                      context), predicted

    def generate(self, image: Image.Image, prompt: str = "", seed: int = 0, context: Sequence[str] = ()) -> Image.Image:
        """One plain generation without optimisation; `prompt` is not read (see `prepare`)."""
        canvas = self.prepare(image, GenerationSettings(seed=seed, context=tuple(context)))
        return to_pil(canvas.render(canvas.noise))


def replace_object(classifier: ImageNetClassifier, word_classes: WordClasses, rgb: np.ndarray, source: torch.Tensor,
                   predicted: int, context: Sequence[str]) -> Fill:
    """Steps 1-3 of the module docstring for one (S, S, 3) uint8 image and its [0, 1] tensor."""
    cam = class_maps(classifier, source, [predicted])[0]
    region = object_region(cam)
    labels = [label.strip() for label in context if label.strip()]
    scores = context_map(classifier, word_classes, source, labels) if labels else np.ones(region.shape, np.float32)
    known = known_pixels(region, cam, scores)
    return Fill(region, scores, known, shift_map_fill(rgb, region, known))


def context_map(classifier: ImageNetClassifier, word_classes: WordClasses, source: torch.Tensor,
                labels: Sequence[str]) -> np.ndarray:
    """(S, S) map in [0, 1] of where the classifier sees the labels: 1/rank-weighted label maps."""
    weights = [word_classes(label) for label in labels]
    classes = sorted({c for w in weights for c in w})
    cams = class_maps(classifier, source, classes)
    index = {c: i for i, c in enumerate(classes)}
    total = np.zeros(cams.shape[1:], np.float32)
    for rank, label_weights in enumerate(weights, 1):
        total += sum(w * cams[index[c]] for c, w in label_weights.items()) / rank
    return total / max(float(total.max()), 1e-12)


def class_maps(classifier: ImageNetClassifier, source: torch.Tensor, classes: Sequence[int]) -> np.ndarray:
    """(K, S, S) peak-normalised class activation maps of one (3, S, S) image, at its full size. The same
    maps as classifier.cam (ReLU of the head rows over the last feature maps), for K classes from one
    forward pass instead of K."""
    size = source.shape[-1]
    with torch.no_grad():
        maps = classifier.maps(source[None]).float()[0]
        weights = classifier.head.weight[torch.tensor(classes, device=classifier.device)].float()
        cams = torch.einsum("chw,kc->khw", maps, weights).clamp_min(0)
        cams = cams / cams.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    top, left, side = classifier.crop_box(size, size)
    full = torch.zeros(len(classes), size, size)
    full[:, top:top + side, left:left + side] = F.interpolate(cams[:, None].cpu(), size=(side, side),
                                                              mode="bilinear", align_corners=False)[:, 0]
    return full.numpy()


def known_pixels(region: np.ndarray, cam: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The pixels shift-map may copy: among the pixels clear of the object (outside the region, its CAM
    below BACKGROUND_THRESHOLD, or at least MIN_CLEAR of the image when less is), the KNOWN_SHARE that
    `scores` ranks highest."""
    outside = ~region
    clear = outside & (cam < BACKGROUND_THRESHOLD)
    if clear.mean() < MIN_CLEAR:
        clear = outside & (cam <= np.quantile(cam[outside], min(1.0, MIN_CLEAR / max(outside.mean(), 1e-6))))
    threshold = np.quantile(scores[clear], 1 - KNOWN_SHARE)
    return clear & (scores >= threshold)


def shift_map_fill(rgb: np.ndarray, region: np.ndarray, known: np.ndarray) -> np.ndarray:
    """`rgb` with `region` filled by shift-map patches copied from the `known` pixels at FILL_SIZE, blended
    over a SEAM-pixel edge outside the region; other pixels keep their value. Pixels shift-map leaves
    empty (no shift reaches a known pixel) get a second pass from everything filled, then Telea's fill."""
    size = rgb.shape[0]
    small = cv2.resize(rgb, (FILL_SIZE, FILL_SIZE), interpolation=cv2.INTER_AREA) if FILL_SIZE < size else rgb
    lab = lab_image(small)
    out = shift_map(lab, cv2.resize(known.astype(np.uint8), lab.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0)
    empty = out.max(axis=-1) == 0
    if empty.any():  # a second pass from everything filled so far, then Telea for what is still empty
        out = shift_map(out, ~empty)
        empty = out.max(axis=-1) == 0
    out = cv2.cvtColor(out, cv2.COLOR_LAB2RGB)
    if empty.any():
        out = cv2.inpaint(out, empty.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
    if out.shape[0] != size:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_CUBIC)
    alpha = np.maximum(cv2.GaussianBlur(region.astype(np.float32), (0, 0), sigmaX=SEAM), region)[..., None]
    return (alpha * out + (1 - alpha) * rgb).round().astype(np.uint8)


def lab_image(rgb: np.ndarray) -> np.ndarray:
    """An RGB uint8 image in CIELab (the colour space shift-map expects), lifted to at least 1 so that only
    a pixel shift-map could not fill is pure black."""
    return np.maximum(cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB), 1)


def shift_map(lab: np.ndarray, known: np.ndarray) -> np.ndarray:
    """OpenCV contrib's shift-map inpainting: every pixel outside `known` labelled with an offset to a
    known pixel, whose value it copies verbatim (pure black where no offset reaches one)."""
    out = np.zeros_like(lab)
    cv2.xphoto.inpaint(lab, known.astype(np.uint8) * 255, out, cv2.xphoto.INPAINT_SHIFTMAP)
    return out


def soft_mask(region: np.ndarray) -> torch.Tensor:
    """(1, S, S) the region with a blurred edge outside it: where the noise field acts."""
    size = region.shape[-1]
    soft = np.maximum(cv2.GaussianBlur(region.astype(np.float32), (0, 0), sigmaX=size / 64), region)
    return torch.from_numpy(soft).float()[None]


def erase_main_object(classifier: ImageNetClassifier, image: Image.Image, size: int = ERASE_SIZE,
                      predicted: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The image resized to size x size, the same with the region of class `predicted` (default: the
    classifier's top class for the resized image) smoothly erased by Telea's inpainting (fast, no
    context: the labeller's view of the scene without its object), the soft mask of that region, and
    that class."""
    rgb = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    source = classifier.to_tensor(rgb)
    if predicted is None:
        with torch.no_grad():
            predicted = int(classifier.logits(source[None]).argmax())
    region = object_mask(classifier, source, predicted)
    filled = cv2.inpaint(np.asarray(rgb), region.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    base = torch.from_numpy(filled).permute(2, 0, 1).float() / 255
    return source, base, soft_mask(region), predicted


def object_mask(classifier: ImageNetClassifier, source: torch.Tensor, predicted: int) -> np.ndarray:
    """(S, S) boolean mask of the object of class `predicted` in one (3, S, S) image (see object_region)."""
    return object_region(class_maps(classifier, source, [predicted])[0])


def object_region(cam: np.ndarray) -> np.ndarray:
    """Where an (S, S) class activation map exceeds CAM_THRESHOLD, grown by S/32 pixels."""
    radius = max(1, cam.shape[-1] // 32)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate((cam >= CAM_THRESHOLD).astype(np.uint8), kernel).astype(bool)


def encoder_word_classes(encoder: standin.StandInEncoder) -> WordClasses:
    """Context word -> ImageNet class weights: the class itself when the word is a class name, else the
    CONTEXT_CLASSES classes whose anchor texts are nearest under the encoder's sentence model."""
    names = {name.lower(): index for index, name in enumerate(encoder.classifier.class_names)}
    anchors = F.normalize(encoder.anchors.float(), dim=-1)

    def weights(word: str) -> dict[int, float]:
        if word.lower() in names:
            return {names[word.lower()]: 1.0}
        similarity = anchors @ F.normalize(encoder.sentences.encode([word]).float().cpu(), dim=-1)[0]
        top = similarity.topk(CONTEXT_CLASSES)
        share = (top.values / CONTEXT_TEMPERATURE).softmax(dim=0)
        return dict(zip(top.indices.tolist(), share.tolist()))

    return weights


def load(spec: ComponentSpec, device: torch.device, dtype: str) -> ClassicalGenerator:
    """The classical generator over the packaged EfficientNet-Lite0 and all-MiniLM-L6-v2 (shared with the
    offline suite's classifier, encoder and labeller)."""
    if spec.model != MODEL:
        raise ModelUnavailableError(f"the classical family has only {MODEL}, not {spec.model!r}")
    encoder = standin.shared(device, pick_dtype(dtype, device))
    info = ComponentInfo(role="generator",
                         name="Classical object eraser with context fill (stand-in for SD2 inpainting)",
                         architecture=ARCHITECTURE, source=f"OpenCV {cv2.__version__} (contrib); {encoder.info.source}",
                         pretrained=True, parameters=0)
    return ClassicalGenerator(encoder.classifier, encoder_word_classes(encoder), info)


def download(spec: ComponentSpec) -> str:
    """Nothing to download: OpenCV, EfficientNet-Lite0 and MiniLM come with pip packages."""
    return standin.download(spec)
