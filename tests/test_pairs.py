"""synood.data.pairs: reading a generation manifest, filters, sorts, pages and cached thumbnails.

The manifests and images here are test data for the browser (plain coloured shapes), not model results.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from bench.common.drawn_pairs import NEGATIVES, draw_image, write_generation
from synood.data import pairs
from synood.data.pairs import PairsError


@pytest.fixture
def generation(tmp_path) -> Path:
    return write_generation(tmp_path / "gen", 12)


def test_reads_folder_or_file_and_resolves_images(generation):
    manifest = pairs.load_manifest(generation)
    assert pairs.load_manifest(generation / "manifest.jsonl") is manifest  # one cache entry either way
    assert len(manifest.pairs) == 12 and manifest.skipped == 0
    pair = manifest.pairs[3]
    assert pair.id == "n03417042/img3.JPEG" and pair.class_name == "garbage truck" and pair.class_index == 569
    assert pair.image == generation / "images/n03417042/img3-00000003.png" and pair.image.is_file()
    assert pair.source.is_file() and len(pair.iterations) == 3 and pair.iterations[2].index == 2
    assert pair.energy_change == pytest.approx(pair.energy_after - pair.energy_before)
    assert manifest.get(pair.id) is pair
    assert manifest.classes()[0] == ("n03000684", "chain saw")
    low, high = manifest.energy_range()
    assert low == min(p.energy_after for p in manifest.pairs) and high == max(p.energy_after for p in manifest.pairs)


def test_torn_and_bad_lines_are_skipped_and_counted(generation):
    path = generation / "manifest.jsonl"
    good = path.read_text().splitlines()
    bad = dict(json.loads(good[0]), energy_after=None)
    path.write_text("\n".join([good[0], "", "not json", "[1, 2]", json.dumps(bad), *good[1:], good[2][:40]]))
    manifest = pairs.load_manifest(path)
    assert len(manifest.pairs) == 12 and manifest.skipped == 4


def test_cache_follows_the_file(generation):
    path = generation / "manifest.jsonl"
    first = pairs.load_manifest(path)
    assert pairs.load_manifest(path) is first
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:5]) + "\n")
    assert len(pairs.load_manifest(path).pairs) == 5


@pytest.mark.parametrize("content, message", [
    (None, "no such file or folder"),
    ("", "the file is empty"),
    ("{torn\n\n", "none of its 1 lines is a valid pair record"),
])
def test_clear_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "manifest.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PairsError, match=message) as info:
        pairs.load_manifest(path)
    assert str(path) in str(info.value)


def test_folder_without_manifest_and_unreadable_manifest(tmp_path, monkeypatch):
    with pytest.raises(PairsError, match="no manifest.jsonl in this folder"):
        pairs.load_manifest(tmp_path)
    with pytest.raises(PairsError, match="Give a generation folder"):
        pairs.load_manifest("  ")
    path = tmp_path / "manifest.jsonl"
    path.write_text("{}")

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)  # chmod cannot stop root, which may run these tests
    with pytest.raises(PairsError, match=f"{path}: cannot read \\(Permission denied\\)"):
        pairs.load_manifest(path)


def test_filters(generation):
    every = pairs.load_manifest(generation).pairs
    tench = pairs.filter_pairs(every, class_id="n01440764")
    assert [p.id for p in tench] == ["n01440764/img0.JPEG", "n01440764/img4.JPEG", "n01440764/img8.JPEG"]
    assert pairs.filter_pairs(every, class_id="n0144") == []  # exact, not a prefix
    low, high = sorted(p.energy_after for p in every)[3], sorted(p.energy_after for p in every)[8]
    ranged = pairs.filter_pairs(every, energy_min=low, energy_max=high)
    assert len(ranged) == 6 and all(low <= p.energy_after <= high for p in ranged)
    assert [p.id for p in pairs.filter_pairs(every, label="SAWDUST")] == [every[0].id, every[7].id]  # negative label
    assert len(pairs.filter_pairs(every, label="truck ")) == 3  # class name, trimmed
    water = pairs.filter_pairs(every, label="wat")
    assert water and all(any("water" in c for c in p.context) for p in water)
    assert pairs.filter_pairs(every, class_id="n01440764", label="sawdust") == [every[0]]
    assert pairs.filter_pairs(every) == list(every)


@pytest.mark.parametrize("by, key", [
    ("energy_after", lambda p: p.energy_after),
    ("energy_change", lambda p: p.energy_after - p.energy_before),
    ("id_score_after", lambda p: p.id_score_after),
    ("class", lambda p: p.class_name.lower()),
    ("negative_label", lambda p: p.negative_label),
])
def test_sorts(generation, by, key):
    every = pairs.load_manifest(generation).pairs
    up = pairs.sort_pairs(every, by)
    down = pairs.sort_pairs(every, by, descending=True)
    assert [key(p) for p in up] == sorted(key(p) for p in every)
    assert [key(p) for p in down] == sorted((key(p) for p in every), reverse=True)
    assert sorted(p.id for p in up) == sorted(p.id for p in every)


def test_sort_ties_keep_manifest_order_and_bad_sort(generation):
    every = pairs.load_manifest(generation).pairs
    by_class = pairs.sort_pairs(every, "class")
    assert [p.id for p in by_class[:3]] == ["n03000684/img2.JPEG", "n03000684/img6.JPEG", "n03000684/img10.JPEG"]
    assert pairs.sort_pairs(every, "manifest") == list(every)
    assert pairs.sort_pairs(every, "manifest", descending=True) == list(every)[::-1]
    with pytest.raises(PairsError, match="unknown sort"):
        pairs.sort_pairs(every, "loss")


def test_paginate(generation):
    every = pairs.load_manifest(generation).pairs
    page = pairs.paginate(every, 2, 5)
    assert (page.number, page.count, page.total) == (2, 3, 12) and page.pairs == every[5:10]
    assert pairs.paginate(every, 3, 5).pairs == every[10:]
    assert pairs.paginate(every, 99, 5).number == 3 and pairs.paginate(every, -1, 5).number == 1
    empty = pairs.paginate([], 1, 5)
    assert (empty.number, empty.count, empty.total, empty.pairs) == (1, 1, 0, ())
    with pytest.raises(PairsError, match="page size"):
        pairs.paginate(every, 1, 0)


def test_thumbnail_composite_and_cache(generation):
    pair = pairs.load_manifest(generation).pairs[0]
    path = pairs.thumbnail(pair)
    assert path.is_relative_to(pairs.thumbnail_dir()) and path.suffix == ".jpg"
    with Image.open(path) as image:
        assert image.format == "JPEG" and image.height == pairs.THUMBNAIL_HEIGHT
        assert image.width > 2 * pairs.THUMBNAIL_HEIGHT
        left = image.getpixel((5, image.height // 2))
        right = image.getpixel((image.width - 5, image.height // 2))
    with Image.open(pair.source) as source, Image.open(pair.image) as synthetic:
        expected_left, expected_right = source.getpixel((0, source.height // 2)), synthetic.getpixel((511, 256))
    assert max(abs(a - b) for a, b in zip(left, expected_left)) < 12  # source on the left (JPEG: near, not equal)
    assert max(abs(a - b) for a, b in zip(right, expected_right)) < 12
    stamp = path.stat().st_mtime_ns
    assert pairs.thumbnail(pair) == path and path.stat().st_mtime_ns == stamp  # a hit: not rebuilt
    assert pairs.thumbnail_path(pair, 96) != path  # the size is part of the key
    info = pair.image.stat()
    os.utime(pair.image, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    changed = pairs.thumbnail(pair)
    assert changed != path and changed.is_file()  # the synthetic image's mtime changed: a miss
    assert not list(pairs.thumbnail_dir().rglob("*.tmp"))


def test_missing_and_unreadable_images_give_a_tile(generation):
    every = pairs.load_manifest(generation).pairs
    every[1].image.unlink()
    every[2].source.write_bytes(b"not an image")
    for pair in every[1:3]:
        with Image.open(pairs.thumbnail(pair)) as image:
            assert image.height == pairs.THUMBNAIL_HEIGHT
    tile = pairs.pair_image(every[1].image, "synthetic image")
    assert tile.size == (512, 512) and tile.getpixel((2, 2)) == (156, 163, 175)
    assert pairs.pair_image(every[2].source, "source image").getpixel((2, 2)) == (156, 163, 175)
    missing = pairs.thumbnail_key(every[1])
    draw_image(every[1].image, 99, synthetic=True)  # the file comes back: a new key, the real image
    assert pairs.thumbnail_key(every[1]) != missing
    assert pairs.pair_image(every[1].image, "synthetic image").getpixel((2, 2)) != (156, 163, 175)


def test_page_of_thumbnails_in_order(generation):
    page = pairs.paginate(pairs.load_manifest(generation).pairs, 2, 5)
    built = pairs.thumbnails(page.pairs)
    assert built == [pairs.thumbnail_path(pair) for pair in page.pairs] and all(p.is_file() for p in built)


def test_ten_thousand_pairs_page_through(tmp_path):
    folder = write_generation(tmp_path / "big", 10_000, distinct=8)
    manifest = pairs.load_manifest(folder)
    assert len(manifest.pairs) == 10_000 and len({p.id for p in manifest.pairs}) == 10_000
    chosen = pairs.sort_pairs(pairs.filter_pairs(manifest.pairs, label="moss"), "energy_after", descending=True)
    assert len(chosen) == sum(1 for i in range(10_000) if NEGATIVES[i % len(NEGATIVES)] == "moss")
    seen, number = [], 1
    while True:
        page = pairs.paginate(chosen, number, 96)
        seen.extend(page.pairs)
        if page.number == page.count:
            break
        number += 1
    assert seen == chosen and page.count == -(-len(chosen) // 96)
    energies = [p.energy_after for p in seen]
    assert energies == sorted(energies, reverse=True)
    first = pairs.paginate(chosen, 1, 24)
    assert all(path.is_file() for path in pairs.thumbnails(first.pairs))
    assert pairs.load_manifest(folder / "manifest.jsonl") is manifest
