"""ID image selection (METHOD.md section 3): per class, the training images with the most file bytes per pixel.

JPEG bytes per pixel is a cheap proxy for detail: busy scenes compress worse, and they give the
context labeller more to list. The ratio is compared as a number (the reference sorted its
string form, which ranks "10.2" below "9.1"); ties break on the image's relative path.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from synood.data import storage
from synood.data.images import ImageError, find_images, open_image

FIELDS = ("id", "source", "class", "class_index", "class_name", "bytes", "width", "height", "bytes_per_pixel")


@dataclass(frozen=True)
class Selected:
    """One chosen training image; `id` (its path relative to the training folder) is its key everywhere after."""

    id: str
    source: str  # absolute path
    cls: str  # the class folder's name
    class_index: int | None  # ImageNet-1k index when the folder is a WNID or a class name, else None
    class_name: str
    bytes: int
    width: int
    height: int
    bytes_per_pixel: float

    def to_dict(self) -> dict:
        record = asdict(self)
        record["class"] = record.pop("cls")
        return {key: record[key] for key in FIELDS}


def imagenet_classes() -> dict[str, tuple[int, str]]:
    """Folder name -> (ImageNet index, CLIP class name), for WNIDs and the class names themselves."""
    from open_clip import IMAGENET_CLASSNAMES

    from synood.data.wordnet import imagenet_wnids

    lookup = {name.lower(): (i, name) for i, name in enumerate(IMAGENET_CLASSNAMES)}
    lookup.update({wnid: (i, IMAGENET_CLASSNAMES[i]) for i, wnid in enumerate(imagenet_wnids())})
    return lookup


def folder_class(folder: str, classes: dict[str, tuple[int, str]]) -> tuple[int, str] | None:
    """The (index, name) of the ImageNet class a folder's name gives: a WNID, or a class name in any case with "_"
    for its spaces ("Egyptian_Mau"); None when it names none. `classes` is imagenet_classes()."""
    return classes.get(folder, classes.get(folder.replace("_", " ").lower()))


def class_folders(train: Path) -> list[tuple[str, list[Path]]]:
    """(class, images) per sub-folder of `train`, sorted; images lying directly in `train` form a class
    named after `train` itself."""
    images = find_images(train)
    groups: dict[str, list[Path]] = {}
    for path in images:
        parts = path.relative_to(train).parts
        groups.setdefault(parts[0] if len(parts) > 1 else train.name, []).append(path)
    return sorted(groups.items())


def select(train: str | os.PathLike, per_class: int,
           progress: Callable[[int, int], None] | None = None) -> tuple[list[Selected], list[str]]:
    """The top `per_class` images of every class by bytes per pixel, and a message per unreadable file."""
    train = Path(train).resolve()
    folders = class_folders(train)
    if not folders:
        raise ImageError(f"{train}: no images found (expected one sub-folder of images per class)")
    classes = imagenet_classes()
    chosen, problems = [], []
    total, done = sum(len(paths) for _, paths in folders), 0
    for cls, paths in folders:
        index, name = folder_class(cls, classes) or (None, cls)
        ranked = []
        for path in paths:
            done += 1
            try:
                ranked.append(measure(path, train, cls, index, name))
            except ImageError as exc:
                problems.append(str(exc))
            if progress:
                progress(done, total)
        ranked.sort(key=lambda item: (-item.bytes_per_pixel, item.id))
        chosen.extend(ranked[:per_class])
    return chosen, problems


def measure(path: Path, train: Path, cls: str, index: int | None, name: str) -> Selected:
    """One image's size on disk and in pixels (its header only: nothing is decoded)."""
    with open_image(path) as image:  # the shared checks: empty, not an image, over the size and pixel limits
        width, height = image.size
    size = path.stat().st_size
    if width * height == 0:
        raise ImageError(f"{path}: has no pixels ({width}x{height})")
    return Selected(path.relative_to(train).as_posix(), str(path), cls, index, name, size, width, height,
                    size / (width * height))


def write_selection(path: str | os.PathLike, items: Sequence[Selected]) -> None:
    """The selection as JSON lines, atomically."""
    storage.write_text(path, "".join(json.dumps(item.to_dict()) + "\n" for item in items))


def read_selection(path: str | os.PathLike) -> list[Selected]:
    """A selection file written by `write_selection` (or by hand); ImageError names a bad line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read the selection ({exc.strerror or exc})") from None
    items, seen = [], set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            item = Selected(str(record["id"]), str(record["source"]), str(record["class"]), record.get("class_index"),
                            str(record.get("class_name", record["class"])), int(record.get("bytes", 0)),
                            int(record.get("width", 0)), int(record.get("height", 0)),
                            float(record.get("bytes_per_pixel", 0.0)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ImageError(f"{path}, line {number}: not a selection record ({type(exc).__name__}: {exc})") from None
        if item.id in seen:
            raise ImageError(f"{path}, line {number}: {item.id} is listed twice")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise ImageError(f"{path}: the selection is empty")
    return items
