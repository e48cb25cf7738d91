"""Background jobs (fine-tuning, evaluation) owned by the app process, not by a Gradio event or a browser page.

One worker thread per kind runs its queued jobs one at a time: training takes every CPU core it is given, so
two runs at once would only make both slower (and on a small machine starve the app itself). A job
keeps running when the page that launched it is closed or reloaded; the run database, not this
object, is what pages read. If the app process ends, its running and queued runs read as
"interrupted" there and can be resumed.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable

from synood.records.runs import RunStore

log = logging.getLogger(__name__)
Work = Callable[[Callable[[], bool]], object]  # does one run's work; it is given the run's stop check


@dataclass
class Job:
    """One submitted run: what to do, and the flag that stops it."""

    run_id: str
    work: Work
    stop: threading.Event = field(default_factory=threading.Event)
    started: bool = False


class JobRunner:
    """A queue of jobs and the one daemon thread that runs them in submission order."""

    def __init__(self, store: RunStore, kind: str = "finetune"):
        self.store, self.kind = store, kind
        self._queue: queue.Queue[Job] = queue.Queue()
        self._jobs: dict[str, Job] = {}  # queued or running, by run id
        self._lock = threading.Lock()
        threading.Thread(target=self._loop, name=f"{kind}-jobs", daemon=True).start()

    def submit(self, run_id: str, work: Work) -> str:
        """Queue `work` for `run_id` (which this process now owns, status "queued") and return at once."""
        job = Job(run_id, work)
        with self._lock:  # status writes happen under the lock, so a stop never lands between them
            if run_id in self._jobs:
                raise ValueError(f"run {run_id} is already queued or running in this app")
            waiting = len(self._jobs)
            self.store.update(run_id, status="queued", claim=True,
                              message=f"waiting for {waiting} run(s) before it: this app runs one {self.kind} run at a time"
                              if waiting else "")
            self._jobs[run_id] = job
        self._queue.put(job)
        return run_id

    def active(self, run_id: str) -> bool:
        """Whether the run is queued or running in this process."""
        with self._lock:
            return run_id in self._jobs

    def stop(self, run_id: str) -> bool:
        """Ask the run to stop after its current batch (a queued run is dropped); False if it is not here."""
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None:
                return False
            job.stop.set()
            if not job.started:
                del self._jobs[run_id]
                self.store.update(run_id, status="stopped", message="stopped before it started; resume to start it")
        return True

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            with self._lock:
                if job.stop.is_set():  # stopped while it waited
                    continue
                job.started = True
            try:
                job.work(job.stop.is_set)
            except Exception as exc:  # the run is marked failed with the reason; the worker goes on
                log.exception("%s run %s failed", self.kind, job.run_id)
                try:
                    self.store.update(job.run_id, status="failed", message=f"{type(exc).__name__}: {exc}")
                except Exception:
                    log.exception("cannot record the failure of run %s", job.run_id)
            finally:
                with self._lock:
                    if self._jobs.get(job.run_id) is job:
                        del self._jobs[job.run_id]
