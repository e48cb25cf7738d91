"""The offline suite's classical generator: the object's place filled from the image's own context regions.

Real weights (EfficientNet-Lite0, all-MiniLM-L6-v2) and a packaged photo; bench/offline_generator.py measures it.
"""
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from synood.data import photos
from synood.data.images import to_pil
from synood.models import GenerationSettings, classical
from synood.models.suites import SUITES
from synood.method.synthesis import ood_loss

INDOOR, SEASIDE = ("sofa", "carpet"), ("ocean", "beach", "sky")


@pytest.fixture(scope="module")
def generator() -> classical.ClassicalGenerator:
    return classical.load(SUITES["offline"].components["generator"], torch.device("cpu"), "float32")


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    return Image.open(photos.by_name("coffee").path)


def far_outside(region: np.ndarray, distance: int) -> np.ndarray:
    """Pixels at least `distance` pixels away from the region."""
    kernel = np.ones((2 * distance + 1, 2 * distance + 1), np.uint8)
    return ~cv2.dilate(region.astype(np.uint8), kernel).astype(bool)


def test_different_context_labels_give_different_images_and_losses(generator, coffee):
    indoor = generator.prepare(coffee, GenerationSettings(seed=0, context=INDOOR))
    seaside = generator.prepare(coffee, GenerationSettings(seed=0, context=SEASIDE))
    region = indoor.mask[0] >= 1
    assert torch.equal(indoor.mask, seaside.mask) and torch.equal(indoor.noise, seaside.noise)
    assert (indoor.base - seaside.base).abs()[:, region].mean() > 5 / 255
    losses = [ood_loss(generator.classifier.logits(c.render(c.noise)[None])).item() for c in (indoor, seaside)]
    assert abs(losses[0] - losses[1]) > 1e-3
    assert generator.prepare(coffee, GenerationSettings("any prompt", seed=0, context=INDOOR)).base.equal(indoor.base)


def test_word_classes_name_imagenet_classes_or_the_nearest_ones(generator):
    apple = generator.classifier.class_names.index("Granny Smith apple")
    assert generator.word_classes("granny Smith apple") == {apple: 1.0}
    weights = generator.word_classes("ocean")
    assert len(weights) == classical.CONTEXT_CLASSES and sum(weights.values()) == pytest.approx(1.0)
    names = [generator.classifier.class_names[c] for c in weights]
    assert {"seashore", "sandbar", "lakeshore", "promontory", "cliff", "breakwater"} & set(names), names


def test_patches_come_from_the_context_ranked_clear_pixels(generator, coffee):
    source, fill, predicted = generator.replace(coffee, INDOOR)
    plain = generator.replace(coffee)[1]
    assert not (fill.known & fill.region).any() and not (plain.known & plain.region).any()
    assert fill.known.sum() < plain.known.sum() and (fill.known & ~plain.known).sum() == 0
    assert fill.context[fill.known].min() >= fill.context[plain.known & ~fill.known].max()
    outside = far_outside(fill.region, 8)  # beyond the seam the image is untouched
    assert np.array_equal(fill.filled[outside], np.asarray(to_pil(source))[outside])


def test_the_fill_copies_the_images_own_pixels(generator, coffee, monkeypatch):
    size = 96  # shift-map at the working size (no resampling), small enough for a test
    monkeypatch.setattr(generator, "size", size)
    monkeypatch.setattr(classical, "FILL_SIZE", size)
    source, fill, _ = generator.replace(coffee, INDOOR)
    rgb = np.asarray(to_pil(source))
    round_trip = cv2.cvtColor(classical.lab_image(rgb), cv2.COLOR_LAB2RGB)  # shift-map copies in CIELab
    offered = {tuple(c) for c in round_trip[fill.known]}
    filled = fill.filled[fill.region].reshape(-1, 3)
    assert np.mean([tuple(c) in offered for c in filled]) > 0.99


def test_shift_map_copies_known_pixels_verbatim():
    rng = np.random.default_rng(0)
    image = rng.integers(1, 256, (48, 48, 3), dtype=np.uint8)
    known = np.ones((48, 48), bool)
    known[16:32, 16:32] = False
    out = classical.shift_map(image, known)
    colours = {tuple(c) for c in image[known]}
    assert all(tuple(c) in colours for c in out[~known])


def test_render_is_differentiable_in_the_noise_and_only_inside_the_mask(generator, coffee):
    canvas = generator.prepare(coffee, GenerationSettings(seed=1, context=SEASIDE))
    noise = canvas.noise.clone().requires_grad_(True)
    image = canvas.render(noise)
    assert image.shape == (3, classical.SIZE, classical.SIZE) and image.requires_grad
    (grad,) = torch.autograd.grad(ood_loss(generator.classifier.logits(image[None])), noise)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    outside = canvas.mask[0] == 0
    field = canvas.render(torch.ones_like(canvas.noise)) - canvas.render(-torch.ones_like(canvas.noise))
    assert field[:, outside].abs().max() == 0 and field[:, ~outside].abs().max() > 0


def test_the_generator_says_what_it_is(generator):
    assert "stand-in" in generator.info.name and "shift-map" in generator.info.architecture
    assert "not a diffusion model" in classical.DESCRIPTION
    assert SUITES["offline"].components["generator"].model == classical.MODEL
