"""synood.data.manifest, reading side: a generation manifest as pairs, filters, sorts and pages.

The manifests and images here are test data for the browser (plain coloured shapes), not model results.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.common.drawn_pairs import NEGATIVES, write_generation
from synood.data import manifest as manifests
from synood.data.manifest import PairsError
from ui import thumbnails


@pytest.fixture
def generation(tmp_path) -> Path:
    return write_generation(tmp_path / "gen", 12)


def test_reads_folder_or_file_and_resolves_images(generation):
    manifest = manifests.load_manifest(generation)
    assert manifests.load_manifest(generation / "manifest.jsonl") is manifest  # one cache entry either way
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
    manifest = manifests.load_manifest(path)
    assert len(manifest.pairs) == 12 and manifest.skipped == 4


def test_cache_follows_the_file(generation):
    path = generation / "manifest.jsonl"
    first = manifests.load_manifest(path)
    assert manifests.load_manifest(path) is first
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:5]) + "\n")
    assert len(manifests.load_manifest(path).pairs) == 5


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
        manifests.load_manifest(path)
    assert str(path) in str(info.value)


def test_folder_without_manifest_and_unreadable_manifest(tmp_path, monkeypatch):
    with pytest.raises(PairsError, match="no manifest.jsonl in this folder"):
        manifests.load_manifest(tmp_path)
    with pytest.raises(PairsError, match="Give a generation folder"):
        manifests.load_manifest("  ")
    path = tmp_path / "manifest.jsonl"
    path.write_text("{}")

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)  # chmod cannot stop root, which may run these tests
    with pytest.raises(PairsError, match=f"{path}: cannot read \\(Permission denied\\)"):
        manifests.load_manifest(path)


def test_filters(generation):
    every = manifests.load_manifest(generation).pairs
    tench = manifests.filter_pairs(every, class_id="n01440764")
    assert [p.id for p in tench] == ["n01440764/img0.JPEG", "n01440764/img4.JPEG", "n01440764/img8.JPEG"]
    assert manifests.filter_pairs(every, class_id="n0144") == []  # exact, not a prefix
    low, high = sorted(p.energy_after for p in every)[3], sorted(p.energy_after for p in every)[8]
    ranged = manifests.filter_pairs(every, energy_min=low, energy_max=high)
    assert len(ranged) == 6 and all(low <= p.energy_after <= high for p in ranged)
    assert [p.id for p in manifests.filter_pairs(every, label="SAWDUST")] == [every[0].id, every[7].id]  # negative label
    assert len(manifests.filter_pairs(every, label="truck ")) == 3  # class name, trimmed
    water = manifests.filter_pairs(every, label="wat")
    assert water and all(any("water" in c for c in p.context) for p in water)
    assert manifests.filter_pairs(every, class_id="n01440764", label="sawdust") == [every[0]]
    assert manifests.filter_pairs(every) == list(every)


@pytest.mark.parametrize("by, key", [
    ("energy_after", lambda p: p.energy_after),
    ("energy_change", lambda p: p.energy_after - p.energy_before),
    ("id_score_after", lambda p: p.id_score_after),
    ("class", lambda p: p.class_name.lower()),
    ("negative_label", lambda p: p.negative_label),
])
def test_sorts(generation, by, key):
    every = manifests.load_manifest(generation).pairs
    up = manifests.sort_pairs(every, by)
    down = manifests.sort_pairs(every, by, descending=True)
    assert [key(p) for p in up] == sorted(key(p) for p in every)
    assert [key(p) for p in down] == sorted((key(p) for p in every), reverse=True)
    assert sorted(p.id for p in up) == sorted(p.id for p in every)


def test_sort_ties_keep_manifest_order_and_bad_sort(generation):
    every = manifests.load_manifest(generation).pairs
    by_class = manifests.sort_pairs(every, "class")
    assert [p.id for p in by_class[:3]] == ["n03000684/img2.JPEG", "n03000684/img6.JPEG", "n03000684/img10.JPEG"]
    assert manifests.sort_pairs(every, "manifest") == list(every)
    assert manifests.sort_pairs(every, "manifest", descending=True) == list(every)[::-1]
    with pytest.raises(PairsError, match="unknown sort"):
        manifests.sort_pairs(every, "loss")


def test_paginate(generation):
    every = manifests.load_manifest(generation).pairs
    page = manifests.paginate(every, 2, 5)
    assert (page.number, page.count, page.total) == (2, 3, 12) and page.pairs == every[5:10]
    assert manifests.paginate(every, 3, 5).pairs == every[10:]
    assert manifests.paginate(every, 99, 5).number == 3 and manifests.paginate(every, -1, 5).number == 1
    empty = manifests.paginate([], 1, 5)
    assert (empty.number, empty.count, empty.total, empty.pairs) == (1, 1, 0, ())
    with pytest.raises(PairsError, match="page size"):
        manifests.paginate(every, 1, 0)


def test_ten_thousand_pairs_page_through(tmp_path):
    folder = write_generation(tmp_path / "big", 10_000, distinct=8)
    manifest = manifests.load_manifest(folder)
    assert len(manifest.pairs) == 10_000 and len({p.id for p in manifest.pairs}) == 10_000
    chosen = manifests.sort_pairs(manifests.filter_pairs(manifest.pairs, label="moss"), "energy_after", descending=True)
    assert len(chosen) == sum(1 for i in range(10_000) if NEGATIVES[i % len(NEGATIVES)] == "moss")
    seen, number = [], 1
    while True:
        page = manifests.paginate(chosen, number, 96)
        seen.extend(page.pairs)
        if page.number == page.count:
            break
        number += 1
    assert seen == chosen and page.count == -(-len(chosen) // 96)
    energies = [p.energy_after for p in seen]
    assert energies == sorted(energies, reverse=True)
    first = manifests.paginate(chosen, 1, 24)
    assert all(path.is_file() for path in thumbnails.thumbnails(first.pairs))
    assert manifests.load_manifest(folder / "manifest.jsonl") is manifest
