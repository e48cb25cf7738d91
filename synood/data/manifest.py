"""A generation folder's manifest, written by generation and read by the app, the CLI and training.

Writing (`Manifest`): each process appends finished items to its own `parts/rank-N.jsonl`, one fsynced line per
item, so a crash can tear at most the line being written; that torn tail is cut before the next append and
skipped by readers. `merge` folds every part into `manifest.jsonl` (atomically, in selection order, first record
of an id wins) under a file lock, so processes finishing at different times never lose each other's lines and an
id is never listed twice.

Reading (`load_manifest` -> `ParsedManifest`): `manifest.jsonl` as typed ID image / synthetic image pairs, cached
in memory by (path, size, mtime), so re-filtering 10k pairs costs no I/O; `filter_pairs`, `sort_pairs` and
`paginate` serve the Synthetic pairs tab. Torch-free: the app imports this at start-up.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

from synood.data import storage
from synood.errors import UserError

MANIFEST = "manifest.jsonl"
SETTINGS = "generation.json"
_TEXT_FIELDS = ("id", "source", "class", "class_name", "image", "prompt", "negative_label",
                "predicted_before", "predicted_after", "generator", "classifier")
_NUMBER_FIELDS = ("energy_before", "energy_after", "id_score_before", "id_score_after", "negative_similarity")
_MANIFEST_CACHE_SIZE = 8


class Manifest:
    """The manifest of one generation folder, as generation writes it (part files, then the merged file)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST
        self.parts = self.folder / "parts"

    def part(self, rank: int) -> Path:
        return self.parts / f"rank-{rank}.jsonl"

    def records(self) -> list[dict]:
        """Every complete record in the merged file and the parts, first of each id only."""
        records, seen = [], set()
        for path in [self.path, *sorted(self.parts.glob("rank-*.jsonl"))]:
            for record in read_lines(path):
                if record["id"] not in seen:
                    seen.add(record["id"])
                    records.append(record)
        return records

    def done(self) -> set[str]:
        """The ids already generated."""
        return {record["id"] for record in self.records()}

    def append(self, rank: int, record: dict) -> None:
        """Add one finished item to this process's part file, durably."""
        path = self.part(rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record) + "\n").encode()
        with open(path, "ab+") as f:
            cut_torn_tail(f)
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def merge(self, order: Sequence[str], rank: int | None = None) -> int:
        """Write every record so far to manifest.jsonl in `order` (ids not in it last) and drop
        `rank`'s part, whose lines are now merged; the number of records."""
        with self.lock():
            records = self.records()
            position = {item: i for i, item in enumerate(order)}
            records.sort(key=lambda r: position.get(r["id"], len(position)))
            storage.write_text(self.path, "".join(json.dumps(r) + "\n" for r in records))
            if rank is not None:
                self.part(rank).unlink(missing_ok=True)
                if self.parts.is_dir() and not any(self.parts.iterdir()):
                    self.parts.rmdir()
            return len(records)

    @contextmanager
    def lock(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".merge.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def read_lines(path: Path) -> Iterator[dict]:
    """The JSON records of a JSON-lines file; a torn or foreign line is skipped, a missing file is empty."""
    try:
        with open(path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    return  # the tail of a write cut short by a crash
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("id"), str):
                    yield record
    except FileNotFoundError:
        return


def cut_torn_tail(f: BinaryIO) -> None:
    """Truncate an append-mode binary file after its last newline (a crash may have left half a line)."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return
    block, end = 65536, size
    while end > 0:
        start = max(0, end - block)
        f.seek(start)
        chunk = f.read(end - start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            f.truncate(start + cut + 1)
            return
        end = start
    f.truncate(0)


class PairsError(UserError, ValueError):
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
class ParsedManifest:
    """A manifest read for browsing: its valid pairs in file order, and how many lines did not parse."""

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


def parse_manifest(path: Path) -> ParsedManifest:
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
    return ParsedManifest(path, tuple(pairs), skipped)


_manifests: OrderedDict[Path, tuple[tuple[int, int], ParsedManifest]] = OrderedDict()
_manifests_lock = threading.Lock()


def load_manifest(path: str | os.PathLike) -> ParsedManifest:
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


SORTS: dict[str, Callable[[Pair], Any] | None] = {
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
