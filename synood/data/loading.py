"""Images decoded and preprocessed in torch DataLoader worker processes, in order, bad files kept as their message.

Workers are forked: they inherit the imported modules, the image limits (images.set_limits) and the preprocessing
callable, so no model is pickled and nothing is imported again (gradio least of all). Without fork, or with
workers=0, the same Dataset runs in this process.
"""
from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generator, Sequence

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from synood.data import images
from synood.errors import UserError

Prepare = Callable[[Image.Image], torch.Tensor]
Row = tuple[torch.Tensor | None, str]  # (preprocessed tensor, "") or (None, the load error's message)
TIMEOUT_S = 600  # per batch from a worker: far above any batch's decoding; only a stuck worker reaches it


class WorkersError(UserError, ValueError):
    """A number of worker processes that cannot be used."""


def default_workers() -> int:
    """Worker processes for decoding on this machine: 0 (in-process) up to 2 usable cores, where measured workers did
    not pay (BENCHMARKS.md, bench/decode.py), else one core less than there are, at most 8; 0 without fork."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if cores <= 2 or "fork" not in multiprocessing.get_all_start_methods():
        return 0
    return min(8, cores - 1)


class ImageTensors(Dataset[Row]):
    """The files at `paths`, each decoded (images.load_image) and preprocessed by `prepare`, or its load error."""

    def __init__(self, paths: Sequence[Path], prepare: Prepare):
        self.paths, self.prepare = list(paths), prepare

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Row:
        try:
            picture = images.load_image(self.paths[index])
        except images.ImageError as exc:
            return None, str(exc)
        return self.prepare(picture), ""


@dataclass
class Batch:
    """One batch of rows: the readable ones stacked by shape (stacking and pinning happen in the workers), the others
    as their load error, each under its position in the batch."""

    groups: list[torch.Tensor]  # (k, ...) the tensors of one shape each
    positions: list[list[int]]  # the position in the batch of each group's rows
    errors: dict[int, str]  # position -> the load error's message

    def pin_memory(self) -> Batch:
        """The DataLoader's hook: the same batch with its tensors in pinned memory."""
        return Batch([group.pin_memory() for group in self.groups], self.positions, self.errors)

    @property
    def order(self) -> list[int]:
        """The position of each row of the groups concatenated (the order a `compute` on the groups returns rows)."""
        return [position for group in self.positions for position in group]


def group_rows(rows: list[Row]) -> Batch:
    """The collate of `batches`: rows of one shape stacked together, in first-seen order; error rows kept."""
    by_shape: dict[tuple[int, ...], tuple[list[int], list[torch.Tensor]]] = {}
    errors = {}
    for position, (tensor, error) in enumerate(rows):
        if tensor is None:
            errors[position] = error
            continue
        positions, tensors = by_shape.setdefault(tuple(tensor.shape), ([], []))
        positions.append(position)
        tensors.append(tensor)
    return Batch([torch.stack(tensors) for _, tensors in by_shape.values()],
                 [positions for positions, _ in by_shape.values()], errors)


def batches(paths: Sequence[Path], prepare: Prepare, batch_size: int, workers: int | None = None,
            pin: bool = False) -> Generator[Batch, None, None]:
    """The rows of `paths`, `batch_size` at a time in order, decoded by `workers` processes (None: default_workers());
    `pin` puts the tensors in pinned memory for a fast copy to CUDA. Close it (contextlib.closing) to stop the workers
    at once when the caller stops early."""
    workers = default_workers() if workers is None else workers
    if workers < 0:
        raise WorkersError(f"workers: {workers} is not a number of worker processes (0 decodes in this process)")
    if "fork" not in multiprocessing.get_all_start_methods():
        workers = 0  # spawned workers would pickle the model and import the caller's main module again
    workers = min(workers, -(-len(paths) // batch_size))  # no worker without a batch to decode (none for no paths)
    loader = DataLoader(ImageTensors(paths, prepare), batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=group_rows, pin_memory=pin, timeout=TIMEOUT_S if workers else 0,
                        multiprocessing_context="fork" if workers else None, persistent_workers=False)
    yield from loader


def pinning(device: object) -> bool:
    """Whether tensors bound for `device` (a model's, None when it does not say) gain from pinned memory: CUDA only."""
    if not torch.cuda.is_available():
        return False
    return device is None or torch.device(str(device)).type == "cuda"
