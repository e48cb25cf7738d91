"""Text features computed once and kept on disk, keyed by the model's identity and the exact texts.

Encoding 70k WordNet prompts takes minutes on a CPU; a warm cache reads them in well under a
second. Files are safetensors written atomically; an unreadable or mismatched file is rebuilt.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from synood.config import cache_home
from synood.data.storage import save_tensors

Progress = Callable[[int, int], None]  # (done, total) of one piece of work
StageProgress = Callable[[str, int, int], None]  # (stage, done, total): a named stage of a longer job and its count


def staged(progress: StageProgress | None, stage: str) -> Progress | None:
    """A (done, total) callback that reports as `stage` of a StageProgress (None stays None)."""
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


def cache_key(identity: str, texts: Sequence[str]) -> str:
    """sha256 of the model identity and every text in order: any change gives a new key."""
    digest = hashlib.sha256(identity.encode())
    for text in texts:
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()


def encode_in_batches(encode: Callable[[list[str]], torch.Tensor], texts: Sequence[str], batch_size: int = 256,
                      progress: Progress | None = None) -> torch.Tensor:
    """encode() over batches of similar length (less padding), returned in the original order."""
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    chunks = []
    for start in range(0, len(order), batch_size):
        chunks.append(encode([texts[i] for i in order[start:start + batch_size]]).float().cpu())
        if progress:
            progress(min(start + batch_size, len(order)), len(order))
    features = torch.cat(chunks)
    result = torch.empty_like(features)
    result[torch.tensor(order)] = features
    return result


def cached_text_features(identity: str, texts: Sequence[str], encode: Callable[[list[str]], torch.Tensor],
                         batch_size: int = 256, progress: Progress | None = None,
                         root: Path | None = None) -> torch.Tensor:
    """(N, D) float32 features of `texts`, from the cache when present, else encoded and stored."""
    if not texts:
        raise ValueError("no texts to encode")
    path = (root or cache_home()) / "text-features" / f"{cache_key(identity, texts)}.safetensors"
    cached = _read(path, len(texts))
    if cached is not None:
        if progress:
            progress(len(texts), len(texts))
        return cached
    features = encode_in_batches(encode, texts, batch_size, progress)
    save_tensors(path, {"features": features.contiguous()}, {"identity": identity, "count": str(len(texts))})
    return features


def _read(path: Path, count: int) -> torch.Tensor | None:
    """The cached tensor, or None when missing, unreadable or of the wrong length (then rebuilt)."""
    if not path.is_file():
        return None
    try:
        features = load_file(str(path))["features"]
    except (SafetensorError, KeyError, OSError, ValueError):
        return None
    return features if features.ndim == 2 and len(features) == count else None
