"""One typed configuration tree. Defaults are the paper's hyperparameters (shared/METHOD.md).

Values come from, in order: these defaults, a YAML file, then `section.field=value` overrides
(the CLI's `--set` and its dedicated flags). Every run record stores `Config.to_dict()`.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Union

import yaml


class ConfigError(ValueError):
    """A configuration value or key that does not fit the tree."""


CHOICES = {  # keys whose value is one of a few conventions; the first is the default
    "models.classifier_resize": ("antialias", "plain"),
    "synthesis.step_rule": ("image", "batch"),
    "projection.input": ("raw", "unit"),
    "projection.schedule": ("epoch", "batch"),
    "negtune.parameter": ("raw", "unit"),
    "negtune.schedule": ("epoch", "batch"),
}


@dataclass
class ModelsConfig:
    """Which model suite runs, and per-component replacements (hub id or local path)."""

    suite: str = "auto"  # auto | paper | tiny | offline
    encoder: str | None = None  # open_clip architecture, e.g. ViT-B-16
    encoder_weights: str | None = None  # open_clip tag (openai), hf-hub:org/repo, or a checkpoint file
    classifier: str | None = None  # torchvision architecture, e.g. resnet50
    classifier_weights: str | None = None  # torchvision weights name (IMAGENET1K_V2) or a .pth/.safetensors file
    generator: str | None = None  # diffusers inpainting repo id or local folder
    labeller: str | None = None  # transformers image-text-to-text repo id or local folder
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    classifier_resize: str = "antialias"  # antialias (torchvision >= 0.17 IMAGENET1K_V2 transforms) | plain (bilinear)


@dataclass
class NegLabelConfig:
    """NegLabel scoring and NegMining (METHOD.md section 1)."""

    noun_template: str = "the nice {}"
    adjective_template: str = "This is a {} photo"
    id_template: str = "the nice {}"
    percentile: float = 95.0
    keep_ratio: float = 0.15
    ngroups: int = 100
    temperature: float = 0.01
    group_seed: int = 0
    prune_csp: bool = False


@dataclass
class SynthesisConfig:
    """Stage 1: near-boundary image synthesis (METHOD.md section 3)."""

    per_class: int = 50
    prompt_template: str = "A photo only remain {}"
    context_max_chars: int = 73
    strength: float = 0.6
    steps: int = 20
    guidance: float = 8.0
    iterations: int = 3
    step_size: float | None = None  # r * rho; None: the generator's own (10 for diffusion, 0.2 for the eraser)
    step_rule: str = "image"  # image (paper: each image moves by r*rho x its gradient) | batch (released code: r*rho / B)
    batch_size: int = 2  # B of step_rule=batch: the released script's batch, whose mean loss scales each step by 1/B
    m_out: float = -5.0
    loss: str = "squared"  # squared | hinge | energy
    gradient: str = "skip"  # skip (dL/dz0 applied to the noise) | full (backpropagate through every UNet step)
    checkpointing: bool = True  # full gradient only: recompute each step in the backward pass to save memory
    seed: int = 0


@dataclass
class ProjectionConfig:
    """Stage 2: image-side projection (METHOD.md section 4)."""

    lr: float = 1e-3
    weight_decay: float = 1e-5
    epochs: int = 3
    batch_size: int = 128
    logit_scale: float = 100.0
    input: str = "raw"  # raw (authors' code: the encoder's output before L2 normalisation) | unit
    schedule: str = "epoch"  # epoch (authors' code: CosineAnnealingLR stepped once per epoch) | batch
    eta_min: float = 1e-5  # the cosine schedule's floor (authors' code: 1e-5 for stage 2)
    seed: int = 0


@dataclass
class NegTuneConfig:
    """Stage 3: learnable negative-label text features (METHOD.md section 5)."""

    lr: float = 2e-3  # the paper's; the authors' code uses 2e-2 (docs/method.md: the step scales with 1/|t|^2)
    momentum: float = 0.9
    weight_decay: float = 1e-5
    epochs: int = 5
    batch_size: int = 128
    logit_scale: float = 100.0
    parameter: str = "raw"  # raw (authors' code: learn encode_text's output, cosine in the loss) | unit
    schedule: str = "epoch"  # epoch (authors' code) | batch
    eta_min: float = 0.0  # the cosine schedule's floor (authors' code: 0 for stage 3)
    use_projection: bool = False
    joint: bool = False
    seed: int = 0


@dataclass
class FinetuneConfig:
    """What stages 2 and 3 train on, and what the tuned detector substitutes at test time (METHOD.md 4-6)."""

    synthetic_images: int | None = None  # m: synthetic images used (None: all; a seeded subset otherwise)
    seed: int = 0  # picks the subset of m synthetic images
    combination: str = "both"  # both | projection | negatives | none: the tuned parts the detector uses
    keep_states: int = 2  # per-epoch training states kept on disk for --resume (the newest ones)


@dataclass
class ImagesConfig:
    """Limits on every image file read (folders, uploads, generation sources); none: no limit."""

    max_file_mb: float | None = 64.0  # bigger files are refused unread (MB = 2**20 bytes)
    max_pixels: int | None = 64_000_000  # width x height, read before decoding (bombs); Pillow's limit too
    max_aspect: float | None = 20.0  # longer side / shorter (resizing 1 x 50,000 to 224 high: 11M wide)


@dataclass
class PathsConfig:
    """Where caches, artifacts and the run database live."""

    home: str = field(default_factory=lambda: str(cache_home()))


def cache_home() -> Path:
    """$SYNOOD_HOME, else ~/.cache/synood: where caches that models compute for themselves live."""
    return Path(os.environ.get("SYNOOD_HOME", "~/.cache/synood")).expanduser()


@dataclass
class Config:
    models: ModelsConfig = field(default_factory=ModelsConfig)
    neglabel: NegLabelConfig = field(default_factory=NegLabelConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    negtune: NegTuneConfig = field(default_factory=NegTuneConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)

    def to_dict(self, *sections: str) -> dict[str, dict[str, Any]]:
        """Every section as plain data, or only the named ones (what a run record depends on)."""
        full = dataclasses.asdict(self)
        return {name: full[name] for name in sections} if sections else full

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML or command-line value to the field's declared type, or say why not."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            number = annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}") from None
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return number
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected text, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported field type {annotation!r}")


def _set(config: Config, key: str, value: Any) -> None:
    section_name, _, field_name = key.partition(".")
    section = getattr(config, section_name, None)
    if not dataclasses.is_dataclass(section) or not field_name:
        sections = ", ".join(f.name for f in dataclasses.fields(Config))
        raise ConfigError(f"unknown config section in {key!r}; sections are: {sections}")
    hints = typing.get_type_hints(type(section))
    if field_name not in hints:
        names = ", ".join(f.name for f in dataclasses.fields(section))
        raise ConfigError(f"unknown key {key!r}; {section_name} has: {names}")
    value = _coerce(value, hints[field_name], key)
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{key}: expected one of {', '.join(CHOICES[key])}, got {value!r}")
    setattr(section, field_name, value)


def apply_overrides(config: Config, overrides: Iterable[str]) -> Config:
    """Apply `section.field=value` strings in order (later ones win)."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not of the form section.field=value")
        _set(config, key.strip(), yaml.safe_load(value) if value.strip() else "")
    return config


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Defaults, then the YAML file at `path` (if any), then `overrides`."""
    config = Config()
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        try:
            apply_mapping(config, data)
        except ConfigError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
    return apply_overrides(config, overrides)


def apply_mapping(config: Config, data: Any) -> Config:
    """Apply {section: {field: value}} (a YAML file, or a run's stored `Config.to_dict()`)."""
    if not isinstance(data, dict):
        raise ConfigError("the configuration must be a mapping of sections")
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"section {section!r} must be a mapping")
        for name, value in values.items():
            _set(config, f"{section}.{name}", value)
    return config
