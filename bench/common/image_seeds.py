"""Small valid image files of every format synood.data.images reads, and byte-level damage to them: the seeds and
mutations of the image fuzz test (tests/data/test_image_fuzz.py) and of its longer run (bench/fuzz_images.py)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


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
