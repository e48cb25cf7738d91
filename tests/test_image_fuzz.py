"""Fuzzing synood.images.load_image: damaged PNG, JPEG, GIF, WebP, TIFF and BMP files load as RGB or raise ImageError.

The seeds are small valid files made here; each case flips, cuts or inserts bytes in one. bench/fuzz_images.py
runs the same mutations for longer.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from synood import images
from synood.config import ImagesConfig


def seed_files() -> dict[str, bytes]:
    """Small valid files, one per format and a few variants: name -> bytes."""
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: exercises the EXIF reader
    variants = {
        "png": (noise, dict(format="PNG")),
        "rgba.png": (noise.convert("RGBA"), dict(format="PNG")),
        "palette.png": (noise.convert("P"), dict(format="PNG", transparency=0)),
        "jpg": (noise, dict(format="JPEG", quality=80, exif=exif)),
        "progressive.jpg": (noise, dict(format="JPEG", progressive=True)),
        "gif": (noise.convert("P"), dict(format="GIF", save_all=True, append_images=[noise.rotate(90).convert("P")],
                                         duration=50, loop=0)),
        "webp": (noise, dict(format="WEBP", quality=80)),
        "lossless.webp": (noise.convert("RGBA"), dict(format="WEBP", lossless=True)),
        "tif": (noise, dict(format="TIFF")),
        "lzw.tif": (noise, dict(format="TIFF", compression="tiff_lzw")),
        "cmyk.tif": (noise.convert("CMYK"), dict(format="TIFF")),
        "bmp": (noise, dict(format="BMP")),
    }
    seeds = {}
    for name, (image, options) in variants.items():
        buffer = io.BytesIO()
        image.save(buffer, **options)
        seeds[name] = buffer.getvalue()
    return seeds


def mutate(data: bytes, kind: str, position: int, payload: bytes) -> bytes:
    """`data` with bytes flipped (xor `payload`), cut at `position`, or `payload` inserted there."""
    position %= len(data) + 1
    if kind == "flip":
        flipped = bytearray(data)
        for offset, byte in enumerate(payload or b"\xff"):
            if position + offset < len(flipped):
                flipped[position + offset] ^= byte or 0xFF
        return bytes(flipped)
    if kind == "cut":
        return data[:position]
    return data[:position] + payload + data[position:]


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
