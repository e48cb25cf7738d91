"""Where a component's weights would come from, and whether they are here: filesystem only.

Nothing in this module touches the network or imports torch, so `synood models` and the app's
start-up answer in well under a second even on a machine with no network and no HF_HUB_OFFLINE.
"""
from __future__ import annotations

import json
import os
from importlib import metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

CACHED = "cached locally"
LOCAL = "local path"
IN_PROCESS = "built in-process"
INSTALLED = "installed package"
NEEDS_DOWNLOAD = "needs download"
MISSING = "missing"
READY_STATES = (CACHED, LOCAL, IN_PROCESS, INSTALLED)


@dataclass(frozen=True)
class Availability:
    """A component's state and the place it would load from."""

    state: str
    where: str
    detail: str = ""

    @property
    def ready(self) -> bool:
        return self.state in READY_STATES


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, honouring HF_HUB_CACHE / HF_HOME like huggingface_hub does."""
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch: $TORCH_HOME/hub or $XDG_CACHE_HOME/torch/hub."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "torch")
    return Path(os.path.expanduser(home)) / "hub"


def looks_like_path(name: str) -> bool:
    """True for strings meant as filesystem paths rather than hub ids or architecture names."""
    return name.startswith(("/", "./", "../", "~")) or os.path.exists(os.path.expanduser(name))


def probe_path(path: str) -> Availability:
    full = Path(os.path.expanduser(path)).resolve()
    if full.exists():
        return Availability(LOCAL, str(full))
    return Availability(MISSING, str(full), f"no file or folder at {full}")


def hub_file(repo_id: str, alternatives: Sequence[str]) -> Path | None:
    """The first of `alternatives` (file names in the repo) that the local HF cache holds for `repo_id`, or None."""
    from huggingface_hub import try_to_load_from_cache

    for name in alternatives:
        found = try_to_load_from_cache(repo_id, name, cache_dir=hf_hub_cache())
        if isinstance(found, str):
            return Path(found)
    return None


def index_shards(index: Path) -> list[str]:
    """The shard files a sharded checkpoint's index (model.safetensors.index.json) names, each once, sorted."""
    return sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))


def probe_hub_files(repo_id: str, required: Sequence[Sequence[str]]) -> Availability:
    """Each inner sequence lists alternatives of which one file must be in the local HF cache."""
    where = str(hf_hub_cache() / ("models--" + repo_id.replace("/", "--")))
    missing = [" or ".join(alternatives) for alternatives in required if hub_file(repo_id, alternatives) is None]
    if len(missing) == len(required):
        return Availability(NEEDS_DOWNLOAD, where, "nothing of it is in the local cache")
    if missing:
        return Availability(NEEDS_DOWNLOAD, where, f"not in the local cache: {', '.join(missing)}")
    return Availability(CACHED, where)


def torch_hub_file(url: str) -> Path:
    """Where torch.hub keeps the checkpoint downloaded from `url`: <torch hub dir>/checkpoints/<basename of url>."""
    return torch_hub_dir() / "checkpoints" / os.path.basename(url)


def probe_torch_hub_file(url: str) -> Availability:
    """A torchvision/torch.hub checkpoint at torch_hub_file(url)."""
    path = torch_hub_file(url)
    if path.is_file():
        return Availability(CACHED, str(path))
    return Availability(NEEDS_DOWNLOAD, str(path), f"{path.name} is not in the torch hub cache")


def probe_packages(distributions: Sequence[str]) -> Availability:
    """Weights that ship inside pip packages: ready when every distribution is installed."""
    found, missing = [], []
    for name in distributions:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return Availability(MISSING, "pip packages", f"not installed: {', '.join(missing)} "
                            f"(pip install {' '.join(missing)})")
    return Availability(INSTALLED, ", ".join(found))
