"""Browse a generation's manifest: ID image / synthetic image pairs, filtered, sorted, paged, with cached thumbnails.

`synood generate` writes `manifest.jsonl` (one JSON object per pair) beside the synthetic images. Reading it is
cached in memory by (path, size, mtime), so re-filtering 10k pairs costs no I/O; thumbnails are built only for the
page being shown and cached on disk, keyed by both images' paths, sizes and mtimes. Torch-free: the app imports this
at start-up, and PIL loads only when a thumbnail is made.

The image functions take an optional `inside` test (the app's `DataRoots.contains`): an image path it rejects is
never opened (a manifest may name any path) and shows as a placeholder saying it lies outside the data roots.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from synood.config import cache_home
from synood.data.manifest import MANIFEST
from synood.data.storage import atomic_path, intact_jpeg

if TYPE_CHECKING:
    from PIL import Image

THUMBNAIL_HEIGHT = 160
_THUMBNAIL_VERSION = "1"  # bump when the composite's look changes, so old cached files are not reused
_TEXT_FIELDS = ("id", "source", "class", "class_name", "image", "prompt", "negative_label",
                "predicted_before", "predicted_after", "generator", "classifier")
_NUMBER_FIELDS = ("energy_before", "energy_after", "id_score_before", "id_score_after", "negative_similarity")
_MANIFEST_CACHE_SIZE = 8
Inside = Callable[[Path], bool]


class PairsError(ValueError):
    """A manifest that cannot be browsed; the message names the file and says why."""


@dataclass(frozen=True)
class Iteration:
    """One step of the energy-guided noise optimisation."""

    index: int
    loss: float | None
    energy: float | None
    id_score: float | None
    predicted: int | str | None


@dataclass(frozen=True)
class Pair:
    """One manifest line: an ID (source) image and the synthetic image made from it."""

    id: str
    source: Path
    image: Path  # absolute: the manifest stores it relative to its own folder
    class_id: str  # the class folder's name, the manifest's "class"
    class_index: int | None
    class_name: str
    context: tuple[str, ...]
    prompt: str
    seed: int | None
    iterations: tuple[Iteration, ...]
    energy_before: float
    energy_after: float
    id_score_before: float
    id_score_after: float
    negative_label: str
    negative_similarity: float
    predicted_before: str
    predicted_after: str
    generator: str
    classifier: str

    @property
    def energy_change(self) -> float:
        """E(synthetic) - E(source): positive when the optimisation pushed the image toward OOD."""
        return self.energy_after - self.energy_before


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest: its valid pairs in file order, and how many lines did not parse."""

    path: Path
    pairs: tuple[Pair, ...]
    skipped: int
    by_id: dict[str, Pair] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.by_id.update((pair.id, pair) for pair in self.pairs)  # a repeated id: the later line wins

    def get(self, pair_id: str) -> Pair:
        """The pair with this id; PairsError if there is none."""
        try:
            return self.by_id[pair_id]
        except KeyError:
            raise PairsError(f"{self.path}: no pair with id {pair_id!r}") from None

    def classes(self) -> list[tuple[str, str]]:
        """(class_id, class_name) of every class present, sorted by name."""
        found = {pair.class_id: pair.class_name for pair in self.pairs}
        return sorted(found.items(), key=lambda item: (item[1].lower(), item[0]))

    def energy_range(self) -> tuple[float, float]:
        """The smallest and largest energy_after in the manifest."""
        energies = [pair.energy_after for pair in self.pairs]
        return min(energies), max(energies)


@dataclass(frozen=True)
class Page:
    """One page of a filtered, sorted list of pairs."""

    pairs: tuple[Pair, ...]
    number: int  # 1-based, clamped to the pages that exist
    count: int  # pages in all (at least 1)
    total: int  # pairs matching the filters


def _number(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} is not a finite number")
    return float(value)


def _optional_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _iteration(step: dict, position: int) -> Iteration:
    index = _optional_int(step.get("index"))
    return Iteration(index=position if index is None else index, loss=_optional_number(step.get("loss")),
                     energy=_optional_number(step.get("energy")), id_score=_optional_number(step.get("id_score")),
                     predicted=step.get("predicted"))


def parse_line(line: str | bytes, folder: Path) -> Pair:
    """One manifest line as a Pair (`image` resolved against `folder`); ValueError if it is not a valid record."""
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    for key in _TEXT_FIELDS:
        if not isinstance(record.get(key), str):
            raise ValueError(f"{key} is missing or not text")
    numbers = {key: _number(record.get(key), key) for key in _NUMBER_FIELDS}
    context, iterations = record.get("context"), record.get("iterations")
    if not isinstance(context, list) or not isinstance(iterations, list):
        raise ValueError("context or iterations is not a list")
    return Pair(
        id=record["id"], source=Path(record["source"]), image=folder / record["image"], class_id=record["class"],
        class_index=_optional_int(record.get("class_index")), class_name=record["class_name"],
        context=tuple(str(label) for label in context), prompt=record["prompt"], seed=_optional_int(record.get("seed")),
        iterations=tuple(_iteration(step, i) for i, step in enumerate(iterations) if isinstance(step, dict)),
        negative_label=record["negative_label"], predicted_before=record["predicted_before"],
        predicted_after=record["predicted_after"], generator=record["generator"], classifier=record["classifier"],
        **numbers)


def manifest_path(path: str | os.PathLike) -> Path:
    """The manifest file for a generation folder or a manifest file; PairsError if neither exists."""
    text = str(path).strip()
    if not text:
        raise PairsError("Give a generation folder or its manifest.jsonl.")
    path = Path(text).expanduser().resolve()
    if path.is_dir():
        manifest = path / MANIFEST
        if not manifest.is_file():
            raise PairsError(f"{path}: no {MANIFEST} in this folder (is it a generation folder?)")
        return manifest
    if not path.exists():
        raise PairsError(f"{path}: no such file or folder")
    return path


def parse_manifest(path: Path) -> Manifest:
    """Read a manifest file; lines that do not parse (a torn last line, say) are skipped and counted."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PairsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    pairs, skipped = [], 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            pairs.append(parse_line(line, path.parent))
        except ValueError:  # json's errors, bad UTF-8 and missing or mistyped fields all are
            skipped += 1
    if not pairs:
        why = f"none of its {skipped:,} lines is a valid pair record" if skipped else "the file is empty"
        raise PairsError(f"{path}: nothing to browse, {why}")
    return Manifest(path, tuple(pairs), skipped)


_manifests: OrderedDict[Path, tuple[tuple[int, int], Manifest]] = OrderedDict()
_manifests_lock = threading.Lock()


def load_manifest(path: str | os.PathLike) -> Manifest:
    """The manifest for a generation folder or manifest file, parsed once per (path, size, mtime) and kept in memory."""
    manifest = manifest_path(path)
    try:
        stat = manifest.stat()
    except OSError as exc:
        raise PairsError(f"{manifest}: cannot read ({exc.strerror or exc})") from None
    stamp = (stat.st_size, stat.st_mtime_ns)
    with _manifests_lock:
        cached = _manifests.get(manifest)
        if cached and cached[0] == stamp:
            _manifests.move_to_end(manifest)
            return cached[1]
    parsed = parse_manifest(manifest)  # outside the lock: a slow parse never blocks other manifests
    with _manifests_lock:
        _manifests[manifest] = (stamp, parsed)
        _manifests.move_to_end(manifest)
        while len(_manifests) > _MANIFEST_CACHE_SIZE:
            _manifests.popitem(last=False)
    return parsed


def matches_label(pair: Pair, needle: str) -> bool:
    """Whether `needle` (already lower-case) is in the negative label, the class name or a context label."""
    return (needle in pair.negative_label.lower() or needle in pair.class_name.lower()
            or any(needle in label.lower() for label in pair.context))


def filter_pairs(pairs: Iterable[Pair], class_id: str | None = None, energy_min: float | None = None,
                 energy_max: float | None = None, label: str = "") -> list[Pair]:
    """Pairs of one class (exact), with energy_after in [min, max], whose labels contain `label` (any case)."""
    needle = label.strip().lower()
    return [pair for pair in pairs
            if (not class_id or pair.class_id == class_id)
            and (energy_min is None or pair.energy_after >= energy_min)
            and (energy_max is None or pair.energy_after <= energy_max)
            and (not needle or matches_label(pair, needle))]


SORTS: dict[str, Callable[[Pair], object] | None] = {
    "manifest": None,
    "energy_after": lambda pair: pair.energy_after,
    "energy_change": lambda pair: pair.energy_change,
    "id_score_after": lambda pair: pair.id_score_after,
    "class": lambda pair: (pair.class_name.lower(), pair.class_id),
    "negative_label": lambda pair: pair.negative_label.lower(),
}


def sort_pairs(pairs: Iterable[Pair], by: str = "manifest", descending: bool = False) -> list[Pair]:
    """Pairs sorted by one of SORTS (ties keep manifest order); "manifest" keeps (or reverses) file order."""
    if by not in SORTS:
        raise PairsError(f"unknown sort {by!r}; choose one of: {', '.join(SORTS)}")
    key = SORTS[by]
    if key is None:
        return list(pairs)[::-1] if descending else list(pairs)
    return sorted(pairs, key=key, reverse=descending)


def paginate(pairs: Sequence[Pair], number: int, size: int) -> Page:
    """Page `number` (1-based, clamped into range) of `size` pairs."""
    if size < 1:
        raise PairsError(f"page size must be at least 1, got {size}")
    count = max(1, math.ceil(len(pairs) / size))
    number = min(max(1, number), count)
    start = (number - 1) * size
    return Page(tuple(pairs[start:start + size]), number, count, len(pairs))


def thumbnail_dir() -> Path:
    """Where composite thumbnails are cached: $SYNOOD_HOME/thumbnails (the only folder the app serves from disk)."""
    return cache_home() / "thumbnails"


def _stamp(path: Path, inside: Inside | None = None) -> str:
    if inside is not None and not inside(path):
        return f"{path}|outside"
    try:
        stat = path.stat()
    except OSError:
        return f"{path}|missing"
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"


def thumbnail_key(pair: Pair, height: int = THUMBNAIL_HEIGHT, inside: Inside | None = None) -> str:
    """A hash of both images' absolute paths, sizes and mtimes (or that `inside` rejects them), and the thumbnail
    height: a changed file is a miss, and a thumbnail made where an image was allowed is not reused where it is not."""
    text = "\n".join([_THUMBNAIL_VERSION, _stamp(pair.source.absolute(), inside),
                      _stamp(pair.image.absolute(), inside), str(height)])
    return hashlib.sha256(text.encode()).hexdigest()


def thumbnail_path(pair: Pair, height: int = THUMBNAIL_HEIGHT, inside: Inside | None = None) -> Path:
    """Where the pair's thumbnail is cached (it may not exist yet)."""
    key = thumbnail_key(pair, height, inside)
    return thumbnail_dir() / key[:2] / f"{key}.jpg"


def placeholder(message: str, size: tuple[int, int]) -> Image.Image:
    """A grey tile with `message` written on it, standing in for an image that cannot be shown."""
    from PIL import Image, ImageDraw, ImageFont

    tile = Image.new("RGB", size, (156, 163, 175))
    draw = ImageDraw.Draw(tile)
    font = ImageFont.load_default(size=max(10, size[1] // 12))
    words, lines = message.split(), [""]
    for word in words:  # wrap to the tile's width
        trial = f"{lines[-1]} {word}".strip()
        if lines[-1] and draw.textlength(trial, font=font) > size[0] - 12:
            lines.append(word)
        else:
            lines[-1] = trial
    draw.multiline_text((size[0] / 2, size[1] / 2), "\n".join(lines), fill=(17, 24, 39), font=font,
                        anchor="mm", align="center")
    return tile


def pair_image(path: Path, what: str, inside: Inside | None = None) -> Image.Image:
    """The image at `path` as RGB, or a placeholder tile saying it is outside the data roots, missing or unreadable."""
    from synood.data.images import ImageError, load_image

    if inside is not None and not inside(path):
        return placeholder(f"{what} outside the data roots", (512, 512))
    if not path.exists():
        return placeholder(f"{what} missing", (512, 512))
    try:
        return load_image(path)
    except ImageError:
        return placeholder(f"{what} unreadable", (512, 512))


def composite(pair: Pair, height: int = THUMBNAIL_HEIGHT, inside: Inside | None = None) -> Image.Image:
    """"source | synthetic": each image fitted into a height x height square, side by side with a small gap."""
    from PIL import Image, ImageOps

    gap = max(2, height // 40)
    canvas = Image.new("RGB", (2 * height + gap, height), "white")
    for slot, (path, what) in enumerate(((pair.source, "source image"), (pair.image, "synthetic image"))):
        fitted = ImageOps.contain(pair_image(path, what, inside), (height, height))
        left = slot * (height + gap) + (height - fitted.width) // 2
        canvas.paste(fitted, (left, (height - fitted.height) // 2))
    return canvas


def thumbnail(pair: Pair, height: int = THUMBNAIL_HEIGHT, inside: Inside | None = None) -> Path:
    """The pair's composite JPEG, built and cached atomically on a miss; never raises for a bad image."""
    path = thumbnail_path(pair, height, inside)
    if not intact_jpeg(path):  # a miss, or a damaged file: rebuilt
        image = composite(pair, height, inside)
        with atomic_path(path) as tmp:
            image.save(tmp, "JPEG", quality=85)
    return path


def thumbnails(pairs: Sequence[Pair], height: int = THUMBNAIL_HEIGHT, inside: Inside | None = None) -> list[Path]:
    """Thumbnails for one page of pairs; only the misses are built, in parallel (PIL releases the GIL)."""
    paths = [thumbnail_path(pair, height, inside) for pair in pairs]
    missing = [pair for pair, path in zip(pairs, paths) if not intact_jpeg(path)]
    if missing:
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(lambda pair: thumbnail(pair, height, inside), missing))
    return paths
