"""synood.data.loading and the caches that use it: worker processes decode in order and report bad files as the
in-process loop does, and batched classifier passes give the one-at-a-time logits."""
import pytest
import torch
from PIL import Image

from synood.config import ImagesConfig
from synood.data import images, loading
from synood.data.features import image_features
from synood.data.logits import classifier_logits, forward
from synood.models import classifier
from synood.models.suites import ComponentSpec

CPU = torch.device("cpu")
SIZES = [(40, 30), (30, 40), (40, 30), (64, 64), (57, 23), (40, 30)]  # mixed: three share a shape


def photos(folder, sizes=SIZES):
    """Noise images of the given (width, height), with an unreadable file and a missing one among them."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    paths = []
    for i, (w, h) in enumerate(sizes):
        pixels = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy()
        paths.append(folder / f"{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    (folder / "broken.png").write_bytes(b"not an image")
    return [*paths[:2], folder / "broken.png", *paths[2:4], folder / "missing.png", *paths[4:]]


class ThumbEncoder:
    """A fixed linear map of each image's 4x4 thumbnail."""

    embed_dim = 6

    def __init__(self, identity):
        self.identity = identity
        self.weight = torch.randn(48, 6, generator=torch.Generator().manual_seed(1))

    def preprocess(self, images):
        return torch.stack([classifier.ImageNetClassifier.to_tensor(im.resize((4, 4))).flatten() for im in images])

    def encode_image(self, pixels, normalize=True):
        return pixels @ self.weight


@pytest.fixture(scope="module")
def tiny():
    return classifier.load(ComponentSpec("classifier", "torchvision", classifier.TINY_RESNET), CPU, "float32")


@pytest.mark.parametrize("resize", classifier.RESIZES)
def test_batched_logits_equal_one_image_at_a_time(tmp_path, tiny, resize):
    net = tiny.resized(resize)
    paths = photos(tmp_path / "images")
    found = classifier_logits(net, paths, root=tmp_path / "cache", workers=0)
    pictures = [Image.open(p).convert("RGB") for p in found.paths]
    with torch.no_grad():
        alone = torch.cat([net.logits(net.to_tensor(picture)[None]) for picture in pictures])
    assert len(found.paths) == len(SIZES)
    torch.testing.assert_close(found.logits, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(forward(net, pictures), alone, atol=1e-5, rtol=1e-5)  # the detector's path, in order


def test_workers_give_the_in_process_rows_problems_and_order(tmp_path, tiny):
    paths = photos(tmp_path / "images", SIZES * 3)
    encoder = ThumbEncoder("thumb/1")
    serial = image_features(encoder, paths, batch_size=4, root=tmp_path / "serial", workers=0)
    parallel = image_features(encoder, paths, batch_size=4, root=tmp_path / "parallel", workers=2)
    assert parallel.paths == serial.paths and parallel.hashes == serial.hashes
    assert parallel.problems == serial.problems and len(serial.problems) == 2
    assert "broken.png: not an image" in serial.problems[1] and "missing.png: cannot read" in serial.problems[0]
    torch.testing.assert_close(parallel.features, serial.features, atol=0, rtol=0)
    existing = [p for p in paths if p.exists()]  # the old loop: batches of 4 of these, unreadable ones dropped
    plain = torch.cat([encoder.encode_image(encoder.preprocess([Image.open(p).convert("RGB") for p in chunk
                                                                if p.name != "broken.png"]))
                       for chunk in (existing[i:i + 4] for i in range(0, len(existing), 4))])
    assert torch.equal(serial.features, plain)  # workers=0 is the old in-process computation, bit for bit
    logits = [classifier_logits(tiny, paths, batch_size=4, root=tmp_path / f"logits{w}", workers=w) for w in (0, 2)]
    assert logits[0].paths == logits[1].paths and logits[0].problems == logits[1].problems
    torch.testing.assert_close(logits[1].logits, logits[0].logits, atol=1e-5, rtol=1e-5)


def test_a_programming_error_in_a_worker_surfaces_and_stops_the_workers(tmp_path):
    paths = photos(tmp_path / "images")

    def prepare(picture):
        raise RuntimeError("a bug in preprocessing")

    with pytest.raises(RuntimeError, match="a bug in preprocessing"):
        list(loading.batches(paths, prepare, 2, workers=2))


def test_workers_refuse_what_the_image_limits_refuse(tmp_path):
    paths = photos(tmp_path / "images")
    previous = images.set_limits(ImagesConfig(max_pixels=1500))  # 64 x 64 is over it
    try:
        found = [loading.batches(paths, classifier.ImageNetClassifier.to_tensor, 3, workers=w) for w in (0, 2)]
        errors = [[e for batch in batches for e in batch.errors.values()] for batches in found]
    finally:
        images.set_limits(previous)
    assert errors[0] == errors[1] and len(errors[0]) == 3 and "images.max_pixels" in errors[0][1]


def test_batches_keep_error_rows_in_place_and_stack_by_shape(tmp_path):
    paths = photos(tmp_path / "images")
    (batch,) = loading.batches(paths, classifier.ImageNetClassifier.to_tensor, len(paths), workers=0)
    assert sorted(batch.errors) == [2, 5]
    assert [tuple(g.shape) for g in batch.groups] == [(3, 3, 30, 40), (1, 3, 40, 30), (1, 3, 64, 64), (1, 3, 23, 57)]
    assert batch.order == [0, 3, 7, 1, 4, 6]


def test_worker_counts(monkeypatch):
    with pytest.raises(loading.WorkersError, match="-1 is not a number of worker processes"):
        next(loading.batches([], classifier.ImageNetClassifier.to_tensor, 4, workers=-1))
    for cores, expected in ((1, 0), (2, 0), (4, 3), (64, 8)):
        monkeypatch.setattr(loading.os, "sched_getaffinity", lambda _, n=cores: set(range(n)))
        assert loading.default_workers() == expected
    assert loading.pinning(CPU) is False or torch.cuda.is_available()
