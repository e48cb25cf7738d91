"""The tiny suite: every component builds in-process, is labelled random, and runs one forward pass."""
import time

import numpy as np
import pytest
import torch
from PIL import Image

from synood.config import ModelsConfig
from synood.models import ROLES, ContextLabeller, EnergyClassifier, Generator, ImageTextEncoder, Suite
from synood.runtime import pick_device, pick_dtype


@pytest.fixture(scope="module")
def suite():
    return Suite.from_config(ModelsConfig(suite="tiny"))


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))


def test_builds_every_component_lazily(suite, capsys):
    assert suite.loaded() == {role: None for role in ROLES}
    start = time.perf_counter()
    for role in ROLES:
        suite.get(role)
    with capsys.disabled():
        print(f"\n[tiny suite] all four components built in {time.perf_counter() - start:.1f} s")
    infos = suite.loaded()
    for role in ROLES:
        info = infos[role]
        assert info.role == role and info.pretrained is False and info.weights == "random weights"
        assert info.parameters > 0 and info.source
    assert suite.get("encoder") is suite.encoder  # loaded once


def test_one_forward_pass_of_each(suite, photo):
    assert isinstance(suite.encoder, ImageTextEncoder)
    features = suite.encoder.encode_image(suite.encoder.preprocess([photo, photo.convert("L")]))
    texts = suite.encoder.encode_text(["the nice cat", "This is a red photo"])
    assert features.shape == (2, suite.encoder.embed_dim) and texts.shape == (2, suite.encoder.embed_dim)
    assert torch.allclose(features.norm(dim=-1), torch.ones(2), atol=1e-5)

    assert isinstance(suite.classifier, EnergyClassifier)
    logits = suite.classifier.logits(torch.rand(2, 3, 80, 120))
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()

    assert isinstance(suite.labeller, ContextLabeller)
    context = suite.labeller.context(photo)
    assert isinstance(context, list) and all(isinstance(c, str) and c for c in context)

    assert isinstance(suite.generator, Generator)
    out = suite.generator.generate(photo, "A photo only remain grass", seed=0)
    assert isinstance(out, Image.Image) and out.size == (suite.generator.size, suite.generator.size)


def test_the_encoder_gives_raw_embeddings_beside_unit_ones(suite, photo, tmp_path, monkeypatch):
    """normalize=False is encode_image/encode_text's raw output; the unit features are exactly its normalisation,
    and the text cache keeps raw embeddings under a key of their own."""
    monkeypatch.setenv("SYNOOD_HOME", str(tmp_path))
    encoder = suite.encoder
    pixels = encoder.preprocess([photo])
    raw = encoder.encode_image(pixels, normalize=False)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(1), atol=1e-3)
    torch.testing.assert_close(encoder.encode_image(pixels), torch.nn.functional.normalize(raw, dim=-1))
    texts = ["the nice cat", "This is a red photo", "the nice long prompt of many words"]
    raw_text = encoder.text_features(texts, normalize=False)
    torch.testing.assert_close(raw_text, encoder.encode_text(texts, normalize=False), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(encoder.text_features(texts), torch.nn.functional.normalize(raw_text, dim=-1))
    assert len(list((tmp_path / "text-features").glob("*.safetensors"))) == 1  # one cache file, read twice


def test_device_and_dtype_choice():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_dtype("auto", torch.device("cpu"), half_ok=True) == torch.float32
    assert pick_dtype("auto", torch.device("cuda"), half_ok=True) == torch.float16
    assert pick_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        pick_dtype("float8", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")
