"""ui/thumbnails.py: the Synthetic pairs tab's cached "source | synthetic" composites and placeholder tiles.

The manifests and images here are test data for the browser (plain coloured shapes), not model results.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from bench.common.drawn_pairs import draw_image, write_generation
from synood.data.manifest import load_manifest, paginate
from ui import thumbnails


@pytest.fixture
def generation(tmp_path) -> Path:
    return write_generation(tmp_path / "gen", 12)


def test_thumbnail_composite_and_cache(generation):
    pair = load_manifest(generation).pairs[0]
    path = thumbnails.thumbnail(pair)
    assert path.is_relative_to(thumbnails.thumbnail_dir()) and path.suffix == ".jpg"
    with Image.open(path) as image:
        assert image.format == "JPEG" and image.height == thumbnails.THUMBNAIL_HEIGHT
        assert image.width > 2 * thumbnails.THUMBNAIL_HEIGHT
        left = image.getpixel((5, image.height // 2))
        right = image.getpixel((image.width - 5, image.height // 2))
    with Image.open(pair.source) as source, Image.open(pair.image) as synthetic:
        expected_left, expected_right = source.getpixel((0, source.height // 2)), synthetic.getpixel((511, 256))
    assert max(abs(a - b) for a, b in zip(left, expected_left)) < 12  # source on the left (JPEG: near, not equal)
    assert max(abs(a - b) for a, b in zip(right, expected_right)) < 12
    stamp = path.stat().st_mtime_ns
    assert thumbnails.thumbnail(pair) == path and path.stat().st_mtime_ns == stamp  # a hit: not rebuilt
    assert thumbnails.thumbnail_path(pair, 96) != path  # the size is part of the key
    info = pair.image.stat()
    os.utime(pair.image, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    changed = thumbnails.thumbnail(pair)
    assert changed != path and changed.is_file()  # the synthetic image's mtime changed: a miss
    assert not list(thumbnails.thumbnail_dir().rglob("*.tmp"))


def test_missing_and_unreadable_images_give_a_tile(generation):
    every = load_manifest(generation).pairs
    every[1].image.unlink()
    every[2].source.write_bytes(b"not an image")
    for pair in every[1:3]:
        with Image.open(thumbnails.thumbnail(pair)) as image:
            assert image.height == thumbnails.THUMBNAIL_HEIGHT
    tile = thumbnails.pair_image(every[1].image, "synthetic image")
    assert tile.size == (512, 512) and tile.getpixel((2, 2)) == (156, 163, 175)
    assert thumbnails.pair_image(every[2].source, "source image").getpixel((2, 2)) == (156, 163, 175)
    missing = thumbnails.thumbnail_key(every[1])
    draw_image(every[1].image, 99, synthetic=True)  # the file comes back: a new key, the real image
    assert thumbnails.thumbnail_key(every[1]) != missing
    assert thumbnails.pair_image(every[1].image, "synthetic image").getpixel((2, 2)) != (156, 163, 175)


def test_page_of_thumbnails_in_order(generation):
    page = paginate(load_manifest(generation).pairs, 2, 5)
    built = thumbnails.thumbnails(page.pairs)
    assert built == [thumbnails.thumbnail_path(pair) for pair in page.pairs] and all(p.is_file() for p in built)
