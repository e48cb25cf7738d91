"""The energy classifier's differentiable preprocessing against torchvision's own IMAGENET1K_V2 transforms
(resize 232 antialiased, centre crop 224, normalise: what the authors' code feeds its ResNet-50), on real photos.

Measured over the whole packaged catalogue (43 photos, 134 x 1024 to 5312 x 2988): antialias is at most 0.0175
from transforms() in normalised units, i.e. one 8-bit grey level (transforms() resizes the PIL image in uint8 and
rounds; we resize floats), mean 0.005; the plain bilinear resize is up to 3.17 away (mean 0.05), except on the
three photos whose shorter side is below 232 (upsampled: antialiasing changes nothing there).
"""
import pytest
import torch
import torchvision
from PIL import Image

from synood.data import photos
from synood.config import ModelsConfig
from synood.models import classifier
from synood.models.suites import SUITES, ComponentSpec, Suite

CPU = torch.device("cpu")
GREY_LEVEL = 1 / 255  # the tolerance, in [0, 1] pixel units: transforms() rounds its resized image to uint8
PHOTOS = ["cat", "coffee", "spaniels"]  # 451 x 300 and 600 x 400 (scikit-image), 2056 x 3088 portrait (lomiri)


@pytest.fixture(scope="module")
def network() -> classifier.ImageNetClassifier:
    """A random tiny ResNet seen through the paper's ResNet-50 view (the view, not the weights, is under test)."""
    tiny = classifier.load(ComponentSpec("classifier", "torchvision", classifier.TINY_RESNET), CPU, "float32")
    return classifier.ImageNetClassifier(tiny.net, tiny.trunk, tiny.head, classifier.View(232, 224), tiny.class_names,
                                         tiny.info, CPU, torch.float32)


def photo(name: str) -> Image.Image:
    path = photos.by_name(name).path
    if not path.is_file():
        pytest.skip(f"{name} is not installed here ({photos.by_name(name).package})")
    return Image.open(path).convert("RGB")


def distance(network: classifier.ImageNetClassifier, image: Image.Image, resize: str) -> torch.Tensor:
    """|ours - transforms()| per value, in [0, 1] pixel units (the normalised difference times the channel std)."""
    reference = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.transforms()(image)
    ours = network.resized(resize).view_pixels(network.to_tensor(image)[None])[0]
    assert ours.shape == reference.shape == (3, 224, 224)
    return (ours - reference).abs() * torch.tensor(classifier.IMAGENET_STD).view(3, 1, 1)


@pytest.mark.parametrize("name", PHOTOS)
def test_antialiased_view_is_torchvisions_transforms_within_a_grey_level(network, name):
    image = photo(name)
    close = distance(network, image, "antialias")
    assert close.max() <= GREY_LEVEL + 1e-6, close.max()
    assert distance(network, image, "plain").max() > 10 * GREY_LEVEL  # the old resize aliases: far from it


def test_gradients_reach_the_pixels_through_the_antialiased_resize(network):
    pixels = network.to_tensor(photo("coffee"))[None].requires_grad_(True)
    network.logits(pixels).logsumexp(dim=-1).sum().backward()
    assert pixels.grad.shape == pixels.shape and pixels.grad.abs().sum() > 0


@pytest.mark.parametrize("resize, reached", [("antialias", 1.0), ("plain", 0.25)])
def test_every_pixel_in_the_crop_box_feeds_the_antialiased_view(network, resize, reached):
    """At 4x the view's size, plain bilinear reads 2 pixels in 4 per axis; antialiasing reads them all."""
    pixels = torch.rand(1, 3, 928, 928, requires_grad=True)
    network.resized(resize).logits(pixels).logsumexp(dim=-1).sum().backward()
    top, left, side = network.crop_box(928, 928)
    assert (pixels.grad[..., top:top + side, left:left + side] != 0).float().mean().item() == reached


def test_plain_resize_is_a_named_view_of_the_same_network(network):
    plain = network.resized("plain")
    assert plain.net is network.net and not plain.view.antialias and network.view.antialias
    assert plain.info.name == network.info.name + classifier.PLAIN_SUFFIX
    assert plain.resized("antialias").info == network.info and network.resized("antialias") is network
    with pytest.raises(ValueError, match="antialias, plain"):
        network.resized("bicubic")


def test_same_size_input_is_not_resampled_either_way(network):
    """A view whose resize equals the input's size (the offline encoder crops to it first) is the identity under
    both resizes: the stand-in encoder's cached features do not depend on the setting."""
    x = torch.rand(1, 3, 232, 232)
    assert torch.equal(network.view_pixels(x), network.resized("plain").view_pixels(x))


def test_the_config_reaches_the_loaded_classifier():
    suite = Suite.from_config(ModelsConfig(suite="tiny", device="cpu", classifier_resize="plain"))
    assert not suite.classifier.view.antialias and suite.classifier.info.name.endswith(classifier.PLAIN_SUFFIX)
    assert Suite(SUITES["tiny"], device="cpu").classifier.view.antialias
    with pytest.raises(ValueError,
                       match="models.classifier_resize: 'nearest' is not allowed; choose one of antialias, plain"):
        Suite(SUITES["tiny"], device="cpu", classifier_resize="nearest")


def test_a_plain_offline_classifier_leaves_the_shared_network_as_it_is():
    """The offline stand-ins (encoder, labeller, generator) read the shared EfficientNet-Lite0; the energy
    classifier's resize setting makes a view of it and changes nothing for them."""
    from synood.models import efficientnet

    plain = efficientnet.load(efficientnet.PACKAGED, CPU, "float32", resize="plain")
    shared = efficientnet.packaged(CPU, torch.float32)
    assert plain.net is shared.net and shared.view.antialias and not plain.view.antialias
    assert plain.info.name == "EfficientNet-Lite0 (ImageNet-1k)" + classifier.PLAIN_SUFFIX
