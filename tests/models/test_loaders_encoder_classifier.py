"""The open_clip encoder and torchvision classifier loaders, on tiny random models saved in the
real checkpoints' formats and places: local files, the HF hub cache and the torch hub cache."""
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

from synood.models import classifier, clip, sources, suites
from synood.models.interfaces import EnergyClassifier, ImageTextEncoder
from synood.models.suites import SUITES, ComponentSpec, ModelUnavailableError, Suite

CPU = torch.device("cpu")
TINY_CLIP = ComponentSpec("encoder", "open_clip", "synood-tiny-ViT")
TINY_RESNET = ComponentSpec("classifier", "torchvision", "synood-tiny-resnet")
PAPER_CLIP = SUITES["paper"].components["encoder"]
PAPER_RESNET = SUITES["paper"].components["classifier"]
HUB_REPO = "synood-test/tiny-clip"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TEXTS = ["a photo of a dog", "a red car on a road"]


@pytest.fixture(scope="module")
def encoder():
    return clip.load(TINY_CLIP, CPU, "auto")


@pytest.fixture(scope="module")
def tiny_classifier():
    return classifier.load(TINY_RESNET, CPU, "auto")


@pytest.fixture(scope="module")
def images():
    return [Image.new("RGBA", (300, 200), (200, 30, 30, 128)), Image.new("L", (60, 90), 77)]


@pytest.fixture
def hub_repo(encoder):
    """A hub repo in the HF cache layout (refs/main -> snapshot) holding the tiny CLIP's weights."""
    root = sources.hf_hub_cache() / ("models--" + HUB_REPO.replace("/", "--"))
    snapshot = root / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)
    state = {k: v.contiguous() for k, v in encoder.model.state_dict().items()}
    save_file(state, str(snapshot / "open_clip_model.safetensors"))
    preprocess = {"mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear", "resize_mode": "shortest"}
    config = {"model_cfg": clip.open_clip.get_model_config(TINY_CLIP.model), "preprocess_cfg": preprocess}
    (snapshot / "open_clip_config.json").write_text(json.dumps(config))
    yield snapshot
    shutil.rmtree(root)


@pytest.fixture
def cached_resnet50():
    """A random resnet50 state dict at the torch hub cache file of IMAGENET1K_V2."""
    path = sources.torch_hub_dir() / "checkpoints" / "resnet50-11ad3fa6.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = torchvision.models.resnet50().state_dict()
    torch.save(state, path)
    yield path, state
    path.unlink()


def test_tiny_encoder_forward(encoder, images):
    assert isinstance(encoder, ImageTextEncoder)
    assert encoder.info.role == "encoder" and not encoder.info.pretrained
    assert encoder.info.source == sources.IN_PROCESS and encoder.info.parameters > 0
    assert encoder.embed_dim == 64 and not encoder.model.training
    pixels = encoder.preprocess(images)
    assert pixels.shape == (2, 3, 224, 224)
    feats, text = encoder.encode_image(pixels), encoder.encode_text(TEXTS)
    assert feats.shape == (2, 64) and text.shape == (2, 64)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(2))


def test_tiny_classifier_forward(tiny_classifier, images):
    assert isinstance(tiny_classifier, EnergyClassifier)
    assert tiny_classifier.info.role == "classifier" and not tiny_classifier.info.pretrained
    assert len(tiny_classifier.class_names) == 1000 and tiny_classifier.class_names[0] == "tench"
    assert not tiny_classifier.net.training
    assert not any(p.requires_grad for p in tiny_classifier.net.parameters())
    batch = torch.stack([tiny_classifier.to_tensor(im.resize((120, 90))) for im in images])
    assert batch.shape == (2, 3, 90, 120) and 0 <= batch.min() and batch.max() <= 1
    assert tiny_classifier.logits(batch).shape == (2, 1000)


def test_classifier_gradients_reach_pixels(tiny_classifier):
    x = torch.rand(2, 3, 97, 141, requires_grad=True)
    tiny_classifier.logits(x).logsumexp(dim=-1).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape and x.grad.abs().sum() > 0


def test_tiny_suite_dispatches_to_these_loaders():
    suite = Suite(SUITES["tiny"], device="cpu")
    assert isinstance(suite.encoder, clip.OpenClipEncoder)
    assert isinstance(suite.classifier, classifier.ImageNetClassifier)


def test_encoder_local_checkpoint(encoder, images, tmp_path):
    path = tmp_path / "tiny-clip.pt"
    torch.save(encoder.model.state_dict(), path)
    loaded = clip.load(ComponentSpec("encoder", "open_clip", TINY_CLIP.model, str(path)), CPU, "auto")
    assert loaded.info.pretrained and loaded.info.source == str(path)
    pixels = encoder.preprocess(images)
    torch.testing.assert_close(loaded.encode_image(pixels), encoder.encode_image(pixels), rtol=0, atol=0)
    torch.testing.assert_close(loaded.encode_text(TEXTS), encoder.encode_text(TEXTS), rtol=0, atol=0)


def test_encoder_from_offline_hub_cache(encoder, images, hub_repo):
    spec = ComponentSpec("encoder", "open_clip", TINY_CLIP.model, f"hf-hub:{HUB_REPO}")
    assert suites.probe(spec).ready
    loaded = clip.load(spec, CPU, "auto")
    assert loaded.info.source == str(hub_repo / "open_clip_model.safetensors")
    normalize = loaded.transform.transforms[-1]
    assert tuple(normalize.mean) == (0.5,) * 3 and tuple(normalize.std) == (0.25,) * 3
    torch.testing.assert_close(loaded.encode_text(TEXTS), encoder.encode_text(TEXTS), rtol=0, atol=0)
    pixels = encoder.preprocess(images)
    torch.testing.assert_close(loaded.encode_image(pixels), encoder.encode_image(pixels), rtol=0, atol=0)


def test_encoder_tag_missing_from_cache_is_unavailable():
    with pytest.raises(ModelUnavailableError, match="timm/vit_base_patch16_clip_224.openai"):
        clip.load(PAPER_CLIP, CPU, "auto")
    with pytest.raises(ModelUnavailableError, match="no pretrained weights"):
        clip.load(ComponentSpec("encoder", "open_clip", TINY_CLIP.model, "no-such-tag"), CPU, "auto")


def test_resnet50_through_weights_enum(cached_resnet50):
    path, state = cached_resnet50
    assert suites.probe(PAPER_RESNET).ready
    loaded = classifier.load(PAPER_RESNET, CPU, "auto")
    assert loaded.info.pretrained and loaded.info.source == str(path)
    assert (loaded.view.resize, loaded.view.crop) == (232, 224)
    assert loaded.class_names == torchvision.models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
    reference = torchvision.models.resnet50()
    reference.load_state_dict(state)
    reference.eval()
    x = torch.rand(2, 3, 232, 232)  # already at resize size: the crop is a plain 4-pixel border cut
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference((x[..., 4:228, 4:228] - mean) / std)
        torch.testing.assert_close(loaded.logits(x), expected)
    assert suites.download(PAPER_RESNET) == str(path)  # already cached: no network needed


@pytest.mark.parametrize("name, wrap", [("tiny.pt", None), ("tiny.pth", "state_dict"), ("tiny.pth", "model"),
                                        ("tiny.safetensors", None)])
def test_classifier_local_files(tiny_classifier, tmp_path, name, wrap):
    state = tiny_classifier.net.state_dict()
    path = tmp_path / name
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({wrap: state} if wrap else state, path)
    loaded = classifier.load(ComponentSpec("classifier", "torchvision", TINY_RESNET.model, str(path)), CPU, "auto")
    assert loaded.info.pretrained and loaded.info.source == str(path)
    x = torch.rand(1, 3, 64, 80)
    with torch.no_grad():
        torch.testing.assert_close(loaded.logits(x), tiny_classifier.logits(x), rtol=0, atol=0)


class Payload:
    """A pickle that runs a shell command when it is unpickled: what a hostile checkpoint file carries."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("role", ["classifier", "encoder"])
def test_checkpoints_are_never_unpickled(tiny_classifier, encoder, tmp_path, role):
    path, marker = tmp_path / "hostile.pth", tmp_path / "ran"
    model = tiny_classifier.net if role == "classifier" else encoder.model
    torch.save({"state_dict": model.state_dict(), "extra": Payload(marker)}, path)
    spec = (ComponentSpec("classifier", "torchvision", TINY_RESNET.model, str(path)) if role == "classifier"
            else ComponentSpec("encoder", "open_clip", TINY_CLIP.model, str(path)))
    with pytest.raises(ModelUnavailableError, match=f"{path}: refused: the checkpoint holds more than tensors "
                                                    r"\(it names posix.system\); SynOOD never fully unpickles"):
        (classifier if role == "classifier" else clip).load(spec, CPU, "auto")
    assert not marker.exists()  # the payload never ran


@pytest.mark.parametrize("spec", [PAPER_CLIP, ComponentSpec("encoder", "open_clip", TINY_CLIP.model, "hf-hub:x/y")])
def test_encoder_download_offline_fails_fast(spec):
    start = time.monotonic()
    try:
        suites.download(spec)
    except ModelUnavailableError as exc:
        message = str(exc)
    else:
        pytest.fail("download succeeded with HF_HUB_OFFLINE=1")
    assert time.monotonic() - start < 10
    assert "could not download" in message and spec.model in message and str(sources.hf_hub_cache()) in message


@pytest.mark.parametrize("spec", [TINY_CLIP, TINY_RESNET,
                                  ComponentSpec("classifier", "torchvision", "resnet50", "/tmp/weights.pth"),
                                  ComponentSpec("classifier", "torchvision", "resnet50", "NO_SUCH_WEIGHTS")])
def test_nothing_to_download(spec):
    with pytest.raises(ModelUnavailableError, match="nothing to download|has no weights"):
        suites.download(spec)


@pytest.mark.parametrize("hf_hub", [
    f"{HUB_REPO}/open_clip_model.safetensors",
    f"{HUB_REPO}/",
])
def test_encoder_pretrained_tag_from_offline_hub_cache(encoder, images, hub_repo, monkeypatch, hf_hub):
    """The paper's path (model + open_clip tag -> hub repo -> cached file), via a made-up tiny tag."""
    tag = {"hf_hub": hf_hub, "mean": (0.1, 0.2, 0.3), "std": (0.3, 0.2, 0.1), "interpolation": "bicubic",
           "resize_mode": "shortest", "quick_gelu": True}
    monkeypatch.setitem(clip.open_clip.pretrained._PRETRAINED, TINY_CLIP.model, {"synood_test": tag})
    spec = ComponentSpec("encoder", "open_clip", TINY_CLIP.model, "synood_test")
    assert suites.probe(spec).ready
    loaded = clip.load(spec, CPU, "auto")
    assert loaded.info.source == str(hub_repo / "open_clip_model.safetensors")
    assert loaded.info.name == "open_clip synood-tiny-ViT (synood_test)"
    assert tuple(loaded.transform.transforms[-1].mean) == tag["mean"]
    pixels = encoder.preprocess(images)
    torch.testing.assert_close(loaded.encode_image(pixels), encoder.encode_image(pixels), rtol=0, atol=0)
