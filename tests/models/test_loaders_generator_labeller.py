"""The diffusers generator and transformers labeller loaders: tiny in-process models, and the paper
models' loading paths (local folder, offline hub cache) exercised with tiny random models saved in
the real formats."""
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from huggingface_hub.utils import filter_repo_objects
from PIL import Image

from synood.models import generator, labeller, sources, suites
from synood.models.interfaces import ContextLabeller, Generator, count_parameters
from synood.models.suites import ComponentSpec, ModelUnavailableError
from tests.helpers.hubcache import put_in_hf_cache

CPU = torch.device("cpu")
PROMPT = "A photo only remain bamboo, tourist, leaf, railing"
# Files of stabilityai/stable-diffusion-2-inpainting that `generator.download` leaves out.
SD2_NOT_DOWNLOADED = [
    "README.md", "512-inpainting-ema.ckpt", "512-inpainting-ema.safetensors", "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.fp16.bin",
    "text_encoder/pytorch_model.bin", "text_encoder/model.fp16.safetensors",
]


def record_tree(snapshot: Path, not_downloaded: Sequence[str]) -> None:
    """Record a repo's full file listing (trees/<commit>.json) as `snapshot_download` does: the snapshot's
    files plus `not_downloaded`, files the repo has but an allow_patterns download skipped."""
    files = [p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()] + list(not_downloaded)
    trees = snapshot.parent.parent / "trees"
    trees.mkdir(exist_ok=True)  # a reused $SYNOOD_TEST_CACHE keeps an earlier session's folder
    (trees / f"{snapshot.name}.json").write_text(json.dumps(
        {"format_version": 1, "files": {f: {"size": 1, "blob_id": "0" * 40} for f in files}}))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    """A 64 x 64 colour gradient."""
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    return Image.fromarray(np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[:, None], (1, 64)),
                                     np.full((64, 64), 90, np.uint8)], axis=-1))


@pytest.fixture(scope="module")
def tiny_generator() -> generator.InpaintGenerator:
    return generator.load(ComponentSpec("generator", "diffusers", suites.TINY), CPU, "auto")


@pytest.fixture(scope="module")
def reference(tiny_generator, image) -> Image.Image:
    return tiny_generator.generate(image, PROMPT, seed=0)


@pytest.fixture(scope="module")
def tiny_labeller() -> labeller.MLLMLabeller:
    return labeller.load(ComponentSpec("labeller", "transformers", suites.TINY), CPU, "auto")


def test_tiny_generator_is_deterministic_per_seed(tiny_generator, image, reference):
    assert isinstance(tiny_generator, Generator)
    info = tiny_generator.info
    assert (info.role, info.pretrained, tiny_generator.size) == ("generator", False, 64)
    pipe = tiny_generator.pipe
    assert info.parameters == count_parameters(pipe.unet, pipe.vae, pipe.text_encoder)
    assert pipe.unet.config.in_channels == 9 and isinstance(pipe.scheduler, DDIMScheduler)
    assert isinstance(reference, Image.Image) and reference.size == (64, 64)
    assert tiny_generator.generate(image.resize((80, 50)), PROMPT).size == (64, 64)
    assert np.array_equal(pixels(tiny_generator.generate(image, PROMPT, seed=0)), pixels(reference))
    assert not np.array_equal(pixels(tiny_generator.generate(image, PROMPT, seed=1)), pixels(reference))


def test_tiny_tokenizer_is_clips(tiny_generator):
    from open_clip.tokenizer import SimpleTokenizer

    simple = SimpleTokenizer()
    for text in (PROMPT, "Hello   World! It's a café in 2025."):
        expected = [simple.sot_token_id, *simple.encode(text), simple.eot_token_id]
        assert tiny_generator.pipe.tokenizer(text).input_ids == expected


def test_generator_loads_saved_folder_and_offline_hub_cache(tiny_generator, image, reference, tmp_path):
    folder = tmp_path / "tiny-sd2-inpainting"
    tiny_generator.pipe.save_pretrained(folder)
    from_folder = generator.load(ComponentSpec("generator", "diffusers", str(folder)), CPU, "auto")
    assert from_folder.info.pretrained and from_folder.size == 64
    scheduler = from_folder.pipe.scheduler
    assert isinstance(scheduler, DDIMScheduler)
    assert {k: scheduler.config[k] for k in generator.SD2_SCHEDULER} == generator.SD2_SCHEDULER
    assert np.array_equal(pixels(from_folder.generate(image, PROMPT, seed=0)), pixels(reference))

    # SD2-inpainting's repo ships its tokenizer as vocab.json + merges.txt (no tokenizer.json): do the same.
    tokenizer = folder / "tokenizer"
    bpe = json.loads((tokenizer / "tokenizer.json").read_text())["model"]
    (tokenizer / "vocab.json").write_text(json.dumps(bpe["vocab"]))
    (tokenizer / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in bpe["merges"]) + "\n")
    (tokenizer / "tokenizer.json").unlink()
    assert not list(filter_repo_objects(SD2_NOT_DOWNLOADED, allow_patterns=generator.HUB_FILES))
    snapshot = put_in_hf_cache("synood-test/tiny-sd2-inpainting", {".": folder})
    record_tree(snapshot, SD2_NOT_DOWNLOADED)
    spec = ComponentSpec("generator", "diffusers", "synood-test/tiny-sd2-inpainting")
    assert suites.probe(spec).state == sources.CACHED
    assert Path(generator.download(spec)) == snapshot  # complete for its allow_patterns, even offline
    from_hub = generator.load(spec, CPU, "auto")
    assert np.array_equal(pixels(from_hub.generate(image, PROMPT, seed=0)), pixels(reference))


def test_tiny_labeller_lists_context(tiny_labeller, image, monkeypatch):
    assert isinstance(tiny_labeller, ContextLabeller)
    assert (tiny_labeller.info.role, tiny_labeller.info.pretrained) == ("labeller", False)
    assert tiny_labeller.chat_text() == f"USER: <image>\n{tiny_labeller.prompt} ASSISTANT:"
    with monkeypatch.context() as patch:
        patch.setattr(tiny_labeller.processor, "chat_template", None)
        assert tiny_labeller.chat_text() == f"USER: <image>\n{tiny_labeller.prompt} ASSISTANT:"
    inputs = tiny_labeller.processor(images=image, text=tiny_labeller.chat_text(), return_tensors="pt")
    assert (inputs["input_ids"] == tiny_labeller.model.config.image_token_id).sum() == 16
    context = tiny_labeller.context(image)
    assert isinstance(context, list) and all(isinstance(c, str) for c in context) and len(context) <= 8


def test_labeller_loads_saved_folder_and_offline_hub_cache(tiny_labeller, image, tmp_path):
    answer = tiny_labeller.answer(image)
    folder = tmp_path / "tiny-llava"
    tiny_labeller.model.save_pretrained(folder, max_shard_size="100KB")
    tiny_labeller.processor.save_pretrained(folder)
    assert (folder / "model.safetensors.index.json").exists()
    from_folder = labeller.load(ComponentSpec("labeller", "transformers", str(folder)), CPU, "auto")
    assert from_folder.info.pretrained and from_folder.answer(image) == answer

    # llava-hf/llava-1.5-7b-hf also ships its image processor as preprocessor_config.json: do the same.
    tiny_labeller.processor.image_processor.save_pretrained(folder)
    put_in_hf_cache("synood-test/tiny-llava", {".": folder})
    spec = ComponentSpec("labeller", "transformers", "synood-test/tiny-llava")
    assert suites.probe(spec).state == sources.CACHED
    assert labeller.load(spec, CPU, "auto").answer(image) == answer
    next(sources.hf_hub_cache().glob("models--synood-test--tiny-llava/snapshots/*/model-00002-of-*")).unlink()
    assert suites.probe(spec).state == sources.NEEDS_DOWNLOAD


@pytest.mark.parametrize("module", [generator, labeller])
def test_download_fails_fast_offline(module):
    role, family = ("generator", "diffusers") if module is generator else ("labeller", "transformers")
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError, match="HF_HUB_OFFLINE"):
        suites.download(ComponentSpec(role, family, "synood-test/not-cached"))
    assert time.monotonic() - start < 5
    with pytest.raises(ModelUnavailableError, match="not a hub repo"):
        module.download(ComponentSpec(role, family, suites.TINY))


@pytest.mark.parametrize("text, expected", [
    ("1. Bamboo\n2. Tourists\n3. Leaves", ["bamboo", "tourists", "leaves"]),
    ("bamboo, a tourist, leaves, and a railing.", ["bamboo", "tourist", "leaves", "railing"]),
    ("- Green grass\n- A wooden bench;\n* \"Trees\"", ["green grass", "wooden bench", "trees"]),
    ("The image: bamboo (green), leaf, leaves, Leaf, the image", ["bamboo", "leaf"]),
    ("Elements: sky, clouds & mountains", ["sky", "clouds", "mountains"]),
    ("a panda sitting on a big wooden platform, background", ["background"]),
    ("benches, bench, glass, glasses, bus", ["benches", "glass", "bus"]),
    ("The image features bamboo, a tourist, and leaves.", ["bamboo", "tourist", "leaves"]),
    ("There are trees; there is a bench", ["trees", "bench"]),
    ("none", []),
    ("", []),
    ("1) Sky.\n2) Water!\n3) 42\n4) Boats", ["sky", "water", "boats"]),
])
def test_parse_context(text, expected):
    assert labeller.parse_context(text) == expected


def test_parse_context_limit():
    assert labeller.parse_context(", ".join(f"item{i}" for i in range(20)), limit=3) == ["item0", "item1", "item2"]
