"""synood.data.benchmarks: the protocols as data, what an evaluation may use, and the digest of its file lists."""
import pytest
from PIL import Image

from synood.data import benchmarks


def test_the_protocols_name_the_papers_sets_and_release_counts():
    mos, openood = benchmarks.benchmark("mos"), benchmarks.benchmark("openood-v1.5")
    assert [(s.name, s.expected) for s in mos.sets] == [("ImageNet", 50_000), ("iNaturalist", 10_000),
                                                        ("SUN", 10_000), ("Places", 10_000), ("Textures", 5_640)]
    assert mos.id_set.name == "ImageNet" and openood.groups == ("near", "far")
    assert sum(s.expected for s in mos.sets if s.role == "ood") == 35_640
    assert {s.group for s in openood.sets if s.role == "ood"} == {"near", "far"}


def paths(found):
    return {name: item.paths for name, item in found.items()}


def test_an_evaluation_refuses_a_protocol_with_an_empty_set_and_digests_its_lists(tmp_path):
    for folder in ("imagenet/val", "iNaturalist/images", "SUN/images", "Places/images", "dtd/images/banded"):
        (tmp_path / folder).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / folder / "a.jpg")
    mos = benchmarks.benchmark("mos")
    found = benchmarks.usable(mos, tmp_path)
    assert list(found) == ["ImageNet", "iNaturalist", "SUN", "Places", "Textures"]
    digest = benchmarks.lists_digest(paths(found), tmp_path)
    assert digest == benchmarks.lists_digest(paths(benchmarks.usable(mos, tmp_path)), tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "SUN/images/b.jpg")
    assert benchmarks.lists_digest(paths(benchmarks.usable(mos, tmp_path)), tmp_path) != digest  # another file list
    (tmp_path / "Places/images/a.jpg").unlink()
    with pytest.raises(benchmarks.BenchmarkError, match="no images for Places; `synood data check --benchmark mos"):
        benchmarks.usable(mos, tmp_path)
