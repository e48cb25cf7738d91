"""The fine-tuned detector as one small safetensors file, and the training state a run resumes from.

The detector file holds the projection's weights, the indices of the tuned negatives in the mined
list and their tuned text features; its metadata names the encoder and the negative list it was
trained against, so it is never applied to features of another space, and what the projection reads
(raw or unit-norm image embeddings; files without that key were trained on unit-norm ones).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor

from synood.method.finetune import Projection
from synood.data.storage import save_tensors
from synood.errors import UserError

FORMAT = "synood-detector/1"
STATE_FORMAT = "synood-training-state/1"


class CheckpointError(UserError, ValueError):
    """A detector or state file that cannot be used; the message names the file and the reason."""


def negatives_digest(words: Sequence[str]) -> str:
    """sha256 of the mined negative labels in order: a detector applies only to the list it was tuned on."""
    return hashlib.sha256("\n".join(words).encode()).hexdigest()


@dataclass
class TunedDetector:
    """The trainable parts of a fine-tuned detector and what they were trained against; it scores as
    `synood.method.scorers.SynOOD` (METHOD.md section 6)."""

    projection: Projection | None
    negative_index: Tensor  # (K,) positions of the tuned negatives in the mined list
    negative_features: Tensor | None  # (K, D) their tuned text features, or None when stage 3 did not run
    meta: dict = field(default_factory=dict)  # encoder identity, negatives digest, run id, training config

    def check(self, encoder_identity: str, words: Sequence[str]) -> None:
        """CheckpointError unless this detector was trained with this encoder and this negative list."""
        if self.meta.get("encoder") != encoder_identity:
            raise CheckpointError(f"this detector was tuned on features of {self.meta.get('encoder')!r}, "
                                  f"not of the loaded encoder {encoder_identity!r}")
        if self.meta.get("negatives_digest") != negatives_digest(words):
            raise CheckpointError(f"this detector was tuned on another negative-label list "
                                  f"({self.meta.get('negatives_count')} labels) than the one mined now "
                                  f"({len(words)}): check neglabel settings and the encoder")

    def tensors(self) -> dict[str, Tensor]:
        """Every tensor of the detector by its name in the file."""
        found = {f"projection.{k}": v.detach().contiguous() for k, v in (self.projection.state_dict().items()
                                                                         if self.projection else ())}
        found["negatives.index"] = self.negative_index.long().contiguous()
        if self.negative_features is not None:
            found["negatives.features"] = self.negative_features.detach().float().contiguous()
        return found


def save_detector(path: str | Path, detector: TunedDetector) -> None:
    """Write the detector file atomically (a reader never sees half of it)."""
    meta = {**detector.meta, **({"projection_input": detector.projection.input} if detector.projection else {})}
    save_tensors(path, detector.tensors(), {"format": FORMAT, "meta": json.dumps(meta)})


def _metadata(path: Path, expected: str) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if metadata.get("format") != expected:
        raise CheckpointError(f"{path}: not a {expected} file (format {metadata.get('format')!r})")
    return metadata


def load_detector(path: str | Path) -> TunedDetector:
    """Read a detector file; CheckpointError names the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such detector file")
    metadata = _metadata(path, FORMAT)
    try:
        tensors = load_file(str(path))
        meta = json.loads(metadata.get("meta", "{}"))
        index = tensors["negatives.index"]
        projection_state = {k.removeprefix("projection."): v for k, v in tensors.items() if k.startswith("projection.")}
        projection = None
        if projection_state:
            projection = Projection(projection_state["linear.weight"].shape[0], meta.get("projection_input", "unit"))
            projection.load_state_dict(projection_state)
            projection.eval().requires_grad_(False)
        negatives = tensors.get("negatives.features")
        if negatives is not None and negatives.shape[0] != index.shape[0]:
            raise ValueError(f"{negatives.shape[0]} tuned features for {index.shape[0]} indices")
    except (SafetensorError, KeyError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: damaged detector file ({type(exc).__name__}: {exc})") from None
    return TunedDetector(projection, index, negatives, meta)


def save_state(path: str | Path, tensors: dict[str, Tensor], optimizers: Sequence[torch.optim.Optimizer],
               meta: dict) -> None:
    """A resumable training state: parameters, every optimiser's state and `meta`, atomically."""
    payload = {f"param.{k}": v.detach().cpu().contiguous() for k, v in tensors.items()}
    groups = []
    for i, optimizer in enumerate(optimizers):
        state = optimizer.state_dict()
        groups.append(state["param_groups"])
        for index, values in state["state"].items():
            for key, value in values.items():
                if isinstance(value, Tensor):
                    payload[f"optim.{i}.{index}.{key}"] = value.detach().cpu().contiguous()
    save_tensors(path, payload, {"format": STATE_FORMAT, "meta": json.dumps(meta), "groups": json.dumps(groups)})


def load_state(path: str | Path) -> tuple[dict[str, Tensor], list[dict], dict]:
    """(parameters, optimiser state dicts, meta) of a state file; CheckpointError when it is damaged."""
    path = Path(path)
    metadata = _metadata(path, STATE_FORMAT)
    try:
        payload = load_file(str(path))
        meta = json.loads(metadata["meta"])
        groups = json.loads(metadata["groups"])
    except (SafetensorError, KeyError, json.JSONDecodeError, OSError) as exc:
        raise CheckpointError(f"{path}: damaged training state ({type(exc).__name__}: {exc})") from None
    params = {k.removeprefix("param."): v for k, v in payload.items() if k.startswith("param.")}
    optimizers = [{"state": {}, "param_groups": g} for g in groups]
    for key, value in payload.items():
        if key.startswith("optim."):
            _, i, index, name = key.split(".", 3)
            optimizers[int(i)]["state"].setdefault(int(index), {})[name] = value
    return params, optimizers, meta
