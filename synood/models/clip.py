"""The "open_clip" encoder family: CLIP models built by open_clip's own factory, real or tiny.

Loading never touches the network: weights come from a local file or the local Hugging Face
cache only. `download` fills that cache through open_clip's own download path.
"""
from __future__ import annotations

import functools

import json
from pathlib import Path
from typing import Any, Sequence

import open_clip
import torch
import torch.nn.functional as F
from huggingface_hub import hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError
from open_clip.pretrained import download_pretrained_from_hf, get_pretrained_cfg
from open_clip.transformer import text_global_pool
from PIL import Image

from synood.runtime import RANDOM_INIT_SEED, pick_dtype, seeded_init
from synood.data.textcache import Progress, cached_text_features
from synood.models import sources
from synood.models.interfaces import ComponentInfo, count_parameters
from synood.models.suites import OPEN_CLIP_FILES, ComponentSpec, ModelUnavailableError, open_clip_repo, weights_only

CONFIG_DIR = Path(__file__).parent / "configs"
HUB_PREFIX = "hf-hub:"
HUB_CONFIG = "open_clip_config.json"
PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")
RAW_TEXT_CACHE = "raw"  # appended to the identity keying cached text features: they are kept before L2 normalisation

open_clip.add_model_config(CONFIG_DIR)


class OpenClipEncoder:
    """An open_clip model behind the ImageTextEncoder interface: unit-norm or raw features, no gradients."""

    def __init__(self, model: open_clip.CLIP | open_clip.CustomTextCLIP, transform: Any, tokenizer: Any, embed_dim: int,
                 info: ComponentInfo, device: torch.device, dtype: torch.dtype):
        self.model, self.transform, self.tokenizer = model, transform, tokenizer
        self.embed_dim, self.info, self.device, self.dtype = embed_dim, info, device, dtype

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> (B, 3, S, S) pixels with the weights' own resize, crop and normalisation."""
        return torch.stack([self.transform(image.convert("RGB")) for image in images])

    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """(B, 3, S, S) preprocessed pixels -> (B, D) float32 features, unit-norm or raw."""
        with torch.inference_mode():
            return self.model.encode_image(pixels.to(self.device, self.dtype), normalize=normalize).float()

    def encode_text(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """N strings -> (N, D) float32 features, unit-norm or raw, tokenised by the model's own tokenizer."""
        with torch.inference_mode():
            tokens = self.tokenizer(list(texts)).to(self.device)
            return self.model.encode_text(tokens, normalize=normalize).float()

    def encode_text_fast(self, texts: Sequence[str], bf16: bool = False, normalize: bool = True) -> torch.Tensor:
        """encode_text with the tokens cut to the batch's longest prompt (exact: CLIP's text tower is
        causal, so padding after the end token never reaches it) and optionally bf16 autocast on CPU."""
        model = self.model
        if getattr(model, "attn_mask", None) is None or model.text_pool_type != "argmax":
            return self.encode_text(texts, normalize)  # not CLIP's causal, argmax-pooled text tower: no shortcut
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            tokens = self.tokenizer(list(texts)).to(self.device)
            length = int((tokens != 0).sum(dim=1).max())
            tokens = tokens[:, :length]
            cast = model.transformer.get_cast_dtype()
            x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:length].to(cast)
            x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
            x = text_global_pool(x, tokens, model.text_pool_type)
            x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection
            return F.normalize(x.float(), dim=-1) if normalize else x.float()

    @functools.cached_property
    def identity(self) -> str:
        """Architecture, weights file (with its size and time) or random seed, dtype and open_clip version:
        the key of every feature cached with this encoder."""
        source = Path(self.info.source)
        if not self.info.pretrained:
            stamp = f"random-init-seed-{RANDOM_INIT_SEED}"
        else:
            stamp = f"{source.stat().st_size}:{source.stat().st_mtime_ns}" if source.is_file() else ""
        return f"open_clip:{self.info.architecture}:{source}:{stamp}:{self.dtype}:{open_clip.__version__}"

    def text_features(self, texts: Sequence[str], progress: Progress | None = None,
                      normalize: bool = True) -> torch.Tensor:
        """Many texts, batched and truncated (encode_text_fast), their raw embeddings cached on disk.
        bf16 autocast is off: on the 2-core CPU it was slower (BENCHMARKS.md); `--dtype bfloat16`
        runs the whole model in bf16 where that pays."""
        raw = cached_text_features(f"{self.identity}:{RAW_TEXT_CACHE}", texts,
                                   functools.partial(self.encode_text_fast, normalize=False), progress=progress)
        return F.normalize(raw, dim=-1) if normalize else raw


def load(spec: ComponentSpec, device: torch.device, dtype: str) -> OpenClipEncoder:
    """Build spec.model with open_clip's factory, with weights from a local file or the local HF cache."""
    checkpoint, pretrained_cfg = _resolve(spec)
    with seeded_init(), weights_only(checkpoint):  # a random init is the same in every process, so it can be cached
        model, _, transform = open_clip.create_model_and_transforms(
            spec.model, pretrained=checkpoint, device=device,
            force_quick_gelu=bool(pretrained_cfg.get("quick_gelu")),  # the activation the weights were trained with
            **{f"image_{key}": pretrained_cfg.get(key) for key in PREPROCESS_KEYS})
    torch_dtype = pick_dtype(dtype, device)
    model = model.to(dtype=torch_dtype).eval()
    info = ComponentInfo(
        role="encoder", name=f"open_clip {spec.model} ({spec.weights or 'random init'})",
        architecture=spec.model, source=checkpoint or sources.IN_PROCESS,
        pretrained=spec.weights is not None, parameters=count_parameters(model))
    embed_dim = open_clip.get_model_config(spec.model)["embed_dim"]
    return OpenClipEncoder(model, transform, open_clip.get_tokenizer(spec.model), embed_dim, info,
                           device, torch_dtype)


def download(spec: ComponentSpec) -> str:
    """Fill the standard HF cache with spec's weights through open_clip's own download path."""
    if spec.weights is None or sources.looks_like_path(spec.weights):
        raise ModelUnavailableError(
            f"{spec.describe()} has nothing to download: it is a random init or a local file")
    cache_dir = str(sources.hf_hub_cache())
    try:
        if spec.weights.startswith(HUB_PREFIX):
            repo = spec.weights[len(HUB_PREFIX):]
            download_pretrained_from_hf(repo, filename=HUB_CONFIG, cache_dir=cache_dir)
            return download_pretrained_from_hf(repo, cache_dir=cache_dir)
        cfg = get_pretrained_cfg(spec.model, spec.weights)
        if not cfg.get("hf_hub"):
            raise ModelUnavailableError(f"open_clip has no Hugging Face hub weights {spec.weights!r} "
                                        f"for {spec.model!r}")
        return open_clip.download_pretrained(cfg, cache_dir=cache_dir)
    except ModelUnavailableError:
        raise
    except Exception as exc:
        raise ModelUnavailableError(
            f"could not download {spec.describe()} into the Hugging Face cache {cache_dir}: {exc}") from exc


def _resolve(spec: ComponentSpec) -> tuple[str | None, dict]:
    """The local checkpoint file for spec (None for random init) and its pretrained config."""
    weights = spec.weights
    if weights is None:
        return None, {}
    if sources.looks_like_path(weights):
        path = Path(weights).expanduser().resolve()
        if not path.is_file():
            raise ModelUnavailableError(f"no open_clip checkpoint file at {path}")
        return str(path), {}
    if weights.startswith(HUB_PREFIX):
        repo = weights[len(HUB_PREFIX):]
        return _cached_checkpoint(repo), _hub_preprocess_cfg(repo)
    cfg = get_pretrained_cfg(spec.model, weights)
    if not cfg:
        raise ModelUnavailableError(f"open_clip has no pretrained weights {weights!r} for {spec.model!r}")
    repo = open_clip_repo(spec.model, weights)
    return _cached_checkpoint(repo), cfg


def _cached_checkpoint(repo: str) -> str:
    """The repo's open_clip checkpoint from the local HF cache; never the network."""
    names = OPEN_CLIP_FILES[0]
    for name in names:
        try:
            return hf_hub_download(repo, name, cache_dir=sources.hf_hub_cache(), local_files_only=True)
        except EntryNotFoundError:
            continue
    raise ModelUnavailableError(
        f"{repo} has no {' or '.join(names)} in the local Hugging Face cache {sources.hf_hub_cache()}; "
        "run `synood models download` on a machine with network access, or give a local file")


def _hub_preprocess_cfg(repo: str) -> dict:
    """The preprocess_cfg of the repo's cached open_clip_config.json, or {} when it is not cached."""
    path = try_to_load_from_cache(repo, HUB_CONFIG, cache_dir=sources.hf_hub_cache())
    if not isinstance(path, str):
        return {}
    return json.loads(Path(path).read_text()).get("preprocess_cfg", {})
