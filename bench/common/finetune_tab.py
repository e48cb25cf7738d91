"""Driving the Fine-tuning tab from a client: its hyperparameter inputs, and polling until a run shows a state."""
from __future__ import annotations

import time
from typing import Any, Callable

from synood.config import Config


def settings(projection_epochs: int, negatives_epochs: int, batch: int = 128) -> list:
    """The tab's hyperparameter inputs: the paper's defaults with these epochs and batch sizes."""
    p, n = Config().projection, Config().negtune
    return [p.lr, projection_epochs, batch, n.lr, negatives_epochs, batch, 0, "separate", False, "both", 0, 0, 0]


def wait_for(check: Callable[[], Any], what: str, limit: float = 300.0, every: float = 0.1) -> Any:
    """Poll `check` every `every` s until it returns a true value (returned); the limit only keeps a broken run from
    hanging the session."""
    deadline = time.monotonic() + limit
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {limit:.0f} s")
        time.sleep(every)
    return value
