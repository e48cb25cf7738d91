"""Atomic writes: a reader (or a crash) never sees half a file, and a failed write keeps the old one."""
from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:  # torch loads on the first tensor save: the app's file writes must not pay for it
    import torch


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """A temporary path beside `path` to write to; on success it replaces `path`, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600: a cache shared between users must stay readable
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def intact_jpeg(path: str | os.PathLike) -> bool:
    """Whether `path` holds a whole JPEG (start and end markers): a cached thumbnail that is not gets rebuilt."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(-2, os.SEEK_END)
            return head == b"\xff\xd8" and f.read(2) == b"\xff\xd9"
    except OSError:  # missing, or shorter than the two markers
        return False


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    """Save tensors as safetensors, atomically."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        try:
            save_file(tensors, tmp, metadata=metadata)
        except SafetensorError as exc:  # its I/O failures (a full disk) become the OSError every caller handles
            code = re.search(r"os error (\d+)", str(exc))
            if code is None:
                raise
            raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from None


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file, atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
