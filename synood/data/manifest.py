"""A generation folder's manifest: append-only part files while processes work, one merged file after.

Each process appends finished items to its own `parts/rank-N.jsonl`, one fsynced line per item, so
a crash can tear at most the line being written; that torn tail is cut before the next append and
skipped by readers. `merge` folds every part into `manifest.jsonl` (atomically, in selection order,
first record of an id wins) under a file lock, so processes finishing at different times never
lose each other's lines and an id is never listed twice.
"""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from synood.data import storage

MANIFEST = "manifest.jsonl"
SETTINGS = "generation.json"


class Manifest:
    """The manifest of one generation folder."""

    def __init__(self, folder: str | os.PathLike):
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


def cut_torn_tail(f) -> None:
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
