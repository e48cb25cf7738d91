"""Image features of a frozen encoder, computed once per image content and kept on disk.

Fine-tuning reads these features every epoch instead of re-running the encoder. The cache is one
folder per encoder identity holding safetensors chunks of (content sha256, feature) rows (`cached_rows`, which
the classifier-logits cache in synood/data/logits.py shares); a chunk
that cannot be read is deleted and its images are encoded again. Features are kept RAW (before L2
normalisation): the authors' projection reads the raw embedding, and its norm is information.
"""
from __future__ import annotations

import contextlib
import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file

from synood import runtime
from synood.data import loading
from synood.config import cache_home
from synood.data.storage import save_tensors

Progress = Callable[[int, int], None]
CHUNK_ROWS = 2048  # features written per chunk: a crash loses at most this much encoding
AUTOCAST = ":autocast"  # joins a model's identity in its cache keys when its passes ran under runtime.autocast
FORMAT = "raw/2"  # part of the folder key: folders of unit-norm features (format 1) are never read as raw


@dataclass
class FeatureSet:
    """The features of the readable images among the paths asked for, in the order asked."""

    paths: list[Path]
    features: torch.Tensor  # (N, D) float32, raw: the encoder's output before L2 normalisation
    problems: list[str] = field(default_factory=list)  # one "path: reason" per skipped file
    hashes: list[str] = field(default_factory=list)  # sha256 of each kept file's bytes

    @property
    def unit(self) -> torch.Tensor:
        """(N, D) the features L2-normalised, as cosine scores use them."""
        return F.normalize(self.features, dim=-1)


def content_hash(path: Path) -> str:
    """sha256 of the file's bytes: an image renamed or copied keeps its features, an edited one does not."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_folder(identity: str, root: Path | None = None, kind: str = "image-features", fmt: str = FORMAT) -> Path:
    """Where the cached rows (`kind`: raw image features, or classifier logits) of one model identity live."""
    key = f"{fmt}:{identity}"
    return (root or cache_home()) / kind / hashlib.sha256(key.encode()).hexdigest()[:32]


def read_cache(folder: Path, key: str = "features") -> dict[str, torch.Tensor]:
    """Every cached row of the folder by content hash; unreadable chunks are removed."""
    found: dict[str, torch.Tensor] = {}
    for chunk in sorted(folder.glob("*.safetensors")):
        try:
            tensors = load_file(str(chunk))
            hashes, rows = tensors["hashes"], tensors[key]
            if hashes.shape != (len(rows), 32) or rows.ndim != 2:
                raise ValueError("shapes do not match")
        except (SafetensorError, KeyError, OSError, ValueError):
            chunk.unlink(missing_ok=True)
            continue
        found.update(zip((bytes(row).hex() for row in hashes.tolist()), rows))
    return found


def write_chunk(folder: Path, hashes: Sequence[str], rows: torch.Tensor, identity: str, key: str = "features") -> None:
    """Append one chunk of new rows, atomically, under a fresh name (writers never collide)."""
    digests = torch.tensor([list(bytes.fromhex(h)) for h in hashes], dtype=torch.uint8)
    save_tensors(folder / f"{uuid.uuid4().hex}.safetensors", {"hashes": digests, key: rows.contiguous()},
                 {"identity": identity})


def cached_rows(folder: Path, identity: str, key: str, paths: Sequence[str | Path], prepare: loading.Prepare,
                compute: Callable[[list[torch.Tensor]], torch.Tensor], batch_size: int = 32,
                progress: Progress | None = None, workers: int | None = None,
                pin: bool = False) -> tuple[list[tuple[Path, str]], dict[str, torch.Tensor], list[str]]:
    """((path, content hash) of each readable image in order, rows by hash, problems): only images the cache in
    `folder` lacks are decoded and `prepare`d (in `workers` processes, loading.batches) and `compute`d (on the
    batch's tensors stacked by shape, rows returned group after group), each distinct content once; new rows are
    written back in chunks."""
    cached = read_cache(folder, key)
    kept: list[tuple[Path, str]] = []
    problems: list[str] = []
    for path in map(Path, paths):
        try:
            kept.append((path, content_hash(path)))
        except OSError as exc:
            problems.append(f"{path}: cannot read ({exc.strerror or exc})")
    missing = list(dict.fromkeys(h for _, h in kept if h not in cached))
    first_path = {h: p for p, h in reversed(kept)}
    pending_hashes: list[str] = []
    pending: list[torch.Tensor] = []
    done = len(kept) - len(missing)
    if progress:
        progress(done, len(kept))
    loaded = loading.batches([first_path[h] for h in missing], prepare, batch_size, workers, pin)
    with contextlib.closing(loaded):
        for start, batch in zip(range(0, len(missing), batch_size), loaded):
            batch_hashes = missing[start:start + batch_size]
            problems += [batch.errors[position] for position in sorted(batch.errors)]
            if batch.groups:
                rows = compute(batch.groups)
                computed = [batch_hashes[position] for position in batch.order]
                cached.update(zip(computed, rows))
                pending_hashes += computed
                pending.append(rows)
            if len(pending_hashes) >= CHUNK_ROWS:
                write_chunk(folder, pending_hashes, torch.cat(pending), identity, key)
                pending_hashes, pending = [], []
            done += len(batch_hashes)
            if progress:
                progress(done, len(kept))
    if pending_hashes:
        write_chunk(folder, pending_hashes, torch.cat(pending), identity, key)
    return [(p, h) for p, h in kept if h in cached], cached, problems


def image_features(encoder, paths: Sequence[str | Path], batch_size: int = 32, progress: Progress | None = None,
                   root: Path | None = None, workers: int | None = None, autocast: bool = False) -> FeatureSet:
    """(N, D) raw features of `paths` under `encoder`, encoding only images the cache lacks; `workers` processes
    decode and preprocess them (None: loading.default_workers(); 0: this process); `autocast` encodes in mixed
    precision (runtime.autocast), cached apart from the float32 features.

    Unreadable files are skipped and named in `problems`; equal bytes are encoded once.
    """
    def prepare(picture: Image.Image) -> torch.Tensor:
        return encoder.preprocess([picture])[0]

    device = getattr(encoder, "device", None)

    def encode(groups: list[torch.Tensor]) -> torch.Tensor:
        with runtime.autocast(device, autocast):
            return torch.cat([encoder.encode_image(pixels, normalize=False).float().cpu() for pixels in groups])

    identity = encoder.identity + (AUTOCAST if autocast else "")
    kept, cached, problems = cached_rows(cache_folder(identity, root), identity, "features", paths, prepare, encode,
                                         batch_size, progress, workers, loading.pinning(device))
    dim = next(iter(cached.values())).shape[0] if cached else encoder.embed_dim
    features = torch.stack([cached[h] for _, h in kept]) if kept else torch.empty(0, dim)
    return FeatureSet([p for p, _ in kept], features, problems, [h for _, h in kept])
