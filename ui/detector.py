"""The suite's NegLabel detector, built once per app on first use and shared by every tab that scores."""
from __future__ import annotations

import functools
import threading
import weakref
from typing import TYPE_CHECKING, ClassVar

import gradio as gr

from synood.config import Config
from synood.models import Suite

if TYPE_CHECKING:  # torch, open_clip and the detector load on first use: the app must start in seconds
    from synood.pipelines.detect import Detector

LOADING_LIBRARIES = "Loading PyTorch and the model libraries"


def preload_libraries() -> threading.Thread:
    """Import PyTorch and the detector's libraries in a daemon thread, so that the page answers at once and the
    first Score after a start does not spend its first seconds on imports (about 5 s on 2 cores)."""
    def load() -> None:
        import synood.pipelines.detect  # noqa: F401  (torch, open_clip, transformers)

    thread = threading.Thread(target=load, name="preload-libraries", daemon=True)
    thread.start()
    return thread


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
        """The detector, built on the first call with every stage of building it named in `progress`."""
        with self._lock:
            if self._detector is None:
                progress(0.0, desc=LOADING_LIBRARIES)  # seconds on 2 cores, before any model can say what it loads
                from synood.pipelines.detect import Detector

                def say(message: str) -> None:
                    progress(0.0, desc=message)

                encoder, classifier = self.suite.get("encoder", say), self.suite.get("classifier", say)
                self._detector = Detector(encoder, classifier, self.config.neglabel, functools.partial(report, progress))
            return self._detector


def report(progress: gr.Progress, stage: str, done: int, total: int) -> None:
    """One stage of building the detector in a Gradio progress bar: "Encoding WordNet nouns: 12,288 of 67,186"."""
    progress(done / total, desc=f"{stage}: {done:,} of {total:,}" if total > 1 else stage)
