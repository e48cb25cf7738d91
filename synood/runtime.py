"""Device and dtype choice: CUDA when present, else CPU; always overridable."""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import ContextManager, Iterator

import torch

RANDOM_INIT_SEED = 0

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
           "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available on this machine")
    return device


def pick_dtype(name: str, device: torch.device, half_ok: bool = False) -> torch.dtype:
    """'auto' -> float16 for large generative models on CUDA (half_ok), float32 otherwise."""
    if name == "auto":
        return torch.float16 if (half_ok and device.type == "cuda") else torch.float32
    try:
        return _DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; choose one of auto, {', '.join(sorted(_DTYPES))}") from None


@contextmanager
def seeded_init(seed: int = RANDOM_INIT_SEED) -> Iterator[None]:
    """Random weights built inside are the same in every process and run (so their outputs can be
    cached and compared), and the caller's random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def autocast(device: torch.device | None, enabled: bool) -> ContextManager:
    """torch.autocast for a model on `device` when `enabled` (float16 on CUDA, bfloat16 elsewhere), else nothing:
    the forward passes of an evaluation run in mixed precision, and their caches are kept apart from float32's."""
    if not enabled or device is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)
