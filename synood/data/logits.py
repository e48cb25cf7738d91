"""Classifier logits, computed once per image content and kept on disk beside the image features.

The same chunked content-keyed cache as synood/data/features.py, in a folder per classifier identity: a
second evaluation of the same images runs no classifier pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from synood.data import loading
from synood import runtime
from synood.data.features import AUTOCAST, Progress, cache_folder, cached_rows

FORMAT = "logits/1"  # part of the folder key


@dataclass
class LogitSet:
    """The logits of the readable images among the paths asked for, in the order asked."""

    paths: list[Path]
    logits: torch.Tensor  # (N, classes) float32
    problems: list[str] = field(default_factory=list)  # one "path: reason" per skipped file
    hashes: list[str] = field(default_factory=list)  # sha256 of each kept file's bytes


def classifier_identity(classifier: Any) -> str:
    """What a classifier's logits depend on: its name, architecture and weights (file size and time), dtype and
    torch version; random inits are seeded (synood.runtime.seeded_init), so their identity is their architecture."""
    info = classifier.info
    source = Path(info.source)
    stamp = f"{source.stat().st_size}:{source.stat().st_mtime_ns}" if info.pretrained and source.is_file() else ""
    return (f"{info.name}:{info.architecture}:{info.source}:{stamp}:{info.pretrained}:"
            f"{getattr(classifier, 'dtype', '')}:{torch.__version__}")


def forward(classifier: Any, pictures: Sequence[Image.Image]) -> torch.Tensor:
    """(B, classes) logits of PIL images in order; each keeps its own aspect ratio (images of one size pass together)."""
    batch = loading.group_rows([(classifier.to_tensor(picture), "") for picture in pictures])
    return forward_groups(classifier, batch.groups)[torch.tensor(batch.order).argsort()]


def forward_groups(classifier: Any, groups: Sequence[torch.Tensor]) -> torch.Tensor:
    """(B, classes) logits of images given as stacks of one size each (classifier.to_tensor's (3, H, W) output),
    rows group after group. Each image keeps its own aspect ratio: a classifier with `batch_logits` (an
    ImageNetClassifier) views each group and passes all the views at once, any other gets one pass per group."""
    with torch.no_grad():
        batched = getattr(classifier, "batch_logits", None)
        if batched is not None:
            return batched(groups).float().cpu()
        return torch.cat([classifier.logits(group).float().cpu() for group in groups])


def classifier_logits(classifier: Any, paths: Sequence[str | Path], batch_size: int = 32,
                      progress: Progress | None = None, root: Path | None = None,
                      workers: int | None = None, autocast: bool = False) -> LogitSet:
    """(N, classes) logits of `paths` under `classifier`, running it only on images the cache lacks; `workers`
    processes decode them (None: loading.default_workers(); 0: this process); `autocast` runs it in mixed
    precision (runtime.autocast), cached apart from the float32 logits."""
    identity = classifier_identity(classifier) + (AUTOCAST if autocast else "")
    device = getattr(classifier, "device", None)

    def compute(groups: list[torch.Tensor]) -> torch.Tensor:
        with runtime.autocast(device, autocast):
            return forward_groups(classifier, groups)

    kept, cached, problems = cached_rows(cache_folder(identity, root, "classifier-logits", FORMAT), identity,
                                         "logits", paths, classifier.to_tensor, compute, batch_size, progress,
                                         workers, loading.pinning(device))
    logits = torch.stack([cached[h] for _, h in kept]) if kept else torch.empty(0, len(classifier.class_names))
    return LogitSet([p for p, _ in kept], logits, problems, [h for _, h in kept])
