"""Fuzzing synood.data.images.load_image: damaged PNG, JPEG, GIF, WebP, TIFF and BMP files load as RGB or raise ImageError.

The seeds are small valid files (bench/common/image_seeds.py); each case flips, cuts or inserts bytes in one.
bench/fuzz_images.py runs the same mutations for longer.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.common.image_seeds import mutate, seed_files
from synood.data import images
from synood.config import ImagesConfig


def check(path: Path) -> str:
    """'loaded' for an RGB image, else the ImageError's message (which names the file); anything else raises."""
    try:
        image = images.load_image(path)
    except images.ImageError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: "), message
        return message
    assert image.mode == "RGB" and image.width >= 1 and image.height >= 1
    return "loaded"


SEEDS = seed_files()


@pytest.fixture(scope="module", autouse=True)
def small_limits():
    """Mutated headers may claim any size: keep each case small (and put the process's limits back)."""
    previous = images.set_limits(ImagesConfig(max_file_mb=1, max_pixels=4_000_000))
    yield
    images.set_limits(previous)


def test_every_seed_loads():
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in SEEDS.items():
            path = Path(tmp) / f"seed.{name}"
            path.write_bytes(data)
            assert check(path) == "loaded", name


@settings(max_examples=200, deadline=None)
@given(seed=st.sampled_from(sorted(SEEDS)), kind=st.sampled_from(["flip", "cut", "insert"]),
       position=st.one_of(st.integers(0, 64), st.integers(0, 4096)),  # the header often
       payload=st.binary(min_size=1, max_size=16),
       suffix=st.sampled_from([".png", ".jpg", ".gif", ".webp", ".tif", ".bmp"]))
def test_damaged_files_load_or_raise_image_error(seed, kind, position, payload, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"case{suffix}"
        path.write_bytes(mutate(SEEDS[seed], kind, position, payload))
        check(path)
