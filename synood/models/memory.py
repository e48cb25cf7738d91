"""What a component will take in memory before it loads, what is free, the dtype that fits, and the refusal.

A component's parameters come from its weight files when they are on this machine (safetensors headers; the size
of a .bin/.pth file over 4 bytes, never unpickled), else from KNOWN: the paper's models counted from their
published configs (configs/*.json, instantiated on the meta device by `count_from_config`; a test keeps the two
equal) and the tiny twins counted by building them. The estimate at a dtype is

    parameters x bytes per element x (1 + MARGIN) + OVERHEAD

with OVERHEAD measured on the tiny twins and MARGIN kept for what they cannot show (see the constants;
bench/offload_memory.py, tests/models/test_memory.py).
Free memory is psutil's available RAM on CPU and torch.cuda.mem_get_info on CUDA, capped by models.memory_limit.
`plan` is the one decision a load follows: the dtype ("auto": float16 for the generator and labeller on CUDA; on
CPU float32, or bfloat16 for those two when only that fits) and whether it fits; `Suite.get` refuses with
ModelTooBigError before loading anything that does not. Nothing here imports torch unless a GPU is asked about
or `count_from_config` runs, so `synood models` shows all of it in well under a second.
"""
from __future__ import annotations

import functools
import json
import math
import platform
import struct
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from synood.models import sources
from synood.models.interfaces import ROLE_TITLES
from synood.models.suites import (
    DIFFUSERS_FILES, NO_OWN_WEIGHTS, OPEN_CLIP_FILES, PACKAGE_FAMILIES, ComponentSpec, ModelUnavailableError,
    SuiteSpec, component_subject, open_clip_weights_repo, probe, torchvision_url,
)

if TYPE_CHECKING:  # torch is imported only where a GPU or the meta device is asked for
    import torch

GB = 2**30
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
DTYPES = tuple(BYTES)
# Measured on the tiny twins (bench/offload_memory.py, tests/models/test_memory.py), each loaded by Suite.get in a
# fresh process and run once: the tensors held are 1.000-1.001 x the counted parameters x 4 bytes (floating buffers
# are counted with the parameters), and peak RSS grows by the parameter bytes plus 50-150 MB that do not scale with
# them (allocator arenas, the CLIP tokenizer the tiny generator builds): OVERHEAD covers those. MARGIN, which the
# tiny twins cannot show, is kept for a real model's first forward pass and the library's transient copies.
MARGIN = 0.25
OVERHEAD = 256 * 2**20
HALF_FAMILIES = frozenset({"diffusers", "transformers"})  # families whose loaders take float16/bfloat16 by default
OFFLOAD_FAMILIES = HALF_FAMILIES  # --offload applies to these (diffusers model offload, accelerate device_map)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
BFLOAT16_MACHINES = frozenset({"x86_64", "amd64", "aarch64", "arm64"})
GPU_DRIVERS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd")  # NVIDIA's driver, ROCm's
CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class Known:
    """Parameter counts per sub-model (parameters and buffers), and the bytes per element of the hub files the loader
    downloads (None: nothing to download)."""

    parts: dict[str, int]
    stored_bytes: int | None
    source: str


# Parameters and floating-point buffers: what `count_from_config` (paper models) or building the tiny twin gives;
# tests/models/test_memory.py checks both.
KNOWN: dict[tuple[str, str], Known] = {
    ("open_clip", "ViT-B-16-quickgelu"): Known(
        {"model": 149_626_666}, 4, "open_clip's ViT-B-16-quickgelu config (float32 open_clip_model.safetensors)"),
    ("torchvision", "resnet50"): Known({"model": 25_610_152}, 4, "torchvision's resnet50 (float32 .pth)"),
    ("transformers", "llava-hf/llava-1.5-7b-hf"): Known(
        {"vision_tower": 303_507_456, "multi_modal_projector": 20_979_712, "language_model": 6_607_605_888,
         "lm_head": 131_334_144}, 2, "llava-hf/llava-1.5-7b-hf's config.json (float16 safetensors)"),
    ("diffusers", "stabilityai/stable-diffusion-2-inpainting"): Known(
        {"unet": 865_925_124, "vae": 83_653_863, "text_encoder": 340_387_840}, 4,
        "stabilityai/stable-diffusion-2-inpainting's unet, vae and text_encoder configs (float32 safetensors)"),
    ("open_clip", "synood-tiny-ViT"): Known({"model": 3_581_354}, None, "the tiny twin's config"),
    ("torchvision", "synood-tiny-resnet"): Known({"model": 10_084_264}, None, "the tiny twin"),
    ("transformers", "tiny"): Known({"model": 54_706}, None, "the tiny twin"),
    ("diffusers", "tiny"): Known({"unet": 1_428_452, "vae": 658_375, "text_encoder": 1_617_529}, None,
                                 "the tiny twin"),
}
# The published configs behind KNOWN's paper entries, as JSON under configs/ (sources named in docs/memory.md).
CONFIG_FILES = {
    ("transformers", "llava-hf/llava-1.5-7b-hf"): {"model": "llava-1.5-7b-hf.json"},
    ("diffusers", "stabilityai/stable-diffusion-2-inpainting"): {
        "unet": "sd2-inpainting-unet.json", "vae": "sd2-inpainting-vae.json",
        "text_encoder": "sd2-inpainting-text_encoder.json"},
}


class ModelTooBigError(ModelUnavailableError):
    """A component whose estimated memory exceeds what is free (or the memory limit): refused before loading."""


@dataclass(frozen=True)
class Footprint:
    """A component's parameters per sub-model, where the count comes from, and its weight bytes on disk and to
    download (None where unknown or not applicable)."""

    parts: dict[str, int]
    source: str
    disk_bytes: int | None = None
    download_bytes: int | None = None

    @property
    def parameters(self) -> int:
        return sum(self.parts.values())

    def estimate(self, dtype: str, parameters: int | None = None) -> int:
        """Bytes this component (or `parameters` of it) takes at `dtype`: parameters x bytes x (1 + MARGIN)
        + OVERHEAD."""
        count = self.parameters if parameters is None else parameters
        return int(count * BYTES[dtype] * (1 + MARGIN)) + OVERHEAD

    def estimates(self) -> dict[str, int]:
        return {dtype: self.estimate(dtype) for dtype in DTYPES}


@dataclass(frozen=True)
class Free:
    """Free memory on one kind of device, and the limit that capped it (None: not capped)."""

    kind: str  # "cpu" or "cuda"
    available: int
    limit: int | None = None

    @property
    def bytes(self) -> int:
        return self.available if self.limit is None else min(self.available, self.limit)

    def describe(self) -> str:
        where = "GPU memory" if self.kind == "cuda" else "RAM"
        if self.limit is not None and self.limit < self.available:
            return (f"the memory limit allows {size(self.bytes)} (--memory-limit or models.memory_limit; "
                    f"{size(self.available)} of {where} is free)")
        return f"only {size(self.bytes)} of {where} is free"


@dataclass(frozen=True)
class Plan:
    """The dtype a component will load at, what it needs on each device kind, and why (or why not) it fits."""

    dtype: str
    footprint: Footprint | None
    needs: dict[str, int] = field(default_factory=dict)  # device kind -> bytes
    free: dict[str, Free] = field(default_factory=dict)
    note: str = ""  # the dtype or offload decision, in words

    @property
    def fits(self) -> bool:
        return all(need <= self.free[kind].bytes for kind, need in self.needs.items())


def size(n: int) -> str:
    """Bytes as MB below 1 GB, else GB with one decimal (powers of 1024, as --memory-limit reads them)."""
    return f"{n / 2**20:,.0f} MB" if n < GB else f"{n / GB:,.1f} GB"


def footprint(spec: ComponentSpec) -> Footprint | None:
    """The component's footprint from its files on this machine, else from KNOWN; None when neither says."""
    found = probe(spec)
    return _footprint(spec, found.state, found.where)


@functools.lru_cache(maxsize=64)
def _footprint(spec: ComponentSpec, state: str, where: str) -> Footprint | None:
    """Cached per spec and availability: a download or a new local copy is counted afresh."""
    if spec.family in NO_OWN_WEIGHTS:
        return Footprint({}, "no weights of its own (uses the offline EfficientNet-Lite0 and stand-in encoder)")
    known = KNOWN.get((spec.family, spec.model))
    files = _weight_files(spec) if state in (sources.CACHED, sources.LOCAL, sources.INSTALLED) else {}
    try:
        parts = {part: sum(_count(path) for path in paths) for part, paths in files.items()}
    except (OSError, ValueError):  # a broken file: counted from KNOWN; loading it gives the clear message
        files = {}
    if files:
        disk = sum(path.stat().st_size for paths in files.values() for path in paths)
        return Footprint(parts, "weight files on this machine", disk, None)
    if known is None:
        return None
    downloads = known.stored_bytes is not None and not spec.random  # random weights: nothing to download
    download = sum(known.parts.values()) * known.stored_bytes if downloads and known.stored_bytes else None
    return Footprint(dict(known.parts), known.source, None, download)


def _weight_files(spec: ComponentSpec) -> dict[str, list[Path]]:
    """The weight files a load would read, grouped by sub-model; {} when they cannot be found."""
    if spec.family in PACKAGE_FAMILIES:
        if spec.weights and sources.looks_like_path(spec.weights):
            return {"model": [Path(spec.weights).expanduser()]}
        return {"model": _package_files(PACKAGE_FAMILIES[spec.family])}
    if spec.family in ("open_clip", "torchvision"):
        return {"model": [path]} if (path := _checkpoint(spec)) else {}
    root = _model_folder(spec)
    if root is None:
        return {}
    if spec.family == "diffusers":
        parts = {}
        for files in DIFFUSERS_FILES:
            if files[0].endswith(("safetensors", ".bin")):
                found = [root / name for name in files if (root / name).is_file()]
                if found:
                    parts[files[0].split("/")[0]] = found[:1]
        return parts
    index = root / "model.safetensors.index.json"
    if index.is_file():
        shards = sources.index_shards(index)
        return {"model": [root / s for s in shards]} if all((root / s).is_file() for s in shards) else {}
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (root / name).is_file():
            return {"model": [root / name]}
    return {}


def _checkpoint(spec: ComponentSpec) -> Path | None:
    """The open_clip or torchvision checkpoint file of spec on this machine, or None."""
    weights = spec.weights
    if weights is None:
        return None
    if sources.looks_like_path(weights):
        path = Path(weights).expanduser()
        return path if path.is_file() else None
    if spec.family == "torchvision":
        cached = sources.torch_hub_file(torchvision_url(spec.model, weights))
        return cached if cached.is_file() else None
    return sources.hub_file(open_clip_weights_repo(spec.model, weights), OPEN_CLIP_FILES[0])


def _model_folder(spec: ComponentSpec) -> Path | None:
    """A diffusers/transformers model's local folder or its cached hub snapshot."""
    if sources.looks_like_path(spec.model):
        path = Path(spec.model).expanduser()
        return path if path.is_dir() else None
    marker = sources.hub_file(spec.model, ("model_index.json", "config.json"))
    return marker.parent if marker else None


def _package_files(distributions: tuple[str, ...]) -> list[Path]:
    """The weight files inside installed pip packages."""
    paths = []
    for name in distributions:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        paths += [Path(str(f.locate())) for f in files if str(f).endswith(WEIGHT_SUFFIXES)]
    return [p for p in paths if p.is_file()]


def _count(path: Path) -> int:
    """Elements stored in a weight file: the shapes in a safetensors header, else the file's bytes over 4 (a
    float32 pickle; never unpickled)."""
    if path.suffix != ".safetensors":
        return path.stat().st_size // 4
    with open(path, "rb") as f:
        start = f.read(8)
        length = struct.unpack("<Q", start)[0] if len(start) == 8 else -1
        if not 0 < length <= path.stat().st_size - 8:
            raise ValueError(f"{path} has no safetensors header")
        header = json.loads(f.read(length))
    try:
        return sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")
    except (AttributeError, KeyError, TypeError):
        raise ValueError(f"{path} has a malformed safetensors header") from None


def free_memory(kind: str, index: int | None = None, limit: int | None = None) -> Free:
    """Free RAM (psutil's available) or free memory on CUDA device `index`, capped by `limit`."""
    if kind == "cuda":
        import torch

        available, _ = torch.cuda.mem_get_info(index)
    else:
        import psutil

        available = psutil.virtual_memory().available
    return Free(kind, int(available), limit)


def cpu_bfloat16() -> bool:
    """Whether torch computes in bfloat16 on this CPU: its x86-64 and ARM64 builds have bfloat16 kernels for every
    CPU of those families (native with AVX512-BF16, AMX or ARM BF16, emulated and slower elsewhere), so the rule is
    the architecture, read without importing torch."""
    return platform.machine().lower() in BFLOAT16_MACHINES


def device_kind(name: str) -> tuple[str, int | None]:
    """("cuda", index) or ("cpu", None) for a models.device value, as runtime.pick_device resolves it (other
    devices count as RAM); "auto" asks torch only where a GPU driver is present, so listing the suites on a CPU
    machine never imports it. CUDA asked for on a machine without it is refused here."""
    kind, _, index = name.partition(":")
    if name == "auto" and "torch" not in sys.modules and not any(Path(p).exists() for p in GPU_DRIVERS):
        return "cpu", None
    if name == "auto" or kind == "cuda":
        import torch

        if name == "auto":
            return ("cuda", None) if torch.cuda.is_available() else ("cpu", None)
        if not torch.cuda.is_available():
            raise ModelUnavailableError(f"--device {name}: CUDA is not available on this machine; "
                                        "use --device auto or cpu")
        return "cuda", int(index) if index else None
    return "cpu", None


def plan(spec: ComponentSpec, device_type: str, device_index: int | None, dtype: str, limit: int | None = None,
         offload: bool = False, free: Callable[[str], Free] | None = None) -> Plan:
    """The dtype spec loads at on this device and what it needs where: the one decision `Suite.get` follows.

    dtype "auto": float16 for the generator's and labeller's families on CUDA (as pick_dtype), float32 otherwise;
    on CPU those two take bfloat16 when float32 would not fit, bfloat16 would, and the CPU computes in it.
    Needs: on CPU everything in RAM (--offload has no effect); on CUDA everything on the GPU, except with --offload:
    diffusers' model offload holds one sub-model at a time on the GPU (the largest decides) and all of them in RAM;
    accelerate's device_map="auto" puts on the GPU what fits and the rest in RAM (GPU + RAM must hold it all).
    """
    def free_on(kind: str) -> Free:
        return free(kind) if free is not None else free_memory(kind, device_index if kind == "cuda" else None,
                                                                limit)

    half = spec.family in HALF_FAMILIES
    chosen = dtype if dtype != "auto" else ("float16" if half and device_type == "cuda" else "float32")
    found = footprint(spec)
    if found is None or found.parameters == 0:
        note = "" if found is not None else "size unknown: no weight files here and no published config on record"
        return Plan(chosen, found, note=note)
    frees = {"cpu": free_on("cpu")} if device_type == "cpu" else {"cuda": free_on("cuda")}
    use_offload = offload and device_type == "cuda" and spec.family in OFFLOAD_FAMILIES
    if use_offload:
        frees["cpu"] = free_on("cpu")

    def needs(at: str) -> dict[str, int]:
        if device_type == "cpu":
            return {"cpu": found.estimate(at)}
        if not use_offload:
            return {"cuda": found.estimate(at)}
        if spec.family == "diffusers":
            return {"cuda": found.estimate(at, max(found.parts.values())), "cpu": found.estimate(at)}
        return {"cpu": max(found.estimate(at) - frees["cuda"].bytes, OVERHEAD)}

    def fits(at: str) -> bool:
        return all(need <= frees[kind].bytes for kind, need in needs(at).items())

    note = ""
    if dtype == "auto" and device_type == "cpu" and half and not fits("float32"):
        if fits("bfloat16") and cpu_bfloat16():
            chosen, note = "bfloat16", "float32 would not fit in free RAM, bfloat16 does"
    if use_offload:
        note = (note + "; " if note else "") + ("model CPU offload: one sub-model on the GPU at a time"
                                                if spec.family == "diffusers" else
                                                "device_map=auto: what fits on the GPU, the rest in RAM")
    elif offload and device_type == "cpu" and spec.family in OFFLOAD_FAMILIES:
        note = (note + "; " if note else "") + "--offload has no effect on CPU"
    return Plan(chosen, found, needs(chosen), frees, note)


def refusal(suite: SuiteSpec, role: str, decided: Plan, offload: bool) -> str:
    """One message: the component, its estimate at the dtype, what is free, and the ways out."""
    spec = suite.components[role]
    assert decided.footprint is not None
    kind, need = next((k, n) for k, n in decided.needs.items() if n > decided.free[k].bytes)
    where = "GPU memory" if kind == "cuda" else "RAM"
    smaller = [d for d in ("bfloat16", "float16") if d != decided.dtype and BYTES[d] < BYTES[decided.dtype]]
    options = []
    if smaller:
        lower = decided.footprint.estimate(smaller[0])
        if lower <= decided.free[kind].bytes:
            options.append(f"a lower precision (`--dtype {smaller[0]}`: about {size(lower)})")
        else:
            options.append(f"more free memory (even `--dtype {smaller[0]}` needs about {size(lower)})")
    if spec.family in OFFLOAD_FAMILIES and not offload:
        options.append("`--offload` on a CUDA GPU (weights wait in RAM, one part on the GPU at a time)")
    options.append(f"another {ROLE_TITLES[role].lower()} (`--{role} ...`)")
    options.append("the offline suite (`--suite offline`)")
    return (
        f"{component_subject(suite, role)} needs about {size(need)} of {where} "
        f"at {decided.dtype} ({decided.footprint.parameters:,} parameters x {BYTES[decided.dtype]} bytes x "
        f"{1 + MARGIN:g} + {OVERHEAD // 2**20} MB), but {decided.free[kind].describe()}; it was not loaded. "
        f"Options: {'; '.join(options)}."
    )


def count_from_config(family: str, model: str) -> dict[str, int]:
    """Parameters (and buffers) per sub-model of a KNOWN model, instantiated on the meta device from its published
    config (no weights, no download; imports the model's library, so seconds)."""
    import torch

    def count(module: torch.nn.Module) -> int:
        return sum(t.numel() for t in module.parameters()) + sum(t.numel() for t in module.buffers()
                                                                 if t.is_floating_point())

    with torch.device("meta"):
        if family == "open_clip":
            import open_clip

            return {"model": count(open_clip.create_model(model, device="meta"))}
        if family == "torchvision":
            from torchvision.models import get_model

            return {"model": count(get_model(model, weights=None))}
        configs = {part: json.loads((CONFIG_DIR / name).read_text())
                   for part, name in CONFIG_FILES[family, model].items()}
        if family == "transformers":
            from transformers import AutoConfig, AutoModelForImageTextToText

            config = dict(configs["model"])
            net = AutoModelForImageTextToText.from_config(AutoConfig.for_model(config.pop("model_type"), **config))
            return {name: count(child) for name, child in _llava_parts(net)}
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        return {"unet": count(UNet2DConditionModel.from_config(configs["unet"])),
                "vae": count(AutoencoderKL.from_config(configs["vae"])),
                "text_encoder": count(CLIPTextModel(CLIPTextConfig(**configs["text_encoder"])))}


def _llava_parts(net: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """LLaVA's sub-models: the inner model's children and the language head."""
    return [*getattr(net, "model").named_children(), ("lm_head", getattr(net, "lm_head"))]

