"""The suite's NegLabel detector, built once per app on first use and shared by every tab that scores."""
from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, ClassVar

import gradio as gr

from synood.config import Config
from synood.models import Suite

if TYPE_CHECKING:  # torch, open_clip and the detector load on first use: the app must start in seconds
    from synood.detect import Detector


class DetectorHolder:
    """The suite's detector, built once on first use (mining can take minutes cold) and shared."""

    _shared: ClassVar[weakref.WeakKeyDictionary] = weakref.WeakKeyDictionary()
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, suite: Suite, config: Config):
        self.suite, self.config = suite, config
        self._detector: Detector | None = None
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, suite: Suite, config: Config) -> DetectorHolder:
        """The one holder of this suite and NegLabel settings, so that every tab uses one detector."""
        with cls._shared_lock:
            holder = cls._shared.get(suite)
            if holder is None or holder.config.neglabel != config.neglabel:
                holder = cls._shared[suite] = cls(suite, config)
            return holder

    def get(self, progress: gr.Progress) -> Detector:
        with self._lock:
            if self._detector is None:
                stage = {"n": 0}

                def report(done: int, total: int) -> None:
                    if done == total:
                        stage["n"] += 1
                    progress(done / total, desc=f"Mining negative labels (step {stage['n'] + 1} of 3)")

                from synood.detect import Detector

                encoder, classifier = self.suite.get("encoder"), self.suite.get("classifier")
                self._detector = Detector(encoder, classifier, self.config.neglabel, report)
            return self._detector
