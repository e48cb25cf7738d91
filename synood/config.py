"""One typed configuration tree. Defaults are the paper's hyperparameters (shared/METHOD.md).

Values come from, in order: these defaults, a YAML file, then `section.field=value` overrides
(the CLI's `--set` and its dedicated flags). Every run record stores `Config.to_dict()`.
Allowed values are declared on the fields (Literal choices, Annotated Ranges) and checked whenever one is set.
"""
from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Union

import yaml
from synood.errors import UserError


# The choice fields' types, named so that code passing a value on (the app's widgets, the generators) says which.
SuiteName = Literal["auto", "paper", "offline", "tiny"]
StepRule = Literal["image", "batch"]
Loss = Literal["squared", "hinge", "energy"]
Gradient = Literal["skip", "full"]  # how a diffusion generator's noise gets its gradient
Embedding = Literal["raw", "unit"]  # what stages 2 and 3 learn on: raw embeddings or unit-norm ones
Schedule = Literal["epoch", "batch"]
Combination = Literal["both", "projection", "negatives", "none"]


class ConfigError(UserError, ValueError):
    """A configuration value or key that does not fit the tree."""


@dataclass(frozen=True)
class Range:
    """The numbers a field allows: at least `min` or above `above`, and at most `max` (None: no such bound)."""

    min: float | None = None
    above: float | None = None
    max: float | None = None

    def allows(self, value: float) -> bool:
        return ((self.min is None or value >= self.min) and (self.above is None or value > self.above)
                and (self.max is None or value <= self.max))

    def describe(self) -> str:
        bounds = [f"at least {self.min:g}" if self.min is not None else "",
                  f"above {self.above:g}" if self.above is not None else "",
                  f"at most {self.max:g}" if self.max is not None else ""]
        return " and ".join(bound for bound in bounds if bound)


@dataclass(frozen=True)
class ByteSize:
    """Marks a text field holding an amount of memory: a number of bytes with an optional unit ("8GB", "512MB")."""


BYTE_UNITS = {"": 1, "B": 1, "KB": 2**10, "KIB": 2**10, "MB": 2**20, "MIB": 2**20, "GB": 2**30, "GIB": 2**30,
              "TB": 2**40, "TIB": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")


def parse_bytes(text: str) -> int:
    """'8GB', '512 MB', '1.5GiB' or '1000000' -> bytes; KB, MB, GB and TB are powers of 1024 (as images' MB)."""
    found = _SIZE.fullmatch(str(text))
    if not found or found[2].upper() not in BYTE_UNITS:
        raise ValueError(f"{text!r} is not an amount of memory; write a number with a unit, e.g. 8GB or 512MB")
    return int(float(found[1]) * BYTE_UNITS[found[2].upper()])


class Section:
    """Base of the config sections: every value set on one (defaults, a file, an override, a flag,
    dataclasses.replace, a stored run) is checked against its field's choices and range here."""

    def __setattr__(self, name: str, value: Any) -> None:
        rule = RULES.get(type(self), {}).get(name)
        if rule is not None:
            rule.check(value)
        object.__setattr__(self, name, value)


@dataclass
class ModelsConfig(Section):
    """Which model suite runs, and per-component replacements (hub id or local path)."""

    suite: SuiteName = "auto"
    encoder: str | None = None  # open_clip architecture, e.g. ViT-B-16
    encoder_weights: str | None = None  # open_clip tag (openai), hf-hub:org/repo, or a checkpoint file
    classifier: str | None = None  # torchvision architecture, e.g. resnet50
    classifier_weights: str | None = None  # torchvision weights name (IMAGENET1K_V2) or a .pth/.safetensors file
    generator: str | None = None  # diffusers inpainting repo id or local folder
    labeller: str | None = None  # transformers image-text-to-text repo id or local folder
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # antialias (torchvision >= 0.17 IMAGENET1K_V2 transforms) | plain (bilinear)
    classifier_resize: Literal["antialias", "plain"] = "antialias"
    # caps the free memory a component must fit in before it loads ("8GB", "512MB"; None: what is free)
    memory_limit: Annotated[str | None, ByteSize()] = None
    offload: bool = False  # on CUDA: generator and labeller weights stay in CPU RAM, moved to the GPU as used


@dataclass
class NegLabelConfig(Section):
    """NegLabel scoring and NegMining (METHOD.md section 1)."""

    noun_template: str = "the nice {}"
    adjective_template: str = "This is a {} photo"
    id_template: str = "the nice {}"
    percentile: Annotated[float, Range(min=0, max=100)] = 95.0
    keep_ratio: Annotated[float, Range(above=0, max=1)] = 0.15
    ngroups: Annotated[int, Range(min=1)] = 100
    temperature: Annotated[float, Range(above=0)] = 0.01
    group_seed: int = 0
    prune_csp: bool = False


@dataclass(frozen=True)
class CSPSettings:
    """CSP's pool (NeurIPS 2024, docs/method.md), as its authors' custom_config/clip-ViT-B16.py and class_names.py
    set it; its percentile and keep ratio are NegLabel's (95, 0.15: NegLabelConfig's values are read)."""

    noun_templates: tuple[str, ...] = (  # ID names and noun candidates: raw features averaged over these
        "a close-up photo of the nice {}.", "a photo with the nice {}.", "a good photo with the nice {}.",
        "a photo of the nice {}.", "{}", "the {}", "the good {}", "the nice {}")
    superclass_templates: tuple[str, ...] = (  # each adjective gets one, drawn by random.Random(seed)
        "{} environment", "{} space", "{} object", "{} scene", "{} place", "{} item", "{} area", "{} view",
        "{} thing", "{} pattern", "{} structure", "{} landscape", "{} vista", "{} creature")
    adjective_templates: tuple[str, ...] = (  # the adjective-superclass phrases: raw features averaged over these
        "{}", "a nice photo of {}", "a good photo of {}", "a close-up photo of {}")
    seed: int = 0
    near_id: float = 0.95  # a candidate with a cosine above this to any ID label ranks as 1.0 (never kept)
    prune: bool = True  # leave out noun.person, noun.quantity, noun.group and adj.pert (the authors' txt_exclude)


@dataclass
class SynthesisConfig(Section):
    """Stage 1: near-boundary image synthesis (METHOD.md section 3)."""

    per_class: Annotated[int, Range(min=1)] = 50
    prompt_template: str = "A photo only remain {}"
    context_max_chars: int = 73
    strength: Annotated[float, Range(above=0, max=1)] = 0.6
    steps: Annotated[int, Range(min=1)] = 20
    guidance: float = 8.0
    iterations: Annotated[int, Range(min=1)] = 3
    # r * rho; None: the generator's own (10 for diffusion, 0.2 for the eraser)
    step_size: Annotated[float | None, Range(min=0)] = None
    # image (paper: each image moves by r*rho x its gradient) | batch (released code: r*rho / B)
    step_rule: StepRule = "image"
    # B of step_rule=batch: the released script's batch, whose mean loss scales each step by 1/B
    batch_size: Annotated[int, Range(min=1)] = 2
    m_out: float = -5.0
    loss: Loss = "squared"
    # skip (dL/dz0 applied to the noise) | full (backpropagate through every UNet step)
    gradient: Gradient = "skip"
    checkpointing: bool = True  # full gradient only: recompute each step in the backward pass to save memory
    seed: int = 0


@dataclass
class ProjectionConfig(Section):
    """Stage 2: image-side projection (METHOD.md section 4)."""

    lr: Annotated[float, Range(above=0)] = 1e-3
    weight_decay: Annotated[float, Range(min=0)] = 1e-5
    epochs: Annotated[int, Range(min=0)] = 3
    batch_size: Annotated[int, Range(min=1)] = 128
    logit_scale: Annotated[float, Range(above=0)] = 100.0
    # raw (authors' code: the encoder's output before L2 normalisation) | unit
    input: Embedding = "raw"
    # epoch (authors' code: CosineAnnealingLR stepped once per epoch) | batch
    schedule: Schedule = "epoch"
    eta_min: Annotated[float, Range(min=0)] = 1e-5  # the cosine schedule's floor (authors' code: 1e-5 for stage 2)
    seed: int = 0


@dataclass
class NegTuneConfig(Section):
    """Stage 3: learnable negative-label text features (METHOD.md section 5)."""

    # the paper's; the authors' code uses 2e-2 (docs/method.md: the step scales with 1/|t|^2)
    lr: Annotated[float, Range(above=0)] = 2e-3
    momentum: Annotated[float, Range(min=0)] = 0.9
    weight_decay: Annotated[float, Range(min=0)] = 1e-5
    epochs: Annotated[int, Range(min=0)] = 5
    batch_size: Annotated[int, Range(min=1)] = 128
    logit_scale: Annotated[float, Range(above=0)] = 100.0
    # raw (authors' code: learn encode_text's output, cosine in the loss) | unit
    parameter: Embedding = "raw"
    schedule: Schedule = "epoch"  # epoch (authors' code) | batch
    eta_min: Annotated[float, Range(min=0)] = 0.0  # the cosine schedule's floor (authors' code: 0 for stage 3)
    use_projection: bool = False
    joint: bool = False
    seed: int = 0


@dataclass
class FinetuneConfig(Section):
    """What stages 2 and 3 train on, and what the tuned detector substitutes at test time (METHOD.md 4-6)."""

    # m: synthetic images used (None: all; a seeded subset otherwise)
    synthetic_images: Annotated[int | None, Range(min=1)] = None
    seed: int = 0  # picks the subset of m synthetic images
    # the tuned parts the detector uses
    combination: Combination = "both"
    keep_states: Annotated[int, Range(min=1)] = 2  # per-epoch training states kept on disk for --resume (the newest)


@dataclass
class ImagesConfig(Section):
    """Limits on every image file read (folders, uploads, generation sources); none: no limit."""

    # bigger files are refused unread (MB = 2**20 bytes)
    max_file_mb: Annotated[float | None, Range(above=0)] = 64.0
    # width x height, read before decoding (bombs); Pillow's limit too
    max_pixels: Annotated[int | None, Range(min=1)] = 64_000_000
    # longer side / shorter, so at least 1 (resizing 1 x 50,000 to 224 high: 11M wide)
    max_aspect: Annotated[float | None, Range(min=1)] = 20.0


@dataclass
class PathsConfig(Section):
    """Where caches, artifacts and the run database live."""

    home: str = field(default_factory=lambda: str(cache_home()))


def cache_home() -> Path:
    """$SYNOOD_HOME, else ~/.cache/synood: where caches that models compute for themselves live."""
    return Path(os.environ.get("SYNOOD_HOME", "~/.cache/synood")).expanduser()


@dataclass(frozen=True)
class Rule:
    """What one field allows: one of `choices` (its Literal) or a number within `bounds`; None too if `optional`."""

    key: str  # section.field
    choices: tuple[str, ...] | None = None
    bounds: Range | None = None
    optional: bool = False
    size: bool = False  # an amount of memory (ByteSize)

    def check(self, value: Any) -> None:
        """Raise ConfigError with one line naming the key, the value and what is allowed, unless it is allowed."""
        if value is None and self.optional:
            return
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{self.key}: {value!r} is not allowed; choose one of {', '.join(self.choices)}")
        if self.size:
            try:
                parse_bytes(value)
            except ValueError as exc:
                raise ConfigError(f"{self.key}: {exc}") from None
        if self.bounds is not None and not self.bounds.allows(value):
            raise ConfigError(f"{self.key}: {value!r} is out of range; must be {self.bounds.describe()}"
                              + (" or none" if self.optional else ""))


def _rule(key: str, annotation: Any) -> Rule | None:
    """The rule an annotation declares: Literal[...] choices, or a Range in Annotated[...]; None when neither."""
    metadata = getattr(annotation, "__metadata__", ())
    ranges = [m for m in metadata if isinstance(m, Range)]
    size = any(isinstance(m, ByteSize) for m in metadata)
    if metadata:
        annotation = typing.get_args(annotation)[0]
    args = typing.get_args(annotation)
    optional = typing.get_origin(annotation) in (Union, types.UnionType) and type(None) in args
    if optional:
        (annotation,) = [a for a in args if a is not type(None)]
    choices = typing.get_args(annotation) if typing.get_origin(annotation) is Literal else None
    if not ranges and choices is None and not size:
        return None
    return Rule(key, choices, ranges[0] if ranges else None, optional, size)


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
    if origin is Literal:  # text here; which texts are allowed is the field's rule (Section.__setattr__)
        return _coerce(value, str, key)
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
    setattr(section, field_name, _coerce(value, hints[field_name], key))


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


RULES: dict[type, dict[str, Rule]] = {  # section class -> field -> its rule, from the annotations above
    section: {name: rule for name, hint in typing.get_type_hints(section, include_extras=True).items()
              if (rule := _rule(f"{section_name}.{name}", hint)) is not None}
    for section_name, section in typing.get_type_hints(Config).items()
}
_BY_KEY: dict[str, Rule] = {rule.key: rule for fields in RULES.values() for rule in fields.values()}
CHOICES: dict[str, tuple[str, ...]] = {  # "section.field" -> its allowed values; the first is the default
    key: rule.choices for key, rule in _BY_KEY.items() if rule.choices is not None
}


def check(key: str, value: Any) -> None:
    """Apply the config field `key`'s rule to `value`: the same one-line ConfigError as setting it in a Config,
    so a library object built without a Config (a Projection, a Suite, a scorer) refuses a bad choice alike."""
    _BY_KEY[key].check(value)


def labelled(key: str, titles: dict[str, str]) -> list[tuple[str, str]]:
    """(title, value) pairs of a choice field in CHOICES order, for a dropdown; `titles` must name exactly its
    allowed values, so a list shown to a person never drifts from what the config accepts."""
    if set(titles) != set(CHOICES[key]):
        raise ValueError(f"titles for {key} name {', '.join(titles)}; its choices are {', '.join(CHOICES[key])}")
    return [(titles[value], value) for value in CHOICES[key]]
