"""The paper's benchmark protocols as data: which image sets each one has, where the public releases put them under a
data root, how many images each should hold, and how to obtain a missing one.

Two protocols: `mos` (the paper's Table 1: ImageNet-1k val against the MOS subsets of iNaturalist, SUN, Places and
Textures, laid out as MOS's and DTD's archives unpack, optionally under `ood_data/` as NegLabel's code keeps them)
and `openood-v1.5` (Table 2: OpenOOD's ImageNet-1k test split against its near-OOD and far-OOD splits, read from
OpenOOD's own `benchmark_imglist` files under the `data/` folder its download script makes). Nothing is moved or
renamed: a set is found where its release puts it, or reported missing with where it was looked for.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping, Sequence

from synood.data.images import ImageError, find_images, load_image
from synood.errors import UserError

Role = Literal["id", "ood"]


class BenchmarkError(UserError, ValueError):
    """A benchmark that is not known, or a set of it that cannot be used as it is on disk."""


@dataclass(frozen=True)
class ImageSet:
    """One set of a protocol: its name, whether it is the ID set, its group for the averages ("near", "far" or ""),
    the image count of the public release, where it may lie under the root, and how to obtain it."""

    name: str
    role: Role
    expected: int
    folders: tuple[str, ...] = ()  # candidate folders under the root, first found wins (folder protocols)
    imglist: str = ""  # OpenOOD: the list file under the root, its paths relative to `data_dir`
    data_dir: str = ""
    group: str = ""
    obtain: str = ""


@dataclass(frozen=True)
class Benchmark:
    """A protocol: its sets (the ID set first), the groups its averages are taken over, and a title."""

    name: str
    title: str
    sets: tuple[ImageSet, ...]
    groups: tuple[str, ...] = ()  # averages per group ("near", "far"), besides the average over every OOD set

    @property
    def id_set(self) -> ImageSet:
        return next(s for s in self.sets if s.role == "id")

    def grouped(self) -> dict[str, list[str]]:
        """Each group's OOD sets by name, in protocol order ({} when it reports no group averages)."""
        return {group: [s.name for s in self.sets if s.group == group] for group in self.groups}


def matching(names: Sequence[str]) -> Benchmark | None:
    """The protocol whose sets are exactly `names` (in any order), e.g. a score folder it exported; None if none."""
    return next((b for b in BENCHMARKS.values() if sorted(s.name for s in b.sets) == sorted(names)), None)


MOS_OBTAIN = "the MOS release (github.com/deeplearning-wisc/large_scale_ood, 'Out-of-distribution dataset'): unpack"
OPENOOD_OBTAIN = ("OpenOOD's download script (github.com/Jingkang50/OpenOOD, scripts/download/download.py "
                  "--contents datasets --datasets ood_v1.5 --save_dir DIR): it writes DIR/benchmark_imglist and "
                  "DIR/images_*")


def _under_ood_data(*folders: str) -> tuple[str, ...]:
    """Each folder as the release unpacks it, then under ood_data/ as NegLabel's code keeps the OOD sets."""
    return (*folders, *(f"ood_data/{folder}" for folder in folders))


MOS_SETS = (
    ImageSet("ImageNet", "id", 50_000, ("imagenet/val", "val", "ILSVRC2012_img_val", "id_data/imagenet_val"),
             obtain="ImageNet-1k's validation images (ILSVRC2012_img_val.tar, image-net.org), unpacked into "
                    "imagenet/val (flat, or one folder per class)"),
    ImageSet("iNaturalist", "ood", 10_000, _under_ood_data("iNaturalist/images"),
             obtain=f"{MOS_OBTAIN} iNaturalist.tar.gz into the data root"),
    ImageSet("SUN", "ood", 10_000, _under_ood_data("SUN/images"),
             obtain=f"{MOS_OBTAIN} SUN.tar.gz into the data root"),
    ImageSet("Places", "ood", 10_000, _under_ood_data("Places/images"),
             obtain=f"{MOS_OBTAIN} Places.tar.gz into the data root"),
    ImageSet("Textures", "ood", 5_640, _under_ood_data("dtd/images", "Textures/dtd/images"),
             obtain="DTD (robots.ox.ac.uk/~vgg/data/dtd, dtd-r1.0.1.tar.gz), unpacked into the data root: "
                    "dtd/images"),
)
OPENOOD_SETS = (
    ImageSet("ImageNet", "id", 45_000, imglist="benchmark_imglist/imagenet/test_imagenet.txt",
             data_dir="images_largescale", obtain=OPENOOD_OBTAIN),
    ImageSet("SSB-hard", "ood", 49_000, imglist="benchmark_imglist/imagenet/test_ssb_hard.txt",
             data_dir="images_largescale", group="near", obtain=OPENOOD_OBTAIN),
    ImageSet("NINCO", "ood", 5_879, imglist="benchmark_imglist/imagenet/test_ninco.txt",
             data_dir="images_largescale", group="near", obtain=OPENOOD_OBTAIN),
    ImageSet("iNaturalist", "ood", 10_000, imglist="benchmark_imglist/imagenet/test_inaturalist.txt",
             data_dir="images_largescale", group="far", obtain=OPENOOD_OBTAIN),
    ImageSet("Textures", "ood", 5_160, imglist="benchmark_imglist/imagenet/test_textures.txt",
             data_dir="images_classic", group="far", obtain=OPENOOD_OBTAIN),
    ImageSet("OpenImage-O", "ood", 15_869, imglist="benchmark_imglist/imagenet/test_openimage_o.txt",
             data_dir="images_largescale", group="far", obtain=OPENOOD_OBTAIN),
)
BENCHMARKS: dict[str, Benchmark] = {
    "mos": Benchmark("mos", "ImageNet-1k val against the MOS OOD sets (the paper's Table 1)", MOS_SETS),
    "openood-v1.5": Benchmark("openood-v1.5", "OpenOOD v1.5 ImageNet-1k: near-OOD and far-OOD (the paper's Table 2)",
                              OPENOOD_SETS, groups=("near", "far")),
}


@dataclass
class FoundSet:
    """Where one set was found under the root and its image files; `absent` lists the files its list names that do
    not exist, `looked` where it was looked for."""

    spec: ImageSet
    where: Path | None
    paths: list[Path] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    looked: list[Path] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.where is not None


def benchmark(name: str) -> Benchmark:
    """The protocol `name`; BenchmarkError naming the known ones otherwise."""
    if name not in BENCHMARKS:
        raise BenchmarkError(f"--benchmark {name!r}: choose one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def read_imglist(path: Path, data_dir: Path) -> tuple[list[Path], list[str]]:
    """The image paths an OpenOOD imglist names ("relative/path label" per line), resolved under `data_dir`, and
    the lines whose file does not exist."""
    paths: list[Path] = []
    absent: list[str] = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        relative = line.split()[0]
        image = data_dir / relative
        if image.is_file():
            paths.append(image)
        else:
            absent.append(relative)
    return paths, absent


def locate(protocol: Benchmark, root: str | Path) -> dict[str, FoundSet]:
    """Every set of `protocol` under `root`: found (with its image files) or not (with where it was looked for)."""
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"--data-root {root}: no such folder")
    found = {}
    for spec in protocol.sets:
        if spec.imglist:
            listed = root / spec.imglist
            if listed.is_file():
                paths, absent = read_imglist(listed, root / spec.data_dir)
                found[spec.name] = FoundSet(spec, listed, paths, absent, [listed])
            else:
                found[spec.name] = FoundSet(spec, None, looked=[listed])
            continue
        looked = [root / folder for folder in spec.folders]
        where = next((folder for folder in looked if folder.is_dir()), None)
        found[spec.name] = FoundSet(spec, where, find_images(where) if where else [], looked=looked)
    return found


def unreadable(paths: list[Path]) -> list[str]:
    """The message of every file in `paths` that does not decode as an image (the same loader evaluation uses)."""
    problems = []
    for path in paths:
        try:
            load_image(path)
        except ImageError as exc:
            problems.append(str(exc))
    return problems


def lists_digest(found: Mapping[str, Sequence[Path]], root: str | Path) -> str:
    """sha256 over every set's name and its image files relative to the root, in order: the same digest means the
    same images were evaluated, so a run can be repeated."""
    digest = hashlib.sha256()
    for name, paths in found.items():
        digest.update(f"{name}\n".encode())
        for path in paths:
            digest.update(f"{path.relative_to(root) if path.is_relative_to(root) else path}\n".encode())
    return digest.hexdigest()


def usable(protocol: Benchmark, root: str | Path) -> dict[str, FoundSet]:
    """Every set of `protocol` under `root` (the ID set first), each with images to evaluate; BenchmarkError naming
    every set that is missing or empty and pointing to `synood data check`."""
    found = locate(protocol, root)
    empty = [name for name, item in found.items() if not item.paths]
    if empty:
        raise BenchmarkError(f"{protocol.name} under {root}: no images for {', '.join(empty)}; "
                             f"`synood data check --benchmark {protocol.name} --data-root {root}` says where each "
                             "was looked for and how to obtain it")
    return found
