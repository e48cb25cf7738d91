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

from synood.data.features import Progress, cache_folder, cached_rows

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
    """(B, classes) logits of PIL images, one image at a time (each keeps its own aspect ratio)."""
    with torch.no_grad():
        return torch.cat([classifier.logits(classifier.to_tensor(picture)[None]).float().cpu()
                          for picture in pictures])


def classifier_logits(classifier: Any, paths: Sequence[str | Path], batch_size: int = 32,
                      progress: Progress | None = None, root: Path | None = None) -> LogitSet:
    """(N, classes) logits of `paths` under `classifier`, running it only on images the cache lacks."""
    identity = classifier_identity(classifier)
    kept, cached, problems = cached_rows(cache_folder(identity, root, "classifier-logits", FORMAT), identity,
                                         "logits", paths, lambda pictures: forward(classifier, pictures), batch_size,
                                         progress)
    logits = torch.stack([cached[h] for _, h in kept]) if kept else torch.empty(0, len(classifier.class_names))
    return LogitSet([p for p, _ in kept], logits, problems, [h for _, h in kept])
